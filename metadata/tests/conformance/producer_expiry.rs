//! Expiry of idle producers' state (Kafka's `producer.id.expiration.ms`): a
//! producer's state on a partition goes whole once its newest batch there is
//! older than the expiration, by the catalog's clock; an active producer keeps
//! every batch of its window; producer ids expire but are never handed out
//! again.
//!
//! The catalog's clock is the database's, so the cases wait for real: batches
//! committed before a pause of [`PAUSE`] are idle for an expiration of
//! [`EXPIRATION_MS`], those committed after it are not.

use std::time::Duration;

use streamhouse_metadata::producers::{ExpiryCursor, ExpiryStep, ProducerIdentity};
use streamhouse_metadata::{AppendOutcome, Catalog, CatalogError, RunOutcome, Topic};

use crate::cases::{commit, create, idempotent, run_of};
use crate::harness::TestDb;

const EXPIRATION_MS: i64 = 700;
/// Twice the expiration: what was committed before it is idle, what is
/// committed after it has the whole expiration left before it would be.
const PAUSE: Duration = Duration::from_millis(1400);

/// A whole pass in steps of at most `limit` batches: (steps, total removed).
async fn expire_all(catalog: &dyn Catalog, limit: u32) -> (usize, ExpiryStep) {
    let mut from = ExpiryCursor::default();
    let mut total = ExpiryStep::default();
    for steps in 1.. {
        let step = catalog
            .expire_producer_states(EXPIRATION_MS, &from, limit)
            .await
            .unwrap();
        total.states_removed += step.states_removed;
        total.batches_removed += step.batches_removed;
        match step.next {
            Some(next) => {
                assert_ne!(next, from, "a step moves the cursor on");
                from = next;
            }
            None => return (steps, total),
        }
        assert!(steps < 100, "a pass of a few batches ends");
    }
    unreachable!()
}

/// Commits one idempotent batch of `first ..= last` to `partition`.
async fn produce(
    catalog: &dyn Catalog,
    topic: &Topic,
    partition: i32,
    producer: ProducerIdentity,
    first: i32,
    last: i32,
) -> AppendOutcome {
    let key = format!("o-{}", uuid::Uuid::new_v4());
    let batch = idempotent(producer.producer_id, producer.epoch, first, last);
    let outcome = commit(catalog, &key, &[run_of(topic, partition, 0, vec![batch])]).await;
    match &outcome[..] {
        [RunOutcome::Committed(appends)] => appends[0].clone(),
        _ => panic!("{outcome:?}"),
    }
}

fn appended_at(base_offset: i64) -> AppendOutcome {
    AppendOutcome::Appended {
        base_offset,
        append_time_ms: -1,
    }
}

fn duplicate_of(base_offset: i64) -> AppendOutcome {
    AppendOutcome::Duplicate {
        base_offset,
        append_time_ms: -1,
    }
}

/// (first, last) sequences of a producer's recorded batches on a partition.
async fn window(
    catalog: &dyn Catalog,
    topic: &Topic,
    partition: i32,
    producer_id: i64,
) -> Vec<(i32, i32)> {
    catalog
        .producer_batches(topic.id, partition, producer_id)
        .await
        .unwrap()
        .iter()
        .map(|b| (b.first_sequence, b.last_sequence))
        .collect()
}

pub async fn an_idle_producers_state_expires_whole_and_an_active_ones_is_kept_whole(db: &TestDb) {
    let catalog = db.open().await;
    let catalog = &*catalog;
    let topic = create(catalog, "expiry", 2).await;
    let a = catalog.init_producer(None).await.unwrap();
    let b = catalog.init_producer(None).await.unwrap();
    assert_eq!(produce(catalog, &topic, 0, a, 0, 1).await, appended_at(0));
    assert_eq!(produce(catalog, &topic, 0, a, 2, 3).await, appended_at(2));
    assert_eq!(produce(catalog, &topic, 1, a, 0, 0).await, appended_at(0));
    for seq in 0..5 {
        produce(catalog, &topic, 0, b, seq, seq).await;
    }
    tokio::time::sleep(PAUSE).await;
    // B goes on writing to partition 0, A to partition 1 only.
    assert_eq!(produce(catalog, &topic, 0, b, 5, 5).await, appended_at(9));
    assert_eq!(produce(catalog, &topic, 1, a, 1, 1).await, appended_at(1));

    let (_, removed) = expire_all(catalog, 1000).await;
    assert_eq!((removed.states_removed, removed.batches_removed), (1, 2));
    assert_eq!(window(catalog, &topic, 0, a.producer_id).await, vec![]);
    assert_eq!(
        window(catalog, &topic, 1, a.producer_id).await,
        vec![(0, 0), (1, 1)],
        "A's state on the partition it still writes to is kept"
    );
    assert_eq!(
        window(catalog, &topic, 0, b.producer_id).await,
        vec![(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)],
        "an active producer keeps its whole window, batches older than the expiration too"
    );

    // A is now unknown on partition 0: its retry is appended again, as Kafka
    // appends a batch of a producer it has expired.
    assert_eq!(produce(catalog, &topic, 0, a, 2, 3).await, appended_at(10));
    // B's retry of a batch older than the expiration is still recognised.
    assert_eq!(produce(catalog, &topic, 0, b, 1, 1).await, duplicate_of(5));
    let (_, again) = expire_all(catalog, 1000).await;
    assert_eq!(again, ExpiryStep::default(), "nothing else is idle");
}

pub async fn a_pass_in_small_steps_removes_every_idle_state_and_passes_active_ones(db: &TestDb) {
    let catalog = db.open().await;
    let catalog = &*catalog;
    let topic = create(catalog, "steps", 1).await;
    let active = catalog.init_producer(None).await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(catalog.init_producer(None).await.unwrap());
    }
    // The active producer's old batches come first in commit order, so every
    // step of the pass has to get past them.
    for seq in 0..4 {
        produce(catalog, &topic, 0, active, seq, seq).await;
    }
    for (i, producer) in idle.iter().enumerate() {
        for seq in 0..=(i as i32) {
            produce(catalog, &topic, 0, *producer, seq, seq).await;
        }
    }
    tokio::time::sleep(PAUSE).await;
    produce(catalog, &topic, 0, active, 4, 4).await;

    let (steps, removed) = expire_all(catalog, 2).await;
    // In commit order: the active producer's four old batches (two steps),
    // then the idle ones' 1 + 2 + 3. Step 3 reads the first two idle
    // producers' first batches and removes both states whole, step 4 the third
    // producer's first two batches (it removes all three), and step 5 finds
    // nothing after them.
    assert_eq!(steps, 5);
    assert_eq!((removed.states_removed, removed.batches_removed), (3, 6));
    for producer in &idle {
        assert_eq!(
            window(catalog, &topic, 0, producer.producer_id).await,
            vec![]
        );
    }
    assert_eq!(
        window(catalog, &topic, 0, active.producer_id).await,
        vec![(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    );
    let producers = catalog.partition_producers(topic.id, 0).await.unwrap();
    assert_eq!(
        producers.iter().map(|b| b.producer_id).collect::<Vec<_>>(),
        vec![active.producer_id]
    );
}

pub async fn expired_producer_ids_are_forgotten_and_never_handed_out_again(db: &TestDb) {
    let catalog = db.open().await;
    let catalog = &*catalog;
    let old = [
        catalog.init_producer(None).await.unwrap(),
        catalog.init_producer(None).await.unwrap(),
    ];
    let bumped_early = catalog.init_producer(None).await.unwrap();
    tokio::time::sleep(PAUSE).await;
    let young = catalog.init_producer(None).await.unwrap();
    // A bump makes an id young again.
    let bumped = catalog.init_producer(Some(bumped_early)).await.unwrap();
    assert_eq!(bumped.epoch, 1);

    // At most `limit` a step.
    assert_eq!(
        catalog.expire_producer_ids(EXPIRATION_MS, 1).await.unwrap(),
        1
    );
    assert_eq!(
        catalog.expire_producer_ids(EXPIRATION_MS, 1).await.unwrap(),
        1
    );
    assert_eq!(
        catalog.expire_producer_ids(EXPIRATION_MS, 1).await.unwrap(),
        0
    );

    let next = catalog.init_producer(None).await.unwrap();
    assert!(
        next.producer_id > young.producer_id,
        "{next:?} after {young:?}"
    );
    // A bump of a forgotten id gets a new id, as Kafka answers InitProducerId
    // without a transactional id.
    let renewed = catalog.init_producer(Some(old[0])).await.unwrap();
    assert_eq!(renewed.epoch, 0);
    assert!(
        renewed.producer_id > next.producer_id,
        "{renewed:?} after {next:?}"
    );
    // Kept ids bump as before.
    assert_eq!(
        catalog.init_producer(Some(young)).await.unwrap(),
        ProducerIdentity {
            producer_id: young.producer_id,
            epoch: 1
        }
    );
    assert_eq!(catalog.init_producer(Some(bumped)).await.unwrap().epoch, 2);
    // An id never handed out is still unknown.
    let never = ProducerIdentity {
        producer_id: next.producer_id + 1_000,
        epoch: 0,
    };
    assert!(matches!(
        catalog.init_producer(Some(never)).await,
        Err(CatalogError::UnknownProducer(id)) if id == never.producer_id
    ));
}
