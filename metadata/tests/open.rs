//! Opening a catalog from a URL.

use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use streamhouse_clock::{Clock, ManualClock};
use streamhouse_metadata::{open, open_with_clock, CatalogError, NewTopic};

fn topic(name: &str) -> NewTopic {
    NewTopic {
        name: name.into(),
        partition_count: 1,
        configs: Default::default(),
    }
}

#[tokio::test]
async fn sqlite_file_and_its_directory_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/catalog.db");
    let url = format!("sqlite://{}", path.display());

    let catalog = open(&url).await.unwrap();
    catalog.create_topic(&topic("orders")).await.unwrap();
    assert!(path.is_file());

    let mut raw = SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_in_memory_catalog_keeps_its_data_while_open() {
    let catalog = open("sqlite::memory:").await.unwrap();
    let created = catalog.create_topic(&topic("orders")).await.unwrap();
    assert_eq!(catalog.list_topics().await.unwrap(), vec![created]);

    // Another in-memory catalog is another database.
    let other = open("sqlite::memory:").await.unwrap();
    assert_eq!(other.list_topics().await.unwrap(), vec![]);
}

#[tokio::test]
async fn bad_urls_are_invalid_urls_with_a_reason() {
    for (url, reason) in [
        ("mysql://localhost/db", "unsupported scheme"),
        ("catalog.db", "unsupported scheme"),
        ("sqlite://", "no database file path"),
        ("sqlite://x.db?journal=wal", "journal"),
        ("postgres://u@localhost:99999/db", ""),
    ] {
        match open(url).await {
            Err(CatalogError::InvalidUrl { reason: got, .. }) => {
                assert!(got.contains(reason), "{url}: {got}")
            }
            Err(other) => panic!("{url}: expected InvalidUrl, got {other:?}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}

#[tokio::test]
async fn rows_are_stamped_with_the_injected_clock() {
    let clock = ManualClock::new();
    // A day ahead of the system clock: only the injected clock can give this.
    clock.advance(Duration::from_secs(86_400));
    let catalog = open_with_clock("sqlite::memory:", clock.clone())
        .await
        .unwrap();
    let created = catalog.create_topic(&topic("stamped")).await.unwrap();
    assert_eq!(created.created_at_ms, clock.now_ms());
}

/// Agents sharing a new SQLite file start together: each migrates, none fails
/// on another's tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_opening_a_new_sqlite_file_together_all_succeed() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { open(&url).await.map(|_| ()) })
            })
            .collect();
        for opened in opens {
            opened.await.unwrap().unwrap();
        }
    }
}
