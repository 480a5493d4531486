//! This plan as the **new plan on the Payer-to-Payer API**, server to server (PDex 2.2
//! `payertopayerbulkexchange`): a request asks one previous plan about a batch of opted-in
//! members and brings what it holds for those it matches.
//!
//! 1. **match** — `POST Group/$bulk-member-match` (`Prefer: respond-async`), one `MemberBundle`
//!    per member ([`members`]); poll the status URL ([`remote`]); read the result Groups, or an
//!    STU 2.1 Parameters envelope ([`answers`]); record each member's result.
//! 2. **export** — `POST Group/{id}/$davinci-data-export` with
//!    `exportType=hl7.fhir.us.davinci-pdex#payertopayer` (and `_since` the last export's
//!    `transactionTime` for a later request); poll.
//! 3. **download** — read each NDJSON file line by line, each line staged for the member it
//!    names, committed with the file and line reached ([`download`]): a request stopped
//!    mid-file resumes after the last line stored, so nothing is staged twice or skipped.
//! 4. **deliver** — each matched member whose Consent still holds gets a link and a transfer,
//!    which files their staged lines through the same ingest as every other transfer
//!    (sensitivity, new ids, Provenance); the request ends when they all have ([`deliver`]).
//!
//! A plan that offers no bulk match (404, 405 or 501) is asked about each member with
//! `Patient/$member-match` instead, and each matched member's records are pulled ([`single`]).
//!
//! Everything is leased like transfers: a request whose worker dies is taken over by another
//! (on PostgreSQL, by another process). Waits (polls, `Retry-After`, back-off) release the
//! request until they are over. [`schedule`] starts requests for the members that are due.

mod answers;
mod claim;
mod deliver;
mod download;
mod members;
pub mod remote;
mod schedule;
pub mod single;
mod withdraw;

pub use answers::{Manifest, MatchAnswer, OutputFile, manifest};
pub use members::key_system;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton_store::{P2pRequest, Timestamp};
use baton_vocab::{MatchResult, RequestState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Engine;
use crate::backend::{SystemToken, TokenError, system_token};
use remote::{Polled, RemoteError};

/// How requests run.
#[derive(Debug, Clone)]
pub struct RequestConfig {
    /// Members per request.
    pub batch_size: usize,
    /// The first wait between polls, doubled each poll up to `poll_max` (a plan's `Retry-After`
    /// wins, never cut short).
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// How long a match or an export may take before the request gives up (and cancels it there).
    pub give_up_after: Duration,
    /// Lines staged per commit while downloading.
    pub lines_per_commit: usize,
    /// Days after a request before the next for a member still covered there (at least quarterly).
    pub concurrent_every_days: i64,
    /// Days after the first request before the one run-off request (claims settled meanwhile).
    pub run_off_days: i64,
    /// How often a worker looks for members who are due.
    pub schedule_every: Duration,
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_min: Duration::from_secs(2),
            poll_max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
            lines_per_commit: 1000,
            concurrent_every_days: 90,
            run_off_days: 90,
            schedule_every: Duration::from_secs(30),
        }
    }
}

/// Where a request is (kept as JSON in its row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Step {
    #[default]
    Match,
    MatchPoll {
        status: String,
        started: i64,
        polls: u32,
    },
    Export {
        group: String,
    },
    ExportPoll {
        status: String,
        started: i64,
        polls: u32,
    },
    Download {
        files: Vec<OutputFile>,
        requires_token: bool,
        transaction_time: Option<String>,
        file: usize,
        line: u64,
    },
    /// The plan offers no bulk match: each member asked with `$member-match`, from the `next`th.
    Single {
        next: usize,
        answered: Vec<single::Answered>,
    },
    /// Shared Provenance routed to the member its targets belong to; then transfers.
    Deliver {
        transaction_time: Option<String>,
        routed: bool,
    },
}

/// A request's checkpoint: its step, and what the previous plan reported along the way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Place {
    step: Step,
    #[serde(default)]
    problems: Vec<String>,
    /// Members were matched one by one: their records are pulled, not read from an export.
    #[serde(default)]
    single: bool,
    /// The Group of matched members the previous plan made (exported again when a request
    /// stopped after its export is retried).
    #[serde(default)]
    group: Option<String>,
    /// Answers in a row that were not answers (unreachable, 5xx, 429): the back-off grows with
    /// them and, past a limit, the request fails. Any step saved resets it.
    #[serde(default)]
    failures: u32,
}

/// Failures in a row (unreachable, 5xx) after which a request is given up on.
pub const FAILURES_TOLERATED: u32 = 30;

/// Problems kept per request (the first ones; the count says how many more).
const PROBLEMS_KEPT: usize = 20;

impl Step {
    /// The state a request in this step is in (`None`: not sent yet).
    fn state(&self) -> Option<RequestState> {
        match self {
            Step::Match => None,
            Step::MatchPoll { .. } | Step::Single { .. } => Some(RequestState::Matching),
            Step::Export { .. } | Step::ExportPoll { .. } => Some(RequestState::Exporting),
            Step::Download { .. } => Some(RequestState::Downloading),
            Step::Deliver { .. } => Some(RequestState::Delivering),
        }
    }
}

impl Place {
    fn note(&mut self, problem: String) {
        if self.problems.len() < PROBLEMS_KEPT {
            self.problems.push(problem);
        }
    }
}

/// What the previous plan reported, from a request's checkpoint (for staff).
pub fn problems(checkpoint: &str) -> Vec<String> {
    serde_json::from_str::<Place>(checkpoint).map(|p| p.problems).unwrap_or_default()
}

/// How a run of a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEnd {
    Completed,
    Failed(String),
    /// Released until the previous plan (or the member transfers) should be asked again.
    Waiting(Duration),
    /// Another worker holds it now, or it was cancelled meanwhile.
    LeaseLost,
}

type Outcome = Result<(), RequestEnd>;

struct Run<'a> {
    engine: &'a Engine,
    request: P2pRequest,
    place: Place,
    fhir_base: String,
    token: Option<SystemToken>,
    lost: Arc<AtomicBool>,
    note: Option<String>,
}

impl<'a> Run<'a> {
    async fn load(engine: &'a Engine, request: P2pRequest, lost: Arc<AtomicBool>) -> Result<Run<'a>, RequestEnd> {
        let place = if request.checkpoint.trim().is_empty() || request.checkpoint.trim() == "{}" {
            Place::default()
        } else {
            serde_json::from_str(&request.checkpoint)
                .map_err(|e| RequestEnd::Failed(format!("the request's checkpoint is unreadable: {e}")))?
        };
        let fhir_base =
            engine.payers.fhir_base(&request.payer_id).map(|b| b.trim_end_matches('/').to_owned()).ok_or_else(
                || RequestEnd::Failed(format!("{} is no longer in the payer directory", request.payer_id)),
            )?;
        Ok(Run { engine, request, place, fhir_base, token: None, lost, note: None })
    }

    async fn run(&mut self) -> RequestEnd {
        // A request retried part-way is `queued` until it is under way in its step again.
        if let Some(state) = self.place.step.state()
            && state != self.request.state
            && let Err(end) = self.save(state).await
        {
            return end;
        }
        loop {
            if self.lost.load(Ordering::SeqCst) {
                return RequestEnd::LeaseLost;
            }
            let step = match self.place.step.clone() {
                Step::Match => self.start_match().await,
                Step::MatchPoll { status, started, polls } => self.poll(status, started, polls, true).await,
                Step::Export { group } => self.start_export(&group).await,
                Step::ExportPoll { status, started, polls } => self.poll(status, started, polls, false).await,
                Step::Download { files, requires_token, transaction_time, file, line } => {
                    self.download(&files, requires_token, transaction_time, file, line).await
                }
                Step::Single { next, answered } => self.match_each(next, answered).await,
                Step::Deliver { transaction_time, routed } => self.deliver(transaction_time, routed).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn now() -> Timestamp {
        Timestamp::now()
    }

    /// Saves the place reached (and the state it means); a request no longer held stops.
    async fn save(&mut self, state: RequestState) -> Outcome {
        self.place.failures = 0;
        let checkpoint = serde_json::to_string(&self.place).unwrap_or_default();
        let owner = &self.engine.config.worker_id;
        let saved = self
            .engine
            .store
            .advance_request(&self.request.id, owner, state, &checkpoint, self.note.as_deref(), Self::now())
            .await
            .map_err(|e| RequestEnd::Failed(e.to_string()))?;
        if !saved {
            return Err(RequestEnd::LeaseLost);
        }
        self.request.state = state;
        self.request.checkpoint = checkpoint;
        Ok(())
    }

    /// A system token at the previous plan (asked for once per run, again when it expires).
    async fn token(&mut self) -> Result<String, RequestEnd> {
        if let Some(token) = &self.token
            && token.expires_at.is_none_or(|at| at > Self::now().millis() + 30_000)
        {
            return Ok(token.access_token.clone());
        }
        let payer = self.request.payer_id.clone();
        let backend =
            self.engine.payers.credentials(&payer).and_then(|c| c.backend).ok_or_else(|| {
                RequestEnd::Failed(format!("this plan has no Payer-to-Payer registration at {payer}"))
            })?;
        let token_url = match &backend.token_url {
            Some(url) => url.clone(),
            None => self.discover_token_url().await?,
        };
        let token =
            system_token(&self.engine.http, &backend, &token_url, Self::now().millis()).await.map_err(|e| match e {
                TokenError::Refused(why) => RequestEnd::Failed(format!("{payer} refused this plan's system: {why}")),
                TokenError::Failed(why) => self.back_off(&RemoteError::Unavailable(why)),
            })?;
        let access = token.access_token.clone();
        self.token = Some(token);
        Ok(access)
    }

    async fn discover_token_url(&mut self) -> Result<String, RequestEnd> {
        let url = format!("{}/.well-known/smart-configuration", self.fhir_base);
        let response = self.engine.http.get(&url).send().await;
        let configuration: Value = match response {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            Ok(r) => return Err(self.back_off(&RemoteError::Unavailable(format!("{url} answered {}", r.status())))),
            Err(e) => return Err(self.back_off(&RemoteError::Unavailable(format!("{url} could not be reached: {e}")))),
        };
        configuration["token_endpoint"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RequestEnd::Failed("the previous plan's SMART configuration names no token endpoint".into()))
    }

    /// What an error from the previous plan means: a refusal fails the request; anything else
    /// waits (its `Retry-After`, else a back-off growing with the failures in a row), and an
    /// unavailable plan is given up on after [`FAILURES_TOLERATED`] in a row — however many
    /// polls a long export took before.
    fn back_off(&mut self, error: &RemoteError) -> RequestEnd {
        let config = &self.engine.config.requests;
        let failures = self.place.failures;
        self.place.failures = failures.saturating_add(1);
        match error {
            RemoteError::Refused(why) | RemoteError::NotOffered(why) => RequestEnd::Failed(why.clone()),
            RemoteError::Busy(said) => {
                RequestEnd::Waiting(remote::next_wait(*said, failures, config.poll_min, config.poll_max))
            }
            RemoteError::Unavailable(why) if failures + 1 >= FAILURES_TOLERATED => {
                RequestEnd::Failed(format!("gave up after {} failures in a row: {why}", failures + 1))
            }
            RemoteError::Unavailable(why) => {
                tracing::warn!(request = %self.request.id, %why, "the previous plan is unavailable; waiting");
                RequestEnd::Waiting(remote::next_wait(None, failures, config.poll_min, config.poll_max))
            }
        }
    }

    /// The place as saved when the run is released to wait.
    pub(crate) fn checkpoint(&self) -> String {
        serde_json::to_string(&self.place).unwrap_or_default()
    }

    fn same_origin(&self, url: &str) -> bool {
        let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
        origin(url).is_some_and(|o| Some(o) == origin(&self.fhir_base))
    }

    /// Sends the batch's bulk match.
    async fn start_match(&mut self) -> Outcome {
        let store = &self.engine.store;
        let mut bundles = vec![];
        for member in store.request_members(&self.request.id).await.map_err(|e| RequestEnd::Failed(e.to_string()))? {
            let Some(coverage) =
                store.previous_coverage(&member.coverage_id).await.map_err(|e| RequestEnd::Failed(e.to_string()))?
            else {
                continue;
            };
            match members::member_bundle(self.engine, &coverage).await {
                Ok(Some(bundle)) => bundles.push(bundle),
                Ok(None) => {
                    self.place.note(format!("a member's permission ended before the request ({})", coverage.id))
                }
                Err(why) => self.place.note(format!("member {} could not be sent: {why}", coverage.id)),
            }
        }
        if bundles.is_empty() {
            return Err(RequestEnd::Failed("no member of the request could be sent (permissions ended)".into()));
        }
        let body = json!({"resourceType": "Parameters", "parameter": bundles});
        let token = self.token().await?;
        let url = format!("{}/Group/$bulk-member-match", self.fhir_base);
        let status = match remote::kick_off(&self.engine.http, &url, &token, &body, "$bulk-member-match").await {
            Ok(status) => status,
            Err(RemoteError::NotOffered(why)) => {
                self.place.note(format!("{why}; each member was asked with $member-match"));
                self.place.single = true;
                self.place.step = Step::Single { next: 0, answered: vec![] };
                return self.save(RequestState::Matching).await;
            }
            Err(error) => return Err(self.back_off(&error)),
        };
        self.check_status_url(&status)?;
        self.place.step = Step::MatchPoll { status: status.clone(), started: Self::now().millis(), polls: 0 };
        self.note = Some("asked the previous plan to match the members".into());
        self.kicked_off(&status, RequestState::Matching).await
    }

    /// Saves the poll step after a kick-off and gives the previous plan the first wait before
    /// it is polled. A request cancelled (or taken over) meanwhile kept the kick-off as its
    /// place: the operation just started is nobody's, and the previous plan is asked to stop it.
    async fn kicked_off(&mut self, status: &str, state: RequestState) -> Outcome {
        match self.save(state).await {
            Ok(()) => Err(RequestEnd::Waiting(self.engine.config.requests.poll_min)),
            Err(RequestEnd::LeaseLost) => {
                if let Ok(token) = self.token().await {
                    remote::cancel(&self.engine.http, status, &token).await;
                }
                Err(RequestEnd::LeaseLost)
            }
            Err(end) => Err(end),
        }
    }

    /// The token goes to the status URL: only on the plan's own server.
    fn check_status_url(&self, status: &str) -> Outcome {
        if self.same_origin(status) {
            Ok(())
        } else {
            Err(RequestEnd::Failed(format!(
                "the previous plan's status URL is on another server ({status}); this plan's token is not sent there"
            )))
        }
    }

    /// Asks for the export of the matched members' data.
    async fn start_export(&mut self, group: &str) -> Outcome {
        let mut parameters =
            vec![json!({"name": "exportType", "valueString": "hl7.fhir.us.davinci-pdex#payertopayer"})];
        if let Some(since) = &self.request.since {
            parameters.push(json!({"name": "_since", "valueInstant": since}));
        }
        let body = json!({"resourceType": "Parameters", "parameter": parameters});
        let token = self.token().await?;
        let url = format!("{}/Group/{group}/$davinci-data-export", self.fhir_base);
        let status = remote::kick_off(&self.engine.http, &url, &token, &body, "$davinci-data-export")
            .await
            .map_err(|e| self.back_off(&e))?;
        self.check_status_url(&status)?;
        self.place.step = Step::ExportPoll { status: status.clone(), started: Self::now().millis(), polls: 0 };
        self.note = Some("asked the previous plan for the matched members' records".into());
        self.kicked_off(&status, RequestState::Exporting).await
    }

    /// One status poll of the match (`matching`) or the export.
    async fn poll(&mut self, status: String, started: i64, polls: u32, matching: bool) -> Outcome {
        let config = self.engine.config.requests.clone();
        let what = if matching { "matching the members" } else { "exporting the records" };
        let token = self.token().await?;
        if Self::now().millis() - started > config.give_up_after.as_millis() as i64 {
            let answered = remote::cancel(&self.engine.http, &status, &token).await;
            tracing::info!(request = %self.request.id, %answered, "asked the previous plan to stop");
            return Err(RequestEnd::Failed(format!(
                "the previous plan did not finish {what} within {} hours; the request was cancelled there",
                config.give_up_after.as_secs() / 3600
            )));
        }
        match remote::poll(&self.engine.http, &status, &token).await {
            Ok(Polled::Pending { retry_after, progress }) => {
                let wait = remote::next_wait(retry_after, polls, config.poll_min, config.poll_max);
                self.place.step = if matching {
                    Step::MatchPoll { status, started, polls: polls + 1 }
                } else {
                    Step::ExportPoll { status, started, polls: polls + 1 }
                };
                self.note = Some(match progress {
                    Some(progress) => format!("the previous plan is {what}: {progress}"),
                    None => format!("the previous plan is {what}"),
                });
                let state = self.request.state;
                self.save(state).await?;
                Err(RequestEnd::Waiting(wait))
            }
            Ok(Polled::Done(answer)) if matching => self.matched(answer).await,
            Ok(Polled::Done(answer)) => self.exported(answer).await,
            Err(error) => Err(self.back_off(&error)),
        }
    }

    /// Reads the match's answer and records each member's result.
    async fn matched(&mut self, answer: Value) -> Outcome {
        let key_system = key_system(&self.engine.config.local_base);
        let mut read = MatchAnswer::default();
        if answer["resourceType"] == "Parameters" {
            read.read_parameters(&answer, &key_system);
        } else {
            let manifest = manifest(&answer).map_err(RequestEnd::Failed)?;
            let prefer_groups = manifest.output.iter().any(|f| f.resource_type == "Group");
            for file in &manifest.output {
                let wanted =
                    if prefer_groups { file.resource_type == "Group" } else { file.resource_type == "Parameters" };
                if !wanted {
                    continue;
                }
                for line in self.small_file(file, manifest.requires_access_token).await? {
                    match line["resourceType"].as_str() {
                        Some("Group") => read.read_group(&line, &key_system),
                        Some("Parameters") => read.read_parameters(&line, &key_system),
                        _ => {}
                    }
                }
            }
            self.read_errors(&manifest).await?;
        }
        for problem in std::mem::take(&mut read.problems) {
            self.place.note(problem);
        }
        let members =
            self.engine.store.request_members(&self.request.id).await.map_err(|e| RequestEnd::Failed(e.to_string()))?;
        let mut results = vec![];
        let mut unanswered = 0;
        for member in &members {
            match read.results.iter().find(|(key, _, _)| *key == member.coverage_id) {
                Some((_, result, patient)) => results.push((member.coverage_id.clone(), *result, patient.clone())),
                None => {
                    unanswered += 1;
                    results.push((member.coverage_id.clone(), MatchResult::NoMatch, None));
                }
            }
        }
        if unanswered > 0 {
            self.place
                .note(format!("the answer did not mention {unanswered} of the members sent (counted as not matched)"));
        }
        let any_matched = results.iter().any(|(_, r, _)| *r == MatchResult::Matched);
        self.place.step = match (&read.matched_group, any_matched) {
            (Some(group), true) => {
                self.place.group = Some(group.clone());
                Step::Export { group: group.clone() }
            }
            _ => Step::Deliver { transaction_time: None, routed: true },
        };
        let checkpoint = serde_json::to_string(&self.place).unwrap_or_default();
        let owner = &self.engine.config.worker_id;
        let recorded = self
            .engine
            .store
            .record_match(&self.request.id, owner, &results, &checkpoint, Self::now())
            .await
            .map_err(|e| RequestEnd::Failed(e.to_string()))?;
        if !recorded {
            return Err(RequestEnd::LeaseLost);
        }
        self.request.state = RequestState::Exporting;
        self.note = None;
        if matches!(self.place.step, Step::Deliver { .. }) {
            self.save(RequestState::Delivering).await?;
        }
        Ok(())
    }

    /// Reads the export's manifest: the files to download.
    async fn exported(&mut self, answer: Value) -> Outcome {
        let manifest = manifest(&answer).map_err(RequestEnd::Failed)?;
        self.read_errors(&manifest).await?;
        self.place.step = Step::Download {
            files: manifest.output,
            requires_token: manifest.requires_access_token,
            transaction_time: manifest.transaction_time,
            file: 0,
            line: 0,
        };
        self.note = Some("reading the export's files".into());
        self.save(RequestState::Downloading).await
    }

    /// The OperationOutcome files of a manifest, said as problems.
    async fn read_errors(&mut self, manifest: &Manifest) -> Outcome {
        for file in &manifest.errors {
            for outcome in self.small_file(file, manifest.requires_access_token).await? {
                let text = baton_fhir::outcome::diagnostics(&outcome).unwrap_or("(no details)").to_owned();
                self.place.note(format!("the previous plan reported: {text}"));
            }
        }
        Ok(())
    }

    /// A small output file (Groups, OperationOutcomes) read whole, line by line; at most 64 MiB.
    async fn small_file(&mut self, file: &OutputFile, requires_token: bool) -> Result<Vec<Value>, RequestEnd> {
        let token = if requires_token {
            if !self.same_origin(&file.url) {
                self.place.note(format!(
                    "a file on another server ({}) was not read: this plan's token goes only to the plan's own server",
                    file.url
                ));
                return Ok(vec![]);
            }
            Some(self.token().await?)
        } else {
            None
        };
        let response =
            remote::open_file(&self.engine.http, &file.url, token.as_deref()).await.map_err(|e| self.back_off(&e))?;
        if response.content_length().is_some_and(|n| n > 64 << 20) {
            return Err(RequestEnd::Failed(format!("{} is larger than 64 MiB", file.url)));
        }
        let text = response.text().await.map_err(|e| self.back_off(&RemoteError::Unavailable(e.to_string())))?;
        Ok(text.lines().filter(|l| !l.trim().is_empty()).filter_map(|l| serde_json::from_str(l).ok()).collect())
    }
}
