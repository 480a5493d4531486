//! The command line: `baton serve | migrate | demo`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::Application;
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
    /// Run the embedded demo: SQLite under the data directory, demo accounts, sign-ins printed.
    Demo,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    telemetry::init(config.log_format);
    match cli.command {
        Command::Migrate => {
            let store = crate::startup::open_store(&config).await?;
            store.close().await;
            println!("baton: migrations applied to {}", baton_store::redact_url(&config.database_url()));
            Ok(())
        }
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(url = %app.public_url(), "Baton is listening");
            app.run_until_stopped().await.context("server failed")
        }
        Command::Demo => {
            let app = Application::build(config).await?;
            let accounts = demo::seed(app.services()).await.context("seeding demo accounts")?;
            demo::print_banner(&app, &accounts);
            app.run_until_stopped().await.context("server failed")
        }
    }
}
