//! What went wrong, as the pages' query strings name it (`?problem=`).

use crate::vocabulary;

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
