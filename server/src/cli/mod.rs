//! The command line: `baton serve | migrate | demo | demo-data | transfers | p2p`.

mod p2p;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use baton_accounts::{AccountError, NewMember, NewPassword, Username};
use baton_store::AccountId;
use baton_synth::{Options, Payer};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::config::Config;
use crate::startup::{Application, open_store};
use crate::{demo, telemetry};

#[derive(Debug, Parser)]
#[command(name = "baton", version, about = "Baton: bring a member's health records from their previous plan")]
pub struct Cli {
    /// Configuration file (TOML); default: ./baton.toml when present. Environment variables
    /// (BATON_*, DATABASE_URL) override it.
    #[arg(long, global = true, env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (applies pending migrations first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the embedded demo: this plan plus a demo old plan on the next port, with demo
    /// accounts and synthetic records; prints the URLs and sign-ins.
    Demo,
    /// Generate deterministic synthetic members (PDex profiles) into this Baton's store as the
    /// plan holding their records — or into an NDJSON file — and/or load FHIR examples.
    DemoData(DemoDataArgs),
    /// Inspect and steer transfers, or run transfer workers.
    #[command(subcommand)]
    Transfers(TransfersCommand),
    /// This plan's requests to previous plans (Payer-to-Payer, server to server): list, show,
    /// send what is due now, retry, cancel.
    #[command(subcommand)]
    P2p(p2p::P2pCommand),
}

#[derive(Debug, Subcommand)]
pub enum TransfersCommand {
    /// List transfers, newest first.
    List {
        /// Only these states (repeatable; see `baton_vocab::TransferState`).
        #[arg(long)]
        state: Vec<baton_vocab::TransferState>,
        /// Only this member (account id).
        #[arg(long)]
        member: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one transfer: progress, error, timeline, requests, rejected resources.
    Show { id: String },
    /// Run a failed, cancelled or needs-reauthorization transfer again, from its checkpoint.
    Retry { id: String },
    /// Cancel a queued or running transfer.
    Cancel { id: String },
    /// Run transfer workers (no web server) until stopped; `--once` stops when the queue is empty.
    Work {
        #[arg(long)]
        once: bool,
    },
}

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// How many members to generate.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Resources per member (0: a natural record of a few hundred).
    #[arg(long, default_value_t = 0)]
    pub resources: usize,
    /// Seed: the same seed gives the same records.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Give claims payment and cost-sharing amounts (full CARIN BB profiles, not Basis).
    #[arg(long)]
    pub financial: bool,
    /// Write the resources to this NDJSON file instead of the store.
    #[arg(long)]
    pub ndjson: Option<PathBuf>,
    /// Also load every FHIR JSON example (resources and Bundles) under this directory.
    #[arg(long)]
    pub examples: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    telemetry::init(config.log_format);
    match cli.command {
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close().await;
            println!("baton: migrations applied to {}", baton_store::redact_url(&config.database_url()));
            Ok(())
        }
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(url = %app.public_url(), "Baton is listening");
            app.run_until_stopped().await.context("server failed")
        }
        Command::Demo => run_demo(config).await,
        Command::DemoData(args) => demo_data(config, args).await,
        Command::Transfers(command) => transfers(config, command).await,
        Command::P2p(command) => p2p::p2p(config, command).await,
    }
}

async fn transfers(config: Config, command: TransfersCommand) -> anyhow::Result<()> {
    use baton_store::{Timestamp, TransferFilter};
    let store = open_store(&config).await?;
    let operator = format!("operator {}", std::env::var("USER").unwrap_or_else(|_| "cli".into()));
    match command {
        TransfersCommand::List { state, member, limit } => {
            let filter =
                TransferFilter { states: state, member_account: member.map(AccountId), limit, ..Default::default() };
            let list = store.list_transfers(&filter).await?;
            println!("{:<38} {:<22} {:>7} {:>9} {:>6}  created", "id", "state", "member", "resources", "pages");
            for t in list {
                println!(
                    "{:<38} {:<22} {:>7} {:>9} {:>6}  {}",
                    t.id,
                    t.state,
                    t.member_account.0,
                    t.resources_stored,
                    t.pages_done,
                    Timestamp::from_millis(t.created_at)
                );
            }
        }
        TransfersCommand::Show { id } => {
            let transfer = store.transfer(&id).await?.with_context(|| format!("no transfer {id}"))?;
            let progress = baton_transfer::Progress::from_json(&transfer.progress);
            println!("transfer {}", transfer.id);
            println!(
                "  state:     {}{}",
                transfer.state,
                transfer.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
            );
            println!(
                "  member:    {}   link: {}   kind: {}   attempts: {}",
                transfer.member_account.0, transfer.link_id, transfer.kind, transfer.attempts
            );
            println!(
                "  phase:     {}   pages: {}   stored: {}",
                progress.phase, transfer.pages_done, transfer.resources_stored
            );
            println!(
                "  received {} of {} expected; stored {} records (+{} care providers and record sources); \
                 withheld (sensitive) {}; rejected {}",
                progress.received(),
                progress.expected.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
                progress.records(),
                progress.supporting(),
                progress.excluded_total(),
                progress.rejected
            );
            for (t, c) in &progress.types {
                println!(
                    "    {t:<22} received {:>6}  stored {:>6}  withheld {:>5}  rejected {:>4}",
                    c.received, c.stored, c.excluded, c.rejected
                );
            }
            for (reason, n) in &progress.excluded {
                println!("    withheld, {reason}: {n}");
            }
            if !progress.not_permitted.is_empty() {
                println!("  not permitted: {}", progress.not_permitted.join(", "));
            }
            println!("  timeline:");
            for e in store.transfer_events(&id).await? {
                println!("    {}  {:<14} {}", Timestamp::from_millis(e.at), e.kind, e.detail);
            }
            let requests = store.transfer_requests(&id).await?;
            println!("  requests ({}; last 20):", requests.len());
            for r in requests.iter().rev().take(20).rev() {
                println!(
                    "    {}  {} {} → {} ({} ms){}",
                    Timestamp::from_millis(r.at),
                    r.method,
                    r.url,
                    r.status.map(|s| s.to_string()).unwrap_or_else(|| "no response".into()),
                    r.duration_ms,
                    r.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
                );
            }
            for r in store.transfer_rejections(&id).await? {
                println!("  rejected {}: {}", r.source, r.reason);
            }
        }
        TransfersCommand::Retry { id } => {
            anyhow::ensure!(
                store.retry_transfer(&id, &operator, Timestamp::now()).await?,
                "transfer {id} is not failed, cancelled or waiting for reauthorization"
            );
            println!("baton: transfer {id} queued again");
        }
        TransfersCommand::Cancel { id } => {
            anyhow::ensure!(
                store.cancel_transfer(&id, &operator, Timestamp::now()).await?,
                "transfer {id} is not queued or running"
            );
            println!("baton: transfer {id} cancelled");
        }
        TransfersCommand::Work { once } => {
            let secrets = crate::secrets::Secrets::load(&config)?;
            let engine = crate::startup::engine(&config, &store, &secrets).await?;
            if once {
                while let Some((id, end)) = engine.run_once().await? {
                    println!("baton: transfer {id}: {end:?}");
                }
            } else {
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let workers = tokio::spawn(engine.run(stopped));
                crate::startup::shutdown_signal().await;
                let _ = stop.send(true);
                let _ = workers.await;
            }
        }
    }
    store.close().await;
    Ok(())
}

async fn run_demo(mut config: Config) -> anyhow::Result<()> {
    if config.holder.identifiers.is_empty() {
        config.holder.identifiers = vec![demo::NEW_PLAN_IDENTIFIER.into()];
    }
    // The demo's plans are on this machine: staff load Riverbend's brands file from loopback.
    config.directory.allow_private_addresses = true;
    let old_plan_config = demo::old_plan_config(&config, &config.public_url())?;
    if !config.payers.iter().any(|p| p.id == "riverbend") {
        config.payers.push(demo::old_plan_payer(&old_plan_config, demo::client_secret(&config.data_dir)?));
    }
    if !config.payers.iter().any(|p| p.id == demo::OFFLINE_PLAN_ID) {
        config.payers.push(demo::offline_plan_payer());
    }
    let new_plan = Application::build(config).await?;
    let old_plan = Application::build(old_plan_config).await.context("starting the demo old plan")?;
    let accounts = demo::seed(new_plan.services()).await.context("seeding demo accounts")?;
    demo::seed_offline_history(&new_plan).await?;
    demo::seed_previous_coverage(&new_plan).await?;
    let old_accounts = demo::seed_old_plan(&old_plan).await.context("seeding the demo old plan")?;
    demo::print_banner(&new_plan, &accounts, &old_plan, &old_accounts);
    let (a, b) = tokio::join!(new_plan.run_until_stopped(), old_plan.run_until_stopped());
    a.context("the new plan's server failed")?;
    b.context("the demo old plan's server failed")?;
    Ok(())
}

async fn demo_data(config: Config, args: DemoDataArgs) -> anyhow::Result<()> {
    let payer = Payer {
        organization_id: "this-plan".into(),
        name: config.plan.name.clone(),
        identifier_system: config.public_url().to_string().trim_end_matches('/').to_owned(),
    };
    let mut options = Options::new(payer);
    options.seed = args.seed;
    options.target_resources = args.resources;
    options.financial_claims = args.financial;
    let members: Vec<_> = (1..=args.members).map(|n| baton_synth::numbered_member("synth", n, args.seed)).collect();

    if let Some(path) = &args.ndjson {
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let mut written = 0usize;
        for member in &members {
            for resource in baton_synth::record(member, &options) {
                serde_json::to_writer(&mut out, &resource)?;
                out.write_all(b"\n")?;
                written += 1;
            }
        }
        out.flush()?;
        println!("baton: wrote {written} resources of {} members to {}", members.len(), path.display());
        return Ok(());
    }

    let store = open_store(&config).await?;
    let accounts = baton_accounts::Accounts::new(store.clone(), config.throttle_policy());
    let base = format!("{}fhir", config.public_url());
    let mut total = 0;
    for (n, member) in members.iter().enumerate() {
        let username = format!("member-{}", n + 1);
        let account = match accounts
            .create_member(NewMember {
                username: Username::parse(&username)?,
                display_name: format!("{} {}", member.given, member.family),
                password: Some(NewPassword::parse(demo::DEMO_PASSWORD)?),
                member_id: member.member_id.clone(),
                birth_date: member.birth_date,
                coverage_start: options.as_of,
            })
            .await
        {
            Ok(account) => account,
            Err(AccountError::UsernameTaken | AccountError::MemberIdTaken) => {
                accounts.by_username(&Username::parse(&username)?).await?.context("member disappeared")?
            }
            Err(error) => return Err(error.into()),
        };
        store.set_account_patient(account.id, &member.patient_id).await?;
        let report =
            baton_records::load(&store, baton_synth::record(member, &options), &base, Some(AccountId(account.id.0)))
                .await?;
        total += report.stored;
        println!("baton: {username} ({} {}): {} resources", member.given, member.family, report.stored);
    }
    if let Some(dir) = &args.examples {
        let (stored, rejected) = load_examples(&store, dir, &base).await?;
        println!("baton: {stored} example resources loaded from {}", dir.display());
        for (file, reason) in rejected {
            println!("baton:   not loaded: {file}: {reason}");
        }
        total += stored;
    }
    store.close().await;
    println!("baton: {total} resources stored in {}", baton_store::redact_url(&config.database_url()));
    Ok(())
}

/// Loads every `*.json` FHIR resource (Bundles: their entries) found under `dir`.
async fn load_examples(
    store: &baton_store::Store,
    dir: &Path,
    base: &str,
) -> anyhow::Result<(usize, Vec<(String, String)>)> {
    let mut files = vec![];
    collect_json(dir, &mut files)?;
    files.sort();
    let mut stored = 0;
    let mut rejected = vec![];
    for file in files {
        let name = file.display().to_string();
        let value: Value = match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(value) => value,
            Err(reason) => {
                rejected.push((name, reason));
                continue;
            }
        };
        let resources: Vec<Value> = if value["resourceType"] == "Bundle" {
            value["entry"]
                .as_array()
                .map(|e| e.iter().filter_map(|entry| entry.get("resource").cloned()).collect())
                .unwrap_or_default()
        } else {
            vec![value]
        };
        let report = baton_records::load(store, resources, base, None).await?;
        stored += report.stored;
        for (position, reason) in report.rejected {
            rejected.push((format!("{name} #{position}"), reason.to_string()));
        }
    }
    Ok((stored, rejected))
}

fn collect_json(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    Ok(())
}
