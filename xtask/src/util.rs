use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::Ctx;

/// Numbered progress lines with timings.
pub struct Steps {
    total: usize,
    done: usize,
    started: Option<(String, Instant)>,
}

impl Steps {
    pub fn new(total: usize) -> Self {
        Self { total, done: 0, started: None }
    }

    pub fn next(&mut self, what: &str) {
        self.finish();
        self.done += 1;
        println!("\n==> [{}/{}] {what}", self.done, self.total);
        self.started = Some((what.to_owned(), Instant::now()));
    }

    fn finish(&mut self) {
        if let Some((what, at)) = self.started.take() {
            println!("    done: {what} ({:.1?})", at.elapsed());
        }
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.finish();
        }
    }
}

/// A `cargo` command in the workspace, with the environment a nested cargo must not inherit.
///
/// `cargo run -p xtask` exports `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and friends to us; ring's
/// build script reruns when `CARGO_MANIFEST_DIR` changes, which would rebuild half the tree
/// every time a plain `cargo build` and the xtask alternate. `LEPTOS_OUTPUT_NAME` must not be
/// set at compile time (Leptos would then expect `baton.wasm` instead of `baton_bg.wasm`).
pub fn cargo(ctx: &Ctx) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(&ctx.root).env("CARGO_TARGET_DIR", &ctx.target);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "LEPTOS_OUTPUT_NAME"
            )
        {
            command.env_remove(key.as_ref());
        }
    }
    command
}

pub fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Like [`run_checked`], but gives up after `limit`: the command and everything it started
/// (its process group) are killed, and the step fails saying so — a hung test must not hang
/// the whole suite.
pub fn run_with_deadline(command: &mut Command, what: &str, limit: std::time::Duration) -> Result<()> {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(command, 0);
    let mut child = command.spawn().with_context(|| format!("cannot start {what}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{what} failed ({status})");
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            bail!("{what} did not finish within {limit:?} and was stopped");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// Installs Debian packages (as root, or through sudo).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let sudo = !is_root();
    let apt = |args: &[&str]| {
        let mut command = if sudo { Command::new("sudo") } else { Command::new("apt-get") };
        if sudo {
            command.arg("apt-get");
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    println!("    installing {} with apt-get", packages.join(", "));
    run_checked(&mut apt(&["update", "-qq"]), "apt-get update")?;
    let mut install = apt(&["install", "-y", "-qq"]);
    install.args(packages);
    run_checked(&mut install, "apt-get install")
}

pub fn newer_than(source: &Path, output: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(source), modified(output)) {
        (Some(s), Some(o)) => s > o,
        _ => true,
    }
}
