//! Transfers: their states, kinds, phases and the events of their timeline.

use crate::vocabulary;

vocabulary! {
    /// Where a transfer stands.
    pub enum TransferState {
        /// Waiting for a worker (or for `run_after`).
        Queued = "queued",
        /// A worker holds its lease.
        Running = "running",
        Completed = "completed",
        /// Stopped for good on an error, with why; staff or the member may try again.
        Failed = "failed",
        /// The member withdrew, or staff cancelled it.
        Cancelled = "cancelled",
        /// The previous plan no longer accepts the member's authorization: they sign in there again.
        NeedsReauthorization = "needs_reauthorization",
    }
}

impl TransferState {
    /// States a transfer does not leave by itself.
    pub const FINISHED: [TransferState; 4] = [
        TransferState::Completed,
        TransferState::Failed,
        TransferState::Cancelled,
        TransferState::NeedsReauthorization,
    ];
    /// States staff or the member may send back to the queue.
    pub const RETRYABLE: [TransferState; 3] =
        [TransferState::Failed, TransferState::Cancelled, TransferState::NeedsReauthorization];
    /// States a cancellation or a withdrawal stops.
    pub const UNFINISHED: [TransferState; 2] = [TransferState::Queued, TransferState::Running];

    pub fn is_finished(self) -> bool {
        Self::FINISHED.contains(&self)
    }

    pub fn is_active(self) -> bool {
        !self.is_finished()
    }
}

vocabulary! {
    /// Why a transfer was queued.
    pub enum TransferKind {
        /// The first pull after an authorization.
        Initial = "initial",
        /// Everything again (staff or an operator asked).
        Full = "full",
        /// Only what changed since the last pull (`_since`).
        Incremental = "incremental",
    }
}

vocabulary! {
    /// The phase a running transfer is in (its checkpoint's).
    pub enum Phase {
        Plan = "plan",
        Fetch = "fetch",
        Resolve = "resolve",
        Finish = "finish",
        Done = "done",
    }
}

impl Default for Phase {
    fn default() -> Self {
        Phase::Plan
    }
}

vocabulary! {
    /// What a transfer's timeline records.
    pub enum EventKind {
        Queued = "queued",
        /// A worker claimed it (or took it over from one whose lease ran out).
        Claimed = "claimed",
        Planned = "planned",
        Fetched = "fetched",
        Resolved = "resolved",
        Finished = "finished",
        /// Something the member or staff should know that did not stop it.
        Warning = "warning",
        /// The previous plan would not give a kind of record.
        NotPermitted = "not_permitted",
        /// The previous plan does not offer a kind of record.
        NotSupported = "not_supported",
        /// The previous plan asked to wait; it runs again later.
        Paused = "paused",
        Retry = "retry",
        /// What arrived was deleted at the member's request.
        Deleted = "deleted",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        NeedsReauthorization = "needs_reauthorization",
        /// The previous plan was asked to end the access a withdrawn permission gave.
        AccessEnded = "access_ended",
    }
}

impl From<TransferState> for EventKind {
    /// The event that records a transfer reaching a state.
    fn from(state: TransferState) -> Self {
        match state {
            TransferState::Queued => EventKind::Queued,
            TransferState::Running => EventKind::Claimed,
            TransferState::Completed => EventKind::Completed,
            TransferState::Failed => EventKind::Failed,
            TransferState::Cancelled => EventKind::Cancelled,
            TransferState::NeedsReauthorization => EventKind::NeedsReauthorization,
        }
    }
}

vocabulary! {
    /// Orders of a transfer list.
    pub enum TransferSort {
        NewestFirst = "newest",
        OldestFirst = "oldest",
        /// Most recently finished first; unfinished last.
        RecentlyFinished = "finished",
        /// Most resources received first.
        MostReceived = "received",
    }
}

impl Default for TransferSort {
    fn default() -> Self {
        TransferSort::NewestFirst
    }
}

vocabulary! {
    /// Where an asynchronous Payer-to-Payer request (`$bulk-member-match`) is.
    pub enum BulkJobState {
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}
