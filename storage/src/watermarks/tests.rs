use std::sync::Arc;
use std::time::Duration;

use streamhouse_metadata::heads::HeadUpdate;
use streamhouse_metadata::prelude::*;
use streamhouse_metadata::{NewObject, NewTopic, PartitionOffsets, RunAppend, SqlCatalog, Topic};

use super::Watermarks;

async fn catalog_with_topic() -> (Arc<dyn Catalog>, Topic) {
    let catalog = SqlCatalog::connect("sqlite::memory:").await.unwrap();
    let topic = catalog
        .create_topic(&NewTopic {
            name: "t".into(),
            partition_count: 2,
            configs: Default::default(),
        })
        .await
        .unwrap();
    (Arc::new(catalog), topic)
}

fn offsets(log_start_offset: i64, high_watermark: i64) -> PartitionOffsets {
    PartitionOffsets {
        log_start_offset,
        high_watermark,
    }
}

/// A load reads the catalog; another agent's commit lands and its value
/// arrives before the load's answer is stored: the view keeps the newer value.
#[tokio::test]
async fn a_feed_value_arriving_during_a_load_is_not_lost() {
    let (catalog, topic) = catalog_with_topic().await;
    let view = Watermarks::new(catalog);
    let key = (topic.id, 0);
    view.begin_load(key);
    view.apply(&HeadUpdate::high_watermark(topic.id, 0, 7));
    view.apply(&HeadUpdate::log_start(topic.id, 0, 2));
    // What the load read before those changes.
    let stored = view.finish_load(key, Ok(Some(offsets(0, 5)))).unwrap();
    assert_eq!(stored, Some(offsets(2, 7)));
    assert_eq!(view.get(topic.id, 0).await.unwrap(), Some(offsets(2, 7)));
}

/// Two loads of one head overlap; the one that read the older value finishes
/// last and must not move the head back.
#[tokio::test]
async fn a_stale_load_never_moves_a_head_back() {
    let (catalog, topic) = catalog_with_topic().await;
    let view = Watermarks::new(catalog);
    let key = (topic.id, 1);
    view.begin_load(key);
    view.begin_load(key);
    view.finish_load(key, Ok(Some(offsets(0, 9)))).unwrap();
    let stored = view.finish_load(key, Ok(Some(offsets(0, 4)))).unwrap();
    assert_eq!(stored, Some(offsets(0, 9)));
}

/// Feed values for heads this agent neither holds nor loads are dropped: the
/// head is read fresh when first needed.
#[tokio::test]
async fn values_of_heads_not_held_are_ignored() {
    let (catalog, topic) = catalog_with_topic().await;
    let view = Watermarks::new(catalog);
    view.apply(&HeadUpdate::high_watermark(topic.id, 0, 42));
    assert_eq!(view.get(topic.id, 0).await.unwrap(), Some(offsets(0, 0)));
}

#[tokio::test]
async fn values_only_move_forward_and_wake_subscribers() {
    let (catalog, topic) = catalog_with_topic().await;
    let view = Watermarks::new(catalog);
    let mut sub = view.subscribe(topic.id, 0).await.unwrap().unwrap();
    sub.borrow_and_update();
    view.apply(&HeadUpdate::high_watermark(topic.id, 0, 3));
    tokio::time::timeout(Duration::from_secs(1), sub.changed())
        .await
        .unwrap()
        .unwrap();
    view.apply(&HeadUpdate::high_watermark(topic.id, 0, 2));
    view.apply(&HeadUpdate::log_start(topic.id, 0, 1));
    assert_eq!(*sub.borrow_and_update(), offsets(1, 3));
    // A log start learnt before the commits below it lifts the high watermark.
    view.apply(&HeadUpdate::log_start(topic.id, 0, 5));
    assert_eq!(*sub.borrow(), offsets(5, 5));
}

/// Commits `count` offsets to partition 0 through the catalog directly, as
/// another agent would.
async fn commit_elsewhere(catalog: &dyn Catalog, topic: &Topic, key: &str, count: i64) {
    let object = NewObject {
        key: key.into(),
        size_bytes: 10,
    };
    let run = RunAppend::single(topic.id, 0, 0, 10, count, 0);
    catalog.commit_object(&object, &[run]).await.unwrap();
}

#[tokio::test]
async fn refresh_reads_the_catalog_and_keeps_the_maximum() {
    let (catalog, topic) = catalog_with_topic().await;
    let view = Watermarks::new(Arc::clone(&catalog));
    assert_eq!(view.get(topic.id, 0).await.unwrap(), Some(offsets(0, 0)));
    commit_elsewhere(&*catalog, &topic, "a", 3).await;
    assert_eq!(view.get(topic.id, 0).await.unwrap(), Some(offsets(0, 0)));
    assert_eq!(
        view.refresh(topic.id, 0).await.unwrap(),
        Some(offsets(0, 3))
    );
    assert_eq!(view.get(topic.id, 0).await.unwrap(), Some(offsets(0, 3)));
    // A value the view learnt that the catalog read does not show yet.
    view.apply(&HeadUpdate::high_watermark(topic.id, 0, 8));
    assert_eq!(
        view.refresh(topic.id, 0).await.unwrap(),
        Some(offsets(0, 8))
    );
}
