//! Sign-in with throttling.
//!
//! Failures are counted per account name (whether or not the account exists) and per client
//! IP over a sliding window. Past the limit a sign-in is refused before the password is
//! checked, with how long to wait. Every refusal for bad credentials looks the same and takes
//! the same time, so nothing tells an attacker which usernames exist.

use std::net::IpAddr;

use baton_store::Timestamp;
use thiserror::Error;
use time::Duration;

use crate::Account;
use crate::account::{AccountError, Accounts};
use crate::password;

/// Limits on failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub window: Duration,
    pub max_failures_per_account: u32,
    pub max_failures_per_ip: u32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self { window: Duration::minutes(15), max_failures_per_account: 5, max_failures_per_ip: 20 }
    }
}

#[derive(Debug, Error)]
pub enum SignInError {
    /// Wrong username or password (never says which).
    #[error("the username or password is not right")]
    InvalidCredentials,
    /// Too many failures: try again after this many seconds.
    #[error("too many sign-in attempts; try again in {retry_after_secs} seconds")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("sign-in is unavailable: {0}")]
    Unavailable(#[from] AccountError),
}

impl From<baton_store::StoreError> for SignInError {
    fn from(error: baton_store::StoreError) -> Self {
        SignInError::Unavailable(AccountError::Store(error))
    }
}

impl Accounts {
    /// Checks a username and password. `client_ip` is the address the request came from.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Account, SignInError> {
        let account_key = format!("account:{}", throttle_name(username));
        let ip_key = client_ip.map(|ip| format!("ip:{ip}"));
        let since = now.plus(-self.policy.window);

        // The attempt takes its place among the failures first, then counts: of parallel
        // attempts, the one reserved k-th sees at least k, so no more than the limit reach the
        // password check. A throttled attempt takes its place back; a failed one keeps it.
        let attempt = attempt_id();
        let mut keys = vec![account_key.as_str()];
        if let Some(ip_key) = &ip_key {
            keys.push(ip_key);
        }
        self.store.reserve_sign_in_attempt(&keys, &attempt, now).await?;
        let mut retry_at: Option<Timestamp> = None;
        let (failures, oldest) = self.store.sign_in_failures_since(&account_key, since).await?;
        if failures > self.policy.max_failures_per_account {
            retry_at = oldest.map(|t| t.plus(self.policy.window));
        }
        if let Some(ip_key) = &ip_key {
            let (failures, oldest) = self.store.sign_in_failures_since(ip_key, since).await?;
            if failures > self.policy.max_failures_per_ip {
                retry_at = retry_at.max(oldest.map(|t| t.plus(self.policy.window)));
            }
        }
        if let Some(retry_at) = retry_at {
            self.store.release_sign_in_attempt(&attempt).await?;
            let wait_ms = (retry_at.millis() - now.millis()).max(1_000);
            tracing::warn!(account = %account_key, ip = ?client_ip, "sign-in throttled");
            return Err(SignInError::TooManyAttempts { retry_after_secs: (wait_ms as u64).div_ceil(1_000) });
        }

        let account = match crate::Username::parse(username) {
            Ok(name) => self.store.account_by_username(name.as_str()).await?,
            Err(_) => None,
        };
        let stored_hash = account.as_ref().and_then(|a| a.password_hash.clone());
        let verified = password::verify_async(password.to_owned(), stored_hash).await.map_err(AccountError::from)?;
        match account {
            Some(row) if verified => {
                self.store.release_sign_in_attempt(&attempt).await?;
                self.store.clear_sign_in_failures(&account_key).await?;
                Ok(row)
            }
            // The reservation stays: it is this failure.
            _ => Err(SignInError::InvalidCredentials),
        }
    }
}

/// A fresh name for one sign-in attempt.
fn attempt_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The name failures are counted under: normalised like a username, bounded in length, so
/// that `Maria`, ` maria ` and `maria` share one counter.
fn throttle_name(username: &str) -> String {
    username.trim().to_lowercase().chars().take(64).collect()
}
