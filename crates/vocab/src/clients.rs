//! The apps and other plans' systems registered at Baton's authorization server.

use crate::vocabulary;

vocabulary! {
    /// Whether a registered client may get tokens. A suspended or removed client's tokens stop
    /// working at once; a removed one is kept only for the audit log and its past matches.
    pub enum ClientState {
        Active = "active",
        Suspended = "suspended",
        Removed = "removed",
    }
}

vocabulary! {
    /// Where a client's registration comes from: the configuration file (registered again at
    /// every start, so it can be suspended but not removed in the console) or the console.
    pub enum ClientOrigin {
        Configuration = "configuration",
        Console = "console",
    }
}
