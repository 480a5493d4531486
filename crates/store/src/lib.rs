//! Baton's persistence layer.
//!
//! One [`Store`] over two backends, chosen at run time from `DATABASE_URL`:
//! SQLite (`sqlite://…`, the embedded default) or PostgreSQL (`postgres://…`, shared by
//! several Baton instances). Every query is written once and compiled for both pools
//! (see [`on_pool!`]); the few dialect differences are explicit `match`es on [`Backend`].
//!
//! Schema conventions (see `migrations/README.md`): times are milliseconds since the
//! Unix epoch ([`Timestamp`]), JSON bodies are text.

mod accounts;
mod api_tokens;
mod audit;
mod bulk;
mod checkpoint;
mod error;
mod instance;
mod invitations;
mod oauth;
mod p2p;
mod payer_entries;
mod permissions;
pub(crate) mod resources;
mod requests;
mod roster;
mod sign_in_failures;
mod sql;
mod targets;
#[cfg(feature = "testing")]
pub mod testing;
mod timestamp;
mod transfers;
mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{Account, AccountId, NewAccount};
pub use api_tokens::ApiToken;
pub use bulk::{BulkFile, BulkJob, MemberGroup};
pub use audit::{AuditEvent, AuditQuery, NewAuditEvent};
pub use error::{StoreError, Unique};
pub use instance::{ReceivedRecord, Rename};
pub use invitations::Invitation;
pub use oauth::{
    ClientOrigin, ClientState, CodeRedemption, ConnectedApp, NewCode, OAuthClient, OAuthCode, OAuthGrant, OAuthToken,
    TokenKind,
};
pub use p2p::{MemberMatch, SystemToken};
pub use payer_entries::{BrandSource, EntriesApplied, PayerEnabledOverride, PayerEntry, PinnedEndpoints};
pub use permissions::PermissionRecords;
pub use resources::{IndexedIdentifier, IndexedReference, ResourcePage, ResourceQuery, ResourceWrite, StoredResource};
pub use requests::{P2pRequest, PreviousCoverage, RequestMember, SHARED as STAGED_SHARED, StagedLine};
pub use roster::{MemberDetails, MemberQuery, RosterImport};
pub use timestamp::Timestamp;
pub use transfers::{
    CommitError, MemberConsent, PayerLink, PreparedTransferPage, Transfer, TransferEvent, TransferFilter, TransferPage,
    TransferRejection, TransferRequest, TransferRow, TransferTarget, TransferTimes, TransferredResource,
};

/// The PostgreSQL migrations, embedded at build time (test templates are named after them).
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The two database backends Baton runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool for one of the two backends.
///
/// Exposed so that components needing the concrete pool (the session store) can use the
/// same database; everything else goes through [`Store`]'s methods.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend, and `DIALECT` to
/// its [`sql::Dialect`].
///
/// The body is compiled twice, once per backend, so a query written once is checked
/// against both drivers' type mappings.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        $crate::on_pool!(@db &$store.db, $pool => $body)
    };
    (@db $db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => {
                #[allow(dead_code)]
                const DIALECT: $crate::sql::Dialect = $crate::sql::Dialect::Sqlite;
                $body
            }
            $crate::Db::Postgres($pool) => {
                #[allow(dead_code)]
                const DIALECT: $crate::sql::Dialect = $crate::sql::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// Baton's store: accounts, sign-in throttling, FHIR resources (and, in later
/// migrations, consents, transfers and audit).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Where resources and transfer pages are written: on a SQLite file, one connection of
    /// its own (see [`Store::connect`]); otherwise `db` itself.
    writer: Option<Db>,
    /// Checkpoints the SQLite file's write-ahead log off the writer connection.
    checkpointer: Option<checkpoint::Checkpointer>,
}

/// The SQLite writer connection's page cache, in KiB (SQLite's default is 2 MiB): enough for
/// the index pages a transfer's page commits keep touching, so they are not read again from
/// the file on every commit.
const SQLITE_WRITER_CACHE_KIB: u32 = 16 * 1024;
/// Rows the writer connection's worker thread may hand back before waiting for them to be read:
/// more than a page of `RETURNING` rows (a few dozen bytes each).
const SQLITE_WRITER_ROW_BUFFER: usize = 4096;

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(10) }
    }
}

impl Store {
    /// Connects to `database_url` (`sqlite://path`, `sqlite::memory:` or `postgres://…`).
    ///
    /// A SQLite file and its parent directory are created when missing; SQLite runs in
    /// WAL mode so readers never block the writer.
    pub async fn connect(database_url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        let db = match Backend::of_url(database_url)? {
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(database_url)
                    .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                if let Some(parent) = connect.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::InvalidUrl(format!("cannot create directory {}: {e}", parent.display()))
                    })?;
                }
                // An in-memory database exists per connection: keep exactly one.
                let in_memory = database_url.contains(":memory:");
                let pool = SqlitePoolOptions::new()
                    .max_connections(if in_memory { 1 } else { options.max_connections })
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect.clone())
                    .await?;
                // SQLite has one writer at a time anyway. Giving the heavy writes (resources,
                // transfer pages) a connection of their own keeps its page cache warm: in WAL
                // mode a connection drops its whole cache whenever another connection wrote
                // since its last transaction, and the pool hands out its connections in turn.
                let (writer, checkpointer) = if in_memory {
                    (None, None)
                } else {
                    let connect = connect
                        .pragma("cache_size", format!("-{SQLITE_WRITER_CACHE_KIB}"))
                        // Checkpoints run off this connection (see `checkpoint`); its own
                        // threshold is a backstop.
                        .pragma("wal_autocheckpoint", checkpoint::WRITER_BACKSTOP_PAGES.to_string())
                        // A multi-row statement keeps a statement journal (the pages it changes,
                        // as they were, to undo just that statement); in a temporary file it is
                        // written through the kernel page by page. It is small: keep it in memory.
                        .pragma("temp_store", "MEMORY")
                        // `RETURNING` hands back a row per resource written (its `seq`). sqlx's
                        // worker thread sends rows through a channel of 50: past that, the
                        // thread and the task waiting for the rows take turns, row by row.
                        .row_buffer_size(SQLITE_WRITER_ROW_BUFFER);
                    let writer = SqlitePoolOptions::new()
                        .max_connections(1)
                        .min_connections(0)
                        .acquire_timeout(options.acquire_timeout)
                        .connect_with(connect)
                        .await?;
                    (Some(Db::Sqlite(writer)), Some(checkpoint::Checkpointer::start(pool.clone())))
                };
                return Ok(Self { db: Db::Sqlite(pool), writer, checkpointer });
            }
            Backend::Postgres => {
                let connect =
                    PgConnectOptions::from_str(database_url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?;
                Db::Postgres(pool)
            }
        };
        Ok(Self { db, writer: None, checkpointer: None })
    }

    /// The pool resources and transfer pages are written through.
    pub(crate) fn write_db(&self) -> &Db {
        self.writer.as_ref().unwrap_or(&self.db)
    }

    /// Notes a commit through [`Store::write_db`] (for the SQLite checkpointer).
    pub(crate) fn written(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed();
        }
    }

    /// Applies every pending migration for this backend. Safe to run concurrently from
    /// several instances (sqlx takes an advisory lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("../../migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The underlying pool, for components that need the concrete type.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes every connection (graceful shutdown, tests).
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            on_pool!(@db writer, pool => pool.close().await)
        }
        on_pool!(self, pool => pool.close().await)
    }
}

impl Backend {
    /// The backend a `DATABASE_URL` names, or an error naming the accepted schemes.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::InvalidUrl(format!(
                "unsupported database URL scheme in {:?}: use sqlite://… or postgres://…",
                redact_url(url)
            )))
        }
    }
}

/// A database URL with any password replaced by `***`, safe to log or show.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(Backend::of_url("sqlite://data/baton.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of_url("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::of_url("postgresql://u@h/db").unwrap(), Backend::Postgres);
        let err = Backend::of_url("mysql://root:secret@h/db").unwrap_err().to_string();
        assert!(err.contains("sqlite://"), "{err}");
        assert!(!err.contains("secret"), "password leaked: {err}");
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/b.db"), "sqlite://data/b.db");
    }
}
