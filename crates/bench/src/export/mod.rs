//! `baton-bench export`: Baton as the old plan on the Payer-to-Payer API under load. A Baton
//! data holder on SQLite and on PostgreSQL holds M members of R resources each, matched for a
//! requesting plan; the orchestrator is that plan: it asks `$davinci-data-export` of the
//! matched Group over HTTP and downloads every file — next to the raw limit, the same rows read
//! from the store and written as NDJSON with no HTTP. Then a `$bulk-member-match` of K members.
//!
//! Every measured part runs in its own process, so each peak RSS is its own:
//!
//! - `export-setup` fills a database (members, records, the plan's registration, the matched
//!   Group, or K members to match): not timed;
//! - `export-serve` is the holder: prints its FHIR base, serves until stdin closes, then prints
//!   its peak RSS;
//! - `export-raw` reads what the export carries straight from the store.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use baton_store::Timestamp;
use baton_transfer::backend::{BackendCredentials, BackendKey, system_token};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::ingest::Figures;
pub(crate) use children::each_exported_row;
use children::{raw, serve, setup};

mod children;

pub(crate) const CLIENT_ID: &str = "bench-new-plan";
const EXPORT_TYPE: &str = "hl7.fhir.us.davinci-pdex#payertopayer";

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Export M matched members of R resources each over the Payer-to-Payer API from SQLite and
    /// PostgreSQL, and match a batch of K members; print the figures beside the raw limit.
    Export(ExportArgs),
    /// (internal) Fill a database for the export or the match.
    #[command(hide = true)]
    ExportSetup(SetupArgs),
    /// (internal) Serve a holder over a database until stdin closes; print its peak RSS.
    #[command(hide = true)]
    ExportServe {
        #[arg(long)]
        database_url: String,
    },
    /// (internal) Read what the export carries straight from the store; print the figures.
    #[command(hide = true)]
    ExportRaw {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        group: String,
    },
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Matched members in the exported Group.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Resources of each member.
    #[arg(long, default_value_t = 200)]
    pub resources: usize,
    /// Members in the `$bulk-member-match` batch (0: no match run).
    #[arg(long, default_value_t = 10_000)]
    pub match_members: usize,
    /// PostgreSQL server for the throwaway databases (default: TEST_POSTGRES_URL, else the local one).
    #[arg(long, env = "BATON_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    #[arg(long)]
    pub sqlite_only: bool,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[arg(long)]
    pub database_url: String,
    #[arg(long, default_value_t = 0)]
    pub members: usize,
    #[arg(long, default_value_t = 0)]
    pub resources: usize,
    /// Members with only their Patient, to be matched.
    #[arg(long, default_value_t = 0)]
    pub match_members: usize,
    /// The requesting plan's public JWK Set.
    #[arg(long)]
    pub jwks: String,
}

/// What `export-setup` made.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Made {
    pub(crate) group: Option<String>,
    pub(crate) resources: u64,
}

pub async fn run(command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Export(args) => orchestrate(args).await,
        ExportCommand::ExportSetup(args) => {
            let made = setup(args).await?;
            println!("{}", serde_json::to_string(&made)?);
            Ok(())
        }
        ExportCommand::ExportServe { database_url } => serve(&database_url).await,
        ExportCommand::ExportRaw { database_url, group } => {
            println!("{}", serde_json::to_string(&raw(&database_url, &group).await?)?);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The orchestrator: the requesting plan

struct Row {
    store: &'static str,
    export: Figures,
    raw: Figures,
    matched: Option<(usize, f64, u64)>,
}

async fn orchestrate(args: ExportArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("baton-bench: this is a debug build; figures mean little. Use `--release`.");
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let work = tempfile::tempdir()?;
    let key = BackendKey::from_pem(&rsa_pem()?)?;
    let jwks = serde_json::to_string(&key.jwks())?;
    let mut backends = vec![("SQLite", None)];
    if !args.sqlite_only {
        match postgres_admin(args.postgres.clone()).await {
            Ok(url) => backends.push(("PostgreSQL", Some(url))),
            Err(error) => eprintln!("baton-bench: no PostgreSQL ({error}); SQLite only"),
        }
    }
    let mut rows = vec![];
    for (name, admin) in backends {
        let database = Database::create(work.path(), admin.as_deref()).await?;
        eprintln!("baton-bench: {name}: {} members × {} resources…", args.members, args.resources);
        let (group, stored) = matched_group(&exe, &database.url, args.members, args.resources, &jwks)?;
        let mut server = Server::start(&exe, &database.url)?;
        eprintln!("baton-bench: {name}: exporting…");
        let (resources, bytes, seconds) = export(&server.fhir_base, &key, &group).await?;
        let export_rss = server.stop()?;
        let raw: Figures = child_json(&exe, &["export-raw", "--database-url", &database.url, "--group", &group])?;
        anyhow::ensure!(
            resources == raw.resources + 1,
            "the export carried {resources} resources; the store holds {} for its members (and one transmitter \
             Provenance is added)",
            raw.resources
        );
        eprintln!("baton-bench: {name}: {} resources stored for the members", stored);
        database.drop().await?;
        let matched = if args.match_members > 0 {
            let database = Database::create(work.path(), admin.as_deref()).await?;
            eprintln!("baton-bench: {name}: matching {} members…", args.match_members);
            let members = args.match_members.to_string();
            let _: Made = child_json(
                &exe,
                &["export-setup", "--database-url", &database.url, "--match-members", &members, "--jwks", &jwks],
            )?;
            let mut server = Server::start(&exe, &database.url)?;
            let (matched, seconds) = bulk_match(&server.fhir_base, &key, args.match_members).await?;
            let rss = server.stop()?;
            database.drop().await?;
            Some((matched, seconds, rss))
        } else {
            None
        };
        rows.push(Row {
            store: name,
            export: Figures { resources, bytes, seconds, peak_rss_kib: export_rss },
            raw,
            matched,
        });
    }

    println!();
    println!(
        "{:<10}  {:>11}  {:>7}  {:>9}  {:>11}  {:>7}  {:>7}  {:>16}",
        "store", "resources/s", "MB/s", "peak RSS", "raw limit/s", "raw MB/s", "of raw", "match batch"
    );
    for row in &rows {
        let matched = row
            .matched
            .map_or_else(|| "-".to_owned(), |(n, seconds, rss)| format!("{n} in {seconds:.1} s, {} MB", rss / 1024));
        println!(
            "{:<10}  {:>11.0}  {:>7.1}  {:>6} MB  {:>11.0}  {:>8.1}  {:>6.0}%  {:>16}",
            row.store,
            row.export.per_second(),
            row.export.megabytes_per_second(),
            row.export.peak_rss_kib / 1024,
            row.raw.per_second(),
            row.raw.megabytes_per_second(),
            100.0 * row.export.per_second() / row.raw.per_second().max(1e-9),
            matched,
        );
    }
    println!();
    println!(
        "{} members × {} resources. resources/s and MB/s: from the kick-off to the last byte",
        args.members, args.resources
    );
    println!("of the last file downloaded (polling as Retry-After says, 1 s), consents checked per member,");
    println!("claims without amounts, one transmitter Provenance. raw limit: the same rows read from the store");
    println!("in pages and written as NDJSON, no HTTP. Peak RSS: the holder's VmHWM. match batch: a");
    println!("$bulk-member-match of that many members, kick-off to manifest, and the holder's peak RSS.");
    Ok(())
}

/// The PostgreSQL server to make throwaway databases on (`--postgres`, else TEST_POSTGRES_URL,
/// else the local one), checked to answer.
pub(crate) async fn postgres_admin(given: Option<String>) -> anyhow::Result<String> {
    let url = given.or_else(|| std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()));
    let url = url.unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    sqlx::PgConnection::connect(&url).await?.close().await.ok();
    Ok(url)
}

/// A fresh database for one run: a SQLite file, or a PostgreSQL database dropped afterwards.
pub(crate) struct Database {
    pub(crate) url: String,
    admin: Option<(String, String)>,
}

impl Database {
    pub(crate) async fn create(dir: &Path, admin: Option<&str>) -> anyhow::Result<Self> {
        let name = format!("baton_bench_{}", uuid::Uuid::new_v4().simple());
        match admin {
            None => Ok(Self { url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()), admin: None }),
            Some(admin) => {
                let mut connection = sqlx::PgConnection::connect(admin).await?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await?;
                connection.close().await.ok();
                let mut url = url::Url::parse(admin)?;
                url.set_path(&format!("/{name}"));
                Ok(Self { url: url.to_string(), admin: Some((admin.to_owned(), name)) })
            }
        }
    }

    pub(crate) async fn drop(self) -> anyhow::Result<()> {
        match self.admin {
            Some((admin, name)) => {
                let mut connection = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut connection).await?;
                connection.close().await.ok();
            }
            None => {
                let path = self.url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
        Ok(())
    }
}

/// Fills a holder's database with `members` matched members of `resources` resources each
/// (`export-setup`); the id of the Group of them, and the resources stored.
pub(crate) fn matched_group(
    exe: &Path,
    database_url: &str,
    members: usize,
    resources: usize,
    jwks: &str,
) -> anyhow::Result<(String, u64)> {
    let (members, resources) = (members.to_string(), resources.to_string());
    let made: Made = child_json(
        exe,
        &[
            "export-setup",
            "--database-url",
            database_url,
            "--members",
            &members,
            "--resources",
            &resources,
            "--jwks",
            jwks,
        ],
    )?;
    Ok((made.group.context("the setup made no Group")?, made.resources))
}

/// Runs `baton-bench <args>` and reads the JSON of its last line.
pub(crate) fn child_json<T: serde::de::DeserializeOwned>(exe: &Path, args: &[&str]) -> anyhow::Result<T> {
    let output = Command::new(exe)
        .args(args)
        .env("RUST_LOG", std::env::var("BATON_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running baton-bench {}", args[0]))?;
    if !output.status.success() {
        bail!("baton-bench {} failed ({})", args[0], output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("baton-bench {} printed {text:?}", args[0]))
}

/// The holder's process: its FHIR base; stopping it reads its peak RSS.
pub(crate) struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub(crate) fhir_base: String,
}

impl Server {
    pub(crate) fn start(exe: &Path, database_url: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .args(["export-serve", "--database-url", database_url])
            .env("RUST_LOG", std::env::var("BATON_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting baton-bench export-serve")?;
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().context("the server's output")?).lines();
        let fhir_base = lines.next().context("the server said nothing")??;
        Ok(Self { child, stdin, lines, fhir_base })
    }

    /// Closes its stdin; it answers with its peak RSS (KiB) and exits.
    pub(crate) fn stop(&mut self) -> anyhow::Result<u64> {
        drop(self.stdin.take());
        let line = self.lines.next().context("the server did not say its peak RSS")??;
        let _ = self.child.wait();
        line.trim().parse().with_context(|| format!("the server printed {line:?}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap_or_default()
}

async fn token(fhir_base: &str, key: &BackendKey, scope: &str) -> anyhow::Result<String> {
    let credentials = BackendCredentials {
        client_id: CLIENT_ID.into(),
        key: key.clone(),
        scope: scope.into(),
        payer_identifiers: vec![],
        token_url: None,
    };
    let token_url = format!("{}/oauth/token", fhir_base.trim_end_matches("/fhir"));
    Ok(system_token(&http(), &credentials, &token_url, Timestamp::now().millis()).await?.access_token)
}

/// Kicks off, polls as told, returns the manifest and the seconds since the kick-off.
async fn kick_off_and_wait(url: &str, token: &str, body: String, started: Instant) -> anyhow::Result<Value> {
    let response = http()
        .post(url)
        .bearer_auth(token)
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+json")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 202, "{url} answered {}: {}", response.status(), response.text().await?);
    let status = response.headers()["content-location"].to_str()?.to_owned();
    loop {
        let response = http().get(&status).bearer_auth(token).send().await?;
        match response.status().as_u16() {
            200 => return Ok(response.json().await?),
            202 | 429 => {
                let wait: u64 =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => bail!("{status} answered {other} after {:.0?}: {}", started.elapsed(), response.text().await?),
        }
    }
}

/// The export: kick-off to the last byte downloaded. Returns (resources, bytes, seconds).
async fn export(fhir_base: &str, key: &BackendKey, group: &str) -> anyhow::Result<(u64, u64, f64)> {
    let token = token(fhir_base, key, "system/*.rs").await?;
    let started = Instant::now();
    let url = format!("{fhir_base}/Group/{group}/$davinci-data-export?exportType={}", EXPORT_TYPE.replace('#', "%23"));
    let manifest = kick_off_and_wait(&url, &token, String::new(), started).await?;
    anyhow::ensure!(manifest["error"].as_array().is_none_or(Vec::is_empty), "errors: {}", manifest["error"]);
    let (mut resources, mut bytes) = (0u64, 0u64);
    for output in manifest["output"].as_array().into_iter().flatten() {
        let mut response = http().get(output["url"].as_str().unwrap_or_default()).bearer_auth(&token).send().await?;
        anyhow::ensure!(response.status().is_success(), "a file answered {}", response.status());
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len() as u64;
            resources += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
    }
    Ok((resources, bytes, started.elapsed().as_secs_f64()))
}

/// A `$bulk-member-match` of `count` members, each as the setup made them. Returns how many
/// matched and the seconds from the kick-off to the manifest.
async fn bulk_match(fhir_base: &str, key: &BackendKey, count: usize) -> anyhow::Result<(usize, f64)> {
    let scope = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch";
    let token = token(fhir_base, key, scope).await?;
    let today = time::OffsetDateTime::now_utc().date();
    let (start, end) = (today.previous_day().unwrap_or(today), today.next_day().unwrap_or(today));
    let bundles: Vec<Value> = (0..count).map(|n| member_bundle(&match_member(n), start, end)).collect();
    let body = json!({"resourceType": "Parameters", "parameter": bundles}).to_string();
    let started = Instant::now();
    let manifest = kick_off_and_wait(&format!("{fhir_base}/Group/$bulk-member-match"), &token, body, started).await?;
    let seconds = started.elapsed().as_secs_f64();
    let url = manifest["output"][0]["url"].as_str().context("no Group file")?;
    let groups = http().get(url).bearer_auth(&token).send().await?.text().await?;
    let matched = groups
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|g| g["code"]["coding"][0]["code"] == "match")
        .and_then(|g| g["quantity"].as_u64())
        .unwrap_or(0);
    Ok((matched as usize, seconds))
}

fn member_bundle(member: &baton_synth::Member, start: time::Date, end: time::Date) -> Value {
    let day = baton_vocab::day::format;
    json!({"name": "MemberBundle", "part": [
        {"name": "MemberPatient", "resource": {
            "resourceType": "Patient", "id": "1", "gender": member.gender,
            "name": [{"family": member.family, "given": [member.given]}],
            "birthDate": day(member.birth_date),
        }},
        {"name": "CoverageToMatch", "resource": {
            "resourceType": "Coverage", "id": "1", "status": "active",
            "identifier": [{"value": member.member_id}],
            "beneficiary": {"reference": "Patient/1"}, "payor": [{"display": "this plan"}],
        }},
        {"name": "Consent", "resource": {
            "resourceType": "Consent", "status": "active", "patient": {"reference": "Patient/1"},
            "policy": [{"uri": "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive"}],
            "provision": {"type": "permit", "period": {"start": day(start), "end": day(end)}},
        }},
    ]})
}

fn match_member(n: usize) -> baton_synth::Member {
    baton_synth::numbered_member("match", n, 2026)
}

pub(crate) fn rsa_pem() -> anyhow::Result<String> {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)?;
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}
