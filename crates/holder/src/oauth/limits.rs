//! Failed client authentications at the token, introspection and revocation endpoints are
//! limited per client and per address: each attempt with a shared secret costs an argon2 hash,
//! and a guessed secret or a forged assertion should not be tried without end. The count is
//! this instance's (in memory); an attempt held back costs nothing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Failures allowed in the window for one client…
pub const PER_CLIENT: usize = 10;
/// …and from one address (several clients may share a gateway).
pub const PER_ADDRESS: usize = 30;

/// Recent failures by key (`client:<id>`, `ip:<address>`).
#[derive(Default)]
pub struct ClientFailures(Mutex<HashMap<String, VecDeque<Instant>>>);

/// Who an attempt is: the client it claims to be, and where it comes from.
pub struct Attempt {
    keys: Vec<(String, usize)>,
}

impl Attempt {
    pub fn new(client_id: Option<&str>, ip: Option<IpAddr>) -> Self {
        let mut keys = Vec::new();
        if let Some(id) = client_id.filter(|id| !id.is_empty()) {
            keys.push((format!("client:{}", id.chars().take(200).collect::<String>()), PER_CLIENT));
        }
        if let Some(ip) = ip {
            keys.push((format!("ip:{ip}"), PER_ADDRESS));
        }
        Self { keys }
    }
}

impl ClientFailures {
    /// How long `attempt` must wait, when one of its keys has failed too often.
    pub fn wait(&self, attempt: &Attempt) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.retain(|_, times| {
            times.retain(|at| now.duration_since(*at) < WINDOW);
            !times.is_empty()
        });
        attempt
            .keys
            .iter()
            .filter_map(|(key, limit)| {
                let times = failures.get(key)?;
                let oldest = *times.front()?;
                (times.len() >= *limit).then(|| WINDOW.saturating_sub(now.duration_since(oldest)))
            })
            .max()
    }

    /// Counts a failed authentication of `attempt`.
    pub fn record(&self, attempt: &Attempt) {
        let now = Instant::now();
        let mut failures = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, _) in &attempt.keys {
            failures.entry(key.clone()).or_default().push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_failures_waits_and_others_do_not() {
        let failures = ClientFailures::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let guessing = Attempt::new(Some("new-plan"), Some(ip));
        for _ in 0..PER_CLIENT {
            assert!(failures.wait(&guessing).is_none());
            failures.record(&guessing);
        }
        let wait = failures.wait(&guessing).expect("held back");
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(5));
        assert!(failures.wait(&Attempt::new(Some("other-plan"), Some(ip))).is_none(), "the address has room");
        for n in 0..PER_ADDRESS {
            failures.record(&Attempt::new(Some(&format!("plan-{n}")), Some(ip)));
        }
        assert!(failures.wait(&Attempt::new(Some("other-plan"), Some(ip))).is_some(), "nor does the address now");
        assert!(failures.wait(&Attempt::new(Some("other-plan"), None)).is_none());
    }
}
