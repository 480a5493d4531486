//! Transfers for staff: a filtered, sorted, paged list; one transfer in full; retry and cancel.

use baton_store::{Account, Timestamp, TransferFilter};
use baton_transfer::Progress;
use baton_vocab::views::staff::{
    EventRow, ListedTransfer, RejectionRow, RequestRow, StaffTransfer, TransferList, TypeRow,
};
use baton_vocab::{TransferSort, TransferState, day};

use super::{Console, ConsoleError, is_admin};
use crate::audit::Action;

/// The state filter's value for transfers whose permission was withdrawn.
pub const WITHDRAWN: &str = "withdrawn";

/// Transfers per page of the list.
const PAGE: u32 = 50;

/// The list's filters, as the page's query has them (empty: no filter).
#[derive(Debug, Clone, Default)]
pub struct TransferQuery {
    pub state: String,
    pub payer: String,
    /// `YYYY-MM-DD`, inclusive.
    pub from: String,
    pub to: String,
    pub sort: String,
    pub page: u32,
}

impl Console {
    pub async fn transfers(&self, staff: &Account, query: &TransferQuery) -> Result<TransferList, ConsoleError> {
        // `withdrawn` is a filter beside the states: the permission, not the transfer, ended.
        let (state, withdrawn) = match query.state.as_str() {
            "" => (None, None),
            WITHDRAWN => (None, Some(true)),
            s => (Some(s.parse::<TransferState>().map_err(|_| ConsoleError::Invalid("state"))?), None),
        };
        let day_start = |text: &str, field: &'static str| match text.trim() {
            "" => Ok(None),
            t => day::parse(t)
                .map(|d| Some(Timestamp::from_millis(day::start_millis(d))))
                .ok_or(ConsoleError::Invalid(field)),
        };
        let created_from = day_start(&query.from, "from")?;
        // "to" is inclusive: up to the end of that day.
        let created_before = day_start(&query.to, "to")?.map(|t| t.plus(time::Duration::days(1)));
        let sort = match query.sort.as_str() {
            "" => TransferSort::default(),
            s => s.parse().map_err(|_| ConsoleError::Invalid("sort"))?,
        };
        let rows = self
            .store
            .list_transfer_rows(&TransferFilter {
                states: state.into_iter().collect(),
                payer_id: Some(query.payer.clone()).filter(|p| !p.is_empty()),
                created_from,
                created_before,
                withdrawn,
                sort,
                limit: PAGE + 1,
                offset: query.page.saturating_mul(PAGE),
                ..TransferFilter::default()
            })
            .await?;
        let subject = format!("state={} payer={} from={} to={}", query.state, query.payer, query.from, query.to);
        self.audit(staff, Action::TransferList, None, &subject, "").await?;
        Ok(TransferList {
            admin: is_admin(staff),
            payers: self.journey.payers.all_known().iter().map(|p| (p.id.clone(), p.name.clone())).collect(),
            more: rows.len() > PAGE as usize,
            rows: rows
                .into_iter()
                .take(PAGE as usize)
                .map(|row| ListedTransfer {
                    payer: self.payer_name(&row.payer_id),
                    member: row.transfer.member_account.0,
                    member_name: row.member_name,
                    state: row.transfer.state,
                    created_at: day::utc(row.transfer.created_at),
                    finished_at: row.transfer.finished_at.map(day::utc),
                    stored: Progress::from_json(&row.transfer.progress).records(),
                    withdrawn: row.withdrawn,
                    id: row.transfer.id,
                })
                .collect(),
        })
    }

    /// One transfer in full: timeline, every request made, counts per type and per reason.
    pub async fn transfer(&self, staff: &Account, id: &str) -> Result<StaffTransfer, ConsoleError> {
        let store = &self.store;
        let transfer = store.transfer(id).await?.ok_or(ConsoleError::NotFound)?;
        let link = store
            .link(&transfer.link_id)
            .await?
            .ok_or_else(|| ConsoleError::Failed(format!("transfer {id} names a link that does not exist")))?;
        let member = store.account_by_id(transfer.member_account).await?;
        let progress = Progress::from_json(&transfer.progress);
        let events = store
            .transfer_events(id)
            .await?
            .into_iter()
            .map(|e| EventRow { at: day::utc(e.at), kind: e.kind, detail: e.detail })
            .collect();
        let requests = store
            .transfer_requests(id)
            .await?
            .into_iter()
            .map(|r| RequestRow {
                at: day::utc(r.at),
                method: r.method,
                url: r.url,
                status: r.status,
                duration_ms: r.duration_ms,
                error: r.error,
            })
            .collect();
        let rejections = store
            .transfer_rejections(id)
            .await?
            .into_iter()
            .map(|r| RejectionRow { at: day::utc(r.at), source: r.source, reason: r.reason })
            .collect();
        self.audit(staff, Action::TransferView, Some(transfer.member_account), &format!("transfer {id}"), "").await?;
        Ok(StaffTransfer {
            admin: is_admin(staff),
            member: transfer.member_account.0,
            member_name: member.map(|m| m.display_name).unwrap_or_default(),
            payer: self.payer_name(&link.payer_id),
            state: transfer.state,
            kind: transfer.kind,
            attempts: transfer.attempts,
            created_at: day::utc(transfer.created_at),
            started_at: transfer.started_at.map(day::utc),
            finished_at: transfer.finished_at.map(day::utc),
            error: transfer.error,
            include_sensitive: link.include_sensitive,
            events,
            requests,
            types: progress
                .types
                .iter()
                .map(|(t, c)| TypeRow {
                    resource_type: t.clone(),
                    received: c.received,
                    stored: c.stored,
                    excluded: c.excluded,
                    rejected: c.rejected,
                })
                .collect(),
            excluded: progress.excluded.clone().into_iter().collect(),
            rejections,
            not_permitted: progress.not_permitted.clone(),
            id: transfer.id,
        })
    }

    /// Retries (a failed, cancelled or stuck transfer runs again) or cancels (a queued or
    /// running one stops); whether it was in a state that allows it.
    pub async fn transfer_action(&self, staff: &Account, id: &str, cancel: bool) -> Result<bool, ConsoleError> {
        let store = &self.store;
        let transfer = store.transfer(id).await?.ok_or(ConsoleError::NotFound)?;
        let by = format!("staff {}", staff.username);
        let now = Timestamp::now();
        let changed = if cancel {
            store.cancel_transfer(id, &by, now).await?
        } else {
            store.retry_transfer(id, &by, now).await?
        };
        let action = if cancel { Action::TransferCancel } else { Action::TransferRetry };
        let detail = if changed { "done" } else { "refused: not in a state that allows it" };
        self.audit(staff, action, Some(transfer.member_account), &format!("transfer {id}"), detail).await?;
        Ok(changed)
    }
}
