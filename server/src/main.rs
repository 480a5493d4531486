use std::process::ExitCode;

use clap::Parser;
use server::cli::{Cli, run};

/// jemalloc, not glibc's malloc, for Rust and — exported as `malloc`/`free` — for the SQLite
/// library linked in. A transfer allocates and frees a JSON tree, a serialised body and
/// SQLite's copy of it per resource, across the runtime's threads and SQLite's: glibc's
/// allocator spent a quarter of the CPU of a large transfer there (consolidating free chunks,
/// and on arena locks), and a 100,000-resource pull runs about 30 % faster with jemalloc
/// (measured with `baton-bench ingest`, see docs/PERFORMANCE.md). Its decay settings are in `.cargo/config.toml`.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Stack of the runtime's worker threads (Tokio's default is 2 MiB). Server-side rendering of a
/// large page nests deeply — in a debug build the staff payer directory once overflowed 2 MiB —
/// and only the pages touched count towards memory, so give every page a wide margin.
const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(WORKER_STACK_BYTES).build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("baton: cannot start the async runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("baton: {error:#}");
            ExitCode::FAILURE
        }
    }
}
