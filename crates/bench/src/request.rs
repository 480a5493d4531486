//! `baton-bench request`: Baton as the **new plan** on the Payer-to-Payer API under load. A
//! previous plan (a Baton data holder, served by `export-serve` over a SQLite database filled by
//! `export-setup`) holds M members of R resources; the new plan has the same M members opted in
//! at enrollment, in requests of B members. Its engine runs them exactly as `baton serve` does —
//! `$bulk-member-match`, `$davinci-data-export`, the files staged line by line, each member's
//! transfer filing their lines — into SQLite, into PostgreSQL, and with two processes sharing one
//! PostgreSQL database. Next to it, the raw limit in the same run: the same NDJSON parsed and
//! inserted into a bare table, no HTTP.
//!
//! Every measured part runs in its own process, so each peak RSS is its own:
//!
//! - `request-setup` fills the new plan's database (members, Consents, previous coverage) and
//!   queues the requests: not timed;
//! - `request-run` is one Baton worker process: runs requests and transfers until none is left,
//!   then prints its peak RSS;
//! - `request-raw` reads the same records from the previous plan's store (not timed), then
//!   parses and inserts them.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use baton_store::{ConnectOptions, MemberConsent, NewAccount, PreviousCoverage, Store, Timestamp};
use baton_transfer::{
    BackendCredentials, BackendKey, ClientAuth, Engine, EngineConfig, PayerCredentials, PayerDirectory, TokenCipher,
};
use baton_vocab::{ConsentChannel, ConsentPolicy, OptIn, RequestState};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::export::{Database, Server, child_json, matched_group, postgres_admin, rsa_pem};
use crate::ingest::{Figures, RawRows, peak_rss_kib};

const PAYER: &str = "bench-old-plan";
/// The scopes the previous plan registered this plan's system for (see `export-setup`).
const SCOPES: &str = "system/*.rs http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch";

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Bring M members of R resources each from a previous plan over the Payer-to-Payer API
    /// (bulk match, export) into SQLite and PostgreSQL, and with two processes on PostgreSQL;
    /// print the figures beside the raw limit.
    Request(RequestArgs),
    /// (internal) Fill the new plan's database with opted-in members and queue their requests.
    #[command(hide = true)]
    RequestSetup(RunArgs),
    /// (internal) One worker process: run requests and transfers until none is left.
    #[command(hide = true)]
    RequestRun(RunArgs),
    /// (internal) The raw limit: the previous plan's records for the Group, parsed and inserted.
    #[command(hide = true)]
    RequestRaw {
        #[arg(long)]
        holder_database_url: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        database_url: String,
    },
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Members opted in at the new plan (each matched at the previous plan).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Resources of each member at the previous plan.
    #[arg(long, default_value_t = 200)]
    pub resources: usize,
    /// Members per request (the holder runs at most 4 jobs per client at once: 4 requests of
    /// 250 keep all four busy).
    #[arg(long, default_value_t = 250)]
    pub batch: usize,
    /// PostgreSQL server for the throwaway databases (default: TEST_POSTGRES_URL, else the local one).
    #[arg(long, env = "BATON_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    #[arg(long)]
    pub sqlite_only: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long)]
    pub database_url: String,
    #[arg(long)]
    pub fhir_base: String,
    /// A file holding this plan's Backend Services key (PEM).
    #[arg(long)]
    pub key_file: std::path::PathBuf,
    #[arg(long, default_value_t = 0)]
    pub members: usize,
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    #[arg(long, default_value = "bench-worker")]
    pub worker: String,
}

/// What a worker process reports.
#[derive(Debug, Serialize, Deserialize)]
struct Ran {
    seconds: f64,
    peak_rss_kib: u64,
}

pub async fn run(command: RequestCommand) -> anyhow::Result<()> {
    match command {
        RequestCommand::Request(args) => orchestrate(args).await,
        RequestCommand::RequestSetup(args) => {
            let queued = setup(&args).await?;
            println!("{}", json!({ "requests": queued }));
            Ok(())
        }
        RequestCommand::RequestRun(args) => {
            println!("{}", serde_json::to_string(&work(&args).await?)?);
            Ok(())
        }
        RequestCommand::RequestRaw { holder_database_url, group, database_url } => {
            println!("{}", serde_json::to_string(&raw(&holder_database_url, &group, &database_url).await?)?);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The orchestrator

/// One measured configuration.
struct Row {
    label: String,
    resources: u64,
    seconds: f64,
    rss_mib: Vec<u64>,
    raw: Figures,
}

async fn orchestrate(args: RequestArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("baton-bench: this is a debug build; figures mean little. Use `--release`.");
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let work = tempfile::tempdir()?;
    let pem = rsa_pem()?;
    let key_file = work.path().join("backend-key.pem");
    std::fs::write(&key_file, &pem)?;
    let jwks = serde_json::to_string(&BackendKey::from_pem(&pem)?.jwks())?;

    // The previous plan, filled once and served for every run.
    let holder = Database::create(work.path(), None).await?;
    eprintln!("baton-bench: the previous plan: {} members × {} resources…", args.members, args.resources);
    let (group, _) = matched_group(&exe, &holder.url, args.members, args.resources, &jwks)?;
    let mut server = Server::start(&exe, &holder.url)?;

    let mut backends = vec![("SQLite", None, 1)];
    if !args.sqlite_only {
        match postgres_admin(args.postgres.clone()).await {
            Ok(url) => {
                backends.push(("PostgreSQL", Some(url.clone()), 1));
                backends.push(("PostgreSQL", Some(url), 2));
            }
            Err(error) => eprintln!("baton-bench: no PostgreSQL ({error}); SQLite only"),
        }
    }
    let mut rows = vec![];
    for (name, admin, processes) in backends {
        let label = if processes == 1 { name.to_owned() } else { format!("{name} ×{processes}") };
        let database = Database::create(work.path(), admin.as_deref()).await?;
        let run_args = |worker: &str| -> Vec<String> {
            let mut a = vec!["--database-url", &database.url, "--fhir-base", &server.fhir_base, "--worker", worker]
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            a.extend(["--key-file".into(), key_file.display().to_string()]);
            a.extend(["--members".into(), args.members.to_string(), "--batch".into(), args.batch.to_string()]);
            a
        };
        let setup_args: Vec<String> = ["request-setup".to_owned()].into_iter().chain(run_args("setup")).collect();
        let _: serde_json::Value = child_json(&exe, &setup_args.iter().map(String::as_str).collect::<Vec<_>>())?;
        eprintln!("baton-bench: {label}: bringing the members' records…");
        let started = Instant::now();
        let children: Vec<_> = (0..processes)
            .map(|i| {
                let worker_args: Vec<String> =
                    ["request-run".to_owned()].into_iter().chain(run_args(&format!("worker-{i}"))).collect();
                Command::new(&exe)
                    .args(&worker_args)
                    .env("RUST_LOG", std::env::var("BATON_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
                    .stdin(Stdio::null())
                    .stderr(Stdio::inherit())
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("starting baton-bench request-run")
            })
            .collect::<anyhow::Result<_>>()?;
        let mut rss_mib = vec![];
        for child in children {
            let output = child.wait_with_output()?;
            anyhow::ensure!(output.status.success(), "a worker failed ({})", output.status);
            let text = String::from_utf8_lossy(&output.stdout);
            let ran: Ran = serde_json::from_str(text.lines().last().unwrap_or_default())
                .with_context(|| format!("a worker printed {text:?}"))?;
            rss_mib.push(ran.peak_rss_kib / 1024);
        }
        let seconds = started.elapsed().as_secs_f64();
        let resources = check(&database.url, args.members).await?;
        let target = Database::create(work.path(), admin.as_deref()).await?;
        let raw: Figures = child_json(
            &exe,
            &["request-raw", "--holder-database-url", &holder.url, "--group", &group, "--database-url", &target.url],
        )?;
        target.drop().await?;
        database.drop().await?;
        eprintln!(
            "baton-bench: {label}: {resources} records filed in {seconds:.1} s ({:.0}/s; raw limit {:.0}/s over the {} \
             distinct records exported), peak RSS {rss_mib:?} MB",
            resources as f64 / seconds.max(1e-9),
            raw.per_second(),
            raw.resources
        );
        rows.push(Row { label, resources, seconds, rss_mib, raw });
    }
    let holder_rss = server.stop()? / 1024;
    holder.drop().await?;
    print_table(&args, &rows, holder_rss);
    Ok(())
}

/// Every request completed with every member matched; the records filed for the members.
async fn check(database_url: &str, members: usize) -> anyhow::Result<u64> {
    let store = Store::connect(database_url, &ConnectOptions::default()).await?;
    let mut filed = 0;
    let mut matched = 0;
    for request in store.requests(Some(PAYER), 10_000).await? {
        anyhow::ensure!(request.state == RequestState::Completed, "request {} ended {:?}", request.id, request.error);
        matched += request.matched;
        for transfer in store.request_transfers(&request.id).await? {
            filed += baton_transfer::Progress::from_json(&transfer.progress).stored();
        }
    }
    store.close().await;
    anyhow::ensure!(matched as usize == members, "{matched} of {members} members matched");
    Ok(filed)
}

fn print_table(args: &RequestArgs, rows: &[Row], holder_rss: u64) {
    println!();
    println!(
        "{:<15}  {:>11}  {:>7}  {:>14}  {:>11}  {:>8}  {:>7}",
        "new plan", "resources/s", "MB/s", "peak RSS", "raw limit/s", "raw MB/s", "of raw"
    );
    let one_pg = rows.iter().find(|r| r.label == "PostgreSQL").map(|r| r.resources as f64 / r.seconds);
    for row in rows {
        let rate = row.resources as f64 / row.seconds.max(1e-9);
        let rss: Vec<String> = row.rss_mib.iter().map(|m| format!("{m}")).collect();
        println!(
            "{:<15}  {:>11.0}  {:>7.1}  {:>11} MB  {:>11.0}  {:>8.1}  {:>6.0}%{}",
            row.label,
            rate,
            row.raw.bytes as f64 / 1_000_000.0 / row.seconds.max(1e-9),
            rss.join(" + "),
            row.raw.per_second(),
            row.raw.megabytes_per_second(),
            100.0 * rate / row.raw.per_second().max(1e-9),
            match one_pg {
                Some(one) if row.rss_mib.len() > 1 => format!("  ({:.2}× one process)", rate / one.max(1e-9)),
                _ => String::new(),
            },
        );
    }
    println!();
    println!(
        "{} members × {} resources, {} members per request; the previous plan's peak RSS {holder_rss} MB.",
        args.members, args.resources, args.batch
    );
    println!("resources/s: records filed for the members from the workers' start until the last request");
    println!("completed — match, export, every file staged line by line, each member's transfer (new ids,");
    println!("sensitivity, Provenance). MB/s: the same records' NDJSON bytes over that time. raw limit: those");
    println!("records parsed and inserted into a bare table, no HTTP. Peak RSS: each worker process's VmHWM.");
}

// ---------------------------------------------------------------------------------------------
// The children

struct Directory {
    base: String,
    key: BackendKey,
}

impl PayerDirectory for Directory {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        (payer_id == PAYER).then(|| PayerCredentials {
            client_id: "unused".into(),
            auth: ClientAuth::Secret("unused".into()),
            token_url: None,
            name: "Benchmark Old Plan".into(),
            backend: Some(BackendCredentials {
                client_id: crate::export::CLIENT_ID.into(),
                key: self.key.clone(),
                scope: SCOPES.into(),
                payer_identifiers: vec![],
                token_url: None,
            }),
        })
    }

    fn fhir_base(&self, payer_id: &str) -> Option<String> {
        (payer_id == PAYER).then(|| self.base.clone())
    }
}

async fn engine(args: &RunArgs) -> anyhow::Result<Engine> {
    let store = Store::connect(&args.database_url, &ConnectOptions::default()).await?;
    store.migrate().await?;
    let pem = std::fs::read_to_string(&args.key_file)?;
    let directory = Directory { base: args.fhir_base.clone(), key: BackendKey::from_pem(&pem)? };
    let mut config = EngineConfig::new("https://new-plan.invalid/fhir", "Benchmark New Plan");
    config.worker_id = args.worker.clone();
    config.history_years = 10;
    config.poll_interval = Duration::from_millis(100);
    config.requests.batch_size = args.batch.max(1);
    // The holder says `Retry-After: 1`; waits never grow past a few seconds here.
    config.requests.poll_min = Duration::from_secs(1);
    config.requests.poll_max = Duration::from_secs(2);
    Ok(Engine::new(store, TokenCipher::new(&[7; 32]), config, Arc::new(directory)))
}

/// The new plan's members, as the previous plan knows them (`export-setup`'s members), opted in
/// at enrollment with sensitive information included; their requests queued.
async fn setup(args: &RunArgs) -> anyhow::Result<usize> {
    let engine = engine(args).await?;
    let store = &engine.store;
    let now = Timestamp::now();
    let day = baton_vocab::day::format;
    let today = now.to_datetime().date();
    for n in 0..args.members {
        let member = baton_synth::numbered_member("export", n, 2026);
        let account = store
            .insert_account(&NewAccount {
                username: format!("new-{n}"),
                display_name: format!("{} {}", member.given, member.family),
                member_id: Some(format!("NEW-{n}")),
                birth_date: Some(member.birth_date),
                ..Default::default()
            })
            .await?;
        let consent = format!("consent-{n}");
        let resource = json!({
            "resourceType": "Consent", "id": consent, "status": "active",
            "policy": [{"uri": "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive"}],
            "provision": {"type": "permit", "period": {"start": day(today), "end": day(today + time::Duration::days(90))}},
        });
        store
            .insert_consent(&MemberConsent {
                id: consent.clone(),
                member_account: account,
                payer_id: PAYER.into(),
                policy: ConsentPolicy::Sensitive,
                period_start: now.millis() - 60_000,
                period_end: now.millis() + 90 * 86_400_000,
                given_at: now.millis(),
                channel: ConsentChannel::Enrollment,
                resource: resource.to_string(),
                withdrawn_at: None,
                created_at: now.millis(),
                records_deleted: None,
                records_kept: None,
                records_shared: None,
                replaced_by: None,
            })
            .await?;
        store
            .save_previous_coverage(&PreviousCoverage {
                id: format!("coverage-{n}"),
                member_account: account,
                payer_id: PAYER.into(),
                member_id: member.member_id.clone(),
                coverage_start: None,
                coverage_end: None,
                concurrent: false,
                opt_in: OptIn::In,
                opted_at: Some(now.millis()),
                opt_in_channel: Some(ConsentChannel::Enrollment),
                opt_in_recorded_by: Some("roster".into()),
                consent_id: Some(consent),
                next_request_at: Some(now.millis()),
                last_request_id: None,
                last_exported_at: None,
                created_at: now.millis(),
                updated_at: now.millis(),
            })
            .await?;
    }
    let queued = engine.queue_due_requests(now).await?.len();
    engine.store.close().await;
    Ok(queued)
}

/// One worker process, as `baton transfers work` runs: until every request has finished and
/// no transfer is left to run.
async fn work(args: &RunArgs) -> anyhow::Result<Ran> {
    let engine = engine(args).await?;
    let store = engine.store.clone();
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(engine.run(stopped));
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let requests = store.requests(Some(PAYER), 10_000).await?;
        if requests.iter().all(|r| r.state.is_finished()) {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = workers.await;
    store.close().await;
    Ok(Ran { seconds, peak_rss_kib: peak_rss_kib() })
}

/// The records the export carries, read from the previous plan's store first (not timed), then
/// parsed and inserted into a bare table.
async fn raw(holder_database_url: &str, group: &str, database_url: &str) -> anyhow::Result<Figures> {
    // Directory entries (organizations, practitioners) come with every member who names them;
    // the store keeps one of each, and one statement may not write a row twice: kept once.
    let mut lines = vec![];
    let mut seen = std::collections::HashSet::new();
    crate::export::each_exported_row(holder_database_url, group, |body| {
        let key = serde_json::from_str::<serde_json::Value>(body)
            .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or("")))
            .unwrap_or_default();
        if seen.insert(key) {
            lines.push(body.to_owned());
        }
    })
    .await?;
    let bytes = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let pages: Vec<axum::body::Bytes> = lines
        .chunks(1000)
        .map(|chunk| {
            let entries: Vec<String> = chunk.iter().map(|body| format!("{{\"resource\":{body}}}")).collect();
            axum::body::Bytes::from(format!("{{\"entry\":[{}]}}", entries.join(",")))
        })
        .collect();
    drop(lines);
    let rows = RawRows::open(database_url).await?;
    let started = Instant::now();
    let resources = rows.insert(&pages).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Figures { resources, bytes, seconds, peak_rss_kib: peak_rss_kib() })
}
