//! The catalog timeout: an operation stuck on a lock held elsewhere fails in
//! time, and the catalog serves again once the lock is gone.

use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection, SqliteConnection};
use streamhouse_metadata::prelude::*;
use streamhouse_metadata::{Backend, CatalogError, SqlCatalog};

use crate::cases::{appended, create, object, offsets, run};
use crate::harness::TestDb;

const TIMEOUT: Duration = Duration::from_millis(500);

/// Another connection holding what a commit needs: on PostgreSQL an exclusive
/// lock on the partitions table, on SQLite the database's write lock.
enum LockHolder {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl LockHolder {
    async fn lock(db: &TestDb) -> LockHolder {
        match db.target.backend {
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&db.url).await.unwrap();
                conn.execute("BEGIN").await.unwrap();
                conn.execute("LOCK TABLE partitions IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
                LockHolder::Postgres(conn)
            }
            Backend::Sqlite => {
                let mut conn = SqliteConnection::connect(&db.url).await.unwrap();
                conn.execute("BEGIN IMMEDIATE").await.unwrap();
                LockHolder::Sqlite(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            LockHolder::Postgres(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
                conn.close().await.unwrap();
            }
            LockHolder::Sqlite(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

pub async fn a_commit_stuck_on_a_lock_times_out_and_the_catalog_recovers(db: &TestDb) {
    let catalog = SqlCatalog::connect_with_timeout(&db.url, TIMEOUT)
        .await
        .unwrap();
    let topic = create(&catalog, "orders", 1).await;

    let holder = LockHolder::lock(db).await;
    let started = Instant::now();
    let stuck = catalog
        .commit_object(&object("stuck"), &[run(&topic, 0, 0, 1)])
        .await;
    let waited = started.elapsed();
    match stuck {
        Err(CatalogError::Timeout { operation, after }) => {
            assert_eq!(operation, "commit_objects");
            assert_eq!(after, TIMEOUT);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        waited >= TIMEOUT && waited < TIMEOUT * 4,
        "gave up after {waited:?}"
    );

    holder.release().await;
    let outcomes = catalog
        .commit_object(&object("after"), &[run(&topic, 0, 0, 1)])
        .await
        .expect("a commit once the lock is free");
    assert_eq!(outcomes, vec![appended(0)]);
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(0, 1)
    );
}
