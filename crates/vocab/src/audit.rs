//! What the audit log records (stable spellings: admins search by them).

use crate::vocabulary;

vocabulary! {
    /// An audited view or action.
    pub enum AuditAction {
        DashboardView = "dashboard.view",
        MemberSearch = "member.search",
        MemberView = "member.view",
        InvitationCreate = "invitation.create",
        /// An admin took a member's password away and made a new invitation, with a reason.
        MemberAccessReset = "member.access_reset",
        RosterUpload = "roster.upload",
        RosterView = "roster.view",
        RosterCommit = "roster.commit",
        TransferList = "transfer.list",
        TransferView = "transfer.view",
        TransferRetry = "transfer.retry",
        TransferCancel = "transfer.cancel",
        RecordsView = "records.view",
        RecordView = "record.view",
        RecordReveal = "record.reveal",
        AuditSearch = "audit.search",
        AuditExport = "audit.export",
        ApiTokenCreate = "api_token.create",
        ApiTokenRevoke = "api_token.revoke",
        /// A use of the plan's own FHIR API with an API token.
        ApiRead = "api.read",
        PayersLoad = "payers.load",
        PayersRegister = "payers.register",
        /// An admin switched a configured payer on or off, or back to configuration.
        PayersEnable = "payers.enable",
        /// An admin pinned a brands entry's endpoints or scope override.
        PayersEndpoints = "payers.endpoints",
        /// A member's authorization that the previous plan refused, or that could not reach it.
        AuthorizationFailed = "authorization.failed",
        /// Another plan's system matched a member (`$member-match`), with the member's Consent.
        MemberMatch = "p2p.member_match",
        /// A `$member-match` that found no member, several, or a Consent Baton cannot honour.
        MemberMatchRefused = "p2p.member_match.refused",
        /// Another plan's system read a matched member's records.
        MemberRead = "p2p.read",
        /// A member stopped an app's access to their records here (Connected apps).
        AppAccessRevoke = "app.access.revoke",
        /// An admin registered another plan's system in the console.
        ClientRegister = "p2p.client.register",
        /// This plan's system asked a previous plan to match a member (the answer in the detail).
        MatchRequested = "p2p.match.requested",
        /// An admin suspended, resumed or removed another plan's system.
        ClientState = "p2p.client.state",
        /// A member's previous coverage was recorded or corrected (by them, staff or the roster).
        CoverageRecorded = "p2p.coverage.recorded",
        /// A member opted in or out of this plan asking their previous plan (channel in the detail).
        OptInRecorded = "p2p.opt_in.recorded",
        /// A request to a previous plan for a batch of members started, ended, was retried or cancelled.
        RequestChanged = "p2p.request.changed",
        /// Staff looked at the requests to previous plans, or at one of them.
        RequestList = "p2p.request.list",
        RequestView = "p2p.request.view",
    }
}
