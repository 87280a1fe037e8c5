//! The catalog failing under an idempotent producer: PostgreSQL aborting
//! commits as serialisation failures, and every catalog connection dropped
//! again and again mid-load. Nothing acknowledged may be lost, nothing may be
//! appended twice, and the agents must recover without a restart (including
//! another agent's long poll, woken through PostgreSQL's notifications).
//!
//! PostgreSQL only: these are its failure modes (SQLite's, a full disk and a
//! held lock, are tested in the metadata crate). Each test has a database of
//! its own, so the faults reach no other test.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    create_topic, decode_records, fetch, fetch_request, produce, producer_batch, unique_topic,
    Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use sqlx::{Connection, PgConnection};

const RECORDS_PER_BATCH: usize = 4;
/// Kafka's codes a producer stops on rather than retries.
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

async fn init_producer(client: &mut TestClient) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let ResponseKind::InitProducerId(r) = client.call(ApiKey::InitProducerId, 4, &request).await
    else {
        panic!("not an InitProducerId response")
    };
    assert_eq!(r.error_code, 0, "InitProducerId");
    r.producer_id.0
}

fn batch(producer_id: i64, number: usize) -> Bytes {
    let first = number * RECORDS_PER_BATCH;
    producer_batch(
        RECORDS_PER_BATCH,
        first,
        1,
        Compression::None,
        producer_id,
        0,
        first as i32,
    )
}

/// Sends batch `number`, retried with its sequence until acknowledged, as an
/// idempotent producer does; returns its acknowledged base offset and how many
/// answers were errors.
async fn produce_until_acked(
    client: &mut TestClient,
    topic: &str,
    producer_id: i64,
    number: usize,
) -> (i64, usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut errors = 0;
    loop {
        let (error, base_offset) = produce(client, topic, 0, batch(producer_id, number)).await;
        if error == 0 {
            return (base_offset, errors);
        }
        assert!(
            error != OUT_OF_ORDER_SEQUENCE_NUMBER && error != INVALID_PRODUCER_EPOCH,
            "batch {number}: fatal error {error}"
        );
        assert!(
            Instant::now() < deadline,
            "batch {number} not acknowledged within 60 s (last error {error})"
        );
        errors += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Batches `0..batches`, one after the other: their acknowledged offsets and
/// the errors answered on the way.
async fn produce_idempotently(
    client: &mut TestClient,
    topic: &str,
    producer_id: i64,
    batches: usize,
) -> (Vec<i64>, usize) {
    let mut acked = Vec::with_capacity(batches);
    let mut errors = 0;
    for number in 0..batches {
        let (offset, failed) = produce_until_acked(client, topic, producer_id, number).await;
        acked.push(offset);
        errors += failed;
    }
    (acked, errors)
}

/// Every record of partition 0 as (offset, key), read until the high
/// watermark.
async fn read_partition(client: &mut TestClient, topic: &str) -> Vec<(i64, String)> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let data = fetch(client, &fetch_request(topic, 0, offset, 0)).await;
        assert_eq!(data.error_code, 0, "fetch from {offset}");
        let batch: Vec<_> = data
            .records
            .map(decode_records)
            .unwrap_or_default()
            .into_iter()
            .map(|(offset, key, _)| (offset, key))
            .collect();
        if let Some((last, _)) = batch.last() {
            offset = last + 1;
        }
        records.extend(batch);
        if offset >= data.high_watermark {
            return records;
        }
    }
}

/// The log holds batch `n`'s records at its acknowledged offset, each record
/// once, and nothing else.
fn assert_exactly_once(records: &[(i64, String)], acked: &[i64]) {
    let expected: Vec<(i64, String)> = acked
        .iter()
        .enumerate()
        .flat_map(|(number, &base)| {
            (0..RECORDS_PER_BATCH).map(move |i| {
                let record = number * RECORDS_PER_BATCH + i;
                (base + i as i64, format!("key-{record}"))
            })
        })
        .collect();
    assert_eq!(records.len(), expected.len(), "records in the log");
    assert_eq!(records, &expected[..]);
}

async fn catalog(broker: &TestBroker) -> PgConnection {
    PgConnection::connect(&broker.catalog_url)
        .await
        .expect("connect to the broker's catalog")
}

/// PostgreSQL aborts every third write of a partition's head as a
/// serialisation failure, as it does to one side of a conflict: the catalog
/// retries the whole commit, so every batch is acknowledged once, at
/// consecutive offsets, and the client never sees the conflict.
#[tokio::test]
async fn serialization_failures_are_retried_and_append_once() {
    let broker = TestBroker::start(Backend::PostgresS3).await;
    let mut client = broker.client().await;
    let topic = unique_topic("serialization");
    create_topic(&mut client, &topic, 1).await;
    let producer_id = init_producer(&mut client).await;

    let mut db = catalog(&broker).await;
    for statement in [
        "CREATE SEQUENCE fault_calls",
        "CREATE SEQUENCE faults_injected",
        "CREATE FUNCTION inject_serialization_failure() RETURNS trigger AS $$
         BEGIN
             IF nextval('fault_calls') % 3 = 0 THEN
                 PERFORM nextval('faults_injected');
                 RAISE EXCEPTION 'injected conflict' USING ERRCODE = 'serialization_failure';
             END IF;
             RETURN NEW;
         END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER serialization_faults BEFORE UPDATE ON partitions
         FOR EACH ROW EXECUTE FUNCTION inject_serialization_failure()",
    ] {
        sqlx::query(statement).execute(&mut db).await.unwrap();
    }

    let (acked, errors) = produce_idempotently(&mut client, &topic, producer_id, 30).await;
    let injected: i64 = sqlx::query_scalar("SELECT last_value FROM faults_injected")
        .fetch_one(&mut db)
        .await
        .unwrap();
    eprintln!("serialization failures injected: {injected}, produce errors: {errors}");
    assert!(injected >= 10, "only {injected} failures injected");
    assert_eq!(errors, 0, "a conflict reached the client");
    let expected: Vec<i64> = (0..30).map(|n| (n * RECORDS_PER_BATCH) as i64).collect();
    assert_eq!(acked, expected);
    sqlx::query("DROP TRIGGER serialization_faults ON partitions")
        .execute(&mut db)
        .await
        .unwrap();
    assert_exactly_once(&read_partition(&mut client, &topic).await, &acked);
}

/// Drops every connection of the catalog's database every 40 ms until
/// `stop`; counts the connections it dropped.
fn drop_connections_until(
    catalog_url: String,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut db = PgConnection::connect(&catalog_url).await.unwrap();
        while !stop.load(Ordering::Relaxed) {
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            dropped.fetch_add(count as u64, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

/// Two agents; every connection to the catalog (pools, the notification
/// listener) is dropped every 40 ms while a producer writes through one of
/// them, so commits fail before, during and after their COMMIT. The producer
/// retries as an idempotent client does: in the end every batch is
/// acknowledged, the log holds each once at its acknowledged offset, and,
/// once the faults stop, both agents serve without a restart, the other
/// agent's long poll woken by the next append.
#[tokio::test]
async fn dropped_catalog_connections_lose_nothing_and_the_agents_recover() {
    let a = TestBroker::start(Backend::PostgresS3).await;
    let b = a.another_agent(|_| {}).await;
    let mut to_a = a.client().await;
    let topic = unique_topic("dropped");
    create_topic(&mut to_a, &topic, 1).await;
    let producer_id = init_producer(&mut to_a).await;

    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let dropper = drop_connections_until(a.catalog_url.clone(), stop.clone(), dropped.clone());
    let (mut acked, errors) = produce_idempotently(&mut to_a, &topic, producer_id, 60).await;
    stop.store(true, Ordering::Relaxed);
    dropper.await.unwrap();
    let dropped = dropped.load(Ordering::Relaxed);
    eprintln!("catalog connections dropped: {dropped}, produce errors retried: {errors}");
    assert!(dropped >= 20, "only {dropped} connections dropped");
    assert!(
        errors > 0,
        "no produce failed: the faults did not reach commits"
    );

    // The other agent's long poll at the end of the log is woken by the next
    // append, through a notification listener that lost its connection.
    let mut to_b = b.client().await;
    let end = (60 * RECORDS_PER_BATCH) as i64;
    let long_poll = fetch_request(&topic, 0, end, 20_000);
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let data = fetch(&mut to_b, &long_poll).await;
        (data, started.elapsed(), to_b)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (last, _) = produce_until_acked(&mut to_a, &topic, producer_id, 60).await;
    acked.push(last);
    let (data, waited, mut to_b) = waiting.await.unwrap();
    assert_eq!(data.error_code, 0);
    assert!(
        data.records.is_some_and(|r| !r.is_empty()),
        "the long poll returned nothing"
    );
    assert!(
        waited < Duration::from_secs(10),
        "the long poll on the other agent waited {waited:?}"
    );

    let expected: Vec<i64> = (0..=60).map(|n| (n * RECORDS_PER_BATCH) as i64).collect();
    assert_eq!(acked, expected, "acknowledged offsets");
    assert_exactly_once(&read_partition(&mut to_a, &topic).await, &acked);
    assert_exactly_once(&read_partition(&mut to_b, &topic).await, &acked);
}
