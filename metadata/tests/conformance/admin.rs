//! Admin changes of existing topics on every backend: config updates, added
//! partitions, the log start offset (DeleteRecords), and the producers listed
//! per partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use streamhouse_metadata::producers::ProducerBatch;
use streamhouse_metadata::{Catalog, CatalogError};
use tokio::task::JoinSet;

use crate::cases::{commit, create, idempotent, offsets, run, run_of};
use crate::harness::TestDb;

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub async fn topic_configs_are_replaced_in_one_step_or_not_at_all(catalog: &dyn Catalog) {
    create(catalog, "orders", 1).await;
    let updated = catalog
        .update_topic_configs("orders", &|current| {
            assert!(current.is_empty());
            Ok(configs(&[
                ("retention.ms", "1000"),
                ("cleanup.policy", "compact"),
            ]))
        })
        .await
        .unwrap();
    assert_eq!(
        updated.configs,
        configs(&[("cleanup.policy", "compact"), ("retention.ms", "1000")])
    );
    let refused = catalog
        .update_topic_configs("orders", &|_| Err("no, thanks".into()))
        .await;
    assert!(matches!(refused, Err(CatalogError::InvalidConfig(m)) if m == "no, thanks"));
    let replaced = catalog
        .update_topic_configs("orders", &|current| {
            let mut next = current.clone();
            next.remove("retention.ms");
            Ok(next)
        })
        .await
        .unwrap();
    assert_eq!(replaced.configs, configs(&[("cleanup.policy", "compact")]));
    let stored = catalog.topic_by_name("orders").await.unwrap().unwrap();
    assert_eq!(
        stored.configs, replaced.configs,
        "the refused update left nothing"
    );
    let unknown = catalog
        .update_topic_configs("never", &|c| Ok(c.clone()))
        .await;
    assert!(matches!(unknown, Err(CatalogError::UnknownTopic(n)) if n == "never"));
}

pub async fn added_partitions_start_empty_and_counts_only_grow(catalog: &dyn Catalog) {
    let topic = create(catalog, "orders", 2).await;
    commit(catalog, "a", &[run(&topic, 1, 0, 5)]).await;
    let grown = catalog.add_partitions("orders", 4).await.unwrap();
    assert_eq!((grown.id, grown.partition_count), (topic.id, 4));
    assert_eq!(
        catalog
            .topic_by_name("orders")
            .await
            .unwrap()
            .unwrap()
            .partition_count,
        4
    );
    for partition in 2..4 {
        assert_eq!(
            catalog
                .partition_offsets(topic.id, partition)
                .await
                .unwrap(),
            offsets(0, 0)
        );
    }
    assert_eq!(
        catalog.partition_offsets(topic.id, 1).await.unwrap(),
        offsets(0, 5),
        "existing partitions keep their offsets"
    );
    assert_eq!(catalog.partition_offsets(topic.id, 4).await.unwrap(), None);
    for count in [4, 3] {
        let refused = catalog.add_partitions("orders", count).await;
        assert!(
            matches!(
                refused,
                Err(CatalogError::PartitionCountNotIncreased { current: 4, requested, .. }) if requested == count
            ),
            "{count}: {refused:?}"
        );
    }
    assert!(matches!(
        catalog.add_partitions("never", 2).await,
        Err(CatalogError::UnknownTopic(_))
    ));
}

pub async fn log_start_moves_forward_only_and_within_the_log(catalog: &dyn Catalog) {
    let topic = create(catalog, "orders", 1).await;
    commit(catalog, "a", &[run(&topic, 0, 0, 10)]).await;
    let moved = catalog.delete_records(topic.id, 0, 4).await.unwrap();
    assert_eq!(moved, offsets(4, 10));
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(4, 10)
    );
    assert_eq!(
        catalog.delete_records(topic.id, 0, 2).await.unwrap(),
        offsets(4, 10),
        "never backwards"
    );
    for beyond in [11, -2] {
        let refused = catalog.delete_records(topic.id, 0, beyond).await;
        assert!(
            matches!(
                refused,
                Err(CatalogError::OffsetBeyondHighWatermark { requested, high_watermark: 10 }) if requested == beyond
            ),
            "{beyond}: {refused:?}"
        );
    }
    assert_eq!(
        catalog.delete_records(topic.id, 0, -1).await.unwrap(),
        offsets(10, 10),
        "-1 is the high watermark"
    );
    assert_eq!(catalog.delete_records(topic.id, 1, 0).await.unwrap(), None);
    assert_eq!(
        catalog.index_entries(topic.id, 0, 0, 10).await.unwrap(),
        Vec::new(),
        "entries below the log start are hidden"
    );
}

pub async fn partition_producers_lists_each_producers_newest_batch(catalog: &dyn Catalog) {
    let topic = create(catalog, "orders", 2).await;
    let batch = |producer_id, first_sequence| {
        idempotent(producer_id, 1, first_sequence, first_sequence + 1)
    };
    let first = run_of(&topic, 0, 0, vec![batch(7, 0), batch(3, 0), batch(7, 2)]);
    commit(catalog, "a", &[first]).await;
    let listed = catalog.partition_producers(topic.id, 0).await.unwrap();
    let expected = |producer_id, first_sequence, base_offset| ProducerBatch {
        producer_id,
        epoch: 1,
        first_sequence,
        last_sequence: first_sequence + 1,
        base_offset,
        append_time_ms: -1,
    };
    assert_eq!(listed, vec![expected(3, 0, 2), expected(7, 2, 4)]);
    assert_eq!(
        catalog.partition_producers(topic.id, 1).await.unwrap(),
        Vec::new()
    );
}

/// Two agents append distinct keys to one topic's configs at once: with the
/// update running inside the transaction, none is lost.
pub async fn concurrent_config_updates_lose_nothing(db: &TestDb) {
    let agents: Vec<Arc<dyn Catalog>> = vec![db.open().await, db.open().await];
    create(&*agents[0], "orders", 1).await;
    let mut tasks = JoinSet::new();
    for task in 0..4usize {
        let catalog = Arc::clone(&agents[task % agents.len()]);
        tasks.spawn(async move {
            for i in 0..5 {
                let key = format!("k{task}.{i}");
                catalog
                    .update_topic_configs("orders", &|current| {
                        let mut next = current.clone();
                        next.insert(key.clone(), "v".into());
                        Ok(next)
                    })
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let stored = db
        .open()
        .await
        .topic_by_name("orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.configs.len(), 20, "{:?}", stored.configs);
}
