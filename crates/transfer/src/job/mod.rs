//! One transfer, phase by phase. Every page fetched is committed together with the checkpoint
//! after it, so a transfer that stops (crash, kill, deploy) resumes where it was — nothing
//! fetched twice is stored twice, and nothing is skipped.
//!
//! 1. **plan** — read the CapabilityStatement once; choose `$everything` or per-type searches.
//! 2. **fetch** — follow each request's `next` links (same origin only; loops stopped).
//! 3. **resolve** — read the resources the records refer to but the pages did not contain.
//! 4. **finish** — withhold references that still point nowhere (never leave them dangling),
//!    record this plan's custodian Provenance, mark the transfer completed.
//!
//! Rooms: [`lease`] (the heartbeat), [`commits`] (pages committed in the background, in page
//! order), [`requests`] (GETs with token refresh and prefetch), [`phases`] (plan, fetch,
//! resolve, finish), [`accept`] (one received resource, counted), [`custodian`] (this plan's
//! Provenance and Organizations), [`patient`] (the member's own Patient).

mod accept;
mod commits;
mod custodian;
mod delivered;
mod lease;
mod patient;
mod phases;
mod requests;

pub use patient::member_patient;
pub use phases::withhold;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton_fhir::sensitivity;
use baton_store::{PayerLink, PreparedTransferPage, Timestamp, Transfer, TransferTarget};
use baton_vocab::{ConsentPolicy, LinkState, TransferState};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::Engine;
use crate::auth::PayerCredentials;
use crate::client::{FetchError, FhirClient};
use crate::ingest::{Context, source_prefix};
use crate::named::NamedTargets;
use crate::plan::Plan;
use crate::progress::Progress;
use commits::InFlight;
pub(crate) use lease::Heartbeat;
use lease::spawn_heartbeat;
use patient::own_patient;
use requests::Prefetch;

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
    /// Filing the lines a request's export brought for this member, after `after` (their
    /// place among the staged lines).
    Delivered {
        after: i64,
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
    /// at most [`EngineConfig::page_commits_in_flight`](crate::EngineConfig::page_commits_in_flight). All are settled before a commit made in line,
    /// before any step that reads what they wrote, and before the job ends, so the job's end
    /// is recorded after them.
    committing: VecDeque<InFlight>,
    /// Pages that arrived while the writer was busy, gathered into one commit (see
    /// [`EngineConfig::page_group_resources`](crate::EngineConfig::page_group_resources)); submitted once the writer is free or the group is
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
    /// The records the page being ingested left out as sensitive: noted with it.
    page_withheld: Vec<TransferTarget>,
    /// The request (and coverage) whose export this transfer files, when a request brought it.
    delivery: Option<(String, String)>,
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
    drop(heartbeat);
    let now = Timestamp::now();
    let store = &engine.store;
    let recorded = match &end {
        JobEnd::Completed => store.finish_transfer(&id, &owner, TransferState::Completed, None, now).await,
        JobEnd::Failed(why) => store.finish_transfer(&id, &owner, TransferState::Failed, Some(why), now).await,
        JobEnd::Cancelled(why) => store.finish_transfer(&id, &owner, TransferState::Cancelled, Some(why), now).await,
        JobEnd::NeedsReauthorization(why) => {
            store.finish_transfer(&id, &owner, TransferState::NeedsReauthorization, Some(why), now).await
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
            include_sensitive = include_sensitive && consent.policy == ConsentPolicy::Sensitive;
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
            Some(sealed) => Some(
                engine
                    .cipher
                    .open_for(sealed, &baton_store::PayerLink::token_place(&link.id, "access"))
                    .map_err(|e| failed("opening the access token", &e))?,
            ),
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
        // Only an export's lines are delivered; a member matched one by one has their records pulled.
        let delivery = match link.access {
            baton_vocab::LinkAccess::BulkExport => {
                store.delivery_of(&transfer.id).await.map_err(|e| failed("reading the request", &e))?
            }
            _ => None,
        };
        // What earlier runs left out: a Provenance naming one of them is left out too.
        let sensitive = store
            .transfer_withheld(&transfer.id)
            .await
            .map_err(|e| failed("reading what the transfer left out", &e))?
            .into_iter()
            .filter_map(|(t, id, reason)| Some((crate::named::key(&t, &id), sensitivity::Reason::from_key(&reason)?)))
            .collect();
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
            sensitive,
            page_sources: std::collections::HashMap::new(),
            page_withheld: vec![],
            delivery,
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
            if !matches!(self.checkpoint, Checkpoint::Fetch { .. } | Checkpoint::Delivered { .. })
                && let Err(end) = self.settle().await
            {
                return end;
            }
            let step = match self.checkpoint.clone() {
                Checkpoint::Plan => self.plan().await,
                Checkpoint::Fetch { plan, step, next, recent } => self.fetch(plan, step, next, recent).await,
                Checkpoint::Delivered { after } => self.delivered(after).await,
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
        if link.as_ref().is_none_or(|l| l.state == LinkState::Revoked) {
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
}

/// Why a request did not give a page.
enum Stop {
    Fetch(FetchError),
    End(JobEnd),
}
