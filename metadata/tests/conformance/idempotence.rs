//! Idempotent producers' sequences, judged by the commit: whichever agent
//! (catalog handle) commits a batch, retries are appended once and answered
//! with the original's offset and append time, and a run keeps only the
//! appends the rules accept.

use streamhouse_metadata::producers::{ProducerBatch, ProducerError};
use streamhouse_metadata::{AppendOutcome, Catalog, ObjectCommit, RunOutcome};

use crate::cases::{
    all_entries, commit, create, entry, idempotent, object, offsets, plain, run_of,
};
use crate::harness::TestDb;

fn appended(base_offset: i64, append_time_ms: i64) -> AppendOutcome {
    AppendOutcome::Appended {
        base_offset,
        append_time_ms,
    }
}

fn duplicate(base_offset: i64, append_time_ms: i64) -> AppendOutcome {
    AppendOutcome::Duplicate {
        base_offset,
        append_time_ms,
    }
}

fn out_of_order(producer_id: i64, expected: i32, received: i32) -> AppendOutcome {
    AppendOutcome::Refused(ProducerError::OutOfOrderSequence {
        producer_id,
        expected,
        received,
    })
}

async fn high_watermark(catalog: &dyn Catalog, topic: &streamhouse_metadata::Topic) -> i64 {
    catalog
        .partition_offsets(topic.id, 0)
        .await
        .unwrap()
        .unwrap()
        .high_watermark
}

/// A retry of one batch reaching two agents: the second commit finds the
/// first's batch in the catalog, whatever the second agent saw before.
pub async fn a_batch_committed_through_another_agent_is_a_duplicate_with_its_offset_and_time(
    db: &TestDb,
) {
    let (a, b) = (db.open().await, db.open().await);
    let topic = create(&*a, "orders", 1).await;
    let pid = a.init_producer(None).await.unwrap().producer_id;
    commit(&*a, "first", &[run_of(&topic, 0, 0, vec![plain(2)])]).await;
    let mut batch = idempotent(pid, 0, 0, 2);
    batch.append_time_ms = 7_000;
    let first = commit(&*a, "a1", &[run_of(&topic, 0, 0, vec![batch])]).await;
    assert_eq!(first, vec![RunOutcome::Committed(vec![appended(2, 7_000)])]);

    // The retry was stamped later by the other agent; the answer is the original's.
    batch.append_time_ms = 9_000;
    let retry = commit(&*b, "b1", &[run_of(&topic, 0, 0, vec![batch])]).await;
    assert_eq!(
        retry,
        vec![RunOutcome::Committed(vec![duplicate(2, 7_000)])]
    );
    assert_eq!(high_watermark(&*b, &topic).await, 5, "appended once");
    assert_eq!(all_entries(&*b, topic.id, 0).await.len(), 2);

    // The producer goes on through either agent.
    let next = commit(
        &*b,
        "b2",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 3, 3)])],
    )
    .await;
    assert_eq!(next, vec![RunOutcome::Committed(vec![appended(5, -1)])]);
    let after = commit(
        &*a,
        "a2",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 4, 5)])],
    )
    .await;
    assert_eq!(after, vec![RunOutcome::Committed(vec![appended(6, -1)])]);
    assert_eq!(high_watermark(&*a, &topic).await, 8);
}

pub async fn a_gap_in_sequences_is_out_of_order_and_takes_no_offsets(db: &TestDb) {
    let catalog = db.open().await;
    let topic = create(&*catalog, "orders", 1).await;
    let pid = catalog.init_producer(None).await.unwrap().producer_id;
    commit(
        &*catalog,
        "o1",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 0, 1)])],
    )
    .await;
    let gap = commit(
        &*catalog,
        "o2",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 5, 6)])],
    )
    .await;
    assert_eq!(
        gap,
        vec![RunOutcome::Committed(vec![out_of_order(pid, 2, 5)])]
    );
    assert_eq!(high_watermark(&*catalog, &topic).await, 2);
    assert_eq!(all_entries(&*catalog, topic.id, 0).await.len(), 1);
    let window = catalog.producer_batches(topic.id, 0, pid).await.unwrap();
    assert_eq!(window.len(), 1, "the refused batch is not recorded");

    // A sequence older than the five kept is out of order too, as in Kafka.
    for i in 1..6 {
        let batch = idempotent(pid, 0, i * 2, i * 2 + 1);
        commit(
            &*catalog,
            &format!("n{i}"),
            &[run_of(&topic, 0, 0, vec![batch])],
        )
        .await;
    }
    let forgotten = commit(
        &*catalog,
        "old",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 0, 1)])],
    )
    .await;
    assert_eq!(
        forgotten,
        vec![RunOutcome::Committed(vec![out_of_order(pid, 12, 0)])]
    );
}

pub async fn a_stale_epoch_is_refused_and_a_new_epoch_restarts_at_zero(db: &TestDb) {
    let catalog = db.open().await;
    let topic = create(&*catalog, "orders", 1).await;
    let old = catalog.init_producer(None).await.unwrap();
    let pid = old.producer_id;
    commit(
        &*catalog,
        "e0",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 0, 0)])],
    )
    .await;
    let new = catalog.init_producer(Some(old)).await.unwrap();
    assert_eq!(new.epoch, 1);
    let outcomes = commit(
        &*catalog,
        "e1",
        &[run_of(
            &topic,
            0,
            0,
            vec![
                idempotent(pid, 1, 0, 0),
                idempotent(pid, 0, 1, 1),
                idempotent(pid, 2, 3, 3),
                idempotent(pid, 1, 1, 2),
            ],
        )],
    )
    .await;
    assert_eq!(
        outcomes,
        vec![RunOutcome::Committed(vec![
            appended(1, -1),
            AppendOutcome::Refused(ProducerError::InvalidProducerEpoch {
                producer_id: pid,
                epoch: 0,
                current: 1
            }),
            out_of_order(pid, 0, 3),
            appended(2, -1),
        ])]
    );
    assert_eq!(high_watermark(&*catalog, &topic).await, 4);
}

/// A retry that landed in a later object of the same group commit, or later
/// in the same run, is caught by the window as updated inside the commit.
pub async fn a_duplicate_inside_one_commit_gets_the_offset_the_original_got_there(db: &TestDb) {
    let catalog = db.open().await;
    let topic = create(&*catalog, "orders", 1).await;
    let pid = catalog.init_producer(None).await.unwrap().producer_id;
    let commits = vec![
        ObjectCommit {
            object: object("g1"),
            runs: vec![run_of(&topic, 0, 0, vec![idempotent(pid, 0, 0, 1)])],
        },
        ObjectCommit {
            object: object("g2"),
            runs: vec![run_of(
                &topic,
                0,
                0,
                vec![
                    idempotent(pid, 0, 0, 1),
                    idempotent(pid, 0, 2, 2),
                    idempotent(pid, 0, 2, 2),
                ],
            )],
        },
    ];
    let outcomes = catalog.commit_objects(&commits).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            vec![RunOutcome::Committed(vec![appended(0, -1)])],
            vec![RunOutcome::Committed(vec![
                duplicate(0, -1),
                appended(2, -1),
                duplicate(2, -1),
            ])],
        ]
    );
    assert_eq!(high_watermark(&*catalog, &topic).await, 3);
    let window: Vec<(i32, i64)> = catalog
        .producer_batches(topic.id, 0, pid)
        .await
        .unwrap()
        .iter()
        .map(|b: &ProducerBatch| (b.first_sequence, b.base_offset))
        .collect();
    assert_eq!(window, vec![(0, 0), (2, 2)]);
}

/// A run keeps some of its appends: each span of consecutive kept appends is
/// one index entry pointing at exactly its bytes; the refused and duplicate
/// appends' bytes are skipped.
pub async fn a_run_is_split_into_entries_around_the_appends_it_does_not_keep(db: &TestDb) {
    let catalog = db.open().await;
    let topic = create(&*catalog, "orders", 1).await;
    let pid = catalog.init_producer(None).await.unwrap().producer_id;
    commit(
        &*catalog,
        "o1",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 0, 0)])],
    )
    .await;
    let at = |mut append: streamhouse_metadata::AppendSlice, max_timestamp| {
        append.max_timestamp = max_timestamp;
        append
    };
    // Bytes from 50: [plain 2: 200][dup: 100][plain 1: 100][idem 1..2: 200][gap: 100][plain 3: 300]
    let appends = vec![
        at(plain(2), 3_000),
        at(idempotent(pid, 0, 0, 0), 9_999),
        at(plain(1), 2_000),
        at(idempotent(pid, 0, 1, 2), 4_000),
        at(idempotent(pid, 0, 9, 9), 9_999),
        at(plain(3), 1_000),
    ];
    let outcomes = commit(&*catalog, "split", &[run_of(&topic, 0, 50, appends)]).await;
    assert_eq!(
        outcomes,
        vec![RunOutcome::Committed(vec![
            appended(1, -1),
            duplicate(0, -1),
            appended(3, -1),
            appended(4, -1),
            out_of_order(pid, 3, 9),
            appended(6, -1),
        ])]
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        offsets(0, 9)
    );
    let entries = all_entries(&*catalog, topic.id, 0).await;
    assert_eq!(
        entries,
        vec![
            entry(0, 0, "o1", 0, 1_000),
            entry(1, 2, "split", 50, 3_000),
            entry(3, 5, "split", 350, 4_000),
            entry(6, 8, "split", 750, 1_000),
        ]
    );
    // Offset for offset, each lookup lands in the entry holding it.
    for offset in 0..9 {
        let found = catalog.index_entries(topic.id, 0, offset, 1).await.unwrap();
        assert!(
            found[0].base_offset <= offset && offset <= found[0].last_offset,
            "{offset}: {found:?}"
        );
    }
    // The running maximum carries over the split: 4,000 is first reached at 3.
    let by_time = catalog
        .first_entry_at_or_after_timestamp(topic.id, 0, 3_500)
        .await
        .unwrap();
    assert_eq!(by_time, Some(entry(3, 5, "split", 350, 4_000)));

    // A run that keeps nothing adds no entry and takes no offsets.
    let nothing = commit(
        &*catalog,
        "none",
        &[run_of(&topic, 0, 0, vec![idempotent(pid, 0, 1, 2)])],
    )
    .await;
    assert_eq!(nothing, vec![RunOutcome::Committed(vec![duplicate(4, -1)])]);
    assert_eq!(all_entries(&*catalog, topic.id, 0).await.len(), 4);
}
