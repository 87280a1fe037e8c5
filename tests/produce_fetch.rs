//! Produce, Fetch and ListOffsets over the wire, on (SQLite, file) and
//! (PostgreSQL, S3).

mod common;

use common::{
    create_topic, decode_records, fetch, fetch_request, list_offset, name, on_both_backends,
    produce, record_batch, unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(
    round_trip_with_every_codec,
    acknowledged_records_survive_a_restart,
);

async fn round_trip_with_every_codec(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("round-trip");
    create_topic(&mut client, &topic, 2).await;
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (i, codec) in codecs.into_iter().enumerate() {
        let first = i * 10;
        let (error, base) = produce(
            &mut client,
            &topic,
            1,
            record_batch(10, first, 1_000, codec),
        )
        .await;
        assert_eq!((error, base), (0, first as i64), "codec {codec:?}");
        expected.extend(
            (first..first + 10).map(|n| (n as i64, format!("key-{n}"), format!("value-{n}"))),
        );
    }
    let data = fetch(&mut client, &fetch_request(&topic, 1, 0, 0)).await;
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 50);
    assert_eq!(decode_records(data.records.unwrap()), expected);
    // From the middle of a batch: the whole batch comes back, as in Kafka.
    let data = fetch(&mut client, &fetch_request(&topic, 1, 25, 0)).await;
    let records = decode_records(data.records.unwrap());
    assert_eq!(records.first().map(|r| r.0), Some(20));
    assert_eq!(records.last().map(|r| r.0), Some(49));
    // The other partition is untouched.
    let data = fetch(&mut client, &fetch_request(&topic, 0, 0, 0)).await;
    assert_eq!((data.error_code, data.high_watermark), (0, 0));
}

async fn acknowledged_records_survive_a_restart(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let topic = unique_topic("restart");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 1).await;
    assert_eq!(
        produce(
            &mut client,
            &topic,
            0,
            record_batch(5, 0, 1, Compression::None)
        )
        .await,
        (0, 0)
    );
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(
        produce(
            &mut client,
            &topic,
            0,
            record_batch(5, 5, 2, Compression::None)
        )
        .await,
        (0, 5)
    );
    let data = fetch(&mut client, &fetch_request(&topic, 0, 0, 0)).await;
    let offsets: Vec<i64> = decode_records(data.records.unwrap())
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn fetch_outside_the_log_is_out_of_range() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("range");
    create_topic(&mut client, &topic, 1).await;
    produce(
        &mut client,
        &topic,
        0,
        record_batch(3, 0, 1, Compression::None),
    )
    .await;
    let data = fetch(&mut client, &fetch_request(&topic, 0, 4, 0)).await;
    assert_eq!(data.error_code, 1, "OFFSET_OUT_OF_RANGE");
    let data = fetch(&mut client, &fetch_request(&topic, 0, -1, 0)).await;
    assert_eq!(data.error_code, 1, "OFFSET_OUT_OF_RANGE");
    let data = fetch(&mut client, &fetch_request(&topic, 0, 3, 0)).await;
    assert_eq!(
        (data.error_code, data.records.map(|r| r.len())),
        (0, Some(0))
    );
}

#[tokio::test]
async fn fetch_of_an_unknown_topic_is_an_error() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let data = fetch(&mut client, &fetch_request("no-such-topic", 0, 0, 0)).await;
    assert_eq!(data.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[tokio::test]
async fn a_long_poll_wakes_when_records_arrive() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("long-poll");
    let mut producer = broker.client().await;
    create_topic(&mut producer, &topic, 1).await;
    let mut consumer = broker.client().await;
    let started = std::time::Instant::now();
    consumer
        .send(ApiKey::Fetch, 12, &fetch_request(&topic, 0, 0, 10_000))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    produce(
        &mut producer,
        &topic,
        0,
        record_batch(2, 0, 1, Compression::None),
    )
    .await;
    let ResponseKind::Fetch(response) = consumer.receive(ApiKey::Fetch, 12).await else {
        panic!("not a Fetch response")
    };
    let elapsed = started.elapsed();
    let records = decode_records(response.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(records.len(), 2);
    assert!(
        elapsed.as_millis() >= 300,
        "answered before the data existed"
    );
    assert!(
        elapsed.as_secs() < 9,
        "waited for max_wait_ms despite new data"
    );
}

#[tokio::test]
async fn a_long_poll_without_data_waits_max_wait_ms() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("idle");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 1).await;
    let started = std::time::Instant::now();
    let data = fetch(&mut client, &fetch_request(&topic, 0, 0, 400)).await;
    assert_eq!(data.records.map(|r| r.len()), Some(0));
    assert!(started.elapsed().as_millis() >= 400);
}

#[tokio::test]
async fn fetch_honours_partition_max_bytes_but_returns_at_least_one_batch() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("max-bytes");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 1).await;
    for i in 0..3 {
        produce(
            &mut client,
            &topic,
            0,
            record_batch(10, i * 10, 1, Compression::None),
        )
        .await;
    }
    let mut request = fetch_request(&topic, 0, 0, 0);
    request.topics[0].partitions[0].partition_max_bytes = 1;
    let data = fetch(&mut client, &request).await;
    assert_eq!(
        decode_records(data.records.unwrap()).len(),
        10,
        "exactly the first batch"
    );
}

/// A fetch of `partitions` of `topic` from offset 0 with the given response
/// `max_bytes` and per-partition limits; answers (offsets fetched, high
/// watermark) per partition, in request order.
async fn fetch_partitions(
    client: &mut TestClient,
    topic: &str,
    max_bytes: i32,
    partitions: &[(i32, i32)],
) -> Vec<(Vec<i64>, i64)> {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(partition, partition_max_bytes)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )]);
    let ResponseKind::Fetch(response) = client.call(ApiKey::Fetch, 12, &request).await else {
        panic!("not a Fetch response")
    };
    response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            let offsets = decode_records(p.records.clone().unwrap())
                .iter()
                .map(|r| r.0)
                .collect();
            (offsets, p.high_watermark)
        })
        .collect()
}

fn range(from: i64, to: i64) -> Vec<i64> {
    (from..to).collect()
}

/// Partition 0 is empty; partitions 1-3 hold three batches of 10 records, all
/// of `batch` bytes. Kafka reads the partitions in order: the first one with
/// data gets a batch even beyond the limits, later ones only whole batches
/// that fit in both their own limit and what is left of the response's.
#[tokio::test]
async fn response_max_bytes_limits_later_partitions_to_whole_batches_that_fit() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("response-max-bytes");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 4).await;
    let batch = record_batch(10, 0, 1, Compression::None);
    let size = batch.len() as i32;
    for partition in 1..4 {
        for _ in 0..3 {
            produce(&mut client, &topic, partition, batch.clone()).await;
        }
    }
    let all = [(0, 1 << 20), (1, 1 << 20), (2, 1 << 20), (3, 1 << 20)];
    let none = (Vec::new(), 30);

    let answer = fetch_partitions(&mut client, &topic, 1, &all).await;
    assert_eq!(
        answer,
        vec![
            (Vec::new(), 0),
            (range(0, 10), 30),
            none.clone(),
            none.clone()
        ],
        "only the first batch of the first partition with data"
    );

    let answer = fetch_partitions(&mut client, &topic, size * 5 / 2, &all).await;
    assert_eq!(
        answer,
        vec![
            (Vec::new(), 0),
            (range(0, 20), 30),
            none.clone(),
            none.clone()
        ],
        "half a batch left is no batch for partition 2"
    );

    let answer = fetch_partitions(&mut client, &topic, size * 9 / 2, &all).await;
    assert_eq!(
        answer,
        vec![
            (Vec::new(), 0),
            (range(0, 30), 30),
            (range(0, 10), 30),
            none.clone()
        ]
    );

    let limits = [(1, 1), (2, 1), (3, 1 << 20)];
    let answer = fetch_partitions(&mut client, &topic, 50 << 20, &limits).await;
    assert_eq!(
        answer,
        vec![(range(0, 10), 30), none.clone(), (range(0, 30), 30)],
        "a partition limit is exceeded only by the first partition with data"
    );
}

/// More partitions than are read at once: the budget left for each is only
/// known once those before it are settled.
#[tokio::test]
async fn response_max_bytes_holds_across_many_partitions_read_concurrently() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("many-partitions-max-bytes");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 20).await;
    let batch = record_batch(10, 0, 1, Compression::None);
    let size = batch.len() as i32;
    for partition in 0..20 {
        produce(&mut client, &topic, partition, batch.clone()).await;
    }
    let all: Vec<(i32, i32)> = (0..20).map(|p| (p, 1 << 20)).collect();
    let answer = fetch_partitions(&mut client, &topic, size * 13 + size / 2, &all).await;
    let mut expected = vec![(range(0, 10), 10); 13];
    expected.extend(vec![(Vec::new(), 10); 7]);
    assert_eq!(answer, expected);
}

#[tokio::test]
async fn list_offsets_by_time_earliest_and_latest() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("list-offsets");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 1).await;
    produce(
        &mut client,
        &topic,
        0,
        record_batch(4, 0, 1_000, Compression::None),
    )
    .await;
    produce(
        &mut client,
        &topic,
        0,
        record_batch(4, 4, 2_000, Compression::Zstd),
    )
    .await;
    produce(
        &mut client,
        &topic,
        0,
        record_batch(4, 8, 3_000, Compression::None),
    )
    .await;
    assert_eq!(list_offset(&mut client, &topic, -2).await, (0, 0));
    assert_eq!(list_offset(&mut client, &topic, -1).await, (0, 12));
    assert_eq!(list_offset(&mut client, &topic, 1_500).await, (0, 4));
    assert_eq!(list_offset(&mut client, &topic, 2_500).await, (0, 8));
    assert_eq!(list_offset(&mut client, &topic, 3_000).await, (0, 8));
    assert_eq!(list_offset(&mut client, &topic, 9_999).await, (0, -1));
}

#[tokio::test]
async fn list_offsets_naming_a_partition_repeatedly_answers_each_entry() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("list-offsets-repeated");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 1).await;
    for (base, time) in [(0, 1_000), (4, 2_000)] {
        produce(
            &mut client,
            &topic,
            0,
            record_batch(4, base, time, Compression::Gzip),
        )
        .await;
    }
    // One partition, named 50 times with a time and once for the latest: a
    // hostile client's way to make one request search the same batch over and
    // over. Every entry still gets its answer, in request order.
    let mut wanted: Vec<_> = (0..50)
        .map(|_| {
            ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(1_500)
        })
        .collect();
    wanted.push(
        ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1),
    );
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(&topic))
            .with_partitions(wanted)]);
    let ResponseKind::ListOffsets(response) = client.call(ApiKey::ListOffsets, 6, &request).await
    else {
        panic!("not a ListOffsets response")
    };
    let answers: Vec<(i16, i64, i64)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.offset, p.timestamp))
        .collect();
    let mut expected = vec![(0, 4, 2_000); 50];
    expected.push((0, 8, -1));
    assert_eq!(answers, expected);
}

#[tokio::test]
async fn produce_to_an_unknown_partition_is_an_error() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let topic = unique_topic("unknown-partition");
    let mut client = broker.client().await;
    create_topic(&mut client, &topic, 1).await;
    let (error, _) = produce(
        &mut client,
        &topic,
        1,
        record_batch(1, 0, 1, Compression::None),
    )
    .await;
    assert_eq!(error, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let (error, _) = produce(
        &mut client,
        "missing-topic",
        0,
        record_batch(1, 0, 1, Compression::None),
    )
    .await;
    assert_eq!(error, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}
