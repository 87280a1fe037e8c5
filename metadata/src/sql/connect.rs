//! Everything that differs between SQLite and PostgreSQL: reading the URL, the
//! connection pools with their per-connection settings, and which migrations run.
//! The queries themselves are shared (see the sibling modules).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor};
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};

use super::changes::Notifications;
use super::{Backend, SqlCatalog};
use crate::{CatalogError, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Read connections on a SQLite file. WAL lets them run beside the writer.
const SQLITE_READERS: u32 = 4;
const POSTGRES_CONNECTIONS: u32 = 10;

/// Per-connection settings. `busy_timeout`: how long SQLite itself waits for another
/// connection's (possibly another process's) lock before reporting SQLITE_BUSY; the
/// retry loop in `retry.rs` takes over after that. `synchronous = FULL` makes every
/// commit durable, which an acknowledged produce relies on. WAL lets readers run
/// beside the single writer; `journal_mode` is a property of the file, so setting it
/// again on later connections is a no-op. `temp_store = MEMORY`: a commit's
/// multi-row statements keep their statement journal in memory; on a file it
/// spilled past 64 KiB, so every produce commit created, wrote and deleted a
/// temporary file (about 0.15 ms of its 1.6 ms on a local disk).
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; \
     PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; \
     PRAGMA temp_store = MEMORY;";

/// A catalog URL, checked and normalised.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// `url` has an explicit `mode` (we add `mode=rwc` when the caller gave none).
    SqliteFile {
        url: String,
    },
    SqliteMemory {
        url: String,
    },
    Postgres {
        url: String,
    },
}

pub(super) async fn connect(url: &str, timeout: Duration) -> Result<SqlCatalog> {
    sqlx::any::install_default_drivers();
    let catalog = match parse(url)? {
        Target::SqliteFile { url } => {
            create_parent_dir(&url).await?;
            // SQLite has one writer at a time. Queueing writers on a one-connection
            // pool is cheaper than letting several spin in SQLite's busy handler,
            // and that connection can begin every transaction as a writer.
            let writes = sqlite_pool(&url, 1).await?;
            migrate_sqlite_file(&writes).await?;
            let reads = sqlite_pool(&url, SQLITE_READERS).await?;
            SqlCatalog::new(Backend::Sqlite, reads, writes, timeout)
        }
        Target::SqliteMemory { url } => {
            // Each new connection to `:memory:` would be a new, empty database, so
            // one connection serves everything and is never recycled.
            let pool = sqlite_options(1)
                // Nor replaced after a failed rollback (see `fit_for_reuse`):
                // that would replace the database by an empty one without its
                // schema.
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(any_options(&url)?)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            SqlCatalog::new(Backend::Sqlite, pool.clone(), pool, timeout)
        }
        Target::Postgres { url } => {
            // Row locks serialise writers that touch the same partitions; the rest
            // run in parallel, so reads and writes share one pool.
            let pool = AnyPoolOptions::new()
                .max_connections(POSTGRES_CONNECTIONS)
                .after_release(|conn, _meta| Box::pin(fit_for_reuse(conn)))
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        conn.execute(statement_timeout(timeout)).await?;
                        Ok(())
                    })
                })
                .connect_with(any_options(&url)?)
                .await?;
            // Takes an advisory lock: agents starting together migrate once.
            POSTGRES_MIGRATIONS.run(&pool).await?;
            let mut catalog = SqlCatalog::new(Backend::Postgres, pool.clone(), pool, timeout);
            catalog.notifications = Some(Arc::new(Notifications::new(&url)?));
            catalog
        }
    };
    tracing::info!(backend = ?catalog.backend(), "catalog open");
    Ok(catalog)
}

/// Brings a SQLite file's schema up to date while holding its write lock.
///
/// Agents sharing one file may start together, and SQLite has no advisory lock
/// for the migrator to take: two agents could both find a migration missing and
/// the second would fail on the first one's tables. Inside one `BEGIN
/// IMMEDIATE` transaction (each migration a savepoint in it) the first agent
/// migrates and the others wait for its lock, then find nothing to do.
async fn migrate_sqlite_file(pool: &AnyPool) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // `run` would take the transaction as an `Acquire`, whose future the
    // compiler cannot prove `Send` for every lifetime (a known sqlx limitation);
    // `run_direct` is what `run` calls, with the connection itself.
    SQLITE_MIGRATIONS.run_direct(None, &mut *tx, false).await?;
    tx.commit().await?;
    Ok(())
}

fn sqlite_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                Ok(())
            })
        })
}

/// Makes the server cancel a statement that runs longer than the catalog
/// timeout. The catalog gives up on the operation at the same time (see
/// `retry.rs`), but only the server can stop the statement: without this a
/// statement waiting for a lock would keep its connection, and the locks it
/// already took, until the lock came free.
fn statement_timeout(timeout: Duration) -> AssertSqlSafe<String> {
    // The setting is in milliseconds; 0 would mean no limit.
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    AssertSqlSafe(format!("SET statement_timeout = {ms}"))
}

/// Whether a connection coming back to its pool may serve again: not if it still
/// counts an open transaction.
///
/// A transaction dropped without commit queues a ROLLBACK on its connection. When
/// the database already rolled back by itself — SQLite does on SQLITE_FULL,
/// SQLITE_IOERR or SQLITE_NOMEM, and a COMMIT that failed on a full disk leaves
/// the same state — that ROLLBACK fails, the driver keeps counting the
/// transaction as open, and every later `BEGIN` on the connection fails. On
/// SQLite's single write connection that would stop every write until restart. The
/// ping runs whatever the connection has queued, the rollback included; a
/// connection still in a transaction after it is closed, and the pool opens a
/// fresh one when it is next needed.
async fn fit_for_reuse(conn: &mut AnyConnection) -> sqlx::Result<bool> {
    conn.ping().await?;
    let fit = !conn.is_in_transaction();
    if !fit {
        // Once per failed transaction for as long as the disk stays full.
        static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
        if let Some(suppressed) = WARNINGS.allow() {
            tracing::warn!(
                suppressed,
                "catalog connection left in a failed transaction; replacing it"
            );
        }
    }
    Ok(fit)
}

async fn sqlite_pool(url: &str, max_connections: u32) -> Result<AnyPool> {
    Ok(sqlite_options(max_connections)
        .after_release(|conn, _meta| Box::pin(fit_for_reuse(conn)))
        .connect_with(any_options(url)?)
        .await?)
}

fn any_options(url: &str) -> Result<AnyConnectOptions> {
    AnyConnectOptions::from_str(url).map_err(|e| invalid(url, e.to_string()))
}

fn invalid(url: &str, reason: impl Into<String>) -> CatalogError {
    CatalogError::InvalidUrl {
        url: redact(url),
        reason: reason.into(),
    }
}

/// The URL with any password replaced, fit for errors and logs: the one in
/// the authority (`user:***@host`) and a `password=` query parameter.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let redacted = match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    let Some((base, query)) = redacted.split_once('?') else {
        return redacted;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

fn parse(url: &str) -> Result<Target> {
    if url.starts_with("sqlite:") {
        parse_sqlite(url)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        PgConnectOptions::from_str(url).map_err(|e| invalid(url, e.to_string()))?;
        any_options(url)?;
        Ok(Target::Postgres {
            url: url.to_owned(),
        })
    } else {
        Err(invalid(
            url,
            "unsupported scheme; expected sqlite://<path>, sqlite::memory: or \
             postgres://user@host:port/database",
        ))
    }
}

fn parse_sqlite(url: &str) -> Result<Target> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let (database, params) = match rest.split_once('?') {
        Some((database, params)) => (database, Some(params)),
        None => (rest, None),
    };
    let has_param = |name: &str| {
        params.is_some_and(|p| p.split('&').any(|kv| kv.split('=').next() == Some(name)))
    };
    let in_memory = database == ":memory:" || params.is_some_and(|p| p.contains("mode=memory"));
    if database.is_empty() && !in_memory {
        return Err(invalid(url, "no database file path after 'sqlite://'"));
    }
    let url = match params {
        _ if in_memory || has_param("mode") => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    };
    // Both parsers run on the URL again when connecting; fail here, with the reason,
    // rather than with a generic configuration error later.
    SqliteConnectOptions::from_str(&url).map_err(|e| invalid(&url, e.to_string()))?;
    any_options(&url)?;
    Ok(if in_memory {
        Target::SqliteMemory { url }
    } else {
        Target::SqliteFile { url }
    })
}

/// `mode=rwc` creates the file but not its directory.
async fn create_parent_dir(url: &str) -> Result<()> {
    let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid(url, e.to_string()))?;
    let parent = options.get_filename().parent().unwrap_or(Path::new(""));
    if parent.as_os_str().is_empty() {
        return Ok(());
    }
    tokio::fs::create_dir_all(parent).await.map_err(|e| {
        invalid(
            url,
            format!("cannot create directory {}: {e}", parent.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_file(url: &str) -> Target {
        Target::SqliteFile { url: url.into() }
    }

    #[test]
    fn sqlite_urls_get_create_mode_unless_they_chose_one() {
        assert_eq!(
            parse("sqlite://a/b.db").unwrap(),
            sqlite_file("sqlite://a/b.db?mode=rwc")
        );
        assert_eq!(
            parse("sqlite:b.db").unwrap(),
            sqlite_file("sqlite:b.db?mode=rwc")
        );
        assert_eq!(
            parse("sqlite:///tmp/b.db?cache=private").unwrap(),
            sqlite_file("sqlite:///tmp/b.db?cache=private&mode=rwc")
        );
        assert_eq!(
            parse("sqlite://b.db?mode=ro").unwrap(),
            sqlite_file("sqlite://b.db?mode=ro")
        );
    }

    #[test]
    fn sqlite_memory_urls_are_recognised() {
        for url in ["sqlite::memory:", "sqlite://?mode=memory"] {
            assert_eq!(
                parse(url).unwrap(),
                Target::SqliteMemory { url: url.into() }
            );
        }
    }

    #[test]
    fn postgres_urls_pass_through() {
        for url in [
            "postgres://u@h:5432/db",
            "postgresql://u:p@h/db?sslmode=disable",
        ] {
            assert_eq!(parse(url).unwrap(), Target::Postgres { url: url.into() });
        }
    }

    fn reason(url: &str) -> String {
        match parse(url) {
            Err(CatalogError::InvalidUrl { reason, .. }) => reason,
            other => panic!("expected InvalidUrl for {url}, got {other:?}"),
        }
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(reason("mysql://h/db").contains("unsupported scheme"));
        assert!(reason("").contains("unsupported scheme"));
        assert!(reason("sqlite://").contains("no database file path"));
        assert!(reason("sqlite://a.db?mode=bogus").contains("mode"));
        assert!(reason("sqlite://a.db?colour=red").contains("colour"));
        assert!(!reason("postgres://u@h:notaport/db").is_empty());
    }

    #[test]
    fn passwords_stay_out_of_errors() {
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=require&password=secret"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        match parse("postgres://u:secret@h:notaport/db") {
            Err(e) => assert!(!e.to_string().contains("secret"), "{e}"),
            Ok(t) => panic!("parsed {t:?}"),
        }
    }

    #[tokio::test]
    async fn sqlite_connections_are_durable_patient_check_foreign_keys_and_keep_temp_data_in_memory(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let catalog = connect(&url, super::super::DEFAULT_TIMEOUT).await.unwrap();
        for pool in [&catalog.reads, &catalog.writes] {
            let mut conn = pool.acquire().await.unwrap();
            for (pragma, expected) in [
                ("PRAGMA journal_mode", "wal"),
                // 2 = FULL
                ("PRAGMA synchronous", "2"),
                ("PRAGMA busy_timeout", "10000"),
                ("PRAGMA foreign_keys", "1"),
                // 2 = MEMORY
                ("PRAGMA temp_store", "2"),
            ] {
                let row = sqlx::query(pragma).fetch_one(&mut *conn).await.unwrap();
                let value = match sqlx::Row::try_get::<String, _>(&row, 0) {
                    Ok(text) => text,
                    Err(_) => sqlx::Row::try_get::<i64, _>(&row, 0).unwrap().to_string(),
                };
                assert_eq!(value, expected, "{pragma}");
            }
        }
    }
}
