//! Where the conformance cases run: a fresh database per test, on SQLite (a file in
//! a temporary directory) or PostgreSQL (a database created for the test on the
//! server named by `STREAMHOUSE_TEST_POSTGRES_URL` and dropped after it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use streamhouse_metadata::{Backend, Catalog, SqlCatalog};
use tempfile::TempDir;

pub const POSTGRES_URL_VAR: &str = "STREAMHOUSE_TEST_POSTGRES_URL";

pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A backend and whether the catalog under test caches topic lookups.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub backend: Backend,
    pub cached: bool,
}

pub const SQLITE: Target = Target {
    backend: Backend::Sqlite,
    cached: true,
};
pub const SQLITE_UNCACHED: Target = Target {
    backend: Backend::Sqlite,
    cached: false,
};
pub const POSTGRES: Target = Target {
    backend: Backend::Postgres,
    cached: true,
};
pub const POSTGRES_UNCACHED: Target = Target {
    backend: Backend::Postgres,
    cached: false,
};

/// A database of its own for one test.
pub struct TestDb {
    pub target: Target,
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// Opens another catalog on this database, as another agent (or the same one
    /// after a restart) would.
    pub async fn open(&self) -> Arc<dyn Catalog> {
        if self.target.cached {
            Arc::new(self.open_cached().await)
        } else {
            Arc::new(self.open_uncached().await)
        }
    }

    /// A catalog with the topic cache, whatever the target says.
    pub async fn open_cached(&self) -> SqlCatalog {
        let catalog = SqlCatalog::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open catalog {}: {e}", self.url));
        assert_eq!(catalog.backend(), self.target.backend);
        catalog
    }

    /// A catalog that asks the database for every topic lookup.
    pub async fn open_uncached(&self) -> SqlCatalog {
        self.open_cached().await.without_topic_cache()
    }
}

/// Runs a case that needs only a catalog.
pub async fn with_catalog<F>(target: Target, case: F)
where
    F: for<'a> FnOnce(&'a dyn Catalog) -> CaseFuture<'a> + Send + 'static,
{
    with_database(target, |db| {
        Box::pin(async move {
            let catalog = db.open().await;
            case(&*catalog).await;
        })
    })
    .await
}

/// Runs a case that opens catalogs itself; the database is removed afterwards,
/// whether the case passed or panicked.
pub async fn with_database<F>(target: Target, case: F)
where
    F: for<'a> FnOnce(&'a TestDb) -> CaseFuture<'a> + Send + 'static,
{
    let (db, dropper) = match target.backend {
        Backend::Sqlite => (sqlite(target), None),
        Backend::Postgres => {
            let (db, dropper) = postgres(target).await;
            (db, Some(dropper))
        }
    };
    // On a task of its own so that a panic comes back as a value and the database
    // can still be dropped.
    let outcome = tokio::spawn(async move { case(&db).await }).await;
    if let Some(dropper) = dropper {
        dropper.drop_database().await;
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

fn sqlite(target: Target) -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    TestDb {
        target,
        url,
        _dir: Some(dir),
    }
}

struct PgDropper {
    admin_url: String,
    name: String,
}

async fn postgres(target: Target) -> (TestDb, PgDropper) {
    let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} is not set. The PostgreSQL conformance tests need a server \
             on which they may create and drop databases; they are never skipped. See \
             metadata/README.md, or run: {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:54329/postgres \
             cargo test -p streamhouse-metadata"
        )
    });
    let name = format!("sh_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}={admin_url}: {e}"));
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let _ = admin.close().await;
    let url = replace_database(&admin_url, &name);
    let db = TestDb {
        target,
        url,
        _dir: None,
    };
    (db, PgDropper { admin_url, name })
}

impl PgDropper {
    async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reconnect to drop {}: {e}", self.name));
        // FORCE: a pool may still be closing its connections.
        admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
            .unwrap_or_else(|e| panic!("cannot drop database {}: {e}", self.name));
        let _ = admin.close().await;
    }
}

/// `postgres://u@h:p/db?x=y` with `db` replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}
