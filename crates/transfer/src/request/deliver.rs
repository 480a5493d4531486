//! Delivering what the export brought: Provenance routed to the member its targets belong to,
//! then a link and a transfer per matched member whose Consent still holds (the transfer files
//! their staged lines like any other pull); the request ends when every transfer has, and each
//! member's next request is scheduled.

use std::collections::BTreeSet;
use std::time::Duration;

use baton_fhir::reference::Reference;
use baton_store::{PayerLink, Timestamp};
use baton_vocab::{ConsentPolicy, LinkAccess, LinkState, MatchResult, RequestState, TransferKind};
use serde_json::Value;

use super::download::PROVENANCE;
use super::{Outcome, RequestEnd, Run, Step};

/// Provenance lines read per round while routing.
const ROUTE_PAGE: u32 = 500;

impl Run<'_> {
    pub(super) async fn deliver(&mut self, transaction_time: Option<String>, routed: bool) -> Outcome {
        let failed = |e: baton_store::StoreError| RequestEnd::Failed(e.to_string());
        if !routed {
            self.route_provenance().await?;
            self.place.step = Step::Deliver { transaction_time: transaction_time.clone(), routed: true };
            self.save(RequestState::Delivering).await?;
        }
        let store = &self.engine.store;
        let members = store.request_members(&self.request.id).await.map_err(failed)?;
        let mut open = 0;
        for member in members.iter().filter(|m| m.result == Some(MatchResult::Matched)) {
            let Some(patient) = &member.old_patient else { continue };
            let transfer_id = match &member.transfer_id {
                Some(id) => id.clone(),
                None => {
                    let Some(coverage) = store.previous_coverage(&member.coverage_id).await.map_err(failed)? else {
                        continue;
                    };
                    let consent = match &coverage.consent_id {
                        Some(id) => store.consent(id).await.map_err(failed)?,
                        None => None,
                    };
                    let Some(consent) = consent.filter(|c| c.in_force(Timestamp::now())) else {
                        self.place.note(format!(
                            "a member's permission ended before their records were filed ({})",
                            coverage.id
                        ));
                        continue;
                    };
                    let id = uuid::Uuid::new_v4().to_string();
                    store.set_request_transfer(&self.request.id, &member.coverage_id, &id).await.map_err(failed)?;
                    self.start_transfer(&id, &coverage, &consent, patient).await?;
                    id
                }
            };
            match store.transfer(&transfer_id).await.map_err(failed)? {
                Some(transfer) if transfer.state.is_finished() => {}
                Some(_) => open += 1,
                None => {
                    // Noted but not created (a crash in between): create it now.
                    let coverage = store.previous_coverage(&member.coverage_id).await.map_err(failed)?;
                    let consent = match coverage.as_ref().and_then(|c| c.consent_id.clone()) {
                        Some(id) => store.consent(&id).await.map_err(failed)?,
                        None => None,
                    };
                    if let (Some(coverage), Some(consent)) = (coverage, consent) {
                        self.start_transfer(&transfer_id, &coverage, &consent, patient).await?;
                        open += 1;
                    }
                }
            }
        }
        if open > 0 {
            self.note = Some(format!("filing the records of {open} members"));
            let state = self.request.state;
            self.save(state).await?;
            return Err(RequestEnd::Waiting(Duration::from_secs(2)));
        }
        self.schedule_next(&members, transaction_time.as_deref()).await?;
        Err(RequestEnd::Completed)
    }

    /// A link (this plan's system's access, sealed) and a transfer that files the member's lines.
    async fn start_transfer(
        &mut self,
        id: &str,
        coverage: &baton_store::PreviousCoverage,
        consent: &baton_store::MemberConsent,
        patient: &str,
    ) -> Outcome {
        let store = &self.engine.store;
        let failed = |e: String| RequestEnd::Failed(e);
        let token = self.token().await?;
        let expires_at = self.token.as_ref().and_then(|t| t.expires_at);
        let scope = self.token.as_ref().map(|t| t.scope.clone()).unwrap_or_default();
        let now = Timestamp::now();
        if store.link(id).await.map_err(|e| failed(e.to_string()))?.is_none() {
            let sealed = self
                .engine
                .cipher
                .seal_for(&token, &PayerLink::token_place(id, "access"))
                .map_err(|e| failed(e.to_string()))?;
            let link = PayerLink {
                id: id.to_owned(),
                member_account: coverage.member_account,
                payer_id: coverage.payer_id.clone(),
                consent_id: Some(consent.id.clone()),
                fhir_base: self.fhir_base.clone(),
                patient_id: Some(patient.to_owned()),
                scope,
                include_sensitive: consent.policy == ConsentPolicy::Sensitive,
                access_token: Some(sealed),
                access_expires_at: expires_at,
                refresh_token: None,
                id_token: None,
                state: LinkState::Active,
                created_at: now.millis(),
                updated_at: now.millis(),
                source_sensitive: None,
                // Matched one by one: the transfer pulls the records (no export was made).
                access: if self.place.single { LinkAccess::PayerToPayer } else { LinkAccess::BulkExport },
            };
            store.insert_link(&link).await.map_err(|e| failed(e.to_string()))?;
        }
        let link =
            store.link(id).await.map_err(|e| failed(e.to_string()))?.ok_or_else(|| failed("link vanished".into()))?;
        let kind = if self.request.since.is_some() { TransferKind::Incremental } else { TransferKind::Initial };
        // A pull asks for what changed since the last request itself; an export already did.
        let since = self.request.since.as_deref().filter(|_| self.place.single).and_then(Timestamp::parse_rfc3339);
        store.enqueue_transfer(id, &link, kind, since, now).await.map_err(|e| failed(e.to_string()))?;
        Ok(())
    }

    /// Each Provenance that came without a patient goes to the member all its targets belong
    /// to; one naming several members' records (or none this request brought) is not filed,
    /// and said: each member's records carry this plan's own Provenance naming the previous
    /// plan as transmitter.
    async fn route_provenance(&mut self) -> Outcome {
        let store = &self.engine.store;
        let failed = |e: baton_store::StoreError| RequestEnd::Failed(e.to_string());
        let mut after = 0;
        let mut unrouted = 0;
        loop {
            let lines = store.staged_lines(&self.request.id, PROVENANCE, after, ROUTE_PAGE).await.map_err(failed)?;
            let Some(last) = lines.last().map(|(seq, _)| *seq) else { break };
            let mut moves = vec![];
            for (seq, body) in lines {
                let provenance: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let mut owners = BTreeSet::new();
                for target in provenance["target"].as_array().into_iter().flatten() {
                    let reference = target["reference"].as_str().unwrap_or_default();
                    let Some((t, id)) = Reference::parse(reference).local_to(&self.fhir_base) else {
                        owners.insert(None);
                        continue;
                    };
                    owners.insert(store.staged_owner(&self.request.id, t, id).await.map_err(failed)?);
                }
                match (owners.len(), owners.into_iter().next()) {
                    (1, Some(Some(owner))) => moves.push((seq, owner)),
                    _ => unrouted += 1,
                }
            }
            store.restage(&self.request.id, PROVENANCE, &moves).await.map_err(failed)?;
            after = last;
        }
        if unrouted > 0 {
            self.place.note(format!(
                "{unrouted} Provenance named records of several members (or none this request brought) and were not \
                 filed; each member's records carry this plan's Provenance naming the previous plan"
            ));
        }
        Ok(())
    }

    /// When each member is asked again: a member still covered there every quarter while their
    /// permission holds; otherwise once more after the run-off period, then never. Not matched:
    /// not again until staff or the member ask.
    async fn schedule_next(&mut self, members: &[baton_store::RequestMember], exported_at: Option<&str>) -> Outcome {
        let store = &self.engine.store;
        let config = &self.engine.config.requests;
        let now = Timestamp::now();
        for member in members {
            let Some(coverage) =
                store.previous_coverage(&member.coverage_id).await.map_err(|e| RequestEnd::Failed(e.to_string()))?
            else {
                continue;
            };
            let next = match member.result {
                Some(MatchResult::Matched) if coverage.concurrent => {
                    Some(now.plus(time::Duration::days(config.concurrent_every_days)).millis())
                }
                Some(MatchResult::Matched) if coverage.last_exported_at.is_none() => {
                    Some(now.plus(time::Duration::days(config.run_off_days)).millis())
                }
                _ => None,
            };
            let exported = if member.result == Some(MatchResult::Matched) { exported_at } else { None };
            store
                .schedule_coverage(&coverage.id, next, exported, now)
                .await
                .map_err(|e| RequestEnd::Failed(e.to_string()))?;
        }
        Ok(())
    }
}
