//! Throwaway databases for tests (feature `testing`).
//!
//! SQLite: a fresh file in a temporary directory. PostgreSQL: a fresh database named
//! `baton_test_<random>` on the server at `TEST_POSTGRES_URL`, or else on a local server at
//! 127.0.0.1:5432 when one answers; dropped afterwards. When neither answers the test
//! **fails** with instructions: the Postgres suite is never skipped silently. (The README's
//! test command starts a throwaway server and sets `TEST_POSTGRES_URL` when none runs.)

use std::future::Future;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::{ConnectOptions, Store};

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

/// Runs `test` against a freshly created and migrated PostgreSQL database, dropped afterwards.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = TestDatabase::create().await;
    let store = Store::connect(&database.url, &ConnectOptions::default()).await.expect("connect to the test database");
    store.migrate().await.expect("migrate PostgreSQL");
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
    /// Creates `baton_test_<random>` on the test server (see the module docs).
    pub async fn create() -> Self {
        let admin_url = postgres_admin_url().await;
        let name = format!("baton_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create the test database");
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
    use super::with_database;

    #[test]
    fn database_is_swapped_in_the_url() {
        assert_eq!(with_database("postgres://u@h:5/test", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h/t?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
