//! One transfer, phase by phase. Every page fetched is committed together with the checkpoint
//! after it, so a transfer that stops (crash, kill, deploy) resumes where it was — nothing
//! fetched twice is stored twice, and nothing is skipped.
//!
//! 1. **plan** — read the CapabilityStatement once; choose `$everything` or per-type searches.
//! 2. **fetch** — follow each request's `next` links (same origin only; loops stopped).
//! 3. **resolve** — read the resources the records refer to but the pages did not contain.
//! 4. **finish** — withhold references that still point nowhere (never leave them dangling),
//!    record this plan's custodian Provenance, mark the transfer completed.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton_fhir::exchange::{Category, category_of, is_exchange_type};
use baton_fhir::reference::Reference;
use baton_fhir::sensitivity;
use baton_fhir::smart::Scopes;
use baton_records::Prepared;
use baton_store::{
    AccountId, CommitError, PayerLink, PreparedTransferPage, ResourceWrite, Store, StoreError, Timestamp, Transfer,
    TransferPage, TransferTarget, transfer_state,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::auth::{PayerCredentials, RefreshError, refresh};
use crate::client::{Audit, FetchError, FhirClient};
use crate::ingest::{Context, Ingested, Received, ingest, source_prefix};
use crate::named::NamedTargets;
use crate::plan::{Plan, plan};
use crate::progress::Progress;
use crate::{Engine, hex};

/// How a transfer run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Completed,
    /// Failed, with why in plain words.
    Failed(String),
    Cancelled(String),
    NeedsReauthorization(String),
    /// Paused: the previous plan asked to wait; it runs again after this.
    RetryLater(Duration),
    /// Another worker holds it now (this one's lease ran out), or it was cancelled meanwhile.
    LeaseLost,
}

/// Where a transfer is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Checkpoint {
    #[default]
    Plan,
    Fetch {
        plan: Plan,
        step: usize,
        next: Option<String>,
        /// Hashes of recent page URLs, to stop paging loops.
        recent: VecDeque<String>,
    },
    Resolve,
    Finish,
    Done,
}

const RECENT_PAGES: usize = 200;
/// Resolution reads per committed batch.
const RESOLVE_BATCH: usize = 50;

struct Job<'a> {
    engine: &'a Engine,
    transfer: Transfer,
    link: PayerLink,
    credentials: Option<PayerCredentials>,
    client: FhirClient,
    ctx: Context,
    token: Option<String>,
    progress: Progress,
    checkpoint: Checkpoint,
    lease_lost: Arc<AtomicBool>,
    /// Targets already tried in the resolve phase (this run).
    attempted: HashSet<(String, String)>,
    /// What the committed records named and this run did not write — when the run started
    /// at the plan (a resumed run saw only part of the pages, and checks every reference).
    named: Option<NamedTargets>,
    /// The next page, already on its way while this one is ingested and committed.
    prefetch: Option<Prefetch>,
    /// Page commits still running while the next page is fetched and ingested, oldest first:
    /// at most [`Store::page_commits_in_flight`]. All are settled before a commit made in line,
    /// before any step that reads what they wrote, and before the job ends, so the job's end
    /// is recorded after them.
    committing: VecDeque<InFlight>,
    /// Pages that arrived while the writer was busy, gathered into one commit (see
    /// [`Store::page_group_resources`]); submitted once the writer is free or the group is
    /// full, and by [`Job::settle`].
    gathering: Option<PreparedTransferPage>,
    /// Whether the newest of them committed, for the next one to wait on before its
    /// checkpoint moves (checkpoints land in page order).
    handoff: Option<oneshot::Receiver<bool>>,
    /// Records this run found sensitive (stored, or left out as the member asked), by key
    /// ([`crate::named::key`] of their id here): a Provenance naming one is sensitive too.
    sensitive: std::collections::HashMap<u128, sensitivity::Reason>,
    /// The previous plan's id of each record the page being ingested names, by key: noted
    /// with the page for those it has not written ([`TransferTarget`]).
    page_sources: std::collections::HashMap<u128, String>,
}

/// A page commit running in the background, and the resources it writes.
struct InFlight {
    task: tokio::task::JoinHandle<Result<(), CommitError>>,
    /// Hashes of `(type, id)` (see [`crate::named::key`]), when other commits may run beside it.
    writes: HashSet<u128>,
}

/// A page fetched ahead: its result and the requests it took, consumed by the `fetch` step that
/// asks for the same URL. Nothing of it counts until that step commits; dropped, it is aborted.
struct Prefetch {
    url: String,
    task: tokio::task::JoinHandle<(Result<Value, FetchError>, Vec<baton_store::TransferRequest>)>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a step stopped the job.
type Step = Result<(), JobEnd>;

/// Runs a claimed transfer to its end, recording that end.
pub async fn run(engine: &Engine, transfer: Transfer) -> JobEnd {
    // Instrumented rather than entered: a span entered across an `.await` would stay entered on
    // the worker thread while the job is parked, and label whatever else runs there (requests).
    let span = tracing::info_span!("transfer", id = %transfer.id, worker = %engine.config.worker_id);
    run_in_span(engine, transfer).instrument(span).await
}

async fn run_in_span(engine: &Engine, transfer: Transfer) -> JobEnd {
    let id = transfer.id.clone();
    let owner = engine.config.worker_id.clone();
    let lease_lost = Arc::new(AtomicBool::new(false));
    let heartbeat = spawn_heartbeat(engine.clone(), id.clone(), lease_lost.clone());
    let end = match Job::load(engine, transfer, lease_lost).await {
        Ok(mut job) => job.run().await,
        Err(end) => end,
    };
    heartbeat.abort();
    let now = Timestamp::now();
    let store = &engine.store;
    let recorded = match &end {
        JobEnd::Completed => store.finish_transfer(&id, &owner, transfer_state::COMPLETED, None, now).await,
        JobEnd::Failed(why) => store.finish_transfer(&id, &owner, transfer_state::FAILED, Some(why), now).await,
        JobEnd::Cancelled(why) => store.finish_transfer(&id, &owner, transfer_state::CANCELLED, Some(why), now).await,
        JobEnd::NeedsReauthorization(why) => {
            store.finish_transfer(&id, &owner, transfer_state::NEEDS_REAUTHORIZATION, Some(why), now).await
        }
        JobEnd::RetryLater(wait) => {
            let run_after = now.plus(time::Duration::try_from(*wait).unwrap_or(time::Duration::MINUTE));
            store
                .release_transfer(
                    &id,
                    &owner,
                    run_after,
                    &format!("the previous plan asked to wait {}s", wait.as_secs()),
                )
                .await
        }
        JobEnd::LeaseLost => Ok(false),
    };
    if let Err(error) = recorded {
        tracing::error!(%error, "cannot record how the transfer ended");
    }
    end
}

/// Renews the lease every third of its length; flags the job when the lease is lost.
fn spawn_heartbeat(engine: Engine, id: String, lost: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        async move {
            let every = engine.config.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let until = Timestamp::now()
                    .plus(time::Duration::try_from(engine.config.lease).unwrap_or(time::Duration::MINUTE));
                match engine.store.renew_lease(&id, &engine.config.worker_id, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "lease renewal failed"),
                }
            }
        }
        .instrument(tracing::Span::current()),
    )
}

impl<'a> Job<'a> {
    async fn load(engine: &'a Engine, transfer: Transfer, lease_lost: Arc<AtomicBool>) -> Result<Job<'a>, JobEnd> {
        let store = &engine.store;
        let failed = |what: &str, e: &dyn std::fmt::Display| JobEnd::Failed(format!("{what}: {e}"));
        let link = store
            .link(&transfer.link_id)
            .await
            .map_err(|e| failed("reading the link", &e))?
            .ok_or_else(|| JobEnd::Failed("the authorization this transfer used no longer exists".into()))?;
        let mut include_sensitive = link.include_sensitive;
        if let Some(consent_id) = &link.consent_id
            && let Some(consent) = store.consent(consent_id).await.map_err(|e| failed("reading the consent", &e))?
        {
            include_sensitive = include_sensitive && consent.policy == "sensitive";
        }
        let client = FhirClient::new(engine.http.clone(), &link.fhir_base, engine.config.client.clone())
            .map_err(|e| JobEnd::Failed(format!("the previous plan's FHIR address is not valid: {e}")))?;
        let own_patient = own_patient(engine, &link).await?;
        let ids = engine.record_ids().await.map_err(|e| failed("reading this plan's record-id key", &e))?;
        let source_base = client.base().to_owned();
        let ctx = Context {
            source_prefix: source_prefix(&source_base),
            source_base,
            source_patient: link.patient_id.clone(),
            own_patient,
            member: link.member_account,
            include_sensitive,
            keep_financial: engine.config.keep_financial,
            local_base: engine.config.local_base.clone(),
            ids,
        };
        let token = match &link.access_token {
            Some(sealed) => Some(engine.cipher.open(sealed).map_err(|e| failed("opening the access token", &e))?),
            None => None,
        };
        let checkpoint = if transfer.checkpoint.trim().is_empty() || transfer.checkpoint.trim() == "{}" {
            Checkpoint::Plan
        } else {
            serde_json::from_str(&transfer.checkpoint)
                .map_err(|e| failed("the transfer's checkpoint is unreadable", &e))?
        };
        let progress = Progress::from_json(&transfer.progress);
        let credentials = engine.payers.credentials(&link.payer_id);
        let named = matches!(checkpoint, Checkpoint::Plan).then(NamedTargets::default);
        Ok(Job {
            engine,
            transfer,
            link,
            credentials,
            client,
            ctx,
            token,
            progress,
            checkpoint,
            lease_lost,
            attempted: HashSet::new(),
            named,
            prefetch: None,
            gathering: None,
            committing: VecDeque::new(),
            handoff: None,
            sensitive: std::collections::HashMap::new(),
            page_sources: std::collections::HashMap::new(),
        })
    }

    async fn run(&mut self) -> JobEnd {
        let end = self.run_steps().await;
        // A page still committing is part of the run: its failure (a lost lease) is the end.
        match self.settle().await {
            Ok(()) => end,
            Err(failed) => failed,
        }
    }

    async fn run_steps(&mut self) -> JobEnd {
        loop {
            if self.lease_lost.load(Ordering::SeqCst) {
                return JobEnd::LeaseLost;
            }
            if let Err(end) = self.consent_in_force().await {
                return end;
            }
            if !matches!(self.checkpoint, Checkpoint::Fetch { .. })
                && let Err(end) = self.settle().await
            {
                return end;
            }
            let step = match self.checkpoint.clone() {
                Checkpoint::Plan => self.plan().await,
                Checkpoint::Fetch { plan, step, next, recent } => self.fetch(plan, step, next, recent).await,
                Checkpoint::Resolve => self.resolve().await,
                Checkpoint::Finish => self.finish().await,
                Checkpoint::Done => return JobEnd::Completed,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Stops when the member withdrew the consent, it expired, or the link was revoked.
    async fn consent_in_force(&self) -> Step {
        let store = &self.engine.store;
        let link = store.link(&self.link.id).await.map_err(|e| JobEnd::Failed(e.to_string()))?;
        if link.as_ref().is_none_or(|l| l.state == "revoked") {
            return Err(JobEnd::Cancelled("The member's authorization was revoked.".into()));
        }
        if let Some(consent_id) = &self.link.consent_id {
            let consent = store.consent(consent_id).await.map_err(|e| JobEnd::Failed(e.to_string()))?;
            match consent {
                Some(c) if c.withdrawn_at.is_some() => {
                    return Err(JobEnd::Cancelled("The member withdrew their consent.".into()));
                }
                Some(c) if !c.in_force(Timestamp::now()) => {
                    return Err(JobEnd::Cancelled("The member's consent has expired.".into()));
                }
                None => return Err(JobEnd::Cancelled("The member's consent no longer exists.".into())),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// What one commit writes: resources, checkpoint, progress, rejections, audit, events —
    /// the job's state as it is now.
    fn page(
        &self,
        resources: Vec<ResourceWrite>,
        rejected: Vec<(String, String)>,
        audit: &Audit,
        events: Vec<(String, String)>,
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
    async fn commit(
        &mut self,
        resources: Vec<ResourceWrite>,
        rejected: Vec<(String, String)>,
        audit: &Audit,
        events: Vec<(String, String)>,
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
    /// while earlier pages may still be committing. Up to [`Store::page_commits_in_flight`]
    /// run at once, each in its own transaction with its checkpoint; each waits for the one
    /// before it to commit before moving the checkpoint, and does not commit if that one failed.
    ///
    /// Where the store groups pages ([`Store::page_group_resources`]; one commit in flight), a
    /// page that arrives while the writer is busy joins the pages gathered since, and the
    /// group is committed as one transaction, with the last page's checkpoint, once the writer
    /// is free or the group is full. A group lost to a crash is fetched again on resume, like
    /// a page.
    async fn commit_in_background(
        &mut self,
        resources: Vec<ResourceWrite>,
        rejected: Vec<(String, String)>,
        audit: &Audit,
        events: Vec<(String, String)>,
        pages: i64,
    ) -> Step {
        let store = self.engine.store.clone();
        let in_flight = store.page_commits_in_flight().max(1);
        let group_limit = store.page_group_resources();
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
    async fn submit(&mut self, page: Result<PreparedTransferPage, StoreError>, writes: HashSet<u128>) -> Step {
        let store = self.engine.store.clone();
        let in_flight = store.page_commits_in_flight().max(1);
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
    fn track(&mut self, resources: &[ResourceWrite]) -> Vec<TransferTarget> {
        let sources = std::mem::take(&mut self.page_sources);
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
                Some(TransferTarget { target_type, target_id, source_id })
            })
            .collect()
    }

    /// References from the member's records to resources the store does not have: among the
    /// targets this run named and did not write when it knows them, else all of them.
    async fn dangling(&self, limit: u32) -> Result<Vec<(String, String, String, String)>, JobEnd> {
        let store = &self.engine.store;
        let member = self.ctx.member;
        match &self.named {
            Some(named) => store.dangling_references_to(member, &named.candidates(), limit).await,
            None => store.dangling_references(member, limit).await,
        }
        .map_err(|e| JobEnd::Failed(e.to_string()))
    }

    /// Commits the pages gathered, then waits for every page commit still running; the first
    /// failure ends the job.
    async fn settle(&mut self) -> Step {
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
    async fn settle_oldest(&mut self) -> Step {
        let Some(in_flight) = self.committing.pop_front() else { return Ok(()) };
        match in_flight.task.await {
            Ok(result) => commit_end(result),
            Err(error) => Err(JobEnd::Failed(format!("committing a page stopped: {error}"))),
        }
    }

    /// GETs from the previous plan; on 401 refreshes the token once and tries again.
    async fn get(&mut self, url: &str, audit: &Audit) -> Result<Value, Stop> {
        if self.token_expiring() {
            self.refresh_token().await?;
        }
        match self.client.get_json(url, self.token.as_deref(), audit).await {
            Err(FetchError::Unauthorized) => self.refresh_and_get(url, audit).await,
            other => other.map_err(Stop::Fetch),
        }
    }

    /// The token was refused: refresh it once and try again.
    async fn refresh_and_get(&mut self, url: &str, audit: &Audit) -> Result<Value, Stop> {
        self.refresh_token().await?;
        match self.client.get_json(url, self.token.as_deref(), audit).await {
            Err(FetchError::Unauthorized) => Err(Stop::End(JobEnd::NeedsReauthorization(
                "The previous plan did not accept a fresh access token; the member needs to sign in there again."
                    .into(),
            ))),
            other => other.map_err(Stop::Fetch),
        }
    }

    /// A page of the fetch phase: the prefetched one when it is for this URL, else fetched now.
    async fn get_page(&mut self, url: &str, audit: &Audit) -> Result<Value, Stop> {
        if let Some(mut prefetch) = self.prefetch.take()
            && prefetch.url == url
            && let Ok((result, requests)) = (&mut prefetch.task).await
        {
            for request in requests {
                audit.record(request);
            }
            return match result {
                Err(FetchError::Unauthorized) => self.refresh_and_get(url, audit).await,
                other => other.map_err(Stop::Fetch),
            };
        }
        self.get(url, audit).await
    }

    /// Starts fetching the page the next `fetch` step will ask for, so that the previous plan
    /// serves it while this one is ingested and committed.
    fn prefetch_next_page(&mut self) {
        let Checkpoint::Fetch { plan, step, next, .. } = &self.checkpoint else { return };
        let url = match (next, plan.steps.get(*step)) {
            (Some(next), _) => next.clone(),
            (None, Some(first)) => self.client.url(&first.path),
            (None, None) => return,
        };
        if self.token_expiring() || !self.client.same_origin(&url) {
            return;
        }
        let client = self.client.clone();
        let token = self.token.clone();
        let target = url.clone();
        let task = tokio::spawn(
            async move {
                let audit = Audit::default();
                let result = client.get_json(&target, token.as_deref(), &audit).await;
                (result, audit.take())
            }
            .instrument(tracing::Span::current()),
        );
        self.prefetch = Some(Prefetch { url, task });
    }

    fn token_expiring(&self) -> bool {
        self.link.refresh_token.is_some()
            && self.link.access_expires_at.is_some_and(|at| at < Timestamp::now().millis() + 30_000)
    }

    async fn refresh_token(&mut self) -> Result<(), Stop> {
        let engine = self.engine;
        let credentials = self.credentials.clone().ok_or_else(|| {
            Stop::End(JobEnd::NeedsReauthorization(format!(
                "This plan has no client registration for {} to refresh the access token.",
                self.link.payer_id
            )))
        })?;
        let token_url = match &credentials.token_url {
            Some(url) => url.clone(),
            None => self.discover_token_url().await?,
        };
        // The latest tokens: another run may have rotated the refresh token meanwhile.
        self.link = engine
            .store
            .link(&self.link.id)
            .await
            .map_err(|e| Stop::End(JobEnd::Failed(e.to_string())))?
            .unwrap_or(self.link.clone());
        match refresh(&engine.store, &engine.cipher, &engine.http, &self.link, &credentials, &token_url).await {
            Ok(access) => {
                self.token = Some(access);
                if let Ok(Some(link)) = engine.store.link(&self.link.id).await {
                    self.link = link;
                }
                Ok(())
            }
            Err(RefreshError::Reauthorize(why)) => {
                let _ = engine.store.set_link_state(&self.link.id, "needs_reauthorization", Timestamp::now()).await;
                Err(Stop::End(JobEnd::NeedsReauthorization(format!(
                    "The member needs to sign in at their previous plan again ({why})."
                ))))
            }
            Err(RefreshError::Failed(why)) => Err(Stop::End(JobEnd::Failed(why))),
        }
    }

    async fn discover_token_url(&self) -> Result<String, Stop> {
        let audit = Audit::default();
        let config =
            self.client.get_json(&self.client.url(".well-known/smart-configuration"), None, &audit).await.map_err(
                |e| Stop::End(JobEnd::Failed(format!("the previous plan's SMART configuration cannot be read: {e}"))),
            )?;
        config["token_endpoint"].as_str().map(str::to_owned).ok_or_else(|| {
            Stop::End(JobEnd::Failed("the previous plan's SMART configuration names no token endpoint".into()))
        })
    }

    /// A request failed for good: record the attempts, then end the job with why.
    async fn stop(&mut self, stop: Stop, audit: &Audit) -> JobEnd {
        let end = match stop {
            Stop::End(end) => end,
            Stop::Fetch(FetchError::RetryLater(wait)) => JobEnd::RetryLater(wait),
            Stop::Fetch(error) => JobEnd::Failed(error.to_string()),
        };
        // The page before this one still committing: if that failed, it ended the job first.
        if let Err(failed) = self.settle().await {
            return failed;
        }
        let _ = self.commit(vec![], vec![], audit, vec![], 0).await;
        end
    }

    async fn plan(&mut self) -> Step {
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
        let now = Timestamp::now().to_datetime();
        let start = now.replace_year(now.year() - self.engine.config.history_years).unwrap_or(now);
        let start = format!("{:04}-{:02}-{:02}", start.year(), u8::from(start.month()), start.day());
        let since = self.transfer.since.map(|s| Timestamp::from_millis(s).to_fhir_instant());
        let plan = plan(
            &capability,
            &Scopes::parse(&self.link.scope),
            &patient,
            &start,
            since.as_deref(),
            self.engine.config.page_size,
        );
        self.progress.phase = "fetch".into();
        self.progress.not_permitted = plan.not_permitted.clone();
        self.progress.not_supported = plan.not_supported.clone();
        let detail =
            if plan.everything { "Patient/$everything".to_owned() } else { format!("{} searches", plan.steps.len()) };
        self.checkpoint = Checkpoint::Fetch { plan, step: 0, next: None, recent: VecDeque::new() };
        let organizations = self.plan_organizations()?;
        self.commit(organizations, vec![], &audit, vec![("planned".into(), detail)], 0).await
    }

    async fn fetch(&mut self, plan: Plan, step: usize, next: Option<String>, mut recent: VecDeque<String>) -> Step {
        let Some(current) = plan.steps.get(step).cloned() else {
            self.checkpoint = Checkpoint::Resolve;
            self.progress.phase = "resolve".into();
            return self
                .commit(
                    vec![],
                    vec![],
                    &Audit::default(),
                    vec![("fetched".into(), format!("{} pages", self.progress.pages))],
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
                    .commit(vec![], vec![], &audit, vec![("not_permitted".into(), format!("{t}: {why}"))], 0)
                    .await;
            }
            Err(Stop::Fetch(FetchError::NotFound(why))) if current.resource_type.is_some() => {
                let t = current.resource_type.clone().unwrap_or_default();
                self.progress.not_supported.push(t.clone());
                self.checkpoint = advance(&plan);
                return self
                    .commit(vec![], vec![], &audit, vec![("not_supported".into(), format!("{t}: {why}"))], 0)
                    .await;
            }
            Err(stop) => return Err(self.stop(stop, &audit).await),
        };
        if page["resourceType"] != "Bundle" {
            let what = page["resourceType"].as_str().unwrap_or("something else").to_owned();
            let stop = Stop::End(JobEnd::Failed(format!("the previous plan answered {url} with {what}, not a Bundle")));
            return Err(self.stop(stop, &audit).await);
        }
        if first_page && let Some(total) = page["total"].as_u64() {
            self.progress.expected = Some(self.progress.expected.unwrap_or(0) + total);
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
                    "warning".into(),
                    format!("a next link pointed to another server ({}); it was not followed", origin_of(&next)),
                ));
                advance(&plan)
            }
            Some(next) if recent.contains(&url_hash(&next)) => {
                events.push(("warning".into(), "the previous plan's pages looped; paging stopped".into()));
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

    /// Ingests a Bundle's entries: what to store, what was rejected; counts everything.
    async fn ingest_entries(
        &mut self,
        entries: Option<Value>,
        events: &mut Vec<(String, String)>,
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
                events.push(("warning".into(), format!("the previous plan said: {text}")));
                continue;
            }
            self.accept(resource, &mut resources, &mut rejected).await?;
        }
        Ok((resources, rejected))
    }

    /// Ingests one resource and counts it.
    async fn accept(
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
                        self.exclude(&resource_type, local, &[reason]);
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
            Ingested::Excluded { reasons, local_id } => {
                let local = crate::named::key(&resource_type, &local_id);
                self.exclude(&resource_type, local, &reasons);
            }
            Ingested::Rejected(reason) => {
                self.progress.types.entry(resource_type.clone()).or_default().rejected += 1;
                self.progress.rejected += 1;
                rejected.push((key, reason));
            }
        }
        Ok(())
    }

    /// Counts a record left out because it is sensitive and the member said so: once, under
    /// its most specific reason (a kind of care before a bare "restricted").
    fn exclude(&mut self, resource_type: &str, local: u128, reasons: &[sensitivity::Reason]) {
        self.progress.types.entry(resource_type.to_owned()).or_default().excluded += 1;
        let primary = reasons.iter().find(|r| r.kind != sensitivity::Kind::Restricted).or(reasons.first());
        if let Some(primary) = primary {
            *self.progress.excluded.entry(primary.key()).or_default() += 1;
            self.sensitive.insert(local, *primary);
        }
    }

    /// For a Provenance: why one of its targets is sensitive, when this run found one so.
    fn sensitive_target(&self, write: &ResourceWrite) -> Option<sensitivity::Reason> {
        if write.resource_type != "Provenance" {
            return None;
        }
        write
            .references
            .iter()
            .filter(|r| r.path == "target")
            .find_map(|r| self.sensitive.get(&crate::named::key(&r.target_type, &r.target_id)).copied())
    }

    fn count_category(&mut self, resource_type: &str, prepared: &Prepared) {
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
    async fn own_patient_linked_to(&mut self, received: &Prepared) -> Result<Option<ResourceWrite>, JobEnd> {
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

    /// Reads what the records refer to but did not come: directory entries and the like.
    async fn resolve(&mut self) -> Step {
        let dangling = self.dangling(10_000).await?;
        let mut candidates: Vec<(String, String)> = vec![];
        let mut seen = HashSet::new();
        for (_, _, target_type, target_id) in dangling {
            let key = (target_type, target_id);
            if is_exchange_type(&key.0) && !self.attempted.contains(&key) && seen.insert(key.clone()) {
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
            self.progress.phase = "finish".into();
            return self
                .commit(
                    vec![],
                    vec![],
                    &Audit::default(),
                    vec![("resolved".into(), format!("{} references", self.progress.resolved_references))],
                    0,
                )
                .await;
        }
        let audit = Audit::default();
        let mut resources = vec![];
        let mut rejected = vec![];
        for ((target_type, local_id), source_id) in targets.into_iter().take(RESOLVE_BATCH) {
            self.attempted.insert((target_type.clone(), local_id));
            let url = self.client.url(&format!("{target_type}/{source_id}"));
            match self.get(&url, &audit).await {
                Ok(resource) if resource["resourceType"] == target_type.as_str() => {
                    let before = resources.len();
                    self.accept(resource, &mut resources, &mut rejected).await?;
                    self.progress.resolved_references += (resources.len() > before) as u64;
                }
                Ok(_)
                | Err(Stop::Fetch(FetchError::NotFound(_) | FetchError::Forbidden(_) | FetchError::Refused { .. })) => {
                }
                Err(stop) => return Err(self.stop(stop, &audit).await),
            }
        }
        self.add_custodian_provenance(&mut resources)?;
        self.commit(resources, rejected, &audit, vec![], 0).await
    }

    /// Withholds references that still point nowhere, writes this plan's Provenance.
    async fn finish(&mut self) -> Step {
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
        self.progress.phase = "done".into();
        let events = vec![(
            "finished".into(),
            format!("{} stored, {} withheld", self.progress.stored(), self.progress.excluded_total()),
        )];
        self.commit(resources, vec![], &Audit::default(), events, 0).await
    }

    /// Stored counts from the store itself: a resource that came more than once (a Provenance
    /// included with several searches) is one record, and what the finishing pass removed is
    /// gone. Only what came from the previous plan counts (not this plan's own Provenance, the
    /// member's own Patient or the Organizations naming the two plans). Claims and prior
    /// authorizations keep the split counted as they came: an EOB never comes twice.
    async fn recount(&mut self) -> Step {
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

    /// The Organizations the custodian Provenance names: the previous plan (transmitter) and
    /// this plan (custodian). Written with the plan, before any Provenance refers to them.
    fn plan_organizations(&self) -> Result<Vec<ResourceWrite>, JobEnd> {
        let payer_name =
            self.credentials.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| self.link.payer_id.clone());
        let pay =
            json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "pay"}]}]);
        let organizations = [
            json!({"resourceType": "Organization", "id": self.payer_organization(), "active": true, "name": payer_name,
                "type": pay, "identifier": [{"system": "urn:ietf:rfc:3986", "value": self.ctx.source_base}]}),
            json!({"resourceType": "Organization", "id": "this-plan", "active": true,
                "name": self.engine.config.plan_name, "type": pay}),
        ];
        organizations
            .into_iter()
            .map(|o| {
                baton_records::prepare(o, &self.ctx.local_base, None, None)
                    .map(|p| p.write)
                    .map_err(|e| JobEnd::Failed(e.to_string()))
            })
            .collect()
    }

    fn payer_organization(&self) -> String {
        format!("payer-{}", slug(&self.link.payer_id))
    }

    /// PDex §1.7 (§pdex-127: at least one per exchange): a Provenance with this plan as
    /// custodian and the previous plan as transmitter, targeting the records of one committed
    /// batch (activity APPEND, reason RECORDMGT), written with them. One per batch keeps memory
    /// flat however big the record, and leaves what was committed described even if the
    /// transfer later fails. Its id is derived from its targets: a batch committed again after
    /// a crash rewrites the same Provenance.
    ///
    /// The batch's sensitive records get a Provenance of their own, itself sensitive: one
    /// listing them beside the others would show a reader who may not see them that they
    /// exist (and a received Provenance naming a sensitive record found later in the batch is
    /// marked sensitive first).
    fn add_custodian_provenance(&mut self, resources: &mut Vec<ResourceWrite>) -> Result<(), JobEnd> {
        let source = self.ctx.source_base.clone();
        for write in resources.iter_mut() {
            if !write.sensitive
                && write.source_system.as_deref() == Some(source.as_str())
                && let Some(reason) = self.sensitive_target(write)
            {
                write.sensitive = true;
                self.sensitive.insert(crate::named::key(&write.resource_type, &write.id), reason);
            }
        }
        let mut parts: [Vec<(String, String)>; 2] = [vec![], vec![]];
        for write in resources.iter().filter(|w| w.source_system.as_deref() == Some(source.as_str())) {
            parts[usize::from(write.sensitive)].push((write.resource_type.clone(), write.id.clone()));
        }
        for (received, sensitive) in parts.into_iter().zip([false, true]) {
            if !received.is_empty() {
                let mut write = self.custodian_provenance(&received)?;
                write.sensitive = sensitive;
                resources.push(write);
            }
        }
        Ok(())
    }

    fn custodian_provenance(&self, received: &[(String, String)]) -> Result<ResourceWrite, JobEnd> {
        let mut digest = Sha256::new();
        for (t, id) in received {
            digest.update(t.as_bytes());
            digest.update(b"/");
            digest.update(id.as_bytes());
            digest.update(b"\n");
        }
        let id = format!("transfer-{}-{}", slug(&self.transfer.id), &hex(&digest.finalize())[..12]);
        let targets: Vec<Value> = received.iter().map(|(t, id)| json!({"reference": format!("{t}/{id}")})).collect();
        let payer_name =
            self.credentials.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| self.link.payer_id.clone());
        let provenance = json!({
            "resourceType": "Provenance",
            "id": id,
            "meta": {"profile": ["http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provenance"]},
            "target": targets,
            "recorded": Timestamp::now().to_fhir_instant(),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "APPEND", "display": "append"}]},
            "reason": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "RECORDMGT", "display": "records management"}]}],
            "agent": [
                {
                    "type": {"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type", "code": "transmitter", "display": "Transmitter"}]},
                    "who": {"reference": format!("Organization/{}", self.payer_organization()), "display": payer_name}
                },
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian", "display": "Custodian"}]},
                    "who": {"reference": "Organization/this-plan", "display": self.engine.config.plan_name}
                }
            ]
        });
        let mut prepared = baton_records::prepare(provenance, &self.ctx.local_base, Some(self.ctx.member), None)
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        prepared.write.patient_id = Some(self.ctx.own_patient.clone());
        Ok(prepared.write)
    }
}

/// How a page commit ends the job, if it does.
fn commit_end(result: Result<(), CommitError>) -> Step {
    match result {
        Ok(()) => Ok(()),
        Err(CommitError::LeaseLost) => Err(JobEnd::LeaseLost),
        Err(CommitError::PreviousPageFailed) => {
            Err(JobEnd::Failed("a page before this one could not be saved, so this one was not either".into()))
        }
        Err(CommitError::Store(error)) => Err(JobEnd::Failed(format!("this plan's database failed: {error}"))),
    }
}

/// Why a request did not give a page.
enum Stop {
    Fetch(FetchError),
    End(JobEnd),
}

async fn own_patient(engine: &Engine, link: &PayerLink) -> Result<String, JobEnd> {
    member_patient(&engine.store, &engine.config.local_base, link.member_account).await.map_err(JobEnd::Failed)
}

/// The member's own Patient in this plan's store (its id); created from their account when
/// they have none yet.
pub async fn member_patient(store: &Store, local_base: &str, member: AccountId) -> Result<String, String> {
    let account = store
        .account_by_id(member)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the member's account no longer exists".to_owned())?;
    if let Some(id) = account.patient_id
        && store.read_resource("Patient", &id).await.map_err(|e| e.to_string())?.is_some()
    {
        return Ok(id);
    }
    let id = format!("member-{}", account.id.0);
    let mut patient = json!({
        "resourceType": "Patient",
        "id": id,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "active": true,
        "name": [{"text": account.display_name}],
        "identifier": []
    });
    if let Some(member_id) = &account.member_id {
        patient["identifier"] = json!([{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
            "system": format!("{}/member-id", local_base),
            "value": member_id
        }]);
    }
    if let Some(birth_date) = &account.birth_date {
        patient["birthDate"] = Value::String(birth_date.clone());
    }
    let prepared = baton_records::prepare(patient, local_base, Some(member), None).map_err(|e| e.to_string())?;
    store.put_resources(vec![prepared.write]).await.map_err(|e| e.to_string())?;
    store.set_account_patient(member, &id).await.map_err(|e| e.to_string())?;
    Ok(id)
}

/// Removes references to `missing` targets: Provenance targets and list items are dropped;
/// a single reference becomes a masked data-absent reference. Returns how many were removed.
pub fn withhold(resource: &mut Value, missing: &HashSet<String>) -> usize {
    baton_fhir::walk::mask_references(resource, |reference| {
        Reference::parse(reference).type_and_id().is_some_and(|(t, id)| missing.contains(&format!("{t}/{id}")))
    })
}

fn url_hash(url: &str) -> String {
    hex(&Sha256::digest(url.as_bytes())[..12])
}

fn origin_of(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "an invalid URL".into())
}

fn slug(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    cleaned.chars().take(56).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withholding_drops_list_items_and_masks_single_references() {
        let mut provenance = json!({"resourceType": "Provenance", "target": [{"reference": "Condition/a"}, {"reference": "Condition/b"}],
            "agent": [{"who": {"reference": "Organization/gone", "display": "Gone Clinic"}}]});
        let missing: HashSet<String> = ["Condition/a".to_owned(), "Organization/gone".to_owned()].into();
        assert_eq!(withhold(&mut provenance, &missing), 2);
        assert_eq!(provenance["target"], json!([{"reference": "Condition/b"}]));
        assert_eq!(provenance["agent"][0]["who"]["extension"][0]["valueCode"], "masked");
        assert!(!provenance.to_string().contains("Gone Clinic"), "display of a withheld reference goes too");
    }
}
