//! Baton's vocabulary: every state, policy, role, phase and kind the crates (and the browser)
//! share, as an enum with one spelling. Each enum is written once with [`vocabulary!`], which
//! gives it `as_str`, `Display` and `FromStr` (the stored and serialised spelling), `ALL`,
//! serde, and — with the `sqlx` feature, on the server — binding and decoding as TEXT on both
//! databases. The read models the pages render are in [`views`]. Nothing here depends on the
//! server, so it compiles to WebAssembly for the pages.

mod macros;

pub mod audit;
pub mod clients;
pub mod consent;
pub mod day;
pub mod problems;
pub mod records;
pub mod requests;
pub mod roles;
pub mod transfer;
pub mod views;

pub use audit::AuditAction;
pub use clients::{ClientOrigin, ClientState};
pub use consent::{ConsentChannel, ConsentPolicy, GivenNameRule, LinkAccess, LinkState, MatchResult, SensitiveSharing, TokenKind};
pub use macros::UnknownValue;
pub use problems::BringProblem;
pub use records::{Category, SensitiveKind};
pub use requests::{OptIn, RequestState};
pub use roles::{Role, Roles};
pub use transfer::{BulkJobState, EventKind, Phase, TransferKind, TransferSort, TransferState};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every enum: its spelling parses back, serde writes the same spelling, an unknown one
    /// says what is expected.
    fn round_trip<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr + serde::Serialize,
        T: serde::de::DeserializeOwned,
        <T as std::str::FromStr>::Err: std::fmt::Debug,
    {
        let mut seen = std::collections::HashSet::new();
        for value in all {
            let text = value.to_string();
            assert!(seen.insert(text.clone()), "{text} spelled twice");
            assert_eq!(text.parse::<T>().unwrap(), *value);
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *value);
        }
    }

    #[test]
    fn one_spelling_each_way() {
        round_trip(&TransferState::ALL);
        round_trip(&TransferKind::ALL);
        round_trip(&TransferSort::ALL);
        round_trip(&Phase::ALL);
        round_trip(&EventKind::ALL);
        round_trip(&LinkState::ALL);
        round_trip(&ConsentPolicy::ALL);
        round_trip(&ConsentChannel::ALL);
        round_trip(&SensitiveSharing::ALL);
        round_trip(&TokenKind::ALL);
        round_trip(&Role::ALL);
        round_trip(&Category::ALL);
        round_trip(&SensitiveKind::ALL);
        round_trip(&AuditAction::ALL);
        round_trip(&BringProblem::ALL);
        round_trip(&BulkJobState::ALL);
        round_trip(&ClientState::ALL);
        round_trip(&ClientOrigin::ALL);
        round_trip(&LinkAccess::ALL);
        round_trip(&MatchResult::ALL);
        round_trip(&GivenNameRule::ALL);
        let error = "maybe".parse::<SensitiveSharing>().unwrap_err();
        assert_eq!(error.to_string(), "\"maybe\" is not a SensitiveSharing (excluded, included)");
    }
}
