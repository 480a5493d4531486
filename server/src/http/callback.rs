//! `GET /oauth/callback`: the member comes back from their previous plan. The pending
//! authorization is taken out of their session (so it is used once), the journey checks the
//! state before anything else, and the member lands on their transfer's progress page — or
//! back on the payer directory with a problem the page puts into plain words. Nothing from
//! the query string is logged.

use app::ssr::Services;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use baton_journey::{AuthorizationErrorCode, CallbackError, CallbackParams, JourneyError};
use baton_store::Timestamp;
use baton_vocab::BringProblem;
use tower_sessions::Session;

pub async fn oauth_callback(
    State(services): State<Services>,
    session: Session,
    Query(params): Query<CallbackParams>,
) -> Response {
    let account = match app::ssr::account_in_session(&session, &services.accounts).await {
        Ok(Some(account)) => account,
        Ok(None) => return Redirect::to(&format!("/member/bring?problem={}", BringProblem::Session)).into_response(),
        Err(_) => return Redirect::to(&format!("/member/bring?problem={}", BringProblem::Unavailable)).into_response(),
    };
    let pending = match app::ssr::take_pending_authorization(&session, params.state.as_deref()).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "cannot read the pending authorization");
            return Redirect::to(&format!("/member/bring?problem={}", BringProblem::Unavailable)).into_response();
        }
    };
    // A v1-only plan that refused the wildcard scope is asked once more, per type.
    if let Some(pending) = &pending
        && let Some((url, retry)) = services.journey.per_type_retry(pending, &params).await
    {
        if let Err(error) = app::ssr::keep_pending_authorization(&session, retry).await {
            tracing::error!(%error, "cannot keep the pending authorization");
            return Redirect::to(&format!("/member/bring?problem={}", BringProblem::Unavailable)).into_response();
        }
        return Redirect::to(url.as_str()).into_response();
    }
    let payer = pending.as_ref().map(|p| p.payer_id.clone()).unwrap_or_default();
    match services.journey.finish(account.id, pending.as_ref(), &params, Timestamp::now()).await {
        Ok(connected) => Redirect::to(&format!("/member/transfers/{}", connected.transfer_id)).into_response(),
        Err(error) => {
            let problem = problem(&error);
            tracing::warn!(account = account.id.0, %payer, %problem, %error, "authorization not completed");
            let payer =
                if payer.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') { payer } else { String::new() };
            Redirect::to(&format!("/member/bring?problem={problem}&payer={payer}")).into_response()
        }
    }
}

/// The page's key for what went wrong.
fn problem(error: &JourneyError) -> BringProblem {
    match error {
        JourneyError::Callback(CallbackError::NoPendingAuthorization | CallbackError::StateMismatch) => {
            BringProblem::State
        }
        JourneyError::Callback(CallbackError::Expired) => BringProblem::Expired,
        JourneyError::Callback(CallbackError::Refused { code: AuthorizationErrorCode::AccessDenied, .. }) => {
            BringProblem::Denied
        }
        JourneyError::Callback(CallbackError::Refused {
            code: AuthorizationErrorCode::ServerError | AuthorizationErrorCode::TemporarilyUnavailable,
            ..
        }) => BringProblem::Unavailable,
        JourneyError::Callback(CallbackError::Refused { .. } | CallbackError::TokenRefused(_)) => BringProblem::Refused,
        JourneyError::Callback(CallbackError::NoCode | CallbackError::NoPatient) => BringProblem::Token,
        JourneyError::Callback(CallbackError::TokenFailed(_)) => BringProblem::Unreachable,
        JourneyError::UnknownPayer(_) | JourneyError::UnknownConsent => BringProblem::State,
        JourneyError::NotOffered(_) => BringProblem::NotOffered,
        JourneyError::WindowClosed { .. } => BringProblem::Closed,
        JourneyError::Discovery(error) if error.is_unreachable() => BringProblem::Unreachable,
        JourneyError::Discovery(_) | JourneyError::NoPayerToPayer(_) | JourneyError::PayerRefused(_) => {
            BringProblem::NotSetUp
        }
        JourneyError::Invalid(_)
        | JourneyError::Failed(_)
        | JourneyError::Brands(_)
        | JourneyError::Pinned(_)
        | JourneyError::Store(_) => BringProblem::Unavailable,
    }
}
