//! Committing pages: in line, or in the background while the next page is fetched, in page
//! order, gathered into one transaction where the store writes one at a time.

use baton_vocab::EventKind;
use std::collections::HashSet;

use baton_store::{
    CommitError, PreparedTransferPage, ResourceWrite, StoreError, Timestamp, TransferPage, TransferTarget,
};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::{Job, JobEnd, Step};
use crate::client::Audit;

impl Job<'_> {
    /// What one commit writes: resources, checkpoint, progress, rejections, audit, events —
    /// the job's state as it is now.
    pub(super) fn page(
        &self,
        resources: Vec<ResourceWrite>,
        rejected: Vec<(String, String)>,
        audit: &Audit,
        events: Vec<(EventKind, String)>,
        pages: i64,
        targets: Vec<TransferTarget>,
    ) -> TransferPage {
        let lease = time::Duration::try_from(self.engine.config.lease).unwrap_or(time::Duration::MINUTE);
        TransferPage {
            transfer_id: self.transfer.id.clone(),
            owner: self.engine.config.worker_id.clone(),
            lease_until: Timestamp::now().plus(lease),
            resources,
            checkpoint: serde_json::to_string(&self.checkpoint).unwrap_or_default(),
            progress: self.progress.to_json(),
            pages_done: pages,
            rejected,
            requests: audit.take(),
            events,
            permission: self.link.consent_id.clone(),
            targets,
        }
    }

    /// Commits a page and waits for it (after the previous page's commit, if one is running).
    pub(super) async fn commit(
        &mut self,
        resources: Vec<ResourceWrite>,
        rejected: Vec<(String, String)>,
        audit: &Audit,
        events: Vec<(EventKind, String)>,
        pages: i64,
    ) -> Step {
        self.settle().await?;
        let targets = self.track(&resources);
        let page = self.page(resources, rejected, audit, events, pages, targets);
        commit_end(self.engine.store.commit_transfer_page(page).await.map(drop))
    }

    /// Starts committing a fetched page and returns at once, so that the next page is fetched
    /// and ingested while this one is written (on two cores, the database's work and ingest
    /// overlap). The page is built and its bodies serialised now, from the state after it,
    /// while earlier pages may still be committing. Up to [`EngineConfig::page_commits_in_flight`](crate::EngineConfig::page_commits_in_flight)
    /// run at once, each in its own transaction with its checkpoint; each waits for the one
    /// before it to commit before moving the checkpoint, and does not commit if that one failed.
    ///
    /// Where the store groups pages ([`EngineConfig::page_group_resources`](crate::EngineConfig::page_group_resources); one commit in flight), a
    /// page that arrives while the writer is busy joins the pages gathered since, and the
    /// group is committed as one transaction, with the last page's checkpoint, once the writer
    /// is free or the group is full. A group lost to a crash is fetched again on resume, like
    /// a page.
    pub(super) async fn commit_in_background(
        &mut self,
        resources: Vec<ResourceWrite>,
        rejected: Vec<(String, String)>,
        audit: &Audit,
        events: Vec<(EventKind, String)>,
        pages: i64,
    ) -> Step {
        let _store = self.engine.store.clone();
        let in_flight = self.engine.config.commits_in_flight();
        let group_limit = self.engine.config.group_resources();
        if in_flight == 1 && group_limit > 0 {
            let targets = self.track(&resources);
            let page = self.page(resources, rejected, audit, events, pages, targets);
            let group = match self.gathering.take() {
                Some(mut group) => group.absorb(page).map(|()| group),
                None => page.prepare(),
            };
            let group = match group {
                Ok(group) => group,
                Err(error) => return commit_end(Err(CommitError::Store(error))),
            };
            let writer_busy = self.committing.iter().any(|c| !c.task.is_finished());
            if writer_busy && group.resources() < group_limit {
                self.gathering = Some(group);
                return Ok(());
            }
            return self.submit(Ok(group), HashSet::new()).await;
        }
        // Pages in flight together never write the same resource: the later one's insert would
        // wait inside its transaction for the earlier one, which may wait for the later one's rows.
        let writes: HashSet<u128> = match in_flight {
            1 => HashSet::new(),
            _ => resources.iter().map(|w| crate::named::key(&w.resource_type, &w.id)).collect(),
        };
        let targets = self.track(&resources);
        let page = self.page(resources, rejected, audit, events, pages, targets).prepare();
        self.submit(page, writes).await
    }

    /// Starts committing a prepared page (or group) once a commit slot is free and no page in
    /// flight writes the same resources.
    pub(super) async fn submit(
        &mut self,
        page: Result<PreparedTransferPage, StoreError>,
        writes: HashSet<u128>,
    ) -> Step {
        let store = self.engine.store.clone();
        let in_flight = self.engine.config.commits_in_flight();
        while self.committing.len() >= in_flight || self.committing.iter().any(|c| !c.writes.is_disjoint(&writes)) {
            self.settle_oldest().await?;
        }
        let page = match page {
            Ok(page) => page,
            Err(error) => return commit_end(Err(CommitError::Store(error))),
        };
        let resources_in_page = page.resources();
        let (done, handoff) = oneshot::channel();
        let previous = self.handoff.replace(handoff);
        let task = async move {
            let started = std::time::Instant::now();
            let resources = resources_in_page;
            let previous = async move {
                match previous {
                    Some(previous) => previous.await.unwrap_or(false),
                    None => true,
                }
            };
            let result = store.commit_prepared_page_after(page, previous).await.map(drop);
            let _ = done.send(result.is_ok());
            tracing::debug!(resources, commit_ms = started.elapsed().as_millis() as u64, "page committed");
            result
        };
        self.committing.push_back(InFlight { task: tokio::spawn(task.instrument(tracing::Span::current())), writes });
        Ok(())
    }

    /// Notes what a page about to be committed writes and names (see [`NamedTargets`]), and
    /// returns the previous plan's records it names that this run has not written — all those
    /// the page does not write, when the run has no tracker — with their ids there, to be
    /// noted with the page. A page whose commit fails ends the run, and the next run resumes
    /// without a tracker.
    pub(super) fn track(&mut self, resources: &[ResourceWrite]) -> Vec<TransferTarget> {
        let sources = std::mem::take(&mut self.page_sources);
        let withheld = std::mem::take(&mut self.page_withheld);
        let unwritten = match &mut self.named {
            Some(named) => named.track(resources),
            None => {
                let written: HashSet<u128> =
                    resources.iter().map(|w| crate::named::key(&w.resource_type, &w.id)).collect();
                let mut seen = HashSet::new();
                resources
                    .iter()
                    .flat_map(|w| &w.references)
                    .filter(|r| {
                        let key = crate::named::key(&r.target_type, &r.target_id);
                        !written.contains(&key) && seen.insert(key)
                    })
                    .map(|r| (r.target_type.clone(), r.target_id.clone()))
                    .collect()
            }
        };
        unwritten
            .into_iter()
            .filter_map(|(target_type, target_id)| {
                let source_id = sources.get(&crate::named::key(&target_type, &target_id))?.clone();
                Some(TransferTarget { target_type, target_id, source_id, withheld: None })
            })
            .chain(withheld)
            .collect()
    }

    /// Commits the pages gathered, then waits for every page commit still running; the first
    /// failure ends the job.
    pub(super) async fn settle(&mut self) -> Step {
        let mut end = match self.gathering.take() {
            Some(group) => self.submit(Ok(group), HashSet::new()).await,
            None => Ok(()),
        };
        while !self.committing.is_empty() {
            let settled = self.settle_oldest().await;
            end = end.and(settled);
        }
        self.handoff = None;
        end
    }

    /// Waits for the oldest page commit still running, if any; its failure ends the job.
    pub(super) async fn settle_oldest(&mut self) -> Step {
        let Some(in_flight) = self.committing.pop_front() else { return Ok(()) };
        match in_flight.task.await {
            Ok(result) => commit_end(result),
            Err(error) => Err(JobEnd::Failed(format!("committing a page stopped: {error}"))),
        }
    }
}

/// A page commit running in the background, and the resources it writes.
pub(super) struct InFlight {
    task: tokio::task::JoinHandle<Result<(), CommitError>>,
    /// Hashes of `(type, id)` (see [`crate::named::key`]), when other commits may run beside it.
    writes: HashSet<u128>,
}

/// How a page commit ends the job, if it does.
pub(super) fn commit_end(result: Result<(), CommitError>) -> Step {
    match result {
        Ok(()) => Ok(()),
        Err(CommitError::LeaseLost) => Err(JobEnd::LeaseLost),
        Err(CommitError::PreviousPageFailed) => {
            Err(JobEnd::Failed("a page before this one could not be saved, so this one was not either".into()))
        }
        Err(CommitError::Store(error)) => Err(JobEnd::Failed(format!("this plan's database failed: {error}"))),
    }
}
