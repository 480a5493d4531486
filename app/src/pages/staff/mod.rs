//! The staff console: dashboard, members and the roster, transfers, requests to previous plans,
//! received records, audit.
//!
//! Every server function here checks the role on the server (`require_staff`/`require_admin`)
//! and records what was seen or done in the audit log before answering.

mod api_tokens;
mod audit;
mod dashboard;
mod discovery;
mod members;
mod payer_clients;
mod payers;
mod previous;
mod records;
mod requests;
mod roster;
mod transfers;

use baton_vocab::TransferState;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::i18n::{t, t_string, use_i18n};

pub use api_tokens::ApiTokensPage;
pub use audit::AuditPage;
pub use dashboard::{StaffHome, StaffHomeData, load_staff_home};
pub use members::{MemberPage, MembersPage};
pub use payer_clients::PayerClientsPage;
pub use payers::PayersPage;
pub use records::{MemberRecordsPage, RecordPage};
pub use requests::{RequestPage, RequestsListPage};
pub use roster::{RosterImportPage, RosterPage};
pub use transfers::{StaffTransferPage, TransfersPage};

/// The console's own navigation, on every staff page.
#[component]
pub fn StaffNav(#[prop(optional)] admin: bool) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <nav class="staff-nav" aria-label=move || t_string!(i18n, console.nav_label)>
            <ul>
                <li><A exact=true href="/staff">{t!(i18n, console.nav_dashboard)}</A></li>
                <li><A exact=true href="/staff/members">{t!(i18n, console.nav_members)}</A></li>
                <li><A exact=true href="/staff/roster">{t!(i18n, console.nav_roster)}</A></li>
                <li><A exact=true href="/staff/transfers">{t!(i18n, console.nav_transfers)}</A></li>
                <li><A exact=true href="/staff/requests">{t!(i18n, requests.nav)}</A></li>
                <li><A exact=true href="/staff/payers">{t!(i18n, console.nav_payers)}</A></li>
                {admin.then(|| view! {
                    <li><A exact=true href="/staff/audit">{t!(i18n, console.nav_audit)}</A></li>
                    <li><A exact=true href="/staff/api-tokens">{t!(i18n, console.nav_tokens)}</A></li>
                    <li><A exact=true href="/staff/payer-clients">{t!(i18n, console.nav_clients)}</A></li>
                })}
            </ul>
        </nav>
    }
}

/// The words for a transfer state.
pub fn state_label(state: TransferState) -> AnyView {
    let i18n = use_i18n();
    match state {
        TransferState::Queued => t!(i18n, console.state_queued).into_any(),
        TransferState::Running => t!(i18n, console.state_running).into_any(),
        TransferState::Completed => t!(i18n, console.state_completed).into_any(),
        TransferState::Failed => t!(i18n, console.state_failed).into_any(),
        TransferState::Cancelled => t!(i18n, console.state_cancelled).into_any(),
        TransferState::NeedsReauthorization => t!(i18n, console.state_needs_reauthorization).into_any(),
    }
}
