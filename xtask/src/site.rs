//! Building the site (what cargo-leptos would do) and running the browser tests against it.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wasm_bindgen_cli_support::Bindgen;

use crate::Ctx;
use crate::util::{apt_install, cargo, free_port, newer_than, run_checked, run_with_deadline};

/// Base name of the site assets; must equal `app::OUTPUT_NAME`.
const OUTPUT_NAME: &str = "baton";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

pub fn build(ctx: &Ctx) -> Result<()> {
    ensure_wasm_target()?;
    check_wasm_bindgen_versions(ctx)?;

    let mut server = cargo(ctx);
    server.args(["build", "-p", "server"]);
    if ctx.release {
        server.arg("--release");
    }
    run_checked(&mut server, "building the server")?;

    let mut frontend = cargo(ctx);
    frontend.args(["build", "-p", "frontend", "--lib", "--target", WASM_TARGET]);
    if ctx.release {
        frontend.args(["--profile", "wasm-release"]);
    }
    run_checked(&mut frontend, "building the WebAssembly")?;

    let pkg = ctx.site_dir().join("pkg");
    fs::create_dir_all(&pkg)?;
    bindgen(ctx, &pkg)?;
    stylesheet(ctx, &pkg)?;
    copy_dir(&ctx.root.join("public"), &ctx.site_dir())?;
    Ok(())
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(output) if String::from_utf8_lossy(&output.stdout).lines().any(|l| l.trim() == WASM_TARGET) => Ok(()),
        Ok(_) => {
            println!("    adding the {WASM_TARGET} target with rustup");
            run_checked(Command::new("rustup").args(["target", "add", WASM_TARGET]), "rustup target add")
        }
        // Without rustup (a distribution toolchain) the build below says what is missing.
        Err(_) => Ok(()),
    }
}

/// The bindings generator (a library here) must be exactly the `wasm-bindgen` the app links.
fn check_wasm_bindgen_versions(ctx: &Ctx) -> Result<()> {
    let lock = fs::read_to_string(ctx.root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let version_of = |name: &str| -> Vec<String> {
        lock.split("[[package]]")
            .filter(|block| block.lines().any(|l| l.trim() == format!("name = \"{name}\"")))
            .filter_map(|block| {
                block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("version = \"").map(|v| v.trim_end_matches('"').to_owned()))
            })
            .collect()
    };
    let library = version_of("wasm-bindgen");
    let generator = version_of("wasm-bindgen-cli-support");
    if library.len() != 1 || generator.len() != 1 || library != generator {
        bail!(
            "wasm-bindgen {library:?} and wasm-bindgen-cli-support {generator:?} must be one and the same version \
             (bump both lines in Cargo.toml together)"
        );
    }
    Ok(())
}

fn bindgen(ctx: &Ctx, pkg: &Path) -> Result<()> {
    let profile = if ctx.release { "wasm-release" } else { "debug" };
    let wasm = ctx.target.join(WASM_TARGET).join(profile).join("frontend.wasm");
    let output = pkg.join(format!("{OUTPUT_NAME}_bg.wasm"));
    if !newer_than(&wasm, &output) {
        return Ok(());
    }
    Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .out_name(OUTPUT_NAME)
        .typescript(false)
        .debug(!ctx.release)
        .generate(pkg)
        .context("generating the JavaScript bindings")?;
    Ok(())
}

fn stylesheet(ctx: &Ctx, pkg: &Path) -> Result<()> {
    let style = if ctx.release { grass::OutputStyle::Compressed } else { grass::OutputStyle::Expanded };
    let css = grass::from_path(ctx.root.join("style/main.scss"), &grass::Options::default().style(style))
        .map_err(|e| anyhow::anyhow!("compiling style/main.scss: {e}"))?;
    fs::write(pkg.join(format!("{OUTPUT_NAME}.css")), css)?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if !from.exists() {
        return Ok(());
    }
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Runs the Playwright suite against a fresh demo Baton with its own temporary data.
pub fn end_to_end(ctx: &Ctx) -> Result<()> {
    ensure_chromium()?;
    let e2e = ctx.root.join("end2end");
    ensure_npm_packages(&e2e)?;

    let data = std::env::temp_dir().join(format!("baton-e2e-{}", std::process::id()));
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data)?;
    let port = free_port()?;
    let old_plan_port = loop {
        let candidate = free_port()?;
        if candidate != port {
            break candidate;
        }
    };
    let base_url = format!("http://127.0.0.1:{port}");
    let old_plan_url = format!("http://127.0.0.1:{old_plan_port}");
    let log_path = data.join("baton.log");
    let server = DemoServer::start(ctx, &data, port, old_plan_port, &log_path)?;
    let ready = wait_until_ready(port, Duration::from_secs(60))
        .and_then(|()| wait_until_ready(old_plan_port, Duration::from_secs(30)));
    let outcome = ready.and_then(|()| {
        let mut playwright = Command::new("npx");
        playwright
            .args(["playwright", "test"])
            .current_dir(&e2e)
            .env("BASE_URL", &base_url)
            .env("OLD_PLAN_URL", &old_plan_url)
            .env("CI", "true");
        run_with_deadline(&mut playwright, "Playwright", Duration::from_secs(20 * 60))
    });
    drop(server);
    if outcome.is_err() {
        print_tail(&log_path, 60);
    } else {
        let _ = fs::remove_dir_all(&data);
    }
    outcome
}

fn ensure_chromium() -> Result<()> {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    apt_install(&["chromium"])
}

fn ensure_npm_packages(e2e: &Path) -> Result<()> {
    let installed = e2e.join("node_modules/.package-lock.json");
    if newer_than(&e2e.join("package-lock.json"), &installed) {
        println!("    installing the end-to-end test packages with npm");
        run_checked(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(e2e), "npm ci")?;
    }
    Ok(())
}

/// A `baton demo` child process (the new plan and the demo old plan), stopped (SIGTERM) when
/// dropped.
struct DemoServer {
    child: Child,
}

impl DemoServer {
    fn start(ctx: &Ctx, data: &Path, port: u16, old_plan_port: u16, log: &Path) -> Result<Self> {
        let log_file = fs::File::create(log)?;
        let child = Command::new(ctx.baton_binary())
            .arg("demo")
            .current_dir(data)
            .env("BATON_DATA_DIR", data)
            .env("BATON_LISTEN", format!("127.0.0.1:{port}"))
            .env("BATON_DEMO__OLD_PLAN_LISTEN", format!("127.0.0.1:{old_plan_port}"))
            .env("BATON_SITE_ROOT", ctx.site_dir())
            .env_remove("BATON_CONFIG")
            .env_remove("DATABASE_URL")
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .context("starting baton demo")?;
        Ok(Self { child })
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until_ready(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_status(port, "/readyz").is_some_and(|status| status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("baton did not become ready on port {port} within {timeout:?}")
}

/// The status code of `GET path` on localhost, if anything answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn print_tail(path: &PathBuf, lines: usize) {
    if let Ok(text) = fs::read_to_string(path) {
        let all: Vec<&str> = text.lines().collect();
        eprintln!("\n--- last {lines} lines of {} ---", path.display());
        for line in &all[all.len().saturating_sub(lines)..] {
            eprintln!("{line}");
        }
    }
}
