//! A PostgreSQL server for the store suite: `TEST_POSTGRES_URL` when set, else the local
//! server at 127.0.0.1:5432 when it answers, else a throwaway server started here (Debian's
//! `postgresql` package, installed when missing) and stopped afterwards. Never skipped.
//!
//! `XTASK_POSTGRES=throwaway` forces the throwaway server (to check that path).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::util::{apt_install, free_port, is_root, run_checked};

pub enum TestPostgres {
    /// `TEST_POSTGRES_URL` from the environment.
    Given(String),
    /// The machine's server at 127.0.0.1:5432 (the tests find it themselves).
    Local,
    /// Started here; stopped on drop.
    Throwaway { url: String, data: PathBuf, bin: PathBuf },
}

impl TestPostgres {
    pub fn url(&self) -> Option<&str> {
        match self {
            TestPostgres::Given(url) | TestPostgres::Throwaway { url, .. } => Some(url),
            TestPostgres::Local => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TestPostgres::Given(url) => format!("TEST_POSTGRES_URL ({})", redact(url)),
            TestPostgres::Local => "the local server at 127.0.0.1:5432".into(),
            TestPostgres::Throwaway { url, .. } => format!("a throwaway server ({url})"),
        }
    }
}

pub fn for_tests() -> Result<TestPostgres> {
    let forced = std::env::var("XTASK_POSTGRES").is_ok_and(|v| v == "throwaway");
    if !forced {
        if let Ok(url) = std::env::var("TEST_POSTGRES_URL") {
            if !url.trim().is_empty() {
                return Ok(TestPostgres::Given(url));
            }
        }
        let local: SocketAddr = "127.0.0.1:5432".parse()?;
        if TcpStream::connect_timeout(&local, Duration::from_secs(2)).is_ok() {
            return Ok(TestPostgres::Local);
        }
    }
    start_throwaway()
}

fn start_throwaway() -> Result<TestPostgres> {
    let bin = match find_bin_dir() {
        Some(bin) => bin,
        None => {
            apt_install(&["postgresql"])?;
            find_bin_dir().context("postgresql installed, but initdb was not found under /usr/lib/postgresql")?
        }
    };
    // Under the system temporary directory: the `postgres` user must be able to reach it
    // (a home directory like /root is not traversable by others).
    let data = std::env::temp_dir().join(format!("baton-postgres-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    // initdb refuses to run as root: run the server as the `postgres` user then.
    let as_root = is_root();
    if as_root {
        run_checked(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data), "chown")?;
    }
    let port = free_port()?;
    let pg = |tool: &str| -> Command {
        let program = bin.join(tool);
        if as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    };
    let cluster = data.join("cluster");
    run_checked(
        pg("initdb")
            .arg("-D")
            .arg(&cluster)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
            .stdout(std::process::Stdio::null()),
        "initdb",
    )?;
    run_checked(
        pg("pg_ctl")
            .arg("-D")
            .arg(&cluster)
            .arg("-l")
            .arg(data.join("postgres.log"))
            .arg("-o")
            .arg(format!("-p {port} -k {} -c listen_addresses=127.0.0.1", data.display()))
            .args(["-w", "start"])
            .stdout(std::process::Stdio::null()),
        "pg_ctl start",
    )?;
    Ok(TestPostgres::Throwaway { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), data, bin })
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let TestPostgres::Throwaway { data, bin, .. } = self {
            let cluster = data.join("cluster");
            let mut stop = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join("pg_ctl"));
                c
            } else {
                Command::new(bin.join("pg_ctl"))
            };
            let _ = stop
                .arg("-D")
                .arg(&cluster)
                .args(["-m", "fast", "-w", "stop"])
                .stdout(std::process::Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(data as &Path);
        }
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}
