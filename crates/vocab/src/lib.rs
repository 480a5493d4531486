//! Baton's vocabulary: every state, policy, role and phase the crates (and the browser) share,
//! as an enum with one spelling. Each enum is written once with [`vocabulary!`], which gives it
//! `as_str`, `Display` and `FromStr` (the stored and serialised spelling), serde, and — with
//! the `sqlx` feature, on the server — binding and decoding as TEXT on both databases. This
//! crate has no other dependency, so it compiles to WebAssembly for the pages.

mod macros;
pub mod views;

pub use macros::UnknownValue;

vocabulary! {
    /// What a previous plan said about sensitive information when it granted access.
    pub enum SensitiveSharing {
        /// Its grant leaves sensitive information out (the member said so there).
        Excluded = "excluded",
        /// Its grant includes it.
        Included = "included",
    }
}

vocabulary! {
    /// Why a member is back at the list of plans instead of on their transfer (`?problem=`).
    pub enum BringProblem {
        /// The member said no at their previous plan.
        Denied = "denied",
        /// The callback did not match the authorization this session started.
        State = "state",
        Expired = "expired",
        /// The member's session here ended meanwhile.
        Session = "session",
        /// The previous plan refused this plan's request (its authorization or token endpoint).
        Refused = "refused",
        /// The previous plan did not finish: no code, or no patient.
        Token = "token",
        /// The previous plan could not be reached: trying later may help.
        Unreachable = "unreachable",
        /// The previous plan answered, but is not set up for members to share online with this
        /// plan (no PKCE S256, no authorization endpoint): trying again will not help.
        NotSetUp = "not_set_up",
        /// Staff switched the plan off.
        NotOffered = "not_offered",
        /// The time to bring records (90 days after coverage starts) has ended.
        Closed = "closed",
        Unavailable = "unavailable",
    }
}

impl BringProblem {
    /// Whether trying the same plan again can help.
    pub fn can_try_again(self) -> bool {
        !matches!(self, BringProblem::NotOffered | BringProblem::Closed | BringProblem::NotSetUp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_each_way() {
        for value in SensitiveSharing::ALL {
            assert_eq!(value.as_str().parse::<SensitiveSharing>(), Ok(value));
            assert_eq!(value.to_string(), value.as_str());
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, format!("\"{}\"", value.as_str()));
            assert_eq!(serde_json::from_str::<SensitiveSharing>(&json).unwrap(), value);
        }
        let error = "maybe".parse::<SensitiveSharing>().unwrap_err();
        assert_eq!(error.to_string(), "\"maybe\" is not a SensitiveSharing (excluded, included)");
    }
}
