//! A request that stopped part-way (cancelled by staff or an operator, or failed) is made ready
//! to be retried: its place goes back to the kick-off it depended on, and a previous plan still
//! working on a match or an export for it is asked to stop (`DELETE` of the status URL, as Bulk
//! Data says).
//!
//! A stopped request's staged lines are gone (kept only while a request runs), so one stopped
//! while reading the files or filing them asks for the export again (the matched Group, kept in
//! its place); one stopped while polling asks afresh rather than polling an operation that was
//! stopped. Members matched one by one (`$member-match`) pull their own records and keep their
//! place.

use baton_store::StoreError;

use super::{Place, Run, Step, remote};
use crate::Engine;

/// Stopped requests looked at per pass.
const PER_PASS: i64 = 50;

impl Engine {
    /// Readies each stopped request still placed mid-way and asks the previous plan to stop
    /// what it polled; how many were readied. The place is swapped first (so two workers never
    /// both act on one), then the previous plan asked, best effort; its answer is audited.
    pub async fn withdraw_stopped_requests(&self) -> Result<usize, StoreError> {
        let mut readied = 0;
        for request in self.store.stopped_requests_mid_way(PER_PASS).await? {
            let id = request.id.clone();
            let expected = request.checkpoint.clone();
            // An unreadable place cannot be resumed either: the request starts over.
            let mut place = serde_json::from_str::<Place>(&expected).unwrap_or_default();
            let polled = match &place.step {
                Step::MatchPoll { status, .. } | Step::ExportPoll { status, .. } => Some(status.clone()),
                _ => None,
            };
            place.step = match (&place.step, &place.group) {
                (Step::Single { .. }, _) | (Step::Deliver { .. }, _) if place.single => continue,
                (Step::Match | Step::MatchPoll { .. }, _) | (_, None) => Step::Match,
                (_, Some(group)) => Step::Export { group: group.clone() },
            };
            if polled.is_some() {
                place.note(
                    "it stopped while the previous plan was still working on it; that plan was asked to stop".into(),
                );
            }
            let checkpoint = serde_json::to_string(&place).unwrap_or_default();
            if !self.store.ready_stopped_request(&id, &expected, &checkpoint).await? {
                continue;
            }
            readied += 1;
            let Some(status) = polled else { continue };
            let answered = match Run::load(self, request, Default::default()).await {
                Ok(mut run) => match run.token().await {
                    Ok(token) => remote::cancel(&self.http, &status, &token).await,
                    Err(end) => format!("there was no token to ask with: {end:?}"),
                },
                Err(end) => format!("it could not be asked: {end:?}"),
            };
            self.audit_request(&id, &format!("the previous plan was asked to stop its work on it ({answered})"))
                .await?;
        }
        Ok(readied)
    }
}
