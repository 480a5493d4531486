//! Baton's transfer engine: when a member authorizes their previous plan, pull their records
//! into this plan's store — completely, without duplicates, surviving crashes.
//!
//! - [`plan`]: what to ask for (`Patient/$everything`, or one search per PDex type);
//! - [`client`]: the previous plan's FHIR API, with retries, `Retry-After`, size caps, audit;
//! - [`ingest`]: PDex ingest rules — new ids, rewritten references, kept source ids and
//!   labels, sensitive data left out when the member said so, claim amounts removed;
//! - [`auth`]: refreshing access tokens (rotated refresh tokens stored at once);
//! - [`sealed`]: tokens encrypted at rest;
//! - [`job`]: one transfer, phase by phase, each page committed with its checkpoint;
//! - [`Engine`]: workers that lease queued transfers from the database.

pub mod auth;
pub mod backend;
pub mod client;
pub mod ingest;
pub mod job;
pub mod named;
pub mod plan;
pub mod progress;
pub mod request;
pub mod sealed;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use baton_store::{Store, Timestamp};
use tokio::sync::watch;

pub use auth::{ClientAuth, PayerCredentials, PayerDirectory};
pub use backend::{BackendCredentials, BackendKey};
pub use client::ClientConfig;
pub use ingest::RecordIds;
pub use job::{JobEnd, member_patient};
pub use progress::Progress;
pub use sealed::TokenCipher;

/// How the engine works.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This worker's name in leases (unique per process).
    pub worker_id: String,
    pub client: ClientConfig,
    /// `_count` asked for on every search.
    pub page_size: u32,
    /// How long a lease lasts without renewal (a dead worker's jobs wait this long).
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll_interval: Duration,
    /// How many transfers one process runs at once.
    pub concurrency: usize,
    /// Years of history asked for (PDex: at least five).
    pub history_years: i32,
    /// Keep claim payment and cost-sharing amounts (off: CARIN BB "Basis", as PDex exchanges).
    pub keep_financial: bool,
    /// This plan's FHIR base (its own references are local) and name.
    pub local_base: String,
    pub plan_name: String,
    /// The most references read afterwards per transfer (directory entries and the like).
    pub max_resolve: usize,
    /// How many page commits of one transfer may be in flight at once: on PostgreSQL a second
    /// connection writes the next page's resources while the first commits; SQLite's single
    /// writer takes one transaction at a time anyway. `None`: what was measured best for the
    /// store's backend (two on PostgreSQL, one on SQLite).
    pub page_commits_in_flight: Option<usize>,
    /// Up to how many resources pages that arrive while a commit is running may gather into
    /// one transaction (`0`: never). On SQLite a transaction writes every index page it changed
    /// into the log once: with ids that land all over an index (UUIDs), a page of 1,000
    /// resources changes thousands of pages of the reference and key indexes, most of which the
    /// next page changes again. PostgreSQL logs rows, not pages. Four pages of 1,000: a 100k
    /// SQLite pull with UUID ids took ~10.9 s page by page, ~10.5 s with 2,000, ~9.1–9.6 s with
    /// 4,000 and ~8.9 s with 8,000 — whose peak RSS passed 150 MB (4,000: ~130 MB). `None`:
    /// 4,000 on SQLite, 0 on PostgreSQL.
    pub page_group_resources: Option<usize>,
    /// How requests to previous plans for batches of members run (Payer-to-Payer, bulk).
    pub requests: request::RequestConfig,
}

impl EngineConfig {
    pub fn new(local_base: &str, plan_name: &str) -> Self {
        Self {
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            client: ClientConfig::default(),
            page_size: 1000,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            concurrency: 2,
            history_years: 5,
            keep_financial: false,
            local_base: local_base.trim_end_matches('/').to_owned(),
            plan_name: plan_name.to_owned(),
            max_resolve: 2000,
            page_commits_in_flight: None,
            page_group_resources: None,
            requests: request::RequestConfig::default(),
        }
    }

    /// The page-commit tuning for `store`: what was set, else what was measured best for its
    /// backend.
    fn resolve_tuning(&mut self, store: &Store) {
        let (in_flight, group) = if store.single_writer() { (1, 4_000) } else { (2, 0) };
        self.page_commits_in_flight.get_or_insert(in_flight);
        self.page_group_resources.get_or_insert(group);
    }

    pub(crate) fn commits_in_flight(&self) -> usize {
        self.page_commits_in_flight.unwrap_or(1).max(1)
    }

    pub(crate) fn group_resources(&self) -> usize {
        self.page_group_resources.unwrap_or(0)
    }
}

/// Runs transfers.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub http: reqwest::Client,
    pub cipher: TokenCipher,
    pub config: EngineConfig,
    pub payers: Arc<dyn PayerDirectory>,
    /// This Baton's record-id key, read (or made) once.
    record_ids: tokio::sync::OnceCell<RecordIds>,
}

impl std::ops::Deref for Engine {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Engine {
    pub fn new(store: Store, cipher: TokenCipher, mut config: EngineConfig, payers: Arc<dyn PayerDirectory>) -> Self {
        config.resolve_tuning(&store);
        let http = reqwest::Client::builder()
            // Never follow a redirect: it could take the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Engine(Arc::new(Inner { store, http, cipher, config, payers, record_ids: tokio::sync::OnceCell::new() }))
    }

    /// How this Baton turns a previous plan's resource ids into its own record ids: the key
    /// is made once per database and shared by every instance on it.
    pub async fn record_ids(&self) -> Result<RecordIds, baton_store::StoreError> {
        self.record_ids
            .get_or_try_init(|| async {
                use base64::Engine as _;
                let candidate = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
                let key = self.store.instance_secret(RecordIds::SECRET, &candidate).await?;
                Ok(RecordIds::new(key.as_bytes()))
            })
            .await
            .cloned()
    }

    /// Claims one due transfer and runs it to its end; returns its id and how it ended, or
    /// `None` when nothing was due.
    pub async fn run_once(&self) -> Result<Option<(String, JobEnd)>, baton_store::StoreError> {
        let now = Timestamp::now();
        let lease_until = now.plus(time::Duration::try_from(self.config.lease).unwrap_or(time::Duration::MINUTE));
        let Some(transfer) = self.store.claim_transfer(&self.config.worker_id, lease_until, now).await? else {
            return Ok(None);
        };
        let id = transfer.id.clone();
        let end = job::run(self, transfer).await;
        Ok(Some((id, end)))
    }

    /// Works the queue until `shutdown` turns true: `concurrency` loops, each claiming and
    /// running one transfer at a time.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut loops = tokio::task::JoinSet::new();
        for _ in 0..self.config.concurrency.max(1) {
            let engine = self.clone();
            let mut shutdown = shutdown.clone();
            loops.spawn(async move {
                loop {
                    if *shutdown.borrow() {
                        break;
                    }
                    match engine.run_once().await {
                        Ok(Some((id, end))) => tracing::info!(transfer = %id, ?end, "transfer ended"),
                        Ok(None) => {
                            tokio::select! {
                                _ = tokio::time::sleep(engine.config.poll_interval) => {}
                                _ = shutdown.changed() => {}
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, "cannot claim transfers");
                            tokio::time::sleep(engine.config.poll_interval * 5).await;
                        }
                    }
                }
            });
        }
        loops.spawn(self.clone().run_requests(shutdown.clone()));
        while loops.join_next().await.is_some() {}
    }
}

impl Engine {
    /// Works the requests to previous plans until `shutdown`: every
    /// [`request::RequestConfig::schedule_every`] starts those that are due and readies those
    /// that stopped part-way for a retry; runs each until it waits or ends.
    async fn run_requests(self, mut shutdown: watch::Receiver<bool>) {
        let mut scheduled: Option<std::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if scheduled.is_none_or(|at| at.elapsed() >= self.config.requests.schedule_every) {
                scheduled = Some(std::time::Instant::now());
                if let Err(error) = self.queue_due_requests(Timestamp::now()).await {
                    tracing::warn!(%error, "requests that are due could not be started");
                }
                if let Err(error) = self.withdraw_stopped_requests().await {
                    tracing::warn!(%error, "stopped requests could not be readied for a retry");
                }
            }
            match self.run_request_once().await {
                Ok(Some((id, end))) => tracing::debug!(request = %id, ?end, "request ran"),
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot claim requests");
                    tokio::time::sleep(self.config.poll_interval * 5).await;
                }
            }
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
