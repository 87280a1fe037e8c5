//! Compacted topics on two agents: each partition's log cleaner runs on one
//! of them, keeps the latest record per key at its offset, removes tombstones
//! older than `delete.retention.ms`, leaves the head alone, and loses no
//! idempotent producer's state. Fetches through either agent, at any offset,
//! read what is left; every object the index names is still in the store.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{create_topic_with, fetch, fetch_request, on_both_backends, produce, unique_topic};
use common::{Backend, TestBroker, TestClient};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::{ApiKey, ProducerId, ResponseKind};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use streamhouse::Settings;
use streamhouse_testkit::BatchBuilder;

on_both_backends!(
    two_agents_keep_the_latest_record_per_key_of_a_compacted_topic,
    a_large_last_batch_is_cleaned_later_and_a_quiet_partition_loses_its_tombstones,
);

const PARTITIONS: i32 = 4;
const KEYS: usize = 10;
const ROUNDS: usize = 6;

fn eager_cleaner(settings: &mut Settings) {
    settings.agent_lease_ms = 1000;
    settings.log_cleaner_interval_ms = 200;
    settings.gc_grace_ms = 1000;
    settings.compaction_min_age_ms = 100;
    settings.compaction_max_age_ms = 1000;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// (offset, key, value; `None` for a tombstone) of a fetch's records.
type Read = Vec<(i64, String, Option<String>)>;

fn decode(mut records: Bytes) -> Read {
    RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
            (r.offset, text(r.key.unwrap()), r.value.map(text))
        })
        .collect()
}

/// Every record of a partition from `from`, fetch after fetch.
async fn read_all(client: &mut TestClient, topic: &str, partition: i32, from: i64) -> Read {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let data = fetch(client, &fetch_request(topic, partition, offset, 0)).await;
        assert_eq!(data.error_code, 0, "fetch at {offset}");
        let records = data.records.map(decode).unwrap_or_default();
        let Some(last) = records.last() else {
            return out;
        };
        offset = last.0 + 1;
        out.extend(records.into_iter().filter(|r| r.0 >= from));
    }
}

async fn init_producer(client: &mut TestClient) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let ResponseKind::InitProducerId(r) = client.call(ApiKey::InitProducerId, 4, &request).await
    else {
        panic!("not an InitProducerId response")
    };
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

async fn two_agents_keep_the_latest_record_per_key_of_a_compacted_topic(backend: Backend) {
    let a = TestBroker::start_with(backend, eager_cleaner).await;
    let b = a.another_agent(eager_cleaner).await;
    let topic = unique_topic("compacted");
    let (code, message) = create_topic_with(
        &mut a.client().await,
        &topic,
        PARTITIONS,
        &[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "60000"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{message:?}");
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    // Per partition, through alternating agents, one idempotent producer:
    // ROUNDS batches over keys k0..k9, then a tombstone for k0 an hour old
    // (past the retention), one for k1 written now (within it), and a last
    // batch of two records of one key.
    let now = now_ms();
    let mut expected: BTreeMap<i32, Read> = BTreeMap::new();
    let mut producers = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let agent = if partition % 2 == 0 { &a } else { &b };
        let mut client = agent.client().await;
        let (id, epoch) = init_producer(&mut client).await;
        let mut sequence = 0;
        let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        let mut send = |batch: BatchBuilder, count: usize| {
            let batch = batch.producer(id, epoch, sequence).build();
            sequence += count as i32;
            batch
        };
        for round in 0..ROUNDS {
            let codec = codecs[(round + partition as usize) % codecs.len()];
            let batch = BatchBuilder::new(KEYS)
                .timestamp(now)
                .compression(codec)
                .key(|i| format!("k{i}"))
                .value(move |i| format!("r{round}-k{i}"))
                .header("h", Some(Bytes::from_static(b"v")));
            let (error, base) = produce(&mut client, &topic, partition, send(batch, KEYS)).await;
            assert_eq!(error, 0);
            for i in 0..KEYS {
                latest.insert(
                    format!("k{i}"),
                    (base + i as i64, Some(format!("r{round}-k{i}"))),
                );
            }
        }
        let old = BatchBuilder::new(1)
            .timestamp(now - 3_600_000)
            .key(|_| "k0");
        let (error, base) = produce(&mut client, &topic, partition, send(old, 1)).await;
        assert_eq!(error, 0);
        latest.remove("k0");
        assert!(base > 0);
        let fresh = BatchBuilder::new(1).timestamp(now).key(|_| "k1");
        let (error, base) = produce(&mut client, &topic, partition, send(fresh, 1)).await;
        assert_eq!(error, 0);
        latest.insert("k1".into(), (base, None));
        let head = BatchBuilder::new(2)
            .timestamp(now)
            .key(|_| "head")
            .value(|i| format!("head-{i}"));
        let (error, base) = produce(&mut client, &topic, partition, send(head, 2)).await;
        assert_eq!(error, 0);
        let mut want: Read = latest
            .into_iter()
            .map(|(key, (offset, value))| (offset, key, value))
            .collect();
        // The last batch is cleaned too, its last record kept: head-0 goes.
        want.push((base + 1, "head".into(), Some("head-1".into())));
        want.sort();
        expected.insert(partition, want);
        producers.insert(partition, (id, epoch, sequence, agent));
    }

    // Wait until every partition reads as cleaned (the cleaner runs every
    // 200 ms on the agent each partition is placed on).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = a.client().await;
    for (partition, want) in &expected {
        loop {
            let read = read_all(&mut client, &topic, *partition, 0).await;
            if &read == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {partition} not cleaned in time: {read:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Through the other agent too, and from inside removed ranges: a fetch at
    // a removed offset returns the next records.
    let mut other = b.client().await;
    for (partition, want) in &expected {
        assert_eq!(&read_all(&mut other, &topic, *partition, 0).await, want);
        let inside = want[0].0 - 1;
        assert!(inside >= 0, "offset 0 (k0 of round 0) was removed");
        let from_inside = read_all(&mut other, &topic, *partition, inside).await;
        assert_eq!(&from_inside, want, "from offset {inside}");
    }

    // Producer state is in the catalog, not the log: each producer's next
    // sequence is still expected, and a retry of its last batch is a
    // duplicate, not a new append.
    for (partition, (id, epoch, sequence, agent)) in &producers {
        let mut client = agent.client().await;
        let next = BatchBuilder::new(1)
            .key(|_| "k2")
            .value(|_| "after")
            .timestamp(now_ms())
            .producer(*id, *epoch, *sequence)
            .build();
        let (error, base) = produce(&mut client, &topic, *partition, next.clone()).await;
        assert_eq!(
            error, 0,
            "partition {partition}: sequence {sequence} accepted"
        );
        let (error, again) = produce(&mut client, &topic, *partition, next).await;
        assert_eq!((error, again), (0, base), "a retry is a duplicate");
    }

    // Every object the index names is in the store, and the index holds far
    // fewer bytes than were written.
    let catalog = streamhouse_metadata::open(&a.catalog_url).await.unwrap();
    let store = streamhouse_storage::open_store(&a.store_url).unwrap();
    let id = catalog.topic_by_name(&topic).await.unwrap().unwrap().id;
    for partition in 0..PARTITIONS {
        let view = catalog
            .cleaner_view(id, partition, 10_000)
            .await
            .unwrap()
            .unwrap();
        assert!(view.cleaned_offset > 0, "partition {partition} cleaned");
        for entry in &view.entries {
            store
                .head(&Path::from(entry.object_key.as_str()))
                .await
                .unwrap_or_else(|e| panic!("object {} is gone: {e}", entry.object_key));
        }
    }
}

/// The batch holding the last record is cleaned like the rest (only that record is sure to stay), a quiet partition is
/// not looked at again until it grows, and tombstones go once older than
/// `delete.retention.ms` though nothing more is written.
async fn a_large_last_batch_is_cleaned_later_and_a_quiet_partition_loses_its_tombstones(
    backend: Backend,
) {
    let broker = TestBroker::start_with(backend, eager_cleaner).await;
    let mut client = broker.client().await;
    let topic = unique_topic("quiet-compacted");
    let (code, message) = create_topic_with(
        &mut client,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "3000"),
            ("min.cleanable.dirty.ratio", "0.1"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{message:?}");
    let round = |round: usize| {
        BatchBuilder::new(KEYS)
            .timestamp(now_ms())
            .key(|i| format!("k{i}"))
            .value(move |i| format!("r{round}-k{i}"))
            .build()
    };
    assert_eq!(produce(&mut client, &topic, 0, round(0)).await, (0, 0));
    // Offsets 10-19: the last batch, cleaned like the rest.
    assert_eq!(produce(&mut client, &topic, 0, round(1)).await, (0, 10));
    let catalog = streamhouse_metadata::open(&broker.catalog_url)
        .await
        .unwrap();
    let id = catalog.topic_by_name(&topic).await.unwrap().unwrap().id;
    let view = || async {
        catalog
            .cleaner_view(id, 0, 1000)
            .await
            .unwrap()
            .expect("the partition exists")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while view().await.cleaner_limit < 20 {
        assert!(Instant::now() < deadline, "no pass looked at the partition");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let looked = view().await;
    assert_eq!((looked.cleaned_offset, looked.cleaner_limit), (20, 20));
    let round_1: Read = (0..KEYS)
        .map(|i| (10 + i as i64, format!("k{i}"), Some(format!("r1-k{i}"))))
        .collect();
    assert_eq!(
        read_all(&mut client, &topic, 0, 0).await,
        round_1,
        "round 0 went"
    );

    // Tombstones for k0-k4 and a last record: dirty, past the ratio.
    let tombstones = BatchBuilder::new(5)
        .timestamp(now_ms())
        .key(|i| format!("k{i}"))
        .build();
    assert_eq!(produce(&mut client, &topic, 0, tombstones).await, (0, 20));
    let head = BatchBuilder::new(1)
        .timestamp(now_ms())
        .key(|_| "head")
        .value(|_| "head")
        .build();
    assert_eq!(produce(&mut client, &topic, 0, head).await, (0, 25));
    let value = |i: usize| Some(format!("r1-k{i}"));
    let mut with_tombstones: Read = (0..5)
        .map(|i| (20 + i as i64, format!("k{i}"), None))
        .chain((5..KEYS).map(|i| (10 + i as i64, format!("k{i}"), value(i))))
        .collect();
    with_tombstones.push((25, "head".into(), Some("head".into())));
    with_tombstones.sort();
    let mut without: Read = with_tombstones
        .iter()
        .filter(|r| r.2.is_some())
        .cloned()
        .collect();
    without.sort();

    // Within the 3 s the tombstones are kept (unless the machine is so slow
    // that they expired first); then they go with nothing more written.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_tombstones = false;
    loop {
        let read = read_all(&mut client, &topic, 0, 0).await;
        if read == with_tombstones {
            seen_tombstones = true;
        } else if read == without {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not cleaned in time (tombstones seen: {seen_tombstones}): {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = view().await;
    assert_eq!(after.cleaner_limit, 26);
    assert_eq!(
        after.tombstones_expire_at_ms,
        streamhouse_metadata::compaction::NO_TOMBSTONES
    );
}
