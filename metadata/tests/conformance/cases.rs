//! What every catalog must do, whatever the database. Each case gets a catalog on
//! an empty database of its own.

use std::collections::BTreeMap;

use streamhouse_metadata::producers::ProducerAppend;
use streamhouse_metadata::{
    AppendOutcome, AppendSlice, Catalog, CatalogError, IndexEntry, NewObject, NewTopic,
    ObjectCommit, PartitionOffsets, RunAppend, RunOutcome, Topic, TopicId,
};

// The consumer-group cases live in their own file; the macro finds them here.
pub use crate::groups::*;
// So are the admin cases (configs, partitions, log start, producers).
pub use crate::acls::*;
pub use crate::admin::*;
pub use crate::credentials::*;
pub use crate::quotas::*;
pub use crate::shares::*;

pub fn new_topic(name: &str, partition_count: i32) -> NewTopic {
    NewTopic {
        name: name.to_owned(),
        partition_count,
        configs: BTreeMap::new(),
    }
}

pub fn object(key: &str) -> NewObject {
    NewObject {
        key: key.to_owned(),
        size_bytes: 4096,
    }
}

/// A run at `position` of `record_offsets` offsets; its length is 100 bytes per offset.
pub fn run(topic: &Topic, partition: i32, position: i64, record_offsets: i64) -> RunAppend {
    run_at(topic, partition, position, record_offsets, 1_000)
}

pub fn run_at(
    topic: &Topic,
    partition: i32,
    position: i64,
    record_offsets: i64,
    max_timestamp: i64,
) -> RunAppend {
    RunAppend::single(
        topic.id,
        partition,
        position,
        100 * record_offsets,
        record_offsets,
        max_timestamp,
    )
}

/// A run of these appends at `position`.
pub fn run_of(
    topic: &Topic,
    partition: i32,
    position: i64,
    appends: Vec<AppendSlice>,
) -> RunAppend {
    RunAppend {
        topic: topic.id,
        partition,
        position,
        appends,
    }
}

/// An append of `offset_count` offsets without a producer; 100 bytes per offset.
pub fn plain(offset_count: i64) -> AppendSlice {
    AppendSlice {
        length: 100 * offset_count,
        offset_count,
        max_timestamp: 1_000,
        append_time_ms: -1,
        producer: None,
        txn: None,
    }
}

/// An idempotent append of one offset per sequence, `first ..= last`.
pub fn idempotent(producer_id: i64, epoch: i16, first: i32, last: i32) -> AppendSlice {
    AppendSlice {
        producer: Some(ProducerAppend {
            producer_id,
            epoch,
            first_sequence: first,
            last_sequence: last,
        }),
        ..plain(i64::from(last - first) + 1)
    }
}

pub fn offsets(log_start_offset: i64, high_watermark: i64) -> Option<PartitionOffsets> {
    Some(PartitionOffsets {
        log_start_offset,
        high_watermark,
    })
}

pub fn entry(base: i64, last: i64, key: &str, position: i64, max_timestamp: i64) -> IndexEntry {
    IndexEntry {
        base_offset: base,
        last_offset: last,
        object_key: key.to_owned(),
        position,
        length: 100 * (last - base + 1),
        max_timestamp,
    }
}

/// A run of appends without producers, its first at `base_offset`.
pub fn appended(base_offset: i64) -> RunOutcome {
    RunOutcome::Committed(vec![AppendOutcome::Appended {
        base_offset,
        append_time_ms: -1,
    }])
}

/// The base offset of a run of one append that was appended.
pub fn base_offset_of(outcome: &RunOutcome) -> i64 {
    match outcome {
        RunOutcome::Committed(appends) => match appends[..] {
            [AppendOutcome::Appended { base_offset, .. }] => base_offset,
            _ => panic!("{outcome:?}"),
        },
        RunOutcome::UnknownPartition => panic!("{outcome:?}"),
    }
}

pub async fn create(catalog: &dyn Catalog, name: &str, partitions: i32) -> Topic {
    catalog
        .create_topic(&new_topic(name, partitions))
        .await
        .expect("create_topic")
}

pub async fn commit(catalog: &dyn Catalog, key: &str, runs: &[RunAppend]) -> Vec<RunOutcome> {
    catalog
        .commit_object(&object(key), runs)
        .await
        .expect("commit_object")
}

pub async fn all_entries(catalog: &dyn Catalog, topic: TopicId, partition: i32) -> Vec<IndexEntry> {
    catalog
        .index_entries(topic, partition, 0, u32::MAX)
        .await
        .expect("index_entries")
}

pub async fn created_topic_is_found_by_name_and_id_and_listed(catalog: &dyn Catalog) {
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "delete".to_owned()),
        ("retention.ms".to_owned(), "86400000".to_owned()),
    ]);
    let orders = catalog
        .create_topic(&NewTopic {
            name: "orders".into(),
            partition_count: 3,
            configs: configs.clone(),
        })
        .await
        .unwrap();
    assert_eq!(orders.name, "orders");
    assert_eq!(orders.partition_count, 3);
    assert_eq!(orders.configs, configs);
    assert!(!orders.id.is_nil());
    assert!(
        orders.created_at_ms > 1_600_000_000_000,
        "{}",
        orders.created_at_ms
    );
    let alpha = create(catalog, "alpha", 1).await;
    assert_eq!(alpha.configs, BTreeMap::new());
    assert_ne!(alpha.id, orders.id);

    assert_eq!(
        catalog.topic_by_name("orders").await.unwrap(),
        Some(orders.clone())
    );
    assert_eq!(
        catalog.topic_by_id(orders.id).await.unwrap(),
        Some(orders.clone())
    );
    assert_eq!(
        catalog.topic_by_name("alpha").await.unwrap(),
        Some(alpha.clone())
    );
    assert_eq!(catalog.list_topics().await.unwrap(), vec![alpha, orders]);

    assert_eq!(catalog.topic_by_name("missing").await.unwrap(), None);
    assert_eq!(catalog.topic_by_id(TopicId::new_v4()).await.unwrap(), None);
}

pub async fn new_partitions_start_empty_at_offset_zero(catalog: &dyn Catalog) {
    let topic = create(catalog, "events", 4).await;
    for partition in 0..4 {
        assert_eq!(
            catalog
                .partition_offsets(topic.id, partition)
                .await
                .unwrap(),
            offsets(0, 0)
        );
        assert_eq!(all_entries(catalog, topic.id, partition).await, vec![]);
    }
    assert_eq!(catalog.partition_offsets(topic.id, 4).await.unwrap(), None);
    assert_eq!(catalog.partition_offsets(topic.id, -1).await.unwrap(), None);
    let unknown = TopicId::new_v4();
    assert_eq!(catalog.partition_offsets(unknown, 0).await.unwrap(), None);
}

pub async fn creating_an_existing_topic_fails_with_topic_already_exists(catalog: &dyn Catalog) {
    let original = create(catalog, "orders", 3).await;
    let error = catalog
        .create_topic(&new_topic("orders", 7))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CatalogError::TopicAlreadyExists(name) if name == "orders"),
        "{error:?}"
    );
    assert_eq!(
        catalog.topic_by_name("orders").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(catalog.list_topics().await.unwrap(), vec![original]);
}

pub async fn deleting_an_unknown_topic_fails_with_unknown_topic(catalog: &dyn Catalog) {
    create(catalog, "orders", 1).await;
    let error = catalog.delete_topic("missing").await.unwrap_err();
    assert!(
        matches!(&error, CatalogError::UnknownTopic(name) if name == "missing"),
        "{error:?}"
    );
    assert_eq!(catalog.list_topics().await.unwrap().len(), 1);
}

pub async fn deleted_topic_is_gone_with_its_partitions_and_index(catalog: &dyn Catalog) {
    let doomed = create(catalog, "doomed", 2).await;
    let kept = create(catalog, "kept", 1).await;
    commit(
        catalog,
        "o1",
        &[
            run(&doomed, 0, 0, 3),
            run(&doomed, 1, 300, 2),
            run(&kept, 0, 500, 4),
        ],
    )
    .await;

    assert_eq!(catalog.delete_topic("doomed").await.unwrap(), doomed);

    assert_eq!(catalog.topic_by_name("doomed").await.unwrap(), None);
    assert_eq!(catalog.topic_by_id(doomed.id).await.unwrap(), None);
    assert_eq!(catalog.list_topics().await.unwrap(), vec![kept.clone()]);
    assert_eq!(catalog.partition_offsets(doomed.id, 0).await.unwrap(), None);
    assert_eq!(all_entries(catalog, doomed.id, 0).await, vec![]);
    assert_eq!(all_entries(catalog, doomed.id, 1).await, vec![]);
    // The object is shared with a surviving topic, whose entries stay.
    assert_eq!(
        all_entries(catalog, kept.id, 0).await,
        vec![entry(0, 3, "o1", 500, 1_000)]
    );
    let error = catalog.delete_topic("doomed").await.unwrap_err();
    assert!(matches!(error, CatalogError::UnknownTopic(_)), "{error:?}");
}

pub async fn recreated_topic_gets_a_new_id_and_starts_at_offset_zero(catalog: &dyn Catalog) {
    let first = create(catalog, "orders", 1).await;
    commit(catalog, "o1", &[run(&first, 0, 0, 10)]).await;
    catalog.delete_topic("orders").await.unwrap();

    let second = create(catalog, "orders", 2).await;
    assert_ne!(second.id, first.id);
    assert_eq!(second.partition_count, 2);
    assert_eq!(
        catalog.topic_by_name("orders").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(catalog.topic_by_id(first.id).await.unwrap(), None);
    assert_eq!(
        catalog.partition_offsets(second.id, 0).await.unwrap(),
        offsets(0, 0)
    );
    assert_eq!(all_entries(catalog, second.id, 0).await, vec![]);
    assert_eq!(
        commit(catalog, "o2", &[run(&second, 0, 0, 4)]).await,
        vec![appended(0)]
    );
}

pub async fn commits_assign_contiguous_offsets_across_runs_and_objects(catalog: &dyn Catalog) {
    let topic = create(catalog, "orders", 1).await;
    let outcomes = commit(
        catalog,
        "o1",
        &[run(&topic, 0, 0, 3), run(&topic, 0, 300, 5)],
    )
    .await;
    assert_eq!(outcomes, vec![appended(0), appended(3)]);
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(0, 8)
    );

    let outcomes = commit(catalog, "o2", &[run(&topic, 0, 40, 2)]).await;
    assert_eq!(outcomes, vec![appended(8)]);
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(0, 10)
    );

    assert_eq!(
        all_entries(catalog, topic.id, 0).await,
        vec![
            entry(0, 2, "o1", 0, 1_000),
            entry(3, 7, "o1", 300, 1_000),
            entry(8, 9, "o2", 40, 1_000),
        ]
    );
}

pub async fn one_object_holds_runs_of_several_partitions_and_topics(catalog: &dyn Catalog) {
    let a = create(catalog, "a", 2).await;
    let b = create(catalog, "b", 1).await;
    commit(catalog, "o0", &[run(&a, 1, 0, 6)]).await;
    let outcomes = commit(
        catalog,
        "o1",
        &[run(&a, 0, 0, 2), run(&a, 1, 200, 3), run(&b, 0, 500, 1)],
    )
    .await;
    assert_eq!(outcomes, vec![appended(0), appended(6), appended(0)]);
    assert_eq!(
        catalog.partition_offsets(a.id, 0).await.unwrap(),
        offsets(0, 2)
    );
    assert_eq!(
        catalog.partition_offsets(a.id, 1).await.unwrap(),
        offsets(0, 9)
    );
    assert_eq!(
        catalog.partition_offsets(b.id, 0).await.unwrap(),
        offsets(0, 1)
    );
    assert_eq!(
        all_entries(catalog, a.id, 0).await,
        vec![entry(0, 1, "o1", 0, 1_000)]
    );
    assert_eq!(
        all_entries(catalog, a.id, 1).await,
        vec![entry(0, 5, "o0", 0, 1_000), entry(6, 8, "o1", 200, 1_000)]
    );
    assert_eq!(
        all_entries(catalog, b.id, 0).await,
        vec![entry(0, 0, "o1", 500, 1_000)]
    );
}

pub async fn runs_for_missing_partitions_are_reported_while_the_rest_commit(catalog: &dyn Catalog) {
    let kept = create(catalog, "kept", 2).await;
    let doomed = create(catalog, "doomed", 1).await;
    catalog.delete_topic("doomed").await.unwrap();

    let outcomes = commit(
        catalog,
        "o1",
        &[
            run(&kept, 0, 0, 2),
            run(&doomed, 0, 200, 3),
            run(&kept, 1, 500, 4),
            run(&kept, 2, 900, 1),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            appended(0),
            RunOutcome::UnknownPartition,
            appended(0),
            RunOutcome::UnknownPartition,
        ]
    );
    assert_eq!(
        catalog.partition_offsets(kept.id, 0).await.unwrap(),
        offsets(0, 2)
    );
    assert_eq!(
        catalog.partition_offsets(kept.id, 1).await.unwrap(),
        offsets(0, 4)
    );
    assert_eq!(catalog.partition_offsets(doomed.id, 0).await.unwrap(), None);
    assert_eq!(
        all_entries(catalog, kept.id, 1).await,
        vec![entry(0, 3, "o1", 500, 1_000)]
    );
}

pub async fn a_failed_commit_appends_nothing(catalog: &dyn Catalog) {
    let topic = create(catalog, "orders", 2).await;
    commit(catalog, "o1", &[run(&topic, 0, 0, 3)]).await;
    // Object keys are never reused; a second object under the same key is refused
    // as a whole, including its run for the other partition.
    let result = catalog
        .commit_object(
            &object("o1"),
            &[run(&topic, 1, 0, 5), run(&topic, 0, 500, 2)],
        )
        .await;
    assert!(
        matches!(result, Err(CatalogError::Database(_))),
        "{result:?}"
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(0, 3)
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 1).await.unwrap(),
        offsets(0, 0)
    );
    assert_eq!(all_entries(catalog, topic.id, 1).await, vec![]);
}

pub async fn invalid_requests_are_refused(catalog: &dyn Catalog) {
    for partitions in [0, -1] {
        let result = catalog.create_topic(&new_topic("empty", partitions)).await;
        assert!(
            matches!(result, Err(CatalogError::InvalidArgument(_))),
            "{result:?}"
        );
    }
    assert_eq!(catalog.list_topics().await.unwrap(), vec![]);

    let topic = create(catalog, "orders", 1).await;
    let result = catalog
        .commit_object(
            &object("o1"),
            &[run(&topic, 0, 0, 2), run(&topic, 0, 200, 0)],
        )
        .await;
    assert!(
        matches!(result, Err(CatalogError::InvalidArgument(_))),
        "{result:?}"
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(0, 0)
    );
    // The refused object was not recorded: its key is still free.
    assert_eq!(
        commit(catalog, "o1", &[run(&topic, 0, 0, 2)]).await,
        vec![appended(0)]
    );
}

/// Entries 0..=2 (o1), 3..=7 (o1), 8..=9 (o2).
async fn three_entries(catalog: &dyn Catalog) -> Topic {
    let topic = create(catalog, "orders", 1).await;
    commit(
        catalog,
        "o1",
        &[run(&topic, 0, 0, 3), run(&topic, 0, 300, 5)],
    )
    .await;
    commit(catalog, "o2", &[run(&topic, 0, 0, 2)]).await;
    topic
}

pub async fn index_entries_start_at_the_entry_holding_the_offset(catalog: &dyn Catalog) {
    let topic = three_entries(catalog).await;
    let first = entry(0, 2, "o1", 0, 1_000);
    let middle = entry(3, 7, "o1", 300, 1_000);
    let last = entry(8, 9, "o2", 0, 1_000);
    let from = |offset| catalog.index_entries(topic.id, 0, offset, 100);

    assert_eq!(
        from(0).await.unwrap(),
        vec![first.clone(), middle.clone(), last.clone()]
    );
    assert_eq!(
        from(2).await.unwrap(),
        vec![first, middle.clone(), last.clone()]
    );
    assert_eq!(from(3).await.unwrap(), vec![middle.clone(), last.clone()]);
    assert_eq!(from(5).await.unwrap(), vec![middle.clone(), last.clone()]);
    assert_eq!(from(7).await.unwrap(), vec![middle, last.clone()]);
    assert_eq!(from(9).await.unwrap(), vec![last]);
    assert_eq!(from(10).await.unwrap(), vec![]);
    assert_eq!(from(1_000).await.unwrap(), vec![]);
    assert_eq!(
        catalog.index_entries(topic.id, 1, 0, 100).await.unwrap(),
        vec![]
    );
}

pub async fn index_entries_respect_the_limit(catalog: &dyn Catalog) {
    let topic = three_entries(catalog).await;
    let entries = |offset, limit| catalog.index_entries(topic.id, 0, offset, limit);
    assert_eq!(
        entries(0, 2).await.unwrap(),
        vec![entry(0, 2, "o1", 0, 1_000), entry(3, 7, "o1", 300, 1_000)]
    );
    assert_eq!(
        entries(4, 1).await.unwrap(),
        vec![entry(3, 7, "o1", 300, 1_000)]
    );
    assert_eq!(entries(0, 0).await.unwrap(), vec![]);
}

pub async fn timestamp_lookup_finds_the_first_entry_reaching_the_timestamp(catalog: &dyn Catalog) {
    let topic = create(catalog, "orders", 2).await;
    // Timestamps need not grow with offsets.
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
    let e100 = IndexEntry {
        max_timestamp: 100,
        ..entry(0, 1, "o1", 0, 0)
    };
    let e300 = IndexEntry {
        max_timestamp: 300,
        ..entry(2, 3, "o1", 200, 0)
    };
    let e400 = IndexEntry {
        max_timestamp: 400,
        ..entry(6, 7, "o2", 200, 0)
    };
    let at = |ts| catalog.first_entry_at_or_after_timestamp(topic.id, 0, ts);

    assert_eq!(at(i64::MIN).await.unwrap(), Some(e100.clone()));
    assert_eq!(at(-1).await.unwrap(), Some(e100.clone()));
    assert_eq!(at(100).await.unwrap(), Some(e100));
    assert_eq!(at(101).await.unwrap(), Some(e300.clone()));
    // The entry with 200 comes after the one with 300: the first reaching 150 or 250
    // is the one with 300.
    assert_eq!(at(150).await.unwrap(), Some(e300.clone()));
    assert_eq!(at(250).await.unwrap(), Some(e300.clone()));
    assert_eq!(at(300).await.unwrap(), Some(e300));
    assert_eq!(at(301).await.unwrap(), Some(e400.clone()));
    assert_eq!(at(400).await.unwrap(), Some(e400));
    assert_eq!(at(401).await.unwrap(), None);
    assert_eq!(
        catalog
            .first_entry_at_or_after_timestamp(topic.id, 1, 0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        catalog
            .first_entry_at_or_after_timestamp(TopicId::new_v4(), 0, 0)
            .await
            .unwrap(),
        None
    );
}

pub async fn producer_ids_are_unique_and_epochs_bump(catalog: &dyn Catalog) {
    use streamhouse_metadata::producers::ProducerIdentity;
    let first = catalog.init_producer(None).await.unwrap();
    let second = catalog.init_producer(None).await.unwrap();
    assert_ne!(first.producer_id, second.producer_id);
    assert_eq!((first.epoch, second.epoch), (0, 0));
    let bumped = catalog.init_producer(Some(first)).await.unwrap();
    assert_eq!(
        bumped,
        ProducerIdentity {
            producer_id: first.producer_id,
            epoch: 1
        }
    );
    // The old epoch is fenced now.
    assert!(matches!(
        catalog.init_producer(Some(first)).await,
        Err(CatalogError::ProducerFenced { epoch: 0, .. })
    ));
    let never = ProducerIdentity {
        producer_id: 987_654_321,
        epoch: 0,
    };
    assert!(matches!(
        catalog.init_producer(Some(never)).await,
        Err(CatalogError::UnknownProducer(987_654_321))
    ));
}

pub async fn producer_batches_are_recorded_with_their_offsets_newest_five_kept(
    catalog: &dyn Catalog,
) {
    use streamhouse_metadata::producers::ProducerBatch;
    let topic = create(catalog, "idempotent", 1).await;
    let producer = catalog.init_producer(None).await.unwrap();
    // Seven commits of three offsets each; each run holds one idempotent batch
    // of two offsets after one offset of a non-idempotent batch.
    for i in 0..7 {
        let mut batch = idempotent(producer.producer_id, producer.epoch, i * 2, i * 2 + 1);
        batch.append_time_ms = 50 + i64::from(i);
        let append = run_of(&topic, 0, 0, vec![plain(1), batch]);
        commit(catalog, &format!("p{i}"), &[append]).await;
    }
    let batches = catalog
        .producer_batches(topic.id, 0, producer.producer_id)
        .await
        .unwrap();
    let expected: Vec<ProducerBatch> = (2..7)
        .map(|i| ProducerBatch {
            producer_id: producer.producer_id,
            epoch: 0,
            first_sequence: i * 2,
            last_sequence: i * 2 + 1,
            base_offset: i64::from(i) * 3 + 1,
            append_time_ms: 50 + i64::from(i),
        })
        .collect();
    assert_eq!(batches, expected);
    assert_eq!(
        catalog
            .producer_batches(topic.id, 0, producer.producer_id + 1)
            .await
            .unwrap(),
        vec![]
    );
}

/// The write path's group commit: several objects in one transaction get their
/// offsets in object order, the index's running max timestamp carries across
/// them, and the producer windows are trimmed over the whole group.
pub async fn objects_committed_together_get_offsets_in_order(catalog: &dyn Catalog) {
    let topic = create(catalog, "grouped", 2).await;
    let doomed = create(catalog, "doomed", 1).await;
    catalog.delete_topic("doomed").await.unwrap();
    let producer = catalog.init_producer(None).await.unwrap();
    let idempotent = |position: i64, sequence: i32| {
        let mut batch = idempotent(producer.producer_id, producer.epoch, sequence, sequence + 1);
        batch.max_timestamp = 5_000;
        run_of(&topic, 0, position, vec![batch])
    };
    let commits = vec![
        ObjectCommit {
            object: object("g1"),
            runs: vec![idempotent(0, 0), run_at(&topic, 1, 200, 3, 9_000)],
        },
        ObjectCommit {
            object: object("g2"),
            runs: vec![idempotent(0, 2), run_at(&doomed, 0, 200, 1, 1)],
        },
        ObjectCommit {
            object: object("g3"),
            runs: (0..5)
                .map(|i| idempotent(i * 200, 4 + 2 * i as i32))
                .chain([run_at(&topic, 1, 2_000, 1, 7_000)])
                .collect(),
        },
    ];
    let outcomes = catalog.commit_objects(&commits).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            vec![appended(0), appended(0)],
            vec![appended(2), RunOutcome::UnknownPartition],
            vec![
                appended(4),
                appended(6),
                appended(8),
                appended(10),
                appended(12),
                appended(3)
            ],
        ]
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(0, 14)
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 1).await.unwrap(),
        offsets(0, 4)
    );
    let p1 = all_entries(catalog, topic.id, 1).await;
    assert_eq!(
        p1,
        vec![
            entry(0, 2, "g1", 200, 9_000),
            entry(3, 3, "g3", 2_000, 7_000)
        ]
    );
    // The second entry's own timestamp is lower, but the running maximum keeps
    // the lookup for 8,000 on the first.
    let found = catalog
        .first_entry_at_or_after_timestamp(topic.id, 1, 8_000)
        .await
        .unwrap();
    assert_eq!(found, Some(entry(0, 2, "g1", 200, 9_000)));
    let kept: Vec<i64> = catalog
        .producer_batches(topic.id, 0, producer.producer_id)
        .await
        .unwrap()
        .iter()
        .map(|batch| batch.base_offset)
        .collect();
    assert_eq!(kept, vec![4, 6, 8, 10, 12]);

    // One bad object (a key already used) fails the whole group.
    let failing = vec![
        ObjectCommit {
            object: object("g4"),
            runs: vec![run(&topic, 1, 0, 1)],
        },
        ObjectCommit {
            object: object("g1"),
            runs: vec![run(&topic, 1, 0, 1)],
        },
    ];
    assert!(catalog.commit_objects(&failing).await.is_err());
    assert_eq!(
        catalog.partition_offsets(topic.id, 1).await.unwrap(),
        offsets(0, 4)
    );
}
