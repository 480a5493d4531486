//! `baton-bench`: benchmarks kept out of the product binary. Build it with `--release`:
//!
//! ```text
//! cargo build --release -p baton-bench && <target>/release/baton-bench ingest
//! <target>/release/baton-bench export
//! <target>/release/baton-bench request
//! ```
//!
//! It uses the allocator the `baton` binary uses, so memory figures compare.

mod export;
mod ingest;
mod request;

use std::process::ExitCode;

use clap::Parser;

/// The `baton` binary's allocator (see `server/src/main.rs`).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "baton-bench", about = "Baton's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    #[command(flatten)]
    Ingest(ingest::BenchCommand),
    #[command(flatten)]
    Export(export::ExportCommand),
    #[command(flatten)]
    Request(request::RequestCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("baton-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        match cli.command {
            Bench::Ingest(command) => ingest::run(command).await,
            Bench::Export(command) => export::run(command).await,
            Bench::Request(command) => request::run(command).await,
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("baton-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
