//! Server-only glue: the services server functions use, the session, the request.

use std::net::IpAddr;

use baton_accounts::{Account, AccountId, Accounts, Roles};
use leptos::prelude::*;
use tower_sessions::Session;

use crate::error::AppError;

/// Session key holding the signed-in account's id.
pub const SESSION_ACCOUNT: &str = baton_accounts::SESSION_ACCOUNT_KEY;

/// What server functions work with, provided as context by the server.
#[derive(Clone)]
pub struct Services {
    pub accounts: Accounts,
    /// This plan's display name.
    pub plan_name: String,
    /// Bringing records from previous plans: directory, consent, authorization.
    pub journey: baton_journey::Journey,
    /// The roster and invitations.
    pub enrollment: baton_enrollment::Enrollment,
    /// The staff console's read models and actions.
    pub console: baton_staff::Console,
    /// This plan's FHIR base URL.
    pub local_base: String,
}

/// Session key of the authorizations on their way to a previous plan (state, PKCE verifier,
/// the member's consent choice): kept server side, each taken out by the callback that
/// carries its state — a second tab, or Back and Forward, leaves the others usable.
pub const PENDING_AUTHORIZATION: &str = "baton.pending_authorizations";
/// The most authorizations kept on their way at once (the oldest goes first).
const PENDING_KEPT: usize = 5;

/// Keeps `pending` beside the member's other authorizations on their way.
pub async fn keep_pending_authorization(
    session: &Session,
    pending: baton_journey::PendingAuthorization,
) -> Result<(), tower_sessions::session::Error> {
    let mut kept: Vec<baton_journey::PendingAuthorization> =
        session.get(PENDING_AUTHORIZATION).await.ok().flatten().unwrap_or_default();
    kept.push(pending);
    let excess = kept.len().saturating_sub(PENDING_KEPT);
    kept.drain(..excess);
    session.insert(PENDING_AUTHORIZATION, &kept).await
}

/// Takes out the authorization the callback's `state` names (used once). When none does, the
/// newest is taken out all the same: the journey then refuses the callback as not this
/// authorization's, and says for which plan.
pub async fn take_pending_authorization(
    session: &Session,
    state: Option<&str>,
) -> Result<Option<baton_journey::PendingAuthorization>, tower_sessions::session::Error> {
    let mut kept: Vec<baton_journey::PendingAuthorization> =
        session.get(PENDING_AUTHORIZATION).await.ok().flatten().unwrap_or_default();
    let Some(at) = kept.iter().position(|p| Some(p.state.as_str()) == state).or(kept.len().checked_sub(1)) else {
        return Ok(None);
    };
    let taken = kept.remove(at);
    session.insert(PENDING_AUTHORIZATION, &kept).await?;
    Ok(Some(taken))
}

pub use baton_accounts::ClientIp;

pub fn services() -> Result<Services, AppError> {
    use_context::<Services>().ok_or_else(|| {
        tracing::error!("Services missing from the Leptos context");
        AppError::Unavailable
    })
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|error| {
        tracing::error!(%error, "no session on the request");
        AppError::Unavailable
    })
}

pub fn session_error(error: tower_sessions::session::Error) -> AppError {
    tracing::error!(%error, "session store failed");
    AppError::Unavailable
}

pub fn client_ip() -> Option<IpAddr> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientIp>().copied())
        .map(|ClientIp(ip)| ip)
}

/// The account signed in to `session`, if any (and still present).
pub async fn account_in_session(session: &Session, accounts: &Accounts) -> Result<Option<Account>, AppError> {
    let Some(id) = session.get::<i64>(SESSION_ACCOUNT).await.map_err(session_error)? else {
        return Ok(None);
    };
    accounts.by_id(AccountId(id)).await.map_err(|error| {
        tracing::error!(%error, "cannot load the session's account");
        AppError::Unavailable
    })
}

pub async fn current_account() -> Result<Option<Account>, AppError> {
    let services = services()?;
    account_in_session(&session().await?, &services.accounts).await
}

/// The signed-in account when its roles pass `allowed`; otherwise why not.
pub async fn require(allowed: impl Fn(&Roles) -> bool) -> Result<Account, AppError> {
    match current_account().await? {
        None => Err(fail(AppError::SignInRequired)),
        Some(account) if allowed(&account.roles) => Ok(account),
        Some(account) => {
            tracing::warn!(account = account.id.0, "forbidden");
            Err(fail(AppError::Forbidden))
        }
    }
}

/// The signed-in member.
pub async fn require_member() -> Result<Account, AppError> {
    require(|roles| roles.has(baton_accounts::Role::Member)).await
}

/// The signed-in staff member (staff or admin role).
pub async fn require_staff() -> Result<Account, AppError> {
    require(Roles::is_staff).await
}

/// The signed-in admin.
pub async fn require_admin() -> Result<Account, AppError> {
    require(|roles| roles.has(baton_accounts::Role::Admin)).await
}

/// The staff console's error as the pages' (failures are logged, not shown).
pub fn console_error(error: baton_staff::ConsoleError) -> AppError {
    match error {
        baton_staff::ConsoleError::NotFound => fail(AppError::NotFound),
        baton_staff::ConsoleError::Invalid(field) => fail(AppError::Invalid { field: field.into() }),
        baton_staff::ConsoleError::Forbidden => fail(AppError::Forbidden),
        other => unavailable(other),
    }
}

/// Logs a store failure and answers with the plain "unavailable".
pub fn unavailable(error: impl std::fmt::Display) -> AppError {
    tracing::error!(%error, "server function failed");
    AppError::Unavailable
}

/// Gives a failing server function the HTTP status its error means (401, 403, 429…) —
/// except for plain HTML form posts, which Leptos answers with a redirect back to the form.
pub fn fail(error: AppError) -> AppError {
    let form_post = use_context::<http::request::Parts>().is_some_and(|parts| {
        parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    });
    if !form_post {
        set_status(error.status());
    }
    error
}

/// Sets the HTTP status of the page being rendered.
pub fn set_status(status: u16) {
    if let (Some(response), Ok(code)) =
        (use_context::<leptos_axum::ResponseOptions>(), http::StatusCode::from_u16(status))
    {
        response.set_status(code);
    }
}
