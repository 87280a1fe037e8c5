//! Cases about how agents learn of each other's changes: the counters, the
//! head change sequence (SQLite), head notifications (PostgreSQL), and
//! dropping cached topics.

use std::time::Duration;

use streamhouse_metadata::agents::Counters;
use streamhouse_metadata::heads::{HeadCursor, HeadFeed, HeadUpdate};
use streamhouse_metadata::prelude::*;
use streamhouse_metadata::{Backend, PartitionOffsets, TopicId};

use crate::cases::{commit, create, new_topic, run};
use crate::harness::TestDb;

async fn counters(catalog: &dyn Catalog) -> Counters {
    catalog.counters().await.expect("counters")
}

/// Every change of topics, partition counts or configs bumps the catalog
/// counter once, in its transaction; a refused change and a commit do not.
pub async fn topic_changes_bump_the_catalog_counter(db: &TestDb) {
    let catalog = db.open().await;
    let catalog = &*catalog;
    let start = counters(catalog).await;
    let topic = create(catalog, "orders", 1).await;
    assert_eq!(counters(catalog).await.catalog, start.catalog + 1);
    assert!(catalog.create_topic(&new_topic("orders", 1)).await.is_err());
    commit(catalog, "a", &[run(&topic, 0, 0, 3)]).await;
    assert_eq!(counters(catalog).await.catalog, start.catalog + 1);
    catalog
        .update_topic_configs("orders", &|c| Ok(c.clone()))
        .await
        .unwrap();
    catalog.add_partitions("orders", 3).await.unwrap();
    catalog.delete_topic("orders").await.unwrap();
    let end = counters(catalog).await;
    assert_eq!(end.catalog, start.catalog + 4);
    assert_eq!(end.membership, start.membership);
}

fn hw(topic: TopicId, partition: i32, log_start: i64, high_watermark: i64) -> HeadUpdate {
    HeadUpdate {
        topic,
        partition,
        offsets: PartitionOffsets {
            log_start_offset: log_start,
            high_watermark,
        },
    }
}

/// SQLite: each commit and DeleteRecords stamps the heads it changes with a
/// new sequence number, and a poll resuming after the last it saw finds each
/// change once, in order, even when a limit cuts a commit's changes apart.
/// PostgreSQL: nothing is stamped (the counter would be one row every
/// commit locks) and agents notify instead.
pub async fn head_changes_list_each_change_once_in_order(db: &TestDb) {
    let catalog = db.open().await;
    let catalog = &*catalog;
    let topic = create(catalog, "orders", 3).await;
    let start = counters(catalog).await;
    commit(
        catalog,
        "a",
        &[run(&topic, 0, 0, 2), run(&topic, 1, 200, 1)],
    )
    .await;
    commit(catalog, "b", &[run(&topic, 2, 0, 4)]).await;
    catalog.delete_records(topic.id, 0, 1).await.unwrap();
    let after = HeadCursor::after(start.heads);
    let (all, _) = catalog.head_changes(&after, 100).await.unwrap();
    if catalog.head_feed() == HeadFeed::Notify {
        assert_eq!(db.target.backend, Backend::Postgres);
        assert!(all.is_empty(), "{all:?}");
        assert_eq!(counters(catalog).await.heads, start.heads);
        return;
    }
    assert_eq!(counters(catalog).await.heads, start.heads + 3);
    // Partition 0 changed twice; only its last change is left to find.
    assert_eq!(
        all,
        [
            hw(topic.id, 1, 0, 1),
            hw(topic.id, 2, 0, 4),
            hw(topic.id, 0, 1, 2)
        ]
    );
    let mut paged = Vec::new();
    let mut cursor = after;
    loop {
        let (changes, next) = catalog.head_changes(&cursor, 1).await.unwrap();
        if changes.is_empty() {
            break;
        }
        paged.extend(changes);
        cursor = next;
    }
    assert_eq!(paged, all);
    commit(catalog, "c", &[run(&topic, 1, 0, 1)]).await;
    let (next, _) = catalog.head_changes(&cursor, 100).await.unwrap();
    assert_eq!(next, [hw(topic.id, 1, 0, 2)]);
}

pub async fn heads_and_existing_topics_are_read_in_one_go(db: &TestDb) {
    let catalog = db.open().await;
    let catalog = &*catalog;
    let kept = create(catalog, "kept", 2).await;
    let gone = create(catalog, "gone", 1).await;
    commit(catalog, "a", &[run(&kept, 1, 0, 5)]).await;
    catalog.delete_topic("gone").await.unwrap();
    let mut heads = catalog
        .heads(&[(kept.id, 0), (kept.id, 1), (kept.id, 7), (gone.id, 0)])
        .await
        .unwrap();
    heads.sort_by_key(|h| h.partition);
    assert_eq!(heads, [hw(kept.id, 0, 0, 0), hw(kept.id, 1, 0, 5)]);
    let existing = catalog.existing_topics(&[gone.id, kept.id]).await.unwrap();
    assert_eq!(existing, [kept.id]);
    assert!(catalog.existing_topics(&[]).await.unwrap().is_empty());
}

/// PostgreSQL: what one agent announces reaches another's listener, however
/// many heads (several payloads). SQLite: nothing to listen to, and
/// announcing is a no-op.
pub async fn announced_heads_reach_other_agents_listeners(db: &TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let Some(mut listener) = b.listen_heads().await.unwrap() else {
        assert_eq!(b.head_feed(), HeadFeed::Poll);
        a.notify_heads(0, &[HeadUpdate::high_watermark(TopicId::nil(), 0, 1)])
            .await
            .unwrap();
        return;
    };
    let topic = TopicId::new_v4();
    let mut sent: Vec<HeadUpdate> = (0..3000)
        .map(|p| HeadUpdate::high_watermark(topic, p, 1_000 + i64::from(p)))
        .collect();
    sent.push(HeadUpdate::log_start(topic, 5, 17));
    a.notify_heads(3, &sent).await.unwrap();
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let next = tokio::time::timeout(Duration::from_secs(5), listener.next())
            .await
            .expect("notifications within 5 s")
            .unwrap();
        received.extend(next);
    }
    let key = |u: &HeadUpdate| (u.partition, u.offsets.high_watermark);
    sent.sort_by_key(key);
    received.sort_by_key(key);
    assert_eq!(received, sent);
}

/// What the agent's counter poll does when the catalog counter moved: a
/// topic another agent reconfigured is read afresh, though the cache would
/// have kept the old one for its whole time-to-live.
pub async fn forgetting_cached_topics_shows_another_agents_change(db: &TestDb) {
    let a = db.open().await;
    let b = db.open_cached().await;
    create(&*a, "orders", 1).await;
    let cached = b.topic_by_name("orders").await.unwrap().unwrap();
    assert!(cached.configs.is_empty());
    a.update_topic_configs("orders", &|_| {
        Ok([("retention.ms".to_string(), "1".to_string())].into())
    })
    .await
    .unwrap();
    assert!(b
        .topic_by_id(cached.id)
        .await
        .unwrap()
        .unwrap()
        .configs
        .is_empty());
    b.forget_cached_topics().await;
    let seen = b.topic_by_name("orders").await.unwrap().unwrap();
    assert_eq!(
        seen.configs.get("retention.ms").map(String::as_str),
        Some("1")
    );
    let seen = b.topic_by_id(cached.id).await.unwrap().unwrap();
    assert_eq!(
        seen.configs.get("retention.ms").map(String::as_str),
        Some("1")
    );
}
