//! Recording staff views and actions, and exporting the log.

use baton_store::{AccountId, AuditEvent, NewAuditEvent, Store, StoreError, Timestamp};

/// Who acts: a signed-in account, or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub account: Option<AccountId>,
    /// As shown in the log, e.g. `sam (Sam Rivera)` or `api token "billing"`.
    pub name: String,
}

impl Actor {
    pub fn account(id: AccountId, username: &str, display_name: &str) -> Self {
        Self { account: Some(id), name: format!("{username} ({display_name})") }
    }

    pub fn api_token(name: &str) -> Self {
        Self { account: None, name: format!("api token \"{name}\"") }
    }
}

/// Actions, as stored (stable: admins search by them): the vocabulary's.
pub use baton_vocab::AuditAction as Action;

/// Writes audit records. A view whose record cannot be written must not be shown: callers
/// treat an error here as a failure of the view itself.
#[derive(Debug, Clone)]
pub struct Auditor {
    store: Store,
}

impl Auditor {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn record(
        &self,
        actor: &Actor,
        action: Action,
        member: Option<AccountId>,
        subject: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.store
            .record_audit(&NewAuditEvent {
                at: Timestamp::now(),
                actor_account: actor.account,
                actor: actor.name.clone(),
                action: action.to_string(),
                member_account: member,
                subject: subject.to_owned(),
                detail: detail.to_owned(),
            })
            .await
    }
}

/// The log as CSV (RFC 4180), one line per event, times in UTC (RFC 3339). Cells that a
/// spreadsheet would run as a formula are prefixed with `'`.
pub fn to_csv(events: &[AuditEvent]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = ["time_utc", "actor", "actor_account", "action", "member_account", "subject", "detail"];
    // Writing to a Vec cannot fail; a failure would only drop the row, never panic.
    let _ = writer.write_record(header);
    for event in events {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.at) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let _ = writer.write_record([
            at,
            inert(&event.actor),
            number(event.actor_account),
            inert(&event.action),
            number(event.member_account),
            inert(&event.subject),
            inert(&event.detail),
        ]);
    }
    writer.into_inner().map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

/// OWASP "CSV injection": a cell starting with `= + - @` (or tab/CR) is text, not a formula.
fn inert(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let events = vec![AuditEvent {
            id: 1,
            at: 1_764_000_000_000,
            actor_account: Some(4),
            actor: "sam (Sam \"The\" Rivera)".into(),
            action: "member.search".into(),
            member_account: None,
            subject: "=HYPERLINK(\"http://x\")".into(),
            detail: "a, b\nc".into(),
        }];
        let csv = to_csv(&events);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("time_utc,actor,actor_account,action,member_account,subject,detail"));
        assert!(csv.contains("2025-11-24T16:00:00Z,\"sam (Sam \"\"The\"\" Rivera)\",4,member.search,,"), "{csv}");
        assert!(csv.contains("\"'=HYPERLINK(\"\"http://x\"\")\""), "{csv}");
        assert!(csv.contains("\"a, b\nc\""), "{csv}");
    }
}
