//! A transfer that files what a request's export brought (the Payer-to-Payer API, bulk): the
//! member's staged lines, page by page, instead of searches; shared records (Organizations and
//! the like) the export brought answer the resolve phase before the previous plan is asked.

use baton_vocab::{EventKind, Phase};
use serde_json::Value;

use super::{Checkpoint, Job, JobEnd, Step};
use crate::client::Audit;

impl Job<'_> {
    /// The plan of a delivered transfer: the staged lines (no CapabilityStatement is read).
    pub(super) async fn plan_delivery(&mut self) -> Step {
        self.progress.phase = Phase::Fetch;
        self.checkpoint = Checkpoint::Delivered { after: 0 };
        let organizations = self.plan_organizations()?;
        let detail = "the previous plan's bulk export".to_owned();
        self.commit(organizations, vec![], &Audit::default(), vec![(EventKind::Planned, detail)], 0).await
    }

    /// Files the next page of staged lines; at the end, goes on to resolve.
    pub(super) async fn delivered(&mut self, after: i64) -> Step {
        let Some((request, coverage)) = self.delivery.clone() else {
            return Err(JobEnd::Failed("the transfer has lost the request that brought its records".into()));
        };
        let lines = self
            .engine
            .store
            .staged_lines(&request, &coverage, after, self.engine.config.page_size)
            .await
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        let Some(last) = lines.last().map(|(seq, _)| *seq) else {
            self.settle().await?;
            self.checkpoint = Checkpoint::Resolve;
            self.progress.phase = Phase::Resolve;
            let events = vec![(EventKind::Fetched, format!("{} pages", self.progress.pages))];
            return self.commit(vec![], vec![], &Audit::default(), events, 0).await;
        };
        let mut resources = vec![];
        let mut rejected = vec![];
        let mut events = vec![];
        for (seq, body) in lines {
            match serde_json::from_str::<Value>(&body) {
                Ok(resource) if resource["resourceType"] == "OperationOutcome" => {
                    let text = baton_fhir::outcome::diagnostics(&resource).unwrap_or("(no details)").to_owned();
                    events.push((EventKind::Warning, format!("the previous plan said: {text}")));
                }
                Ok(resource) => self.accept(resource, &mut resources, &mut rejected).await?,
                Err(error) => {
                    self.progress.rejected += 1;
                    rejected.push((format!("line {seq}"), format!("not a JSON resource: {error}")));
                }
            }
        }
        self.checkpoint = Checkpoint::Delivered { after: last };
        self.progress.pages += 1;
        self.add_custodian_provenance(&mut resources)?;
        self.commit_in_background(resources, rejected, &Audit::default(), events, 1).await
    }

    /// A shared record the request's export brought, by its type and id at the previous plan.
    pub(super) async fn staged_shared(&self, resource_type: &str, source_id: &str) -> Result<Option<Value>, JobEnd> {
        let Some((request, _)) = &self.delivery else { return Ok(None) };
        let body = self
            .engine
            .store
            .staged_shared(request, resource_type, source_id)
            .await
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }
}
