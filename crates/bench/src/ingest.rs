//! `baton-bench ingest`: how fast, and in how much memory, the transfer engine pulls one big
//! member from a previous plan into SQLite and PostgreSQL — next to the raw limit, the same
//! bytes parsed with serde_json and inserted in one batched transaction.
//!
//! Every measured part runs in its own process, so each peak RSS is its own:
//!
//! - `baton-bench holder` serves the previous plan (a Baton data holder on SQLite holding one synthetic
//!   member) and prints what the member's authorization would have told the new plan;
//! - `baton-bench pull` is the new plan: a fresh database, the member enrolled, one transfer run by
//!   the engine exactly as the server runs it;
//! - `baton-bench raw` fetches the same pages first (not timed), then parses and inserts them.
//!
//! The orchestrator (`baton-bench ingest`) starts them with this same executable and prints a table.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use baton_store::{ConnectOptions, Store, Timestamp};
use baton_testbed::{Authorization, CLIENT_ID, CLIENT_SECRET, PAYER_ID, PreviousPlanSetup, enroll, previous_plan};
use baton_transfer::{ClientAuth, Engine, EngineConfig, JobEnd, PayerCredentials, PayerDirectory, TokenCipher};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Connection;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Pull one synthetic member of N resources from a local previous plan into SQLite and
    /// PostgreSQL; print resources/s, MB/s and peak RSS beside the raw limit.
    Ingest(IngestArgs),
    /// (internal) Serve a previous plan holding one member; print its authorization as JSON.
    #[command(hide = true)]
    Holder {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        resources: usize,
        #[arg(long, value_enum, default_value_t = Ids::Readable)]
        ids: Ids,
    },
    /// (internal) Run one transfer into a fresh database; print the figures as JSON.
    #[command(hide = true)]
    Pull(ChildArgs),
    /// (internal) Fetch the same pages, then parse and insert them; print the figures as JSON.
    #[command(hide = true)]
    Raw(ChildArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Resources of the member, one run per size (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub sizes: Vec<usize>,
    /// PostgreSQL server to create the throwaway databases on (default: TEST_POSTGRES_URL, else
    /// postgres://postgres@127.0.0.1:5432/postgres).
    #[arg(long, env = "BATON_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Skip PostgreSQL.
    #[arg(long)]
    pub sqlite_only: bool,
    /// `_count` of every page.
    #[arg(long, default_value_t = 1000)]
    pub page_size: u32,
    /// How the care resources' ids look: `readable` (`<patient>-<kind>-<n>`, nearly sequential)
    /// or `random` (UUIDs, as many plans assign: new index entries land all over the keys).
    #[arg(long, value_enum, default_value_t = Ids::Readable)]
    pub ids: Ids,
}

/// The synthetic record's id style (see [`baton_synth::IdStyle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ids {
    Readable,
    Random,
}

impl Ids {
    fn style(self) -> baton_synth::IdStyle {
        match self {
            Ids::Readable => baton_synth::IdStyle::Readable,
            Ids::Random => baton_synth::IdStyle::Random,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ids::Readable => "readable",
            Ids::Random => "random",
        }
    }
}

#[derive(Debug, Args)]
pub struct ChildArgs {
    #[arg(long)]
    pub database_url: String,
    /// The previous plan's authorization, as `bench holder` printed it.
    #[arg(long)]
    pub authorization: String,
    #[arg(long, default_value_t = 1000)]
    pub page_size: u32,
}

/// What a measured run prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub resources: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Peak resident set size of the process, in KiB (VmHWM).
    pub peak_rss_kib: u64,
}

impl Figures {
    pub(crate) fn per_second(&self) -> f64 {
        self.resources as f64 / self.seconds.max(1e-9)
    }

    pub(crate) fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1_000_000.0 / self.seconds.max(1e-9)
    }
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(args).await,
        BenchCommand::Holder { dir, resources, ids } => holder(&dir, resources, ids).await,
        BenchCommand::Pull(args) => print_figures(pull(args).await?),
        BenchCommand::Raw(args) => print_figures(raw(args).await?),
    }
}

fn print_figures(figures: Figures) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The orchestrator

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.sizes.is_empty() && args.sizes.iter().all(|&n| n > 0), "--sizes needs sizes above zero");
    if cfg!(debug_assertions) {
        eprintln!(
            "baton-bench: this is a debug build; figures mean little. Use `cargo run --release -p baton-bench -- ingest`."
        );
    }
    let postgres = match args.sqlite_only {
        true => None,
        false => {
            let url =
                args.postgres.clone().or_else(|| std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()));
            let url = url.unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
            match sqlx::PgConnection::connect(&url).await {
                Ok(connection) => {
                    connection.close().await.ok();
                    Some(url)
                }
                Err(error) => {
                    eprintln!("baton-bench: no PostgreSQL at {} ({error}); SQLite only", baton_store::redact_url(&url));
                    None
                }
            }
        }
    };
    let exe = std::env::current_exe().context("finding this executable")?;
    let work = tempfile::tempdir().context("creating a scratch directory")?;
    let mut rows: Vec<(usize, &'static str, Figures, Figures)> = vec![];

    for &size in &args.sizes {
        eprintln!("baton-bench: generating a previous plan with a member of {size} resources…");
        let dir = work.path().join(format!("holder-{size}"));
        let (holder, authorization) = Holder::start(&exe, &dir, size, args.ids)?;
        eprintln!("baton-bench: {} resources served at {}", authorization.resources, authorization.fhir_base);
        let json = serde_json::to_string(&authorization)?;
        let mut backends: Vec<(&'static str, Backend)> = vec![("SQLite", Backend::Sqlite(work.path().to_owned()))];
        if let Some(url) = &postgres {
            backends.push(("PostgreSQL", Backend::Postgres(url.clone())));
        }
        for (name, backend) in &backends {
            eprintln!("baton-bench: {size} → {name}: pulling…");
            let pulled = backend.with_database(|url| child(&exe, "pull", url, &json, args.page_size)).await?;
            eprintln!("baton-bench: {size} → {name}: raw limit…");
            let raw = backend.with_database(|url| child(&exe, "raw", url, &json, args.page_size)).await?;
            anyhow::ensure!(
                pulled.resources == raw.resources,
                "the pull stored {} resources of the {} the previous plan sent",
                pulled.resources,
                raw.resources
            );
            rows.push((size, name, pulled, raw));
        }
        drop(holder);
    }

    println!();
    println!(
        "{:>8}  {:<10}  {:>11}  {:>7}  {:>9}  {:>11}  {:>9}  {:>8}",
        "record", "store", "resources/s", "MB/s", "peak RSS", "raw limit/s", "raw RSS", "of raw"
    );
    for (size, name, pulled, raw) in &rows {
        println!(
            "{:>8}  {:<10}  {:>11.0}  {:>7.1}  {:>6} MB  {:>11.0}  {:>6} MB  {:>7.0}%",
            size,
            name,
            pulled.per_second(),
            pulled.megabytes_per_second(),
            pulled.peak_rss_kib / 1024,
            raw.per_second(),
            raw.peak_rss_kib / 1024,
            100.0 * pulled.per_second() / raw.per_second().max(1e-9),
        );
    }
    println!();
    println!("resources/s and MB/s: one transfer end to end (plan, every page fetched, ingested and committed with");
    println!("its checkpoint, references resolved, custodian Provenance) by the engine, as `baton serve` runs it.");
    println!("raw limit: the same response bytes, already in memory, parsed with serde_json and inserted as");
    println!("(type, id, body) rows in one batched transaction. Peak RSS: each process's VmHWM.");
    println!(
        "ids: {} ({}).",
        args.ids.name(),
        match args.ids {
            Ids::Readable => "<patient>-<kind>-<n>, nearly sequential; `--ids random` for UUIDs",
            Ids::Random => "UUIDs: new index entries land all over the keys",
        }
    );
    Ok(())
}

/// Where a measured run's fresh database lives.
enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Backend {
    /// Runs `f` with the URL of a new, empty database; removes the database afterwards.
    async fn with_database<F>(&self, f: F) -> anyhow::Result<Figures>
    where
        F: FnOnce(&str) -> anyhow::Result<Figures>,
    {
        let name = format!("baton_bench_{}", uuid::Uuid::new_v4().simple());
        match self {
            Backend::Sqlite(dir) => {
                let path = dir.join(format!("{name}.db"));
                let result = tokio::task::block_in_place(|| f(&format!("sqlite://{}", path.display())));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                result
            }
            Backend::Postgres(admin) => {
                let mut connection = sqlx::PgConnection::connect(admin).await?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await?;
                let url = with_database(admin, &name)?;
                let result = tokio::task::block_in_place(|| f(&url));
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut connection).await?;
                connection.close().await.ok();
                result
            }
        }
    }
}

fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(url).context("the PostgreSQL URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Runs `baton-bench <what>` and reads the figures it prints.
fn child(exe: &Path, what: &str, database_url: &str, authorization: &str, page_size: u32) -> anyhow::Result<Figures> {
    let output = Command::new(exe)
        .args([what, "--database-url", database_url, "--authorization", authorization])
        .args(["--page-size", &page_size.to_string()])
        .env("RUST_LOG", std::env::var("BATON_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running baton-bench {what}"))?;
    if !output.status.success() {
        bail!("baton-bench {what} failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("baton-bench {what} printed {text:?}"))
}

/// The previous plan's process; stopped when dropped.
struct Holder(Child);

impl Holder {
    fn start(exe: &Path, dir: &Path, resources: usize, ids: Ids) -> anyhow::Result<(Holder, Authorization)> {
        let mut child = Command::new(exe)
            .args(["holder", "--dir"])
            .arg(dir)
            .args(["--resources", &resources.to_string(), "--ids", ids.name()])
            .env("RUST_LOG", std::env::var("BATON_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting baton-bench holder")?;
        let stdout = child.stdout.take().context("the holder's output")?;
        let holder = Holder(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).context("reading the holder's authorization")?;
        let authorization: Authorization =
            serde_json::from_str(&line).with_context(|| format!("the holder printed {line:?}"))?;
        Ok((holder, authorization))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The children

/// Serves a previous plan until stdin closes (the orchestrator went away).
async fn holder(dir: &Path, resources: usize, ids: Ids) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let store = open(&format!("sqlite://{}", dir.join("holder.db").display())).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
    let member = baton_synth::numbered_member("bench", 1, 2026);
    let mut setup = PreviousPlanSetup::new(base, member, resources);
    setup.options.ids = ids.style();
    let previous = previous_plan(store, setup).await?;
    let router = previous.router();
    let mut out = std::io::stdout();
    writeln!(out, "{}", serde_json::to_string(&previous.authorization)?)?;
    out.flush()?;
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = stdin_closed.await;
        })
        .await?;
    Ok(())
}

async fn open(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url, &ConnectOptions::default()).await?;
    store.migrate().await?;
    Ok(store)
}

struct Credentials(String);

impl PayerDirectory for Credentials {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        (payer_id == PAYER_ID).then(|| PayerCredentials {
            client_id: CLIENT_ID.into(),
            auth: ClientAuth::Secret(CLIENT_SECRET.into()),
            token_url: Some(self.0.clone()),
            name: "Riverbend Health Plan".into(),
            backend: None,
        })
    }
}

/// One transfer, as the server runs it, into a fresh database.
async fn pull(args: ChildArgs) -> anyhow::Result<Figures> {
    let authorization: Authorization = serde_json::from_str(&args.authorization)?;
    let store = open(&args.database_url).await?;
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let cipher = TokenCipher::new(&key);
    let member = baton_synth::numbered_member("bench", 1, 2026);
    let enrollment =
        enroll(&store, &member, &authorization, true, |token, place| cipher.seal_for(token, place).unwrap_or_default())
            .await?;
    let mut config = EngineConfig::new("https://new-plan.example/fhir", "Bench Plan");
    config.page_size = args.page_size;
    // The synthetic record goes back six years: ask for all of it.
    config.history_years = 10;
    config.concurrency = 1;
    let engine = Engine::new(store.clone(), cipher, config, Arc::new(Credentials(authorization.token_url.clone())));
    store.enqueue_transfer("bench", &enrollment.link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await?;

    let started = Instant::now();
    let (_, end) = engine.run_once().await?.context("the transfer was not claimable")?;
    let seconds = started.elapsed().as_secs_f64();
    if end != JobEnd::Completed {
        bail!("the transfer ended {end:?}");
    }
    let transfer = store.transfer("bench").await?.context("the transfer disappeared")?;
    let bytes = store.transfer_requests("bench").await?.iter().map(|r| r.bytes.max(0) as u64).sum();
    store.close().await;
    // The member's records that arrived (not counting this plan's own custodian Provenance).
    let resources = baton_transfer::Progress::from_json(&transfer.progress).stored();
    Ok(Figures { resources, bytes, seconds, peak_rss_kib: peak_rss_kib() })
}

/// The raw limit: the same pages fetched first (not timed), then parsed and inserted.
async fn raw(args: ChildArgs) -> anyhow::Result<Figures> {
    let authorization: Authorization = serde_json::from_str(&args.authorization)?;
    let pages = fetch_pages(&authorization, args.page_size).await?;
    let bytes = pages.iter().map(|p| p.len() as u64).sum();
    let rows = RawRows::open(&args.database_url).await?;

    let started = Instant::now();
    let resources = rows.insert(&pages).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Figures { resources, bytes, seconds, peak_rss_kib: peak_rss_kib() })
}

/// Every page the engine would fetch: the same plan from the same CapabilityStatement.
async fn fetch_pages(authorization: &Authorization, page_size: u32) -> anyhow::Result<Vec<axum::body::Bytes>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let base = authorization.fhir_base.trim_end_matches('/');
    let get = |url: String| {
        let request = http.get(url).bearer_auth(&authorization.access_token).header("accept", "application/fhir+json");
        async move {
            let response = request.send().await?.error_for_status()?;
            anyhow::Ok(response.bytes().await?)
        }
    };
    let capability: Value = serde_json::from_slice(&get(format!("{base}/metadata")).await?)?;
    let now = Timestamp::now().to_datetime();
    let start = format!("{:04}-01-01", now.year() - 10);
    // As the engine asks: claims changed in the last year come whatever their service date.
    let changed_from = baton_vocab::day::format((now - time::Duration::days(365)).date());
    let plan = baton_transfer::plan::plan(
        &capability,
        &baton_fhir::smart::Scopes::parse(&authorization.scope),
        &authorization.patient_id,
        &start,
        &changed_from,
        None,
        page_size,
    );
    let mut pages = vec![];
    for step in plan.steps {
        let mut next = Some(format!("{base}/{}", step.path));
        while let Some(url) = next.take() {
            let page = get(url).await?;
            let bundle: Value = serde_json::from_slice(&page)?;
            next = bundle["link"]
                .as_array()
                .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
                .and_then(|l| l["url"].as_str())
                .map(str::to_owned);
            pages.push(page);
        }
    }
    Ok(pages)
}

/// A bare `(type, id, body)` table: the least any store must do.
pub(crate) enum RawRows {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

const RAW_TABLE: &str = "CREATE TABLE bench_raw (resource_type TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (resource_type, id))";
const RAW_BATCH: usize = 400;

impl RawRows {
    pub(crate) async fn open(url: &str) -> anyhow::Result<Self> {
        use std::str::FromStr;
        if url.starts_with("sqlite:") {
            // The same settings as the store's.
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
            sqlx::query(RAW_TABLE).execute(&pool).await?;
            Ok(RawRows::Sqlite(pool))
        } else {
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
            sqlx::query(RAW_TABLE).execute(&pool).await?;
            Ok(RawRows::Postgres(pool))
        }
    }

    /// Parses every page and inserts its resources in one transaction; returns how many.
    pub(crate) async fn insert(&self, pages: &[axum::body::Bytes]) -> anyhow::Result<u64> {
        let mut count = 0u64;
        macro_rules! insert_all {
            ($pool:expr, $placeholder:expr) => {{
                let mut tx = $pool.begin().await?;
                let mut batch: Vec<(String, String, String)> = Vec::with_capacity(RAW_BATCH);
                for page in pages {
                    let mut bundle: Value = serde_json::from_slice(page)?;
                    let entries = bundle.get_mut("entry").and_then(Value::as_array_mut).map(std::mem::take);
                    for mut entry in entries.unwrap_or_default() {
                        let resource = entry.get_mut("resource").map(Value::take).unwrap_or(Value::Null);
                        let (Some(t), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) else {
                            continue;
                        };
                        batch.push((t.to_owned(), id.to_owned(), resource.to_string()));
                        if batch.len() == RAW_BATCH {
                            count += batch.len() as u64;
                            insert_all!(@flush tx, batch, $placeholder);
                        }
                    }
                }
                count += batch.len() as u64;
                insert_all!(@flush tx, batch, $placeholder);
                tx.commit().await?;
            }};
            (@flush $tx:ident, $batch:ident, $placeholder:expr) => {{
                if !$batch.is_empty() {
                    let mut sql = String::from("INSERT INTO bench_raw (resource_type, id, body) VALUES ");
                    for i in 0..$batch.len() {
                        let p = |k: usize| $placeholder(3 * i + k);
                        sql.push_str(&format!("{}({}, {}, {})", if i == 0 { "" } else { ", " }, p(1), p(2), p(3)));
                    }
                    sql.push_str(" ON CONFLICT (resource_type, id) DO UPDATE SET body = excluded.body");
                    let mut query = sqlx::query(&sql);
                    for (t, id, body) in $batch.drain(..) {
                        query = query.bind(t).bind(id).bind(body);
                    }
                    query.execute(&mut *$tx).await?;
                }
            }};
        }
        match self {
            RawRows::Sqlite(pool) => insert_all!(pool, |n: usize| format!("?{n}")),
            RawRows::Postgres(pool) => insert_all!(pool, |n: usize| format!("${n}")),
        }
        Ok(count)
    }
}

/// The process's peak resident set size (VmHWM), in KiB; 0 where /proc is not there.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}
