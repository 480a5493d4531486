//! Signing in and out, and who is signed in.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What every page knows about the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// This plan's name, as configured.
    pub plan_name: String,
    pub user: Option<UserView>,
}

/// The signed-in account, as the UI needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub display_name: String,
    pub is_member: bool,
    pub is_staff: bool,
}

impl UserView {
    /// Where this account lands after signing in.
    pub fn home(&self) -> &'static str {
        if self.is_staff { "/staff" } else { "/member" }
    }
}

#[server(endpoint = "session")]
pub async fn get_session() -> Result<SessionInfo, AppError> {
    let services = crate::ssr::services()?;
    let user = crate::ssr::current_account().await?.map(|account| UserView {
        display_name: account.display_name,
        is_member: account.roles.has(baton_accounts::Role::Member),
        is_staff: account.roles.is_staff(),
    });
    Ok(SessionInfo { plan_name: services.plan_name.clone(), user })
}

/// Signs in; on success goes to `next` (a path on this site) or the account's home.
#[server(endpoint = "sign_in")]
pub async fn sign_in(username: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use baton_accounts::SignInError;
    use baton_store::Timestamp;

    if username.trim().is_empty() {
        return Err(crate::ssr::fail(AppError::Invalid { field: "username".into() }));
    }
    if password.is_empty() {
        return Err(crate::ssr::fail(AppError::Invalid { field: "password".into() }));
    }
    let services = crate::ssr::services()?;
    let session = crate::ssr::session().await?;
    let client_ip = crate::ssr::client_ip();
    match services.accounts.sign_in(&username, &password, client_ip, Timestamp::now()).await {
        Ok(account) => {
            // A new session id at sign-in: a session fixed before cannot be taken over.
            session.cycle_id().await.map_err(crate::ssr::session_error)?;
            session.insert(crate::ssr::SESSION_ACCOUNT, account.id.0).await.map_err(crate::ssr::session_error)?;
            tracing::info!(account = account.id.0, "signed in");
            let home = if account.roles.is_staff() { "/staff" } else { "/member" };
            let target = next.as_deref().and_then(local_path).unwrap_or(home);
            leptos_axum::redirect(target);
            Ok(())
        }
        Err(SignInError::InvalidCredentials) => Err(crate::ssr::fail(AppError::InvalidCredentials)),
        Err(SignInError::TooManyAttempts { retry_after_secs }) => {
            Err(crate::ssr::fail(AppError::TooManyAttempts { retry_after_secs }))
        }
        Err(SignInError::Unavailable(error)) => {
            tracing::error!(%error, "sign-in failed");
            Err(AppError::Unavailable)
        }
    }
}

/// Signs out: the session is destroyed, in the store and in the browser.
#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    let session = crate::ssr::session().await?;
    session.flush().await.map_err(crate::ssr::session_error)?;
    leptos_axum::redirect("/");
    Ok(())
}

/// `path` when it is a path on this site (so `next` cannot send anyone elsewhere).
pub fn local_path(path: &str) -> Option<&str> {
    let ok =
        path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') && !path.chars().any(char::is_control);
    ok.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn next_must_stay_on_this_site() {
        assert_eq!(local_path("/member"), Some("/member"));
        assert_eq!(local_path("/staff?x=1"), Some("/staff?x=1"));
        assert_eq!(local_path("//evil.example/"), None);
        assert_eq!(local_path("https://evil.example/"), None);
        assert_eq!(local_path("/\\evil.example"), None);
        assert_eq!(local_path("member"), None);
        assert_eq!(local_path("/a\nb"), None);
    }
}
