//! `baton p2p`: this plan's requests to previous plans (the Payer-to-Payer API, server to server)
//! for operators — list, show, send what is due now, retry, cancel. Each change is audited as
//! the operator's.

use anyhow::Context;
use baton_store::{NewAuditEvent, Store, Timestamp};
use baton_vocab::AuditAction;
use clap::Subcommand;

use crate::config::Config;
use crate::startup::open_store;

#[derive(Debug, Subcommand)]
pub enum P2pCommand {
    /// List requests to previous plans, newest first.
    List {
        /// Only requests to this previous plan (its directory id).
        #[arg(long)]
        payer: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one request: counts, what the previous plan reported, each member's answer.
    Show { id: String },
    /// Send what is due now at one previous plan; `--wait` also carries the requests out here
    /// (else the server's workers, or `baton transfers work`, do).
    Run {
        #[arg(long)]
        payer: String,
        #[arg(long)]
        wait: bool,
    },
    /// Run a failed or cancelled request again, from where it stopped.
    Retry { id: String },
    /// Cancel an unfinished request.
    Cancel { id: String },
}

pub async fn p2p(config: Config, command: P2pCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let operator = format!("operator {}", std::env::var("USER").unwrap_or_else(|_| "cli".into()));
    let result = match command {
        P2pCommand::List { payer, limit } => list(&store, payer.as_deref(), limit).await,
        P2pCommand::Show { id } => show(&store, &id).await,
        P2pCommand::Run { payer, wait } => run(&config, &store, &payer, wait, &operator).await,
        P2pCommand::Retry { id } => {
            store.request(&id).await?.with_context(|| format!("no request {id}"))?;
            anyhow::ensure!(
                store.retry_request(&id, Timestamp::now()).await?,
                "request {id} is not failed or cancelled"
            );
            audit(&store, &operator, &id, "retried").await?;
            println!("baton: request {id} queued again");
            Ok(())
        }
        P2pCommand::Cancel { id } => {
            store.request(&id).await?.with_context(|| format!("no request {id}"))?;
            anyhow::ensure!(store.cancel_request(&id, &operator, Timestamp::now()).await?, "request {id} has finished");
            audit(&store, &operator, &id, "cancelled").await?;
            println!("baton: request {id} cancelled");
            Ok(())
        }
    };
    store.close().await;
    result
}

async fn list(store: &Store, payer: Option<&str>, limit: u32) -> anyhow::Result<()> {
    println!(
        "{:<38} {:<16} {:<12} {:>7} {:>7} {:>9} {:>11} {:>8}  created",
        "id", "payer", "state", "members", "matched", "not found", "constrained", "lines"
    );
    for r in store.requests(payer, limit).await? {
        println!(
            "{:<38} {:<16} {:<12} {:>7} {:>7} {:>9} {:>11} {:>8}  {}",
            r.id,
            r.payer_id,
            r.state,
            r.members,
            r.matched,
            r.not_matched,
            r.constrained,
            r.lines,
            Timestamp::from_millis(r.created_at)
        );
    }
    Ok(())
}

async fn show(store: &Store, id: &str) -> anyhow::Result<()> {
    let r = store.request(id).await?.with_context(|| format!("no request {id}"))?;
    println!("request {} to {}", r.id, r.payer_id);
    println!("  state:    {}{}", r.state, r.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default());
    println!("  created:  {}   attempts: {}", Timestamp::from_millis(r.created_at), r.attempts);
    if let Some(since) = &r.since {
        println!("  since:    {since}");
    }
    if let Some(note) = &r.progress_note {
        println!("  progress: {note}");
    }
    println!(
        "  members {}: matched {}, not found {}, consent refused {}; lines read {}, not filed {}",
        r.members, r.matched, r.not_matched, r.constrained, r.lines, r.rejected
    );
    for problem in baton_transfer::request::problems(&r.checkpoint) {
        println!("  reported: {problem}");
    }
    let transfers = store.request_transfers(id).await?;
    println!("  {:<8} {:<16} {:<38} {:<22} {:>8}", "member", "answer", "transfer", "state", "records");
    for m in store.request_members(id).await? {
        let transfer = m.transfer_id.as_deref().and_then(|t| transfers.iter().find(|x| x.id == t));
        println!(
            "  {:<8} {:<16} {:<38} {:<22} {:>8}",
            m.member_account.0,
            m.result.map_or("no answer yet", |r| r.as_str()),
            m.transfer_id.as_deref().unwrap_or("-"),
            transfer.map_or("-".to_owned(), |t| t.state.to_string()),
            transfer.map_or(0, |t| baton_transfer::Progress::from_json(&t.progress).records())
        );
    }
    Ok(())
}

async fn run(config: &Config, store: &Store, payer: &str, wait: bool, operator: &str) -> anyhow::Result<()> {
    let secrets = crate::secrets::Secrets::load(config)?;
    let engine = crate::startup::engine(config, store, &secrets).await?;
    anyhow::ensure!(
        engine.registered_for_requests(payer),
        "this plan has no Payer-to-Payer registration at {payer}: it needs a [[payers]] entry with that id, its \
         `fhir_base` and `p2p_client_id`, and `secrets.backend_key`"
    );
    let started = engine.queue_payer(payer, Timestamp::now()).await?;
    if started.is_empty() {
        println!("baton: no member is due at {payer}");
        return Ok(());
    }
    for id in &started {
        audit(store, operator, id, "sent now").await?;
        println!("baton: request {id} started");
    }
    if !wait {
        return Ok(());
    }
    loop {
        let request = engine.run_request_once().await?;
        let transfer = engine.run_once().await?;
        let mut finished = true;
        for id in &started {
            finished &= store.request(id).await?.is_some_and(|r| r.state.is_finished());
        }
        if finished {
            break;
        }
        if request.is_none() && transfer.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    for id in &started {
        show(store, id).await?;
    }
    Ok(())
}

async fn audit(store: &Store, operator: &str, id: &str, detail: &str) -> anyhow::Result<()> {
    store
        .record_audit(&NewAuditEvent {
            at: Timestamp::now(),
            actor_account: None,
            actor: operator.to_owned(),
            action: AuditAction::RequestChanged.to_string(),
            member_account: None,
            subject: format!("request {id}"),
            detail: detail.to_owned(),
        })
        .await?;
    Ok(())
}
