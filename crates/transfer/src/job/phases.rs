//! The phases: plan, fetch, resolve, finish.

use baton_vocab::{EventKind, Phase};
use sha2::Digest;
use std::collections::{BTreeMap, HashSet, VecDeque};

use baton_fhir::exchange::{Category, category_of, is_exchange_type};
use baton_fhir::reference::Reference;
use baton_fhir::sensitivity;
use baton_fhir::smart::Scopes;
use baton_store::Timestamp;
use serde_json::Value;
use sha2::Sha256;

use super::{Checkpoint, Job, JobEnd, RECENT_PAGES, RESOLVE_BATCH, Step, Stop};
use crate::client::{Audit, FetchError};
use crate::hex;
use crate::plan::{PROVENANCE_TARGETS_PER_SEARCH, Plan, ProvenanceCursor, plan};

impl Job<'_> {
    /// What the link's token allows, as a member's app would hold it.
    fn scopes(&self) -> Scopes {
        let scopes = Scopes::parse(&self.link.scope);
        match self.link.access {
            baton_vocab::LinkAccess::Member => scopes,
            baton_vocab::LinkAccess::PayerToPayer | baton_vocab::LinkAccess::BulkExport => scopes.system_as_patient(),
        }
    }

    pub(super) async fn plan(&mut self) -> Step {
        if self.delivery.is_some() {
            return self.plan_delivery().await;
        }
        let audit = Audit::default();
        let capability = match self.get(&self.client.url("metadata"), &audit).await {
            Ok(capability) => capability,
            Err(stop) => return Err(self.stop(stop, &audit).await),
        };
        if capability["resourceType"] != "CapabilityStatement" {
            let stop = Stop::End(JobEnd::Failed("the previous plan's metadata is not a CapabilityStatement".into()));
            return Err(self.stop(stop, &audit).await);
        }
        let Some(patient) = self.link.patient_id.clone() else {
            let stop = Stop::End(JobEnd::Failed("the previous plan did not say which patient the member is".into()));
            return Err(self.stop(stop, &audit).await);
        };
        let plan = self.plan_from(&capability, &patient);
        self.progress.phase = Phase::Fetch;
        self.progress.not_permitted = plan.not_permitted.clone();
        self.progress.not_supported = plan.not_supported.clone();
        let detail =
            if plan.everything { "Patient/$everything".to_owned() } else { format!("{} searches", plan.steps.len()) };
        self.checkpoint = Checkpoint::Fetch { plan, step: 0, next: None, recent: VecDeque::new() };
        let organizations = self.plan_organizations()?;
        self.commit(organizations, vec![], &audit, vec![(EventKind::Planned, detail)], 0).await
    }

    /// The requests for `capability`: from `history_years` back, claims changed in the last
    /// year whatever their date, only what changed since the last pull for an incremental one.
    fn plan_from(&self, capability: &Value, patient: &str) -> Plan {
        let now = Timestamp::now().to_datetime();
        let start = now.replace_year(now.year() - self.engine.config.history_years).unwrap_or(now);
        let start = baton_vocab::day::format(start.date());
        let changed_from = baton_vocab::day::format((now - time::Duration::days(365)).date());
        let since = self.transfer.since.map(|s| Timestamp::from_millis(s).to_fhir_instant());
        let page_size = self.engine.config.page_size;
        plan(capability, &self.scopes(), patient, &start, &changed_from, since.as_deref(), page_size)
    }

    /// The plan listed `$everything` but does not answer it: one search per type instead, from
    /// its CapabilityStatement read again.
    async fn without_everything(&mut self, why: String, audit: &Audit) -> Step {
        let capability = match self.get(&self.client.url("metadata"), audit).await {
            Ok(capability) => crate::plan::without_everything(&capability),
            Err(stop) => return Err(self.stop(stop, audit).await),
        };
        let patient = self.link.patient_id.clone().unwrap_or_default();
        let plan = self.plan_from(&capability, &patient);
        self.progress.not_permitted = plan.not_permitted.clone();
        self.progress.not_supported = plan.not_supported.clone();
        let said = format!("the previous plan's $everything did not answer ({why}); one search per type instead");
        self.checkpoint = Checkpoint::Fetch { plan, step: 0, next: None, recent: VecDeque::new() };
        self.commit(vec![], vec![], audit, vec![(EventKind::Warning, said)], 0).await
    }

    pub(super) async fn fetch(
        &mut self,
        mut plan: Plan,
        step: usize,
        next: Option<String>,
        mut recent: VecDeque<String>,
    ) -> Step {
        if step >= plan.steps.len()
            && let Some(search) = self.provenance_search(&mut plan).await?
        {
            plan.steps.push(search);
        }
        let Some(current) = plan.steps.get(step).cloned() else {
            self.checkpoint = Checkpoint::Resolve;
            self.progress.phase = Phase::Resolve;
            return self
                .commit(
                    vec![],
                    vec![],
                    &Audit::default(),
                    vec![(EventKind::Fetched, format!("{} pages", self.progress.pages))],
                    0,
                )
                .await;
        };
        let first_page = next.is_none();
        let url = next.unwrap_or_else(|| self.client.url(&current.path));
        let audit = Audit::default();
        let advance =
            |plan: &Plan| Checkpoint::Fetch { plan: plan.clone(), step: step + 1, next: None, recent: VecDeque::new() };
        let started = std::time::Instant::now();
        let mut page = match self.get_page(&url, &audit).await {
            Ok(page) => page,
            Err(Stop::Fetch(FetchError::Forbidden(why))) if current.resource_type.is_some() => {
                let t = current.resource_type.clone().unwrap_or_default();
                self.progress.not_permitted.push(t.clone());
                self.checkpoint = advance(&plan);
                return self
                    .commit(vec![], vec![], &audit, vec![(EventKind::NotPermitted, format!("{t}: {why}"))], 0)
                    .await;
            }
            Err(Stop::Fetch(FetchError::NotFound(why) | FetchError::NotImplemented(why)))
                if current.resource_type.is_none() && first_page =>
            {
                return self.without_everything(why, &audit).await;
            }
            Err(Stop::Fetch(FetchError::NotFound(why) | FetchError::NotImplemented(why)))
                if current.resource_type.is_some() =>
            {
                let t = current.resource_type.clone().unwrap_or_default();
                self.progress.not_supported.push(t.clone());
                self.checkpoint = advance(&plan);
                return self
                    .commit(vec![], vec![], &audit, vec![(EventKind::NotSupported, format!("{t}: {why}"))], 0)
                    .await;
            }
            Err(stop) => return Err(self.stop(stop, &audit).await),
        };
        if page["resourceType"] != "Bundle" {
            let what = page["resourceType"].as_str().unwrap_or("something else").to_owned();
            // An OperationOutcome says why, in the plan's words.
            let said = baton_fhir::outcome::diagnostics(&page).map(|d| format!(": \"{d}\"")).unwrap_or_default();
            let stop =
                Stop::End(JobEnd::Failed(format!("the previous plan answered {url} with {what}, not a Bundle{said}")));
            return Err(self.stop(stop, &audit).await);
        }
        if first_page && let Some(total) = page["total"].as_u64() {
            self.progress.expected = Some(self.progress.expected.unwrap_or(0) + total);
        }
        // An `$everything` that carries Provenance needs no asking for it by target.
        if current.resource_type.is_none()
            && page["entry"].as_array().is_some_and(|e| e.iter().any(|e| e["resource"]["resourceType"] == "Provenance"))
        {
            plan.provenance_by_target = None;
        }
        let mut events = vec![];
        let fetched = started.elapsed();
        let entries = page.get_mut("entry").map(Value::take);
        let (resources, rejected) = self.ingest_entries(entries, &mut events).await?;
        let ingested = started.elapsed() - fetched;

        recent.push_back(url_hash(&url));
        if recent.len() > RECENT_PAGES {
            recent.pop_front();
        }
        let next_link = page["link"]
            .as_array()
            .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
            .map(str::to_owned);
        self.checkpoint = match next_link {
            Some(next) if !self.client.same_origin(&next) => {
                events.push((
                    EventKind::Warning,
                    format!("a next link pointed to another server ({}); it was not followed", origin_of(&next)),
                ));
                advance(&plan)
            }
            Some(next) if recent.contains(&url_hash(&next)) => {
                events.push((EventKind::Warning, "the previous plan's pages looped; paging stopped".into()));
                advance(&plan)
            }
            Some(next) => Checkpoint::Fetch { plan: plan.clone(), step, next: Some(next), recent },
            None => advance(&plan),
        };
        self.progress.pages += 1;
        self.prefetch_next_page();
        let mut resources = resources;
        self.add_custodian_provenance(&mut resources)?;
        let count = resources.len();
        let waited = std::time::Instant::now();
        let result = self.commit_in_background(resources, rejected, &audit, events, 1).await;
        tracing::debug!(
            page = self.progress.pages,
            resources = count,
            fetch_ms = fetched.as_millis() as u64,
            ingest_ms = ingested.as_millis() as u64,
            wait_ms = waited.elapsed().as_millis() as u64,
            "page ingested"
        );
        result
    }

    /// After `$everything`, the next `Provenance?target=` search naming what arrived (see
    /// [`Plan::provenance_by_target`]); `None` once every record's Provenance was asked for, or
    /// Provenance proved not permitted. (An `$everything` page that carried Provenance itself
    /// ended the asking before it began.)
    async fn provenance_search(&mut self, plan: &mut Plan) -> Result<Option<crate::plan::Step>, JobEnd> {
        let Some(cursor) = plan.provenance_by_target else { return Ok(None) };
        let refused = [&self.progress.not_permitted, &self.progress.not_supported]
            .iter()
            .any(|types| types.iter().any(|t| t == "Provenance"));
        if refused {
            plan.provenance_by_target = None;
            return Ok(None);
        }
        // What was fetched is in the store before the store is asked what it was.
        self.settle().await?;
        let rows = self
            .engine
            .store
            .transfer_source_ids(
                &self.transfer.id,
                &self.ctx.source_base,
                cursor.after_seq,
                PROVENANCE_TARGETS_PER_SEARCH,
            )
            .await
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        let Some((last, _, _)) = rows.last() else {
            plan.provenance_by_target = None;
            return Ok(None);
        };
        plan.provenance_by_target = Some(ProvenanceCursor { after_seq: *last });
        let targets: Vec<String> = rows.iter().map(|(_, t, id)| format!("{t}/{id}")).collect();
        let targets: String = url::form_urlencoded::byte_serialize(targets.join(",").as_bytes()).collect();
        Ok(Some(crate::plan::Step {
            resource_type: Some("Provenance".into()),
            path: format!("Provenance?target={targets}&_count={}", self.engine.config.page_size),
        }))
    }

    /// Reads what the records refer to but did not come: directory entries and the like.
    pub(super) async fn resolve(&mut self) -> Step {
        let dangling = self.dangling(10_000).await?;
        let mut candidates: Vec<(String, String)> = vec![];
        let mut seen = HashSet::new();
        for (_, _, target_type, target_id) in dangling {
            let key = (target_type, target_id);
            // A record left out as sensitive is not fetched again.
            let withheld =
                self.sensitive.contains_key(&crate::named::key(&key.0, &key.1)) && !self.ctx.include_sensitive;
            if is_exchange_type(&key.0) && !withheld && !self.attempted.contains(&key) && seen.insert(key.clone()) {
                candidates.push(key);
            }
        }
        // Only the previous plan's records can be fetched from it: those whose id there the
        // transfer noted when it named them.
        let sources = self
            .engine
            .store
            .transfer_target_sources(&self.transfer.id, &candidates)
            .await
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        let targets: Vec<((String, String), String)> =
            candidates.into_iter().filter_map(|key| sources.get(&key).cloned().map(|source| (key, source))).collect();
        if targets.is_empty() || self.attempted.len() >= self.engine.config.max_resolve {
            self.checkpoint = Checkpoint::Finish;
            self.progress.phase = Phase::Finish;
            return self
                .commit(
                    vec![],
                    vec![],
                    &Audit::default(),
                    vec![(EventKind::Resolved, format!("{} references", self.progress.resolved_references))],
                    0,
                )
                .await;
        }
        let audit = Audit::default();
        let mut resources = vec![];
        let mut rejected = vec![];
        for ((target_type, local_id), source_id) in targets.into_iter().take(RESOLVE_BATCH) {
            self.attempted.insert((target_type.clone(), local_id));
            // What the request's export brought is not asked for again.
            if let Some(resource) = self.staged_shared(&target_type, &source_id).await? {
                let before = resources.len();
                self.accept(resource, &mut resources, &mut rejected).await?;
                self.progress.resolved_references += (resources.len() > before) as u64;
                continue;
            }
            let url = self.client.url(&format!("{target_type}/{source_id}"));
            match self.get(&url, &audit).await {
                Ok(resource) if resource["resourceType"] == target_type.as_str() => {
                    let before = resources.len();
                    self.accept(resource, &mut resources, &mut rejected).await?;
                    self.progress.resolved_references += (resources.len() > before) as u64;
                }
                Ok(_)
                | Err(Stop::Fetch(
                    FetchError::NotFound(_)
                    | FetchError::NotImplemented(_)
                    | FetchError::Forbidden(_)
                    | FetchError::Refused { .. },
                )) => {
                }
                Err(stop) => return Err(self.stop(stop, &audit).await),
            }
        }
        self.add_custodian_provenance(&mut resources)?;
        self.commit(resources, rejected, &audit, vec![], 0).await
    }

    /// References from the member's records to resources the store does not have: among the
    /// targets this run named and did not write when it knows them, else all of them.
    pub(super) async fn dangling(&self, limit: u32) -> Result<Vec<(String, String, String, String)>, JobEnd> {
        let store = &self.engine.store;
        let member = self.ctx.member;
        match &self.named {
            Some(named) => store.dangling_references_to(member, &named.candidates(), limit).await,
            None => store.dangling_references(member, limit).await,
        }
        .map_err(|e| JobEnd::Failed(e.to_string()))
    }

    /// Withholds references that still point nowhere, writes this plan's Provenance.
    pub(super) async fn finish(&mut self) -> Step {
        let store = &self.engine.store;
        // Directory entries only sensitive care referred to (left behind) go: a clinic's name
        // alone can say what the member chose not to share.
        let orphans = store
            .unreferenced_directory_entries(&self.transfer.id, &self.ctx.source_base, self.ctx.member)
            .await
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        for (resource_type, id) in orphans {
            store.purge_resource(&resource_type, &id).await.map_err(|e| JobEnd::Failed(e.to_string()))?;
            if let Some(named) = &mut self.named {
                named.removed(&resource_type, &id);
            }
        }
        // References to what did not come (or just went) are withheld, so none dangles.
        let dangling = self.dangling(100_000).await?;
        let mut by_referrer: BTreeMap<(String, String), HashSet<String>> = BTreeMap::new();
        for (referrer_type, referrer_id, target_type, target_id) in dangling {
            by_referrer.entry((referrer_type, referrer_id)).or_default().insert(format!("{target_type}/{target_id}"));
        }
        let mut resources = vec![];
        for ((referrer_type, referrer_id), missing) in by_referrer {
            if let Some(reason) = self.withheld_among(&referrer_type, &missing) {
                // A Provenance of a record left out as sensitive (that came before it) goes too.
                store.purge_resource(&referrer_type, &referrer_id).await.map_err(|e| JobEnd::Failed(e.to_string()))?;
                self.exclude(&referrer_type, &referrer_id, &[reason]);
                continue;
            }
            let Some(stored) =
                store.read_resource(&referrer_type, &referrer_id).await.map_err(|e| JobEnd::Failed(e.to_string()))?
            else {
                continue;
            };
            let mut body: Value = serde_json::from_str(&stored.body).map_err(|e| JobEnd::Failed(e.to_string()))?;
            let removed = withhold(&mut body, &missing);
            self.progress.removed_references += removed as u64;
            if referrer_type == "Provenance" && body["target"].as_array().is_none_or(Vec::is_empty) {
                store.delete_resource("Provenance", &referrer_id).await.map_err(|e| JobEnd::Failed(e.to_string()))?;
                continue;
            }
            let member = stored.member_account.map(baton_store::AccountId);
            let origin = match (stored.source_system, stored.source_id) {
                (Some(system), Some(id)) => Some(baton_records::Origin { system, id }),
                _ => None,
            };
            let mut prepared = baton_records::prepare(body, &self.ctx.local_base, member, origin)
                .map_err(|e| JobEnd::Failed(e.to_string()))?;
            if prepared.write.patient_id.is_none() {
                prepared.write.patient_id = stored.patient_id;
            }
            resources.push(prepared.write);
        }
        self.recount().await?;
        self.checkpoint = Checkpoint::Done;
        self.progress.phase = Phase::Done;
        let events = vec![(
            EventKind::Finished,
            format!("{} stored, {} withheld", self.progress.stored(), self.progress.excluded_total()),
        )];
        self.commit(resources, vec![], &Audit::default(), events, 0).await
    }

    /// For a received Provenance, when the member left sensitive records out: why one of the
    /// `missing` records it names (`Type/id`) was left out, if one was.
    fn withheld_among(&self, referrer_type: &str, missing: &HashSet<String>) -> Option<sensitivity::Reason> {
        if referrer_type != "Provenance" || self.ctx.include_sensitive {
            return None;
        }
        missing.iter().find_map(|m| {
            let (t, id) = m.split_once('/')?;
            self.sensitive.get(&crate::named::key(t, id)).copied()
        })
    }

    /// Stored counts from the store itself: a resource that came more than once (a Provenance
    /// included with several searches) is one record, and what the finishing pass removed is
    /// gone. Only what came from the previous plan counts (not this plan's own Provenance, the
    /// member's own Patient or the Organizations naming the two plans). Claims and prior
    /// authorizations keep the split counted as they came: an EOB never comes twice.
    pub(super) async fn recount(&mut self) -> Step {
        let counts = self
            .engine
            .store
            .transfer_type_counts(&self.transfer.id, &self.ctx.source_base)
            .await
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        for counts in self.progress.types.values_mut() {
            counts.stored = 0;
        }
        let claims = [Category::Claims, Category::PriorAuthorizations].map(|c| c.key().to_owned());
        self.progress.categories.retain(|category, _| claims.contains(category));
        for (resource_type, n) in counts {
            self.progress.types.entry(resource_type.clone()).or_default().stored = n;
            if resource_type != "ExplanationOfBenefit" {
                *self
                    .progress
                    .categories
                    .entry(category_of(&resource_type, &Value::Null).key().to_owned())
                    .or_default() += n;
            }
        }
        Ok(())
    }
}

/// Removes references to `missing` targets: Provenance targets and list items are dropped;
/// a single reference becomes a masked data-absent reference. Returns how many were removed.
pub fn withhold(resource: &mut Value, missing: &HashSet<String>) -> usize {
    baton_fhir::walk::mask_references(resource, |reference| {
        Reference::parse(reference).type_and_id().is_some_and(|(t, id)| missing.contains(&format!("{t}/{id}")))
    })
}

pub(super) fn url_hash(url: &str) -> String {
    hex(&Sha256::digest(url.as_bytes())[..12])
}

pub(super) fn origin_of(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "an invalid URL".into())
}

pub(super) fn slug(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    cleaned.chars().take(56).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    pub(super) fn withholding_drops_list_items_and_masks_single_references() {
        let mut provenance = json!({"resourceType": "Provenance", "target": [{"reference": "Condition/a"}, {"reference": "Condition/b"}],
            "agent": [{"who": {"reference": "Organization/gone", "display": "Gone Clinic"}}]});
        let missing: HashSet<String> = ["Condition/a".to_owned(), "Organization/gone".to_owned()].into();
        assert_eq!(withhold(&mut provenance, &missing), 2);
        assert_eq!(provenance["target"], json!([{"reference": "Condition/b"}]));
        assert_eq!(provenance["agent"][0]["who"]["extension"][0]["valueCode"], "masked");
        assert!(!provenance.to_string().contains("Gone Clinic"), "display of a withheld reference goes too");
    }
}
