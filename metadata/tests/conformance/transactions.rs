//! Transactions: the coordinator's transitions on a transactional id's row,
//! and the commit's judgement of transactional data and markers, through two
//! catalog handles on one database (two agents).

use std::time::Duration;

use streamhouse_metadata::producers::{ProducerError, ProducerIdentity};
use streamhouse_metadata::transactions::{
    AbortedTxn, Completion, EndOutcome, InitOutcome, TxnAppend, TxnError, TxnOffset,
};
use streamhouse_metadata::{AppendOutcome, AppendSlice, Catalog, CatalogError, RunOutcome, Topic};

use crate::cases::{commit, create, idempotent, plain, run_of};
use crate::harness::TestDb;

fn data(producer: ProducerIdentity, first: i32, last: i32) -> AppendSlice {
    AppendSlice {
        txn: Some(TxnAppend::Data),
        ..idempotent(producer.producer_id, producer.epoch, first, last)
    }
}

fn marker(completion: &Completion) -> AppendSlice {
    AppendSlice {
        txn: Some(TxnAppend::Marker(completion.marker())),
        ..plain(1)
    }
}

async fn append(
    catalog: &dyn Catalog,
    key: &str,
    topic: &Topic,
    slice: AppendSlice,
) -> AppendOutcome {
    let outcomes = commit(catalog, key, &[run_of(topic, 0, 0, vec![slice])]).await;
    let [RunOutcome::Committed(appends)] = outcomes.as_slice() else {
        panic!("not committed: {outcomes:?}")
    };
    appends[0].clone()
}

async fn ready(catalog: &dyn Catalog, id: &str, timeout_ms: i32) -> ProducerIdentity {
    match catalog
        .init_transactional_producer(id, timeout_ms, None)
        .await
        .unwrap()
    {
        InitOutcome::Ready(identity) => identity,
        other => panic!("not ready: {other:?}"),
    }
}

async fn prepared(
    catalog: &dyn Catalog,
    id: &str,
    producer: ProducerIdentity,
    commit: bool,
) -> Completion {
    match catalog
        .end_transaction(id, producer, commit, false)
        .await
        .unwrap()
    {
        EndOutcome::MustComplete(completion) => completion,
        other => panic!("not prepared: {other:?}"),
    }
}

async fn first_unstable(catalog: &dyn Catalog, topic: &Topic) -> Option<i64> {
    catalog.first_unstable_offset(topic.id, 0).await.unwrap()
}

pub async fn a_transaction_commits_and_its_marker_is_appended_once(db: &TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    let topic = create(&*a, "orders", 1).await;
    let producer = ready(&*a, "app", 60_000).await;
    assert_eq!(producer.epoch, 0);
    // Data for a partition not in a transaction is refused, taking no offset.
    assert_eq!(
        append(&*a, "refused", &topic, data(producer, 0, 2)).await,
        AppendOutcome::Refused(ProducerError::NotInTransaction {
            producer_id: producer.producer_id,
            epoch: 0,
        })
    );
    a.add_partitions_to_transaction("app", producer, &[(topic.id, 0)])
        .await
        .unwrap();
    append(&*a, "plain", &topic, plain(2)).await;
    assert_eq!(
        first_unstable(&*b, &topic).await,
        None,
        "added, no data yet"
    );
    let appended = append(&*b, "data", &topic, data(producer, 0, 2)).await;
    assert!(matches!(
        appended,
        AppendOutcome::Appended { base_offset: 2, .. }
    ));
    assert_eq!(first_unstable(&*a, &topic).await, Some(2));
    assert_eq!(
        a.open_transactions(topic.id, 0).await.unwrap(),
        vec![(producer.producer_id, 2)]
    );

    let completion = prepared(&*a, "app", producer, true).await;
    assert_eq!(completion.partitions, vec![(topic.id, 0)]);
    // Prepared: a new transaction must wait for the markers.
    assert!(matches!(
        b.add_partitions_to_transaction("app", producer, &[(topic.id, 0)])
            .await,
        Err(CatalogError::Transaction(TxnError::ConcurrentTransactions(
            _
        )))
    ));
    let written = append(&*b, "marker", &topic, marker(&completion)).await;
    assert!(matches!(
        written,
        AppendOutcome::Appended { base_offset: 5, .. }
    ));
    assert_eq!(first_unstable(&*a, &topic).await, None);
    // A second completion's marker is dropped: no offset taken.
    assert!(matches!(
        append(&*a, "marker-again", &topic, marker(&completion)).await,
        AppendOutcome::Duplicate { .. }
    ));
    b.complete_transaction(&completion).await.unwrap();
    a.complete_transaction(&completion).await.unwrap();
    assert_eq!(
        a.end_transaction("app", producer, true, false)
            .await
            .unwrap(),
        EndOutcome::Done(producer)
    );
    assert!(matches!(
        a.end_transaction("app", producer, false, false).await,
        Err(CatalogError::Transaction(TxnError::InvalidTxnState { .. }))
    ));
    let offsets = a.partition_offsets(topic.id, 0).await.unwrap().unwrap();
    assert_eq!(offsets.high_watermark, 6);
    assert_eq!(
        a.aborted_transactions(topic.id, 0, 0, 6).await.unwrap(),
        vec![]
    );
}

pub async fn a_new_incarnation_fences_and_aborts_the_open_transaction(db: &TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    let topic = create(&*a, "orders", 1).await;
    let first = ready(&*a, "app", 60_000).await;
    a.add_partitions_to_transaction("app", first, &[(topic.id, 0)])
        .await
        .unwrap();
    append(&*a, "data", &topic, data(first, 0, 1)).await;
    let InitOutcome::MustComplete(abort) = b
        .init_transactional_producer("app", 60_000, None)
        .await
        .unwrap()
    else {
        panic!("the open transaction must be aborted first")
    };
    assert!(!abort.commit);
    assert_eq!(abort.epoch, 1, "fenced by a bumped epoch");
    // The old epoch is fenced at the coordinator at once.
    assert!(matches!(
        a.end_transaction("app", first, true, false).await,
        Err(CatalogError::Transaction(TxnError::ProducerFenced {
            current: 1,
            ..
        }))
    ));
    append(&*b, "abort", &topic, marker(&abort)).await;
    // ... and on the partition once the marker is in.
    assert_eq!(
        append(&*a, "zombie", &topic, data(first, 2, 2)).await,
        AppendOutcome::Refused(ProducerError::InvalidProducerEpoch {
            producer_id: first.producer_id,
            epoch: 0,
            current: 1,
        })
    );
    assert_eq!(
        a.aborted_transactions(topic.id, 0, 0, 10).await.unwrap(),
        vec![AbortedTxn {
            producer_id: first.producer_id,
            first_offset: 0,
        }]
    );
    // Outside the range asked for: not listed.
    assert_eq!(
        a.aborted_transactions(topic.id, 0, 3, 10).await.unwrap(),
        vec![]
    );
    // Below the log start it is forgotten.
    a.delete_records(topic.id, 0, 2).await.unwrap();
    assert_eq!(
        a.aborted_transactions(topic.id, 0, 0, 10)
            .await
            .unwrap()
            .len(),
        1,
        "its marker (offset 2) is still readable"
    );
    a.delete_records(topic.id, 0, 3).await.unwrap();
    assert_eq!(
        a.aborted_transactions(topic.id, 0, 0, 10).await.unwrap(),
        vec![]
    );
    b.complete_transaction(&abort).await.unwrap();
    let second = ready(&*b, "app", 60_000).await;
    assert_eq!(
        second,
        ProducerIdentity {
            producer_id: first.producer_id,
            epoch: 2,
        }
    );
    assert_eq!(
        b.describe_transaction("app")
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str(),
        "Empty"
    );
}

pub async fn timed_out_transactions_are_fenced_and_handed_out_once(db: &TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    let topic = create(&*a, "orders", 1).await;
    let producer = ready(&*a, "slow", 1).await;
    a.add_partitions_to_transaction("slow", producer, &[(topic.id, 0)])
        .await
        .unwrap();
    let _open_long = ready(&*a, "patient", 3_600_000).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let found = b.transactions_to_finish(60_000, 10).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].transactional_id, "slow");
    assert_eq!((found[0].commit, found[0].epoch), (false, 1));
    // Prepared just now: not stalled, not handed out again.
    assert_eq!(a.transactions_to_finish(60_000, 10).await.unwrap(), vec![]);
    // Left prepared (its completer died): handed out as it is.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stalled = a.transactions_to_finish(10, 10).await.unwrap();
    assert_eq!(stalled, found);
    a.complete_transaction(&stalled[0]).await.unwrap();
    // The fenced producer may still abort (a retry), not commit.
    assert_eq!(
        a.end_transaction("slow", producer, false, false)
            .await
            .unwrap(),
        EndOutcome::Done(ProducerIdentity {
            epoch: 1,
            ..producer
        })
    );
    assert!(matches!(
        a.end_transaction("slow", producer, true, false).await,
        Err(CatalogError::Transaction(TxnError::ProducerFenced { .. }))
    ));
}

pub async fn transaction_offsets_reach_the_group_only_when_it_commits(db: &TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    create(&*a, "orders", 1).await;
    let producer = ready(&*a, "copier", 60_000).await;
    let offset = |offset| TxnOffset {
        topic: "orders".into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: Some("m".into()),
    };
    assert!(matches!(
        a.commit_transaction_offsets("copier", producer, "g", &[offset(5)])
            .await,
        Err(CatalogError::Transaction(TxnError::InvalidTxnState { .. }))
    ));
    for (commit, expected) in [(false, None), (true, Some(7))] {
        a.add_group_to_transaction("copier", producer, "g")
            .await
            .unwrap();
        a.commit_transaction_offsets("copier", producer, "g", &[offset(7)])
            .await
            .unwrap();
        assert!(b
            .has_pending_transaction_offsets("g", "orders", 0)
            .await
            .unwrap());
        let completion = prepared(&*b, "copier", producer, commit).await;
        assert_eq!(completion.partitions, vec![]);
        b.complete_transaction(&completion).await.unwrap();
        assert!(!a
            .has_pending_transaction_offsets("g", "orders", 0)
            .await
            .unwrap());
        let committed: Option<i64> = a
            .committed_offsets("g")
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.topic == "orders" && c.partition == 0)
            .map(|c| c.offset);
        assert_eq!(committed, expected, "commit {commit}");
    }
}

/// Transaction version 2: every EndTxn bumps the epoch, which the markers
/// carry and the producer continues with; a retry under the old epoch is
/// answered with the new one.
pub async fn transaction_version_2_bumps_the_epoch_at_every_end(db: &TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    let topic = create(&*a, "orders", 1).await;
    let first = ready(&*a, "v2", 60_000).await;
    a.add_partitions_to_transaction("v2", first, &[(topic.id, 0)])
        .await
        .unwrap();
    append(&*a, "data", &topic, data(first, 0, 1)).await;
    let EndOutcome::MustComplete(completion) =
        b.end_transaction("v2", first, true, true).await.unwrap()
    else {
        panic!("not prepared")
    };
    assert_eq!(completion.epoch, 1, "the markers carry the next epoch");
    append(&*b, "marker", &topic, marker(&completion)).await;
    b.complete_transaction(&completion).await.unwrap();
    let next = ProducerIdentity { epoch: 1, ..first };
    // The client's retry under its old epoch learns the new one.
    assert_eq!(
        a.end_transaction("v2", first, true, true).await.unwrap(),
        EndOutcome::Done(next)
    );
    // The old epoch can begin nothing; the new one goes on from sequence 0.
    assert!(matches!(
        a.add_partitions_to_transaction("v2", first, &[(topic.id, 0)])
            .await,
        Err(CatalogError::Transaction(TxnError::ProducerFenced { .. }))
    ));
    a.add_partitions_to_transaction("v2", next, &[(topic.id, 0)])
        .await
        .unwrap();
    assert!(matches!(
        append(&*a, "old-epoch", &topic, data(first, 2, 2)).await,
        AppendOutcome::Refused(ProducerError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        append(&*a, "next", &topic, data(next, 0, 0)).await,
        AppendOutcome::Appended { base_offset: 3, .. }
    ));
}
