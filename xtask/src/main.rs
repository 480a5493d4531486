//! Build, run and test Baton — without cargo-leptos, whose tool downloads cannot work offline.
//!
//! ```text
//! cargo xtask build [--release]   server + WebAssembly + CSS + assets into <target>/site
//! cargo xtask run   [--release]   build, then `baton demo` (data under ./data)
//! cargo xtask test                every test: Rust (SQLite + PostgreSQL) and Playwright in Chromium
//! ```
//!
//! The README's commands (`scripts/run.sh`, `scripts/test.sh`) call this with
//! `CARGO_TARGET_DIR` defaulting to `~/.cache/baton/target`, so fresh clones reuse builds.

mod migrations;
mod postgres;
mod site;
mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{Steps, cargo, run_with_deadline};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => site::build(&Ctx::new(&args[1..])).map(|_| ()),
        Some("run") => run(&Ctx::new(&args[1..])),
        Some("test") => test(&Ctx::new(&args[1..])),
        Some("where") => {
            let ctx = Ctx::new(&args[1..]);
            println!("root={}\ntarget={}", ctx.root.display(), ctx.target.display());
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <build|run|test|where> [--release]");
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("\nxtask: {error:#}");
        std::process::exit(1);
    }
}

/// The checkout this xtask was run in — found at run time, never compiled in: clones share one
/// build cache, and an xtask binary built in one clone may run in another.
///
/// `cargo run` (which `cargo xtask` is) sets `CARGO_MANIFEST_DIR` to the xtask package of the
/// workspace it ran in; run some other way, `cargo locate-project --workspace` from the current
/// directory says, else the current directory is taken.
fn workspace_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)
        && let Some(root) = dir.parent()
        && root.join("Cargo.toml").is_file()
    {
        return root.to_path_buf();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let located = Command::new(cargo).args(["locate-project", "--workspace", "--message-format", "plain"]).output();
    if let Ok(output) = located
        && output.status.success()
        && let Some(manifest) = String::from_utf8_lossy(&output.stdout).lines().next().map(PathBuf::from)
        && let Some(root) = manifest.parent()
    {
        return root.to_path_buf();
    }
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// Where things are, and how to build.
pub struct Ctx {
    pub root: PathBuf,
    pub target: PathBuf,
    pub release: bool,
}

impl Ctx {
    fn new(args: &[String]) -> Self {
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let target = if target.is_absolute() { target } else { root.join(target) };
        Self { root, target, release: args.iter().any(|a| a == "--release") }
    }

    pub fn profile_dir(&self) -> PathBuf {
        self.target.join(if self.release { "release" } else { "debug" })
    }

    pub fn baton_binary(&self) -> PathBuf {
        self.profile_dir().join("baton")
    }

    pub fn site_dir(&self) -> PathBuf {
        self.target.join("site")
    }
}

/// Builds, then runs the embedded demo until Ctrl-C.
fn run(ctx: &Ctx) -> Result<()> {
    site::build(ctx)?;
    let status = Command::new(ctx.baton_binary())
        .arg("demo")
        .current_dir(&ctx.root)
        .env("BATON_SITE_ROOT", ctx.site_dir())
        .status()
        .context("starting baton")?;
    if !status.success() {
        bail!("baton exited with {status}");
    }
    Ok(())
}

/// Packages that are not tested natively: the browser entry point (WebAssembly only).
/// Everything else in the workspace is, in one `cargo test` (never `--workspace`,
/// which would also build `frontend` and unify `app`'s `ssr` and `hydrate` features).
const NOT_NATIVE: &[&str] = &["frontend"];

fn native_packages(ctx: &Ctx) -> Result<Vec<String>> {
    let output = cargo(ctx).args(["metadata", "--no-deps", "--format-version", "1"]).output()?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let names = metadata["packages"]
        .as_array()
        .map(|packages| {
            packages
                .iter()
                .filter_map(|p| p["name"].as_str())
                .filter(|name| !NOT_NATIVE.contains(name))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(names)
}

fn test(ctx: &Ctx) -> Result<()> {
    let started = Instant::now();
    let mut steps = Steps::new(5);

    steps.next("migrations in step on both backends");
    let migrations = migrations::check(&ctx.root)?;
    println!("    {migrations} migrations, each on SQLite and PostgreSQL");

    steps.next("build the site (server, WebAssembly, CSS)");
    site::build(ctx)?;

    steps.next("PostgreSQL for the store suite");
    let postgres = postgres::for_tests()?;
    println!("    using {}", postgres.describe());

    steps.next("Rust tests (unit, integration, store suite on SQLite and PostgreSQL)");
    let mut tests = cargo(ctx);
    tests.arg("test");
    for package in native_packages(ctx)? {
        tests.args(["-p", &package]);
    }
    tests.env("BATON_SITE_ROOT", ctx.site_dir());
    if let Some(url) = postgres.url() {
        tests.env("TEST_POSTGRES_URL", url);
    }
    run_with_deadline(&mut tests, "cargo test", std::time::Duration::from_secs(30 * 60))?;
    drop(postgres);

    steps.next("browser tests (Playwright in Chromium, with axe)");
    site::end_to_end(ctx)?;

    println!("\nAll tests passed in {:.0?}.", started.elapsed());
    Ok(())
}
