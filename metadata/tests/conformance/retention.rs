//! Retention by time and size: where each rule moves a partition's log start,
//! that it never moves back or past the high watermark, and the retained sizes
//! reported per partition and per topic.

use streamhouse_metadata::compaction::{Shards, StoredObject};
use streamhouse_metadata::retention::{PartitionSize, RetentionMove, RetentionRule, TopicUsage};
use streamhouse_metadata::{Catalog, NewObject, Topic};

use crate::cases::{commit, create, offsets, run_at};

/// Partition 0 of a two-partition topic: entries of 2 offsets (200 bytes)
/// with max timestamps 100, 300, 200, 400, so their running maxima are 100,
/// 300, 300, 400. Partition 1 stays empty.
async fn four_entries(catalog: &dyn Catalog) -> Topic {
    let topic = create(catalog, "orders", 2).await;
    commit(
        catalog,
        "o1",
        &[run_at(&topic, 0, 0, 2, 100), run_at(&topic, 0, 200, 2, 300)],
    )
    .await;
    commit(
        catalog,
        "o2",
        &[run_at(&topic, 0, 0, 2, 200), run_at(&topic, 0, 200, 2, 400)],
    )
    .await;
    topic
}

fn by_time(topic: &Topic, cutoff: i64) -> RetentionRule {
    RetentionRule {
        topic: topic.id,
        delete_before_timestamp: Some(cutoff),
        retain_bytes: None,
    }
}

fn by_size(topic: &Topic, bytes: i64) -> RetentionRule {
    RetentionRule {
        topic: topic.id,
        delete_before_timestamp: None,
        retain_bytes: Some(bytes),
    }
}

fn moved(topic: &Topic, from: i64, to: i64, bytes: i64) -> Vec<RetentionMove> {
    vec![RetentionMove {
        topic: topic.id,
        partition: 0,
        from,
        to,
        bytes,
    }]
}

pub async fn time_retention_drops_entries_up_to_the_first_that_has_not_expired(
    catalog: &dyn Catalog,
) {
    let topic = four_entries(catalog).await;
    let apply = |cutoff| {
        let rule = by_time(&topic, cutoff);
        async move { catalog.apply_retention(&rule).await }
    };
    assert_eq!(apply(100).await.unwrap(), vec![], "nothing older than 100");
    // The entry at 2 (max 300) stops it; the one at 4 (max 200) has expired
    // but stays behind it, as a Kafka segment behind a newer one does.
    assert_eq!(apply(250).await.unwrap(), moved(&topic, 0, 2, 200));
    assert_eq!(apply(350).await.unwrap(), moved(&topic, 2, 6, 400));
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(6, 8)
    );
    assert_eq!(apply(400).await.unwrap(), vec![], "the last entry has 400");
    // Everything expired: up to the high watermark, and no further.
    assert_eq!(apply(10_000).await.unwrap(), moved(&topic, 6, 8, 200));
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(8, 8)
    );
    assert_eq!(apply(20_000).await.unwrap(), vec![]);
    assert_eq!(
        catalog.partition_offsets(topic.id, 1).await.unwrap(),
        offsets(0, 0),
        "an empty partition stays where it is"
    );
}

pub async fn size_retention_keeps_at_least_the_limit_as_kafka_does(catalog: &dyn Catalog) {
    let topic = four_entries(catalog).await;
    let apply = |bytes| {
        let rule = by_size(&topic, bytes);
        async move { catalog.apply_retention(&rule).await }
    };
    // 800 bytes: dropping the first would leave 600, below the limit.
    assert_eq!(apply(800).await.unwrap(), vec![]);
    assert_eq!(apply(700).await.unwrap(), vec![]);
    // 600 remain after the first, still at least the limit: it goes; 400
    // would remain after the second, below it.
    assert_eq!(apply(600).await.unwrap(), moved(&topic, 0, 2, 200));
    // From 2: 400 remain after the entry at 2, 200 after the one at 4.
    assert_eq!(apply(250).await.unwrap(), moved(&topic, 2, 4, 200));
    assert_eq!(apply(0).await.unwrap(), moved(&topic, 4, 8, 400));
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(8, 8)
    );
}

pub async fn retention_never_moves_a_log_start_back_and_both_rules_apply(catalog: &dyn Catalog) {
    let topic = four_entries(catalog).await;
    catalog.delete_records(topic.id, 0, 5).await.unwrap();
    assert_eq!(
        catalog
            .apply_retention(&by_time(&topic, 250))
            .await
            .unwrap(),
        vec![],
        "the rule keeps from 2; the log start is already at 5"
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(5, 8)
    );
    // The entry 4..=5 is cut by the log start and counts whole: 400 bytes
    // retained, so a limit of 200 drops it (200 would remain).
    let both = RetentionRule {
        topic: topic.id,
        delete_before_timestamp: Some(0),
        retain_bytes: Some(200),
    };
    assert_eq!(
        catalog.apply_retention(&both).await.unwrap(),
        moved(&topic, 5, 6, 200)
    );
    let neither = RetentionRule {
        topic: topic.id,
        delete_before_timestamp: None,
        retain_bytes: None,
    };
    assert_eq!(catalog.apply_retention(&neither).await.unwrap(), vec![]);
}

pub async fn retention_sizes_count_the_entries_at_or_above_the_log_start(catalog: &dyn Catalog) {
    let topic = four_entries(catalog).await;
    let other = create(catalog, "payments", 1).await;
    commit(catalog, "o3", &[run_at(&other, 0, 0, 3, 100)]).await;
    let size = |topic: &Topic, partition, bytes| PartitionSize {
        topic: topic.id,
        partition,
        bytes,
    };
    assert_eq!(
        catalog.partition_sizes(Some(topic.id)).await.unwrap(),
        vec![size(&topic, 0, 800), size(&topic, 1, 0)]
    );
    catalog
        .apply_retention(&by_time(&topic, 250))
        .await
        .unwrap();
    assert_eq!(
        catalog.partition_sizes(Some(topic.id)).await.unwrap(),
        vec![size(&topic, 0, 600), size(&topic, 1, 0)]
    );
    let mut all = vec![
        size(&topic, 0, 600),
        size(&topic, 1, 0),
        size(&other, 0, 300),
    ];
    all.sort_by_key(|s| (s.topic.to_string(), s.partition));
    assert_eq!(catalog.partition_sizes(None).await.unwrap(), all);
    let mut usage = vec![
        TopicUsage {
            topic: topic.id,
            bytes: 600,
            objects: 2,
        },
        TopicUsage {
            topic: other.id,
            bytes: 300,
            objects: 1,
        },
    ];
    usage.sort_by_key(|u| u.topic.to_string());
    assert_eq!(catalog.topic_usage().await.unwrap(), usage);
}

pub async fn retention_leaves_sparse_objects_for_compaction(catalog: &dyn Catalog) {
    let kept = create(catalog, "kept", 1).await;
    let expiring = create(catalog, "expiring", 1).await;
    // 1000 bytes: 200 of `kept`, 600 of `expiring`, the rest headers.
    let shared = NewObject {
        key: "shared".into(),
        size_bytes: 1000,
    };
    catalog
        .commit_object(
            &shared,
            &[
                run_at(&kept, 0, 0, 2, 100),
                run_at(&expiring, 0, 200, 6, 100),
            ],
        )
        .await
        .unwrap();
    let sparse = || catalog.sparse_live_objects(500, Shards::ALL, 10);
    let keys = |objects: Vec<StoredObject>| -> Vec<String> {
        objects.into_iter().map(|o| o.key).collect()
    };
    assert_eq!(keys(sparse().await.unwrap()), Vec::<String>::new());
    catalog
        .apply_retention(&by_size(&expiring, 0))
        .await
        .unwrap();
    assert_eq!(keys(sparse().await.unwrap()), vec!["shared".to_string()]);
    assert_eq!(
        keys(
            catalog
                .sparse_live_objects(1001, Shards::ALL, 10)
                .await
                .unwrap()
        ),
        Vec::<String>::new(),
        "only objects of at least the size asked for"
    );
    assert_eq!(
        keys(
            catalog
                .sparse_live_objects(500, Shards::NONE, 10)
                .await
                .unwrap()
        ),
        Vec::<String>::new()
    );
    // Nothing retained at all: the garbage collector's, not compaction's.
    catalog.apply_retention(&by_size(&kept, 0)).await.unwrap();
    assert_eq!(keys(sparse().await.unwrap()), Vec::<String>::new());
}
