//! Copying SQLite's write-ahead log back into the database file ("checkpointing") away from
//! the writer connection.
//!
//! SQLite checkpoints on the connection that commits, once the log has grown past that
//! connection's `wal_autocheckpoint` pages. For the writer connection that meant a transfer's
//! page commit — the transfer's critical path — every few pages also read back thousands of
//! log pages, wrote them into the database file and synced it: about a seventh of its time.
//!
//! So the writer's threshold is only a backstop ([`WRITER_BACKSTOP_PAGES`]), and a task of the
//! store checkpoints instead, on a connection of the shared pool, after every few writer
//! commits and once writes go quiet. Its checkpoints are `PASSIVE`: they never wait for or
//! block readers or the writer. They copy what was committed when they started; what the
//! writer commits meanwhile waits for the next one (or the backstop, which then has little
//! left to copy).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::mpsc;

/// Writer commits after which the task checkpoints. A transfer's page commit adds several
/// hundred log pages; SQLite's own default threshold is 1,000 pages.
const COMMITS_PER_CHECKPOINT: u64 = 8;
/// Quiet time after a commit after which the task checkpoints what it has not copied yet.
const QUIET: Duration = Duration::from_secs(1);
/// The writer connection's own `wal_autocheckpoint`, in pages: reached only when this task
/// falls far behind (about 64 MiB of log).
pub(crate) const WRITER_BACKSTOP_PAGES: u32 = 16_000;

/// The handle the store keeps: tells the task about writer commits. The task ends when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Checkpointer {
    commits: Arc<AtomicU64>,
    wake: mpsc::Sender<()>,
}

/// When the task checkpoints.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// After this many writer commits...
    commits: u64,
    /// ...or this long after the last one.
    quiet: Duration,
}

const SCHEDULE: Schedule = Schedule { commits: COMMITS_PER_CHECKPOINT, quiet: QUIET };

impl Checkpointer {
    /// Starts the task on the current Tokio runtime, checkpointing through `pool`.
    pub(crate) fn start(pool: SqlitePool) -> Self {
        Self::spawn(pool, SCHEDULE).0
    }

    fn spawn(pool: SqlitePool, schedule: Schedule) -> (Self, tokio::task::JoinHandle<()>) {
        let commits = Arc::new(AtomicU64::new(0));
        let (wake, woken) = mpsc::channel(1);
        let task = tokio::spawn(run(pool, schedule, Arc::clone(&commits), woken));
        (Self { commits, wake }, task)
    }

    /// Notes a commit on the writer connection.
    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        // A full channel means the task is already due to wake.
        let _ = self.wake.try_send(());
    }
}

async fn run(pool: SqlitePool, schedule: Schedule, commits: Arc<AtomicU64>, mut woken: mpsc::Receiver<()>) {
    let mut copied_up_to = 0;
    loop {
        let pending = commits.load(Ordering::Relaxed) - copied_up_to;
        // Quiet only when a whole `quiet` passed with no wake and no commit: a wake left
        // queued by a commit already counted (one made during the last checkpoint) must not
        // pass for quiet, or the task would checkpoint after every commit of a busy writer.
        let (wake, timed_out) = if pending == 0 {
            (woken.recv().await, false)
        } else {
            match tokio::time::timeout(schedule.quiet, woken.recv()).await {
                Ok(wake) => (wake, false),
                Err(_elapsed) => (Some(()), true),
            }
        };
        if wake.is_none() || pool.is_closed() {
            return;
        }
        let seen = commits.load(Ordering::Relaxed);
        let quiet = timed_out && seen == copied_up_to + pending;
        if seen - copied_up_to < schedule.commits && !quiet {
            continue;
        }
        copied_up_to = seen;
        checkpoint(&pool).await;
    }
}

async fn checkpoint(pool: &SqlitePool) {
    let started = std::time::Instant::now();
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await {
        Ok((_busy, log_pages, copied_pages)) => {
            tracing::debug!(log_pages, copied_pages, ms = started.elapsed().as_millis() as u64, "WAL checkpoint")
        }
        // The writer's backstop checkpoints in the end; nothing is lost by a missed one.
        Err(error) if !pool.is_closed() => tracing::warn!(%error, "WAL checkpoint failed"),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use std::path::Path;
    use std::str::FromStr;

    /// A WAL database whose connections never checkpoint on their own, with a table.
    async fn database(dir: &Path) -> SqlitePool {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("c.db").display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)").execute(&pool).await.unwrap();
        pool
    }

    /// Commits `n` rows of 8 KiB, telling `checkpointer` of each.
    async fn commit(pool: &SqlitePool, checkpointer: &Checkpointer, n: usize) {
        for _ in 0..n {
            sqlx::query("INSERT INTO t VALUES (zeroblob(8192))").execute(pool).await.unwrap();
            checkpointer.committed();
        }
    }

    fn database_file_size(dir: &Path) -> u64 {
        std::fs::metadata(dir.join("c.db")).unwrap().len()
    }

    /// Waits (up to 20 s) until the database file has grown past `size`; its size then.
    async fn grown_past(dir: &Path, size: u64) -> Option<u64> {
        for _ in 0..400 {
            let now = database_file_size(dir);
            if now > size {
                return Some(now);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    #[tokio::test]
    async fn checkpoints_after_enough_commits() {
        let dir = tempfile::tempdir().unwrap();
        let pool = database(dir.path()).await;
        let schedule = Schedule { commits: 4, quiet: Duration::from_secs(3600) };
        let (checkpointer, _task) = Checkpointer::spawn(pool.clone(), schedule);
        let before = database_file_size(dir.path());
        commit(&pool, &checkpointer, 3).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(database_file_size(dir.path()), before, "three commits: still only in the log");
        commit(&pool, &checkpointer, 1).await;
        let after = grown_past(dir.path(), before).await.expect("the fourth commit brings a checkpoint");
        assert!(after >= before + 4 * 8192, "all four rows copied ({before} → {after})");
    }

    #[tokio::test]
    async fn checkpoints_when_writes_go_quiet_and_ends_with_its_handles() {
        let dir = tempfile::tempdir().unwrap();
        let pool = database(dir.path()).await;
        let schedule = Schedule { commits: 1000, quiet: Duration::from_millis(200) };
        let (checkpointer, task) = Checkpointer::spawn(pool.clone(), schedule);
        let before = database_file_size(dir.path());
        commit(&pool, &checkpointer, 2).await;
        let after = grown_past(dir.path(), before).await.expect("a checkpoint once quiet");
        assert!(after >= before + 2 * 8192, "both rows copied ({before} → {after})");

        let clone = checkpointer.clone();
        drop(checkpointer);
        assert!(!task.is_finished(), "a handle is left");
        drop(clone);
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("the task ends").unwrap();
    }
}
