//! Starting requests for the members that are due: per previous plan, in batches, members who
//! would be asked for the same period (`_since`) together.

use std::collections::BTreeMap;

use baton_store::{P2pRequest, StoreError, Timestamp};
use baton_vocab::RequestState;

use crate::Engine;

impl Engine {
    /// Starts a request for each batch of members due at `now` (their previous plan known to
    /// the directory with a Payer-to-Payer registration); returns the requests started.
    pub async fn queue_due_requests(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let mut started = vec![];
        for payer in self.store.payers_due(now).await? {
            if !self.registered_for_requests(&payer) {
                tracing::warn!(%payer, "members are due at a payer this plan has no Payer-to-Payer registration at");
                continue;
            }
            started.extend(self.queue_payer(&payer, now).await?);
        }
        Ok(started)
    }

    /// This plan can ask `payer` server to server: it knows its FHIR base and has a
    /// Payer-to-Payer (Backend Services) registration there.
    pub fn registered_for_requests(&self, payer: &str) -> bool {
        self.payers.credentials(payer).and_then(|c| c.backend).is_some() && self.payers.fhir_base(payer).is_some()
    }

    /// Starts requests for what is due at one payer now (also the operator's `baton p2p run`).
    pub async fn queue_payer(&self, payer: &str, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let batch = self.config.requests.batch_size.max(1);
        let mut started = vec![];
        loop {
            let due = self.store.coverages_due(payer, now, 5_000).await?;
            if due.is_empty() {
                return Ok(started);
            }
            let mut by_since: BTreeMap<Option<String>, Vec<_>> = BTreeMap::new();
            for coverage in due {
                by_since.entry(coverage.last_exported_at.clone()).or_default().push(coverage);
            }
            for (since, coverages) in by_since {
                for chunk in coverages.chunks(batch) {
                    let id = uuid::Uuid::new_v4().to_string();
                    let request = P2pRequest {
                        id: id.clone(),
                        payer_id: payer.to_owned(),
                        state: RequestState::Queued,
                        checkpoint: "{}".into(),
                        members: chunk.len() as i64,
                        matched: 0,
                        not_matched: 0,
                        constrained: 0,
                        lines: 0,
                        rejected: 0,
                        since: since.clone(),
                        progress_note: None,
                        error: None,
                        attempts: 0,
                        lease_owner: None,
                        lease_until: None,
                        run_after: now.millis(),
                        created_at: now.millis(),
                        updated_at: now.millis(),
                        finished_at: None,
                    };
                    let members: Vec<_> = chunk.iter().map(|c| (c.id.clone(), c.member_account)).collect();
                    self.store.create_request(&request, &members).await?;
                    tracing::info!(request = %id, %payer, members = chunk.len(), "request to a previous plan started");
                    self.audit_request(&id, &format!("started: {} members to {payer}", chunk.len())).await?;
                    started.push(id);
                }
            }
        }
    }
}
