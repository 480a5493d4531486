//! One received resource: ingested, counted, noted when sensitive.

use baton_fhir::exchange::{category_of, is_exchange_type};
use baton_fhir::sensitivity;
use baton_records::Prepared;
use baton_store::{ResourceWrite, TransferTarget};
use baton_vocab::EventKind;
use serde_json::{Value, json};

use super::{Job, JobEnd};
use crate::ingest::{Ingested, Received, ingest};

impl Job<'_> {
    /// Ingests a Bundle's entries: what to store, what was rejected; counts everything.
    pub(super) async fn ingest_entries(
        &mut self,
        entries: Option<Value>,
        events: &mut Vec<(EventKind, String)>,
    ) -> Result<(Vec<ResourceWrite>, Vec<(String, String)>), JobEnd> {
        let mut resources = vec![];
        let mut rejected = vec![];
        let entries = match entries {
            Some(Value::Array(entries)) => entries,
            _ => vec![],
        };
        for (position, mut entry) in entries.into_iter().enumerate() {
            let Some(resource) = entry.get_mut("resource").map(Value::take) else {
                rejected.push((format!("entry {position}"), "the entry has no resource".into()));
                self.progress.rejected += 1;
                continue;
            };
            if entry["search"]["mode"] == "outcome" || resource["resourceType"] == "OperationOutcome" {
                let text = baton_fhir::outcome::diagnostics(&resource).unwrap_or("(no details)");
                events.push((EventKind::Warning, format!("the previous plan said: {text}")));
                continue;
            }
            self.accept(resource, &mut resources, &mut rejected).await?;
        }
        Ok((resources, rejected))
    }

    /// Ingests one resource and counts it.
    pub(super) async fn accept(
        &mut self,
        resource: Value,
        resources: &mut Vec<ResourceWrite>,
        rejected: &mut Vec<(String, String)>,
    ) -> Result<(), JobEnd> {
        let resource_type =
            resource["resourceType"].as_str().filter(|t| is_exchange_type(t)).unwrap_or("(other)").to_owned();
        let is_member_patient =
            resource_type == "Patient" && resource["id"].as_str() == self.ctx.source_patient.as_deref();
        let (key, outcome) = ingest(&self.ctx, resource);
        self.progress.types.entry(resource_type.clone()).or_default().received += 1;
        match outcome {
            Ingested::Store(received) => {
                let Received { mut prepared, foreign_references, named } = *received;
                self.page_sources.extend(named);
                self.progress.foreign_references += foreign_references as u64;
                let local = crate::named::key(&resource_type, &prepared.write.id);
                if let Some(reason) = prepared.reasons.first() {
                    self.sensitive.insert(local, *reason);
                } else if let Some(reason) = self.sensitive_target(&prepared.write) {
                    // A Provenance of a sensitive record says who recorded what about it.
                    if !self.ctx.include_sensitive {
                        self.exclude(&resource_type, &prepared.write.id, &[reason]);
                        return Ok(());
                    }
                    prepared.write.sensitive = true;
                    self.sensitive.insert(local, reason);
                }
                self.progress.types.entry(resource_type.clone()).or_default().stored += 1;
                self.count_category(&resource_type, &prepared);
                if is_member_patient && let Some(own) = self.own_patient_linked_to(&prepared).await? {
                    resources.push(own);
                }
                resources.push(prepared.write);
            }
            Ingested::Excluded { reasons, local_id } => self.exclude(&resource_type, &local_id, &reasons),
            Ingested::Rejected(reason) => {
                self.progress.types.entry(resource_type.clone()).or_default().rejected += 1;
                self.progress.rejected += 1;
                rejected.push((key, reason));
            }
        }
        Ok(())
    }

    /// Counts a record left out because it is sensitive and the member said so: once (however
    /// often it comes), under its most specific reason (a kind of care before a bare
    /// "restricted"); noted with the page, so that a resumed run knows it too.
    pub(super) fn exclude(&mut self, resource_type: &str, local_id: &str, reasons: &[sensitivity::Reason]) {
        let primary = reasons.iter().find(|r| r.kind != sensitivity::Kind::Restricted).or(reasons.first());
        let Some(primary) = primary else { return };
        let local = crate::named::key(resource_type, local_id);
        if self.sensitive.insert(local, *primary).is_some() {
            return;
        }
        self.progress.types.entry(resource_type.to_owned()).or_default().excluded += 1;
        *self.progress.excluded.entry(primary.key()).or_default() += 1;
        self.page_withheld.push(TransferTarget::withheld(resource_type, local_id, primary.key()));
    }

    /// Takes back a record counted as stored and not written after all: a Provenance found to
    /// name a record left out (later in its page), left out with it.
    pub(super) fn retract(&mut self, write: &ResourceWrite, reason: sensitivity::Reason) {
        if let Some(counts) = self.progress.types.get_mut(&write.resource_type) {
            counts.stored = counts.stored.saturating_sub(1);
        }
        let category = category_of(&write.resource_type, &write.body).key().to_owned();
        if let Some(n) = self.progress.categories.get_mut(&category) {
            *n = n.saturating_sub(1);
        }
        self.exclude(&write.resource_type, &write.id, &[reason]);
    }

    /// For a Provenance: why one of its targets is sensitive, when this run found one so.
    pub(super) fn sensitive_target(&self, write: &ResourceWrite) -> Option<sensitivity::Reason> {
        if write.resource_type != "Provenance" {
            return None;
        }
        write
            .references
            .iter()
            .filter(|r| r.path == "target")
            .find_map(|r| self.sensitive.get(&crate::named::key(&r.target_type, &r.target_id)).copied())
    }

    pub(super) fn count_category(&mut self, resource_type: &str, prepared: &Prepared) {
        let category = category_of(resource_type, &prepared.write.body).key().to_owned();
        *self.progress.categories.entry(category.clone()).or_default() += 1;
        if let (Some(start), Some(end)) = (prepared.write.date_start, prepared.write.date_end) {
            let range = self.progress.category_dates.entry(category).or_insert((start.millis(), end.millis()));
            range.0 = range.0.min(start.millis());
            range.1 = range.1.max(end.millis());
        }
    }

    /// The member's own Patient, with the previous plan's identifiers and a link to the
    /// received Patient added (once).
    pub(super) async fn own_patient_linked_to(&mut self, received: &Prepared) -> Result<Option<ResourceWrite>, JobEnd> {
        // The previous page may have written it: read it as committed.
        self.settle().await?;
        let store = &self.engine.store;
        let own =
            store.read_resource("Patient", &self.ctx.own_patient).await.map_err(|e| JobEnd::Failed(e.to_string()))?;
        let Some(own) = own else { return Ok(None) };
        let mut body: Value = serde_json::from_str(&own.body).map_err(|e| JobEnd::Failed(e.to_string()))?;
        let mut changed = false;
        if let Some(object) = body.as_object_mut() {
            let identifiers = object.entry("identifier").or_insert_with(|| json!([]));
            if let (Some(list), Some(theirs)) =
                (identifiers.as_array_mut(), received.write.body["identifier"].as_array())
            {
                for identifier in theirs {
                    if !list.contains(identifier) {
                        list.push(identifier.clone());
                        changed = true;
                    }
                }
            }
            let link = json!({"other": {"reference": format!("Patient/{}", received.write.id)}, "type": "seealso"});
            let links = object.entry("link").or_insert_with(|| json!([]));
            if let Some(list) = links.as_array_mut()
                && !list.contains(&link)
            {
                list.push(link);
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        let prepared = baton_records::prepare(body, &self.ctx.local_base, Some(self.ctx.member), None)
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        Ok(Some(prepared.write))
    }
}
