//! This plan asking previous plans for new members' records (the Payer-to-Payer API, server to
//! server): a member's opt-in and the requests that carry batches of members.

use crate::vocabulary;

vocabulary! {
    /// What a new member said about this plan asking their previous plan for their records.
    pub enum OptIn {
        /// Not asked yet (or not recorded).
        Unknown = "unknown",
        /// They agreed: this plan asks.
        In = "in",
        /// They declined, or withdrew: nothing is asked.
        Out = "out",
    }
}

vocabulary! {
    /// Where a request to a previous plan for a batch of members stands.
    pub enum RequestState {
        /// Waiting for a worker (or for `run_after`).
        Queued = "queued",
        /// Asking the previous plan to match the members (`$bulk-member-match`).
        Matching = "matching",
        /// Asking for the matched members' data (`$davinci-data-export`).
        Exporting = "exporting",
        /// Reading the files the export made.
        Downloading = "downloading",
        /// Each matched member's records are being filed (their transfers run).
        Delivering = "delivering",
        Completed = "completed",
        /// Stopped for good, with why; staff or an operator may retry it.
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl RequestState {
    /// States a request does not leave by itself.
    pub const FINISHED: [RequestState; 3] = [RequestState::Completed, RequestState::Failed, RequestState::Cancelled];

    pub fn is_finished(self) -> bool {
        Self::FINISHED.contains(&self)
    }
}
