//! Email to members, in plain words and never with health details: through the SMTP relay the
//! configuration names (lettre; `smtps://user:password@host` or `smtp://host:587?tls=required`),
//! or, without one — the demo, the tests — written to the log and kept (the last hundred) so
//! that what would have gone can be seen.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

/// How many messages the log-only mailer keeps.
const KEPT: usize = 100;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Error)]
pub enum MailError {
    #[error("the mail relay URL is not usable: {0}")]
    Relay(String),
    #[error("{0:?} is not an email address")]
    Address(String),
    #[error("the message could not be sent: {0}")]
    Send(String),
}

#[derive(Clone)]
pub struct Mailer(Arc<Inner>);

struct Inner {
    from: Mailbox,
    transport: Transport,
    kept: Mutex<VecDeque<Email>>,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    LogOnly,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0.transport {
            Transport::Smtp(_) => "smtp",
            Transport::LogOnly => "log only",
        };
        write!(f, "Mailer({kind}, from {})", self.0.from)
    }
}

impl Mailer {
    /// Sends through the relay at `url` (its password stays secret), as `from`.
    pub fn smtp(url: &SecretString, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| MailError::Relay(e.to_string()))?
            .build();
        Ok(Self::with(Transport::Smtp(transport), from)?)
    }

    /// Writes each message to the log instead of sending it.
    pub fn log_only(from: &str) -> Result<Self, MailError> {
        Self::with(Transport::LogOnly, from)
    }

    fn with(transport: Transport, from: &str) -> Result<Self, MailError> {
        let from: Mailbox = from.parse().map_err(|_| MailError::Address(from.to_owned()))?;
        Ok(Self(Arc::new(Inner { from, transport, kept: Mutex::new(VecDeque::new()) })))
    }

    pub async fn send(&self, email: Email) -> Result<(), MailError> {
        let to: Mailbox = email.to.parse().map_err(|_| MailError::Address(email.to.clone()))?;
        let message = Message::builder()
            .from(self.0.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .body(email.body.clone())
            .map_err(|e| MailError::Send(e.to_string()))?;
        match &self.0.transport {
            Transport::Smtp(transport) => {
                transport.send(message).await.map_err(|e| MailError::Send(e.to_string()))?;
                tracing::info!(subject = %email.subject, "email sent");
            }
            Transport::LogOnly => {
                tracing::info!(to = %email.to, subject = %email.subject, "email not sent: no mail relay is configured");
                let mut kept = self.0.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if kept.len() == KEPT {
                    kept.pop_front();
                }
                kept.push_back(email);
            }
        }
        Ok(())
    }

    /// What the log-only mailer would have sent, oldest first (nothing for a relay).
    pub fn kept(&self) -> Vec<Email> {
        self.0.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_only_mailer_keeps_what_it_would_have_sent() {
        let mailer = Mailer::log_only("Cedar Valley Health <no-reply@cedar.example>").unwrap();
        let email = Email { to: "maria@example.org".into(), subject: "Hello".into(), body: "Words".into() };
        mailer.send(email.clone()).await.unwrap();
        assert_eq!(mailer.kept(), [email]);
        let bad = Email { to: "not an address".into(), subject: "x".into(), body: "y".into() };
        assert!(matches!(mailer.send(bad).await, Err(MailError::Address(_))));
        assert!(Mailer::log_only("nobody").is_err());
        assert!(Mailer::smtp(&"ftp://relay.example".to_owned().into(), "a@b.example").is_err());
    }
}
