//! `GET /member/transfers/{id}/live`: a member's transfer as Server-Sent Events, for the
//! progress page. Each event's data is the page's view of the transfer (JSON), sent when it
//! changed; the stream ends after the view that shows the transfer has ended. Only the member
//! whose transfer it is gets it; anyone else gets 404, as for the page.

use std::convert::Infallible;
use std::time::Duration;

use app::ssr::Services;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use baton_store::AccountId;
use baton_vocab::views::TransferView;
use tower_sessions::Session;

/// How often the stream looks for a change.
const EVERY: Duration = Duration::from_secs(1);

pub async fn transfer_progress(State(services): State<Services>, session: Session, Path(id): Path<String>) -> Response {
    let account = match app::ssr::account_in_session(&session, &services.accounts).await {
        Ok(Some(account)) => account,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let member = account.id;
    let first = match services.journey.member_transfer(member, &id).await {
        Ok(Some(view)) => view,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let follow = Follow { services, member, id, next: Some(first), last: None, ended: false };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next_change().await?;
        Some((Ok::<Event, Infallible>(event), follow))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

struct Follow {
    services: Services,
    member: AccountId,
    id: String,
    /// A view already loaded, to send before looking again.
    next: Option<TransferView>,
    /// The last view sent, as sent.
    last: Option<String>,
    ended: bool,
}

impl Follow {
    /// Waits for the view to differ from the last one sent; `None` once the transfer has ended
    /// (after its final view went out) or cannot be read any more.
    async fn next_change(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            let view = match self.next.take() {
                Some(view) => view,
                None => {
                    tokio::time::sleep(EVERY).await;
                    match self.services.journey.member_transfer(self.member, &self.id).await {
                        Ok(Some(view)) => view,
                        // Gone, or the store failed (logged): the stream ends, and the
                        // browser's EventSource connects again after a while.
                        Ok(None) | Err(_) => return None,
                    }
                }
            };
            let Ok(json) = serde_json::to_string(&view) else { return None };
            self.ended = !view.active;
            if self.last.as_deref() != Some(json.as_str()) {
                let event = Event::default().data(&json);
                self.last = Some(json);
                return Some(event);
            }
            if self.ended {
                return None;
            }
        }
    }
}
