//! `GET /oauth/callback`: the member comes back from their previous plan. The pending
//! authorization is taken out of their session (so it is used once), the journey checks the
//! state before anything else, and the member lands on their transfer's progress page — or
//! back on the payer directory with a problem the page puts into plain words. Nothing from
//! the query string is logged.

use app::ssr::{PENDING_AUTHORIZATION, Services};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use baton_journey::{AuthorizationErrorCode, CallbackError, CallbackParams, JourneyError, PendingAuthorization};
use baton_store::Timestamp;
use tower_sessions::Session;

pub async fn oauth_callback(
    State(services): State<Services>,
    session: Session,
    Query(params): Query<CallbackParams>,
) -> Response {
    let account = match app::ssr::account_in_session(&session, &services.accounts).await {
        Ok(Some(account)) => account,
        Ok(None) => return Redirect::to("/member/bring?problem=session").into_response(),
        Err(_) => return Redirect::to("/member/bring?problem=unavailable").into_response(),
    };
    let pending = match session.remove::<PendingAuthorization>(PENDING_AUTHORIZATION).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "cannot read the pending authorization");
            return Redirect::to("/member/bring?problem=unavailable").into_response();
        }
    };
    let payer = pending.as_ref().map(|p| p.payer_id.clone()).unwrap_or_default();
    match services.journey.finish(account.id, pending.as_ref(), &params, Timestamp::now()).await {
        Ok(connected) => Redirect::to(&format!("/member/transfers/{}", connected.transfer_id)).into_response(),
        Err(error) => {
            let problem = problem(&error);
            tracing::warn!(account = account.id.0, %payer, problem, %error, "authorization not completed");
            let payer =
                if payer.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') { payer } else { String::new() };
            Redirect::to(&format!("/member/bring?problem={problem}&payer={payer}")).into_response()
        }
    }
}

/// The page's key for what went wrong.
fn problem(error: &JourneyError) -> &'static str {
    match error {
        JourneyError::Callback(CallbackError::NoPendingAuthorization | CallbackError::StateMismatch) => "state",
        JourneyError::Callback(CallbackError::Expired) => "expired",
        JourneyError::Callback(CallbackError::Refused { code: AuthorizationErrorCode::AccessDenied, .. }) => "denied",
        JourneyError::Callback(CallbackError::Refused {
            code: AuthorizationErrorCode::ServerError | AuthorizationErrorCode::TemporarilyUnavailable,
            ..
        }) => "unavailable",
        JourneyError::Callback(CallbackError::Refused { .. }) => "refused",
        JourneyError::Callback(CallbackError::NoCode | CallbackError::NoPatient | CallbackError::TokenRefused(_)) => {
            "token"
        }
        JourneyError::Callback(CallbackError::TokenFailed(_)) => "unavailable",
        JourneyError::UnknownPayer(_) | JourneyError::UnknownConsent => "state",
        JourneyError::NotOffered(_) => "not_offered",
        JourneyError::WindowClosed { .. } => "closed",
        JourneyError::Discovery(_)
        | JourneyError::Failed(_)
        | JourneyError::Brands(_)
        | JourneyError::Pinned(_)
        | JourneyError::Store(_) => "unavailable",
    }
}
