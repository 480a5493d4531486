//! Throwaway databases for tests (feature `testing`).
//!
//! SQLite: a fresh file in a temporary directory. PostgreSQL: a fresh database named
//! `baton_test_<random>` on the server at `TEST_POSTGRES_URL`, or else on a local server at
//! 127.0.0.1:5432 when one answers; dropped afterwards. When neither answers the test
//! **fails** with instructions: the Postgres suite is never skipped silently. (The README's
//! test command starts a throwaway server and sets `TEST_POSTGRES_URL` when none runs.)
//!
//! A PostgreSQL test database is a copy of a migrated template, `baton_template_<hash>`, the
//! hash being of the embedded migrations: the first test to need it (in any process) builds it
//! once, and a changed set of migrations gets a template of its own. Templates are kept between
//! runs; drop old ones by hand when they pile up.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

use crate::{ConnectOptions, POSTGRES_MIGRATIONS, Store};

/// The local server this machine kind runs (trust auth).
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `test` against a freshly migrated SQLite store in a temporary directory.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("baton-test.db").display());
    let store = Store::connect(&url, &ConnectOptions::default()).await.expect("open SQLite");
    store.migrate().await.expect("migrate SQLite");
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    drop(dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// Runs `test` against a fresh, migrated PostgreSQL database, dropped afterwards.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = TestDatabase::create().await;
    let store = Store::connect(&database.url, &ConnectOptions::default()).await.expect("connect to the test database");
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    database.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// A PostgreSQL database created for one test.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// Creates `baton_test_<random>` on the test server (see the module docs), already migrated.
    pub async fn create() -> Self {
        let admin_url = postgres_admin_url().await;
        let template = TEMPLATE.get_or_init(|| build_template(admin_url.clone())).await;
        let name = format!("baton_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
        execute_when_free(&mut admin, &format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .expect("create the test database from the template");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Self { admin_url, name, url }
    }

    /// Drops the database (terminating any connection still open).
    pub async fn drop_database(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut admin).await;
            admin.close().await.ok();
        }
    }
}

/// This process's template, once it is known to be ready.
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The advisory lock held while a template is looked for or built, so that test processes
/// running at once build it only once. Advisory locks are per database: processes reaching the
/// server through different databases may still build at once (see [`build_template`]).
const TEMPLATE_LOCK: i64 = 0x6261_746f_6e54_706c; // "batonTpl"

/// How long to retry while another session is still connected to a database being copied
/// or renamed (its connections close asynchronously).
const BUSY_FOR_AT_MOST: Duration = Duration::from_secs(30);

/// Finds or builds the migrated template for the embedded migrations; returns its name. A
/// template is migrated under a name of its own builder's, `<name>_b<pid of its session>`, and
/// renamed only once complete, so a template that exists is always whole. When two builds race,
/// the first rename wins and the other build is dropped.
async fn build_template(admin_url: String) -> String {
    let name = template_name();
    let mut admin = PgConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .expect("lock the test template");
    let ready: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("look for the test template");
    if !ready {
        drop_abandoned_builds(&mut admin, &name).await;
        let pid: i32 =
            sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut admin).await.expect("ask for the session");
        let building = format!("{name}_b{pid}");
        sqlx::query(&format!("CREATE DATABASE {building}"))
            .execute(&mut admin)
            .await
            .expect("create the test template");
        let options = ConnectOptions { max_connections: 1, ..ConnectOptions::default() };
        let store = Store::connect(&with_database(&admin_url, &building), &options)
            .await
            .expect("connect to the test template");
        store.migrate().await.expect("migrate the test template");
        store.close().await;
        // Nobody connects to it again: a connected session would stop it being copied.
        execute_when_free(&mut admin, &format!("ALTER DATABASE {building} WITH ALLOW_CONNECTIONS false"))
            .await
            .expect("close the test template");
        // Nobody of ours is connected any more; a session still there is the server's own (an
        // autovacuum worker analysing the fresh tables), which would block the rename.
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&building)
            .execute(&mut admin)
            .await
            .expect("end the sessions on the test template");
        match execute_when_free(&mut admin, &format!("ALTER DATABASE {building} RENAME TO {name}")).await {
            Ok(()) => {}
            // Another build finished first (SQLSTATE 42P04, duplicate_database): use that one.
            Err(error) if has_code(&error, "42P04") => {
                let drop = format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)");
                sqlx::query(&drop).execute(&mut admin).await.expect("drop the surplus test template");
            }
            Err(error) => panic!("name the test template: {error}"),
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .expect("unlock the test template");
    admin.close().await.ok();
    name
}

/// Drops builds of the template `name` whose builder's session has ended (a run cut short):
/// those whose name carries the pid of no session now connected.
async fn drop_abandoned_builds(admin: &mut PgConnection, name: &str) {
    let abandoned: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database d WHERE starts_with(datname, $1) AND NOT EXISTS \
         (SELECT 1 FROM pg_stat_activity a WHERE a.pid::text = substr(d.datname, length($1) + 1))",
    )
    .bind(format!("{name}_b"))
    .fetch_all(&mut *admin)
    .await
    .expect("look for abandoned test templates");
    for database in abandoned {
        let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        sqlx::query(&drop).execute(&mut *admin).await.expect("drop an abandoned test template");
    }
}

/// `baton_template_<hash>`: a hash (64-bit FNV-1a) of every embedded migration's version,
/// description and checksum (itself a SHA-384 of its SQL).
fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in POSTGRES_MIGRATIONS.iter() {
        let parts = [&migration.version.to_le_bytes()[..], migration.description.as_bytes(), &migration.checksum];
        for byte in parts.into_iter().flatten() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("baton_template_{hash:016x}")
}

/// Runs `sql`, retrying for a while when it fails because another session is connected to
/// the database it needs to itself (SQLSTATE 55006, "… is being accessed by other users").
async fn execute_when_free(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    let deadline = Instant::now() + BUSY_FOR_AT_MOST;
    loop {
        match sqlx::query(sql).execute(&mut *conn).await {
            Ok(_) => return Ok(()),
            Err(error) if has_code(&error, "55006") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

fn has_code(error: &sqlx::Error, sqlstate: &str) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == sqlstate)
}

/// The server to create test databases on; panics (fails the test) when there is none.
pub async fn postgres_admin_url() -> String {
    if let Ok(url) = std::env::var("TEST_POSTGRES_URL")
        && !url.trim().is_empty()
    {
        return url;
    }
    let probe = tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(LOCAL_POSTGRES)).await;
    match probe {
        Ok(Ok(conn)) => {
            conn.close().await.ok();
            LOCAL_POSTGRES.to_owned()
        }
        _ => panic!(
            "PostgreSQL tests need a server: set TEST_POSTGRES_URL=postgres://user@host:port/db, \
             start one at 127.0.0.1:5432 (user postgres, trust auth), or run the README's test \
             command, which starts a throwaway server when none answers"
        ),
    }
}

/// `url` with its database path replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map(|i| authority_start + i);
    let mut out = match path_start {
        Some(i) => format!("{}/{}", &base[..i], database),
        None => format!("{base}/{database}"),
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{template_name, with_database};

    #[test]
    fn database_is_swapped_in_the_url() {
        assert_eq!(with_database("postgres://u@h:5/test", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h/t?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }

    #[test]
    fn the_template_is_named_after_the_migrations() {
        let name = template_name();
        assert_eq!(name, template_name());
        assert!(name.starts_with("baton_template_") && name.len() == "baton_template_".len() + 16, "{name}");
    }
}
