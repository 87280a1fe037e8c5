//! Retrying what failed only because of lock contention.
//!
//! SQLite reports a lock it waited `busy_timeout` for and did not get as
//! SQLITE_BUSY (or SQLITE_LOCKED); PostgreSQL aborts one side of a deadlock or of a
//! serialisation conflict. Neither says anything about the request, so the caller
//! should not see them: the whole transaction is tried again, with backoff, until a
//! time budget runs out.
//!
//! The catalog timeout bounds the whole: attempts, backoff and waiting for a
//! connection. Past it the operation fails with [`CatalogError::Timeout`], also
//! when PostgreSQL cancelled a statement for running past its
//! `statement_timeout` (set to the same limit, see `connect.rs`).

use std::future::Future;
use std::time::{Duration, Instant};

use super::Backend;
use crate::{CatalogError, Result};

/// Beyond this the database is not contended but stuck; report it.
const RETRY_BUDGET: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

pub(super) async fn retrying<T, F, Fut>(
    backend: Backend,
    operation: &'static str,
    timeout: Duration,
    attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let timed_out = || CatalogError::Timeout {
        operation,
        after: timeout,
    };
    // Dropping an attempt on timeout drops its transaction, which rolls back.
    match tokio::time::timeout(timeout, retrying_untimed(backend, operation, attempt)).await {
        Ok(Err(error)) if is_statement_timeout(backend, &error) => Err(timed_out()),
        Ok(result) => result,
        Err(_elapsed) => Err(timed_out()),
    }
}

async fn retrying_untimed<T, F, Fut>(
    backend: Backend,
    operation: &'static str,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut retries = 0u32;
    loop {
        match attempt().await {
            Err(error) if is_transient(backend, &error) && started.elapsed() < RETRY_BUDGET => {
                retries += 1;
                tracing::debug!(operation, retries, %error, "catalog contention, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            result => {
                if retries > 0 {
                    tracing::debug!(
                        operation,
                        retries,
                        ok = result.is_ok(),
                        "catalog retries ended"
                    );
                }
                return result;
            }
        }
    }
}

fn is_statement_timeout(backend: Backend, error: &CatalogError) -> bool {
    backend == Backend::Postgres && database_code(error).as_deref() == Some(PG_QUERY_CANCELED)
}

fn database_code(error: &CatalogError) -> Option<String> {
    let CatalogError::Database(sqlx::Error::Database(db)) = error else {
        return None;
    };
    db.code().map(|code| code.into_owned())
}

fn is_transient(backend: Backend, error: &CatalogError) -> bool {
    let CatalogError::Database(sqlx::Error::Database(db)) = error else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    match backend {
        // SQLite reports extended result codes; the primary code is the low byte.
        Backend::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)),
        Backend::Postgres => matches!(&*code, PG_SERIALIZATION_FAILURE | PG_DEADLOCK_DETECTED),
    }
}

const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const PG_SERIALIZATION_FAILURE: &str = "40001";
const PG_DEADLOCK_DETECTED: &str = "40P01";
/// Also what a statement cancelled by `statement_timeout` reports.
const PG_QUERY_CANCELED: &str = "57014";

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use sqlx::{Connection, Executor};

    use super::*;

    /// A second connection that may not wait inside SQLite sees SQLITE_BUSY while
    /// the first holds the write lock; the retry loop rides it out.
    #[tokio::test]
    async fn sqlite_busy_is_retried_until_the_write_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("busy.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let mut holder = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        holder.execute("CREATE TABLE t (x BIGINT)").await.unwrap();
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        let impatient = SqlitePoolOptions::new()
            .connect_with(options.busy_timeout(Duration::ZERO))
            .await
            .unwrap();

        let attempts = AtomicU32::new(0);
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            holder.execute("COMMIT").await.unwrap();
        });
        let result = retrying(Backend::Sqlite, "test", Duration::from_secs(60), || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            impatient
                .execute("INSERT INTO t VALUES (1)")
                .await
                .map_err(CatalogError::from)
        })
        .await;
        release.await.unwrap();

        assert_eq!(result.unwrap().rows_affected(), 1);
        assert!(attempts.load(Ordering::Relaxed) > 1);
    }

    #[tokio::test]
    async fn other_database_errors_are_not_retried() {
        let pool = SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let attempts = AtomicU32::new(0);
        let result = retrying(Backend::Sqlite, "test", Duration::from_secs(60), || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            pool.execute("SELECT * FROM missing_table")
                .await
                .map_err(CatalogError::from)
        })
        .await;
        assert!(matches!(result, Err(CatalogError::Database(_))));
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
    }
}
