//! How the SQL catalog's connections recover from failed transactions.

use sqlx::Executor;

use super::SqlCatalog;
use crate::catalog::GroupCatalog;
use crate::groups::{GroupFence, OffsetCommit};
use crate::CatalogError;

/// One offset commit, a single-row statement, with `bytes` of metadata so that a
/// few of them need a new page.
fn offset(partition: i32, bytes: usize) -> OffsetCommit {
    OffsetCommit {
        topic: "orders".into(),
        partition,
        offset: 1,
        leader_epoch: -1,
        metadata: Some("m".repeat(bytes)),
    }
}

/// Caps the database at its current size on the write connection, as a full
/// disk does: the next write that needs a new page fails with SQLITE_FULL.
async fn fill_the_disk(catalog: &SqlCatalog) {
    let mut conn = catalog.writes.acquire().await.unwrap();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PRAGMA max_page_count = {pages}"
    )))
    .await
    .unwrap();
}

/// Lifts the cap again (on whichever connection now writes).
async fn free_space(catalog: &SqlCatalog) {
    let mut conn = catalog.writes.acquire().await.unwrap();
    conn.execute("PRAGMA max_page_count = 1073741823")
        .await
        .unwrap();
}

fn is_disk_full(error: &CatalogError) -> bool {
    error.to_string().contains("full")
}

/// When a single-row statement fails with SQLITE_FULL, SQLite rolls the whole
/// transaction back by itself; the driver's ROLLBACK then fails ("no
/// transaction is active") and leaves the connection counting an open
/// transaction, so every later `BEGIN IMMEDIATE` on the one write connection
/// would fail until restart.
#[tokio::test]
async fn sqlite_writes_work_again_once_a_full_disk_has_space() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("full.db").display());
    let catalog = SqlCatalog::connect(&url).await.unwrap();
    catalog
        .commit_offsets("g", GroupFence::Unfenced, &[offset(0, 10)])
        .await
        .unwrap();

    fill_the_disk(&catalog).await;
    let mut failure = None;
    for partition in 1..1000 {
        if let Err(error) = catalog
            .commit_offsets("g", GroupFence::Unfenced, &[offset(partition, 2000)])
            .await
        {
            failure = Some(error);
            break;
        }
    }
    let failure = failure.expect("the capped database never filled up");
    assert!(is_disk_full(&failure), "{failure}");

    free_space(&catalog).await;
    catalog
        .commit_offsets("g", GroupFence::Unfenced, &[offset(0, 20)])
        .await
        .expect("a write after space was freed");
    let committed = catalog.committed_offsets("g").await.unwrap();
    assert_eq!(committed[0].metadata.as_deref(), Some(&*"m".repeat(20)));
}
