//! Produce validates every record of every batch before anything is stored,
//! as Kafka's log validator does: a batch whose records disagree with its
//! header is refused with INVALID_RECORD, the partition does not move, and the
//! request's other partitions are unaffected. On (SQLite, file) and
//! (PostgreSQL, S3).

mod common;

use bytes::Bytes;
use common::{
    create_topic, create_topic_with, fetch, fetch_request, name, on_both_backends, record_batch,
    unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;

on_both_backends!(
    a_header_claiming_two_billion_records_moves_nothing,
    a_batch_of_garbage_records_is_refused,
    a_gzip_batch_whose_records_disagree_with_its_count_is_refused,
    a_bad_batch_leaves_the_other_partitions_of_the_request_alone,
    timestamps_beyond_the_topics_window_are_refused,
    two_batches_for_one_partition_are_refused,
    zstd_needs_produce_v7,
    a_compacted_topic_refuses_records_without_a_key,
);

/// Produce v9 of `batches` (partition, records) to `topic`, acks=all; the
/// partitions' answers in request order.
async fn produce(
    client: &mut TestClient,
    topic: &str,
    batches: Vec<(i32, Bytes)>,
) -> Vec<PartitionProduceResponse> {
    produce_version(client, 9, topic, batches).await
}

/// [`produce`] over Produce `version`.
async fn produce_version(
    client: &mut TestClient,
    version: i16,
    topic: &str,
    batches: Vec<(i32, Bytes)>,
) -> Vec<PartitionProduceResponse> {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(
                batches
                    .into_iter()
                    .map(|(index, records)| {
                        PartitionProduceData::default()
                            .with_index(index)
                            .with_records(Some(records))
                    })
                    .collect(),
            )]);
    let ResponseKind::Produce(response) = client.call(ApiKey::Produce, version, &request).await
    else {
        panic!("not a Produce response")
    };
    response.responses[0].partition_responses.clone()
}

async fn high_watermark(client: &mut TestClient, topic: &str, partition: i32) -> i64 {
    let data = fetch(client, &fetch_request(topic, partition, 0, 0)).await;
    assert_eq!(data.error_code, 0);
    data.high_watermark
}

/// Sets the record count (and the last offset delta that goes with it) and
/// recomputes the CRC: the header is consistent, only the records disagree.
fn claim_records(batch: &mut [u8], count: i32) {
    batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    recrc(batch);
}

fn recrc(batch: &mut [u8]) {
    let crc = crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// CRC-32C (Castagnoli), bit by bit: a test needs no speed.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The batch of the issue: a 61-byte header with no records, claiming
/// 2^31 - 1 of them.
fn lying_header() -> Bytes {
    let mut batch = record_batch(1, 0, 1_000, Compression::None)[..61].to_vec();
    batch[8..12].copy_from_slice(&(61i32 - 12).to_be_bytes());
    claim_records(&mut batch, i32::MAX);
    batch.into()
}

fn message(response: &PartitionProduceResponse) -> String {
    response
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

async fn a_header_claiming_two_billion_records_moves_nothing(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("lying-count");
    create_topic(&mut client, &topic, 1).await;
    let batch = lying_header();
    assert_eq!(batch.len(), 61);
    let answer = &produce(&mut client, &topic, vec![(0, batch)]).await[0];
    assert_eq!(
        (answer.error_code, answer.base_offset),
        (INVALID_RECORD, -1)
    );
    assert!(
        message(answer).contains("Incorrect declared batch size"),
        "{answer:?}"
    );
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 0);
    // The partition is usable: the next good batch lands at offset 0.
    let good = record_batch(3, 0, 1_000, Compression::None);
    let answer = &produce(&mut client, &topic, vec![(0, good)]).await[0];
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 3);
}

async fn a_batch_of_garbage_records_is_refused(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("garbage");
    create_topic(&mut client, &topic, 1).await;
    let mut batch = record_batch(3, 0, 1_000, Compression::None).to_vec();
    for byte in &mut batch[61..] {
        *byte = 0xff;
    }
    recrc(&mut batch);
    let answer = &produce(&mut client, &topic, vec![(0, batch.into())]).await[0];
    assert_eq!(answer.error_code, INVALID_RECORD, "{answer:?}");
    // The bad record is named, as in Kafka's per-record errors.
    assert_eq!(answer.record_errors.len(), 1, "{answer:?}");
    assert_eq!(answer.record_errors[0].batch_index, 0);
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 0);

    // A damaged batch whose CRC no longer matches stays a CORRUPT_MESSAGE.
    let mut damaged = record_batch(3, 0, 1_000, Compression::None).to_vec();
    damaged[70] ^= 0x01;
    let answer = &produce(&mut client, &topic, vec![(0, damaged.into())]).await[0];
    assert_eq!(answer.error_code, CORRUPT_MESSAGE, "{answer:?}");
}

async fn a_gzip_batch_whose_records_disagree_with_its_count_is_refused(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("gzip-count");
    create_topic(&mut client, &topic, 1).await;
    for claimed in [11, 9, 1_000_000] {
        let mut batch = record_batch(10, 0, 1_000, Compression::Gzip).to_vec();
        claim_records(&mut batch, claimed);
        let answer = &produce(&mut client, &topic, vec![(0, batch.into())]).await[0];
        assert_eq!(
            (answer.error_code, answer.base_offset),
            (INVALID_RECORD, -1),
            "claiming {claimed}: {answer:?}"
        );
    }
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 0);
    // Every codec's honest batch is still accepted, in order.
    let mut next = 0;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let answer = &produce(
            &mut client,
            &topic,
            vec![(0, record_batch(10, next, 1_000, codec))],
        )
        .await[0];
        assert_eq!(
            (answer.error_code, answer.base_offset),
            (0, next as i64),
            "{codec:?}"
        );
        next += 10;
    }
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 50);
}

async fn a_bad_batch_leaves_the_other_partitions_of_the_request_alone(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("neighbours");
    create_topic(&mut client, &topic, 3).await;
    let answers = produce(
        &mut client,
        &topic,
        vec![
            (0, record_batch(4, 0, 1_000, Compression::Lz4)),
            (1, lying_header()),
            (2, record_batch(2, 0, 1_000, Compression::Zstd)),
        ],
    )
    .await;
    let codes: Vec<_> = answers
        .iter()
        .map(|a| (a.index, a.error_code, a.base_offset))
        .collect();
    assert_eq!(codes, vec![(0, 0, 0), (1, INVALID_RECORD, -1), (2, 0, 0)]);
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 4);
    assert_eq!(high_watermark(&mut client, &topic, 1).await, 0);
    assert_eq!(high_watermark(&mut client, &topic, 2).await, 2);
}

async fn timestamps_beyond_the_topics_window_are_refused(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("timestamps");
    let (code, message) = create_topic_with(
        &mut client,
        &topic,
        1,
        &[("message.timestamp.before.max.ms", "86400000")],
    )
    .await;
    assert_eq!(code, 0, "{message:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    // Two days old: beyond the topic's one day.
    let old = record_batch(2, 0, now - 2 * 86_400_000, Compression::Snappy);
    let answer = &produce(&mut client, &topic, vec![(0, old)]).await[0];
    assert_eq!(answer.error_code, INVALID_TIMESTAMP, "{answer:?}");
    assert_eq!(
        answer
            .record_errors
            .iter()
            .map(|e| e.batch_index)
            .collect::<Vec<_>>(),
        vec![0, 1]
    );
    // Two hours ahead: beyond Kafka's default message.timestamp.after.max.ms (1 h).
    let ahead = record_batch(1, 0, now + 2 * 3_600_000, Compression::None);
    let answer = &produce(&mut client, &topic, vec![(0, ahead)]).await[0];
    assert_eq!(answer.error_code, INVALID_TIMESTAMP, "{answer:?}");
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 0);
    let fresh = record_batch(1, 0, now, Compression::None);
    let answer = &produce(&mut client, &topic, vec![(0, fresh)]).await[0];
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
}

/// Kafka takes exactly one batch per partition in a request (v3+).
async fn two_batches_for_one_partition_are_refused(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("two-batches");
    create_topic(&mut client, &topic, 1).await;
    let mut both = record_batch(2, 0, 1_000, Compression::None).to_vec();
    both.extend_from_slice(&record_batch(3, 2, 1_000, Compression::None));
    let answers = produce(&mut client, &topic, vec![(0, Bytes::from(both))]).await;
    assert_eq!(answers[0].error_code, INVALID_RECORD);
    assert!(answers[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("exactly one record batch")));
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 0);
}

/// Produce v7 is how a client says it knows the broker reads zstd; before it,
/// Kafka refuses zstd batches.
async fn zstd_needs_produce_v7(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("zstd-version");
    create_topic(&mut client, &topic, 1).await;
    let zstd = || record_batch(2, 0, 1_000, Compression::Zstd);
    let refused = produce_version(&mut client, 6, &topic, vec![(0, zstd())]).await;
    assert_eq!(refused[0].error_code, UNSUPPORTED_COMPRESSION_TYPE);
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 0);
    let accepted = produce_version(&mut client, 7, &topic, vec![(0, zstd())]).await;
    assert_eq!(accepted[0].error_code, 0);
    assert_eq!(high_watermark(&mut client, &topic, 0).await, 2);
    let lz4 = record_batch(1, 2, 1_000, Compression::Lz4);
    assert_eq!(
        produce_version(&mut client, 6, &topic, vec![(0, lz4)]).await[0].error_code,
        0
    );
}

/// Kafka's `LogValidator.validateKey`: on a compacted topic (`compact` alone or
/// with `delete`) a record without a key fails the batch with INVALID_RECORD
/// and one record error per keyless record; keyed records are appended.
async fn a_compacted_topic_refuses_records_without_a_key(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    for policy in ["compact", "compact,delete"] {
        let topic = unique_topic("keys");
        let (code, message) =
            create_topic_with(&mut client, &topic, 1, &[("cleanup.policy", policy)]).await;
        assert_eq!(code, 0, "{message:?}");
        let keyless = streamhouse_testkit::BatchBuilder::new(2)
            .value(|i| format!("v{i}"))
            .compression(Compression::Lz4)
            .build();
        let answer = &produce(&mut client, &topic, vec![(0, keyless)]).await[0];
        assert_eq!(answer.error_code, INVALID_RECORD, "{policy}: {answer:?}");
        let expected = format!(
            "Compacted topic cannot accept message without key in topic partition {topic}-0"
        );
        let errors: Vec<(i32, String)> = answer
            .record_errors
            .iter()
            .map(|e| {
                let message = e.batch_index_error_message.as_ref().map(|m| m.to_string());
                (e.batch_index, message.unwrap_or_default())
            })
            .collect();
        assert_eq!(
            errors,
            vec![(0, expected.clone()), (1, expected)],
            "{policy}"
        );
        assert_eq!(high_watermark(&mut client, &topic, 0).await, 0);
        let keyed = record_batch(2, 0, 0, Compression::Lz4);
        let answer = &produce(&mut client, &topic, vec![(0, keyed)]).await[0];
        assert_eq!((answer.error_code, answer.base_offset), (0, 0), "{policy}");
    }
    // The same keyless batch is fine on a topic that only deletes.
    let topic = unique_topic("keys");
    create_topic(&mut client, &topic, 1).await;
    let keyless = streamhouse_testkit::BatchBuilder::new(2).build();
    let answer = &produce(&mut client, &topic, vec![(0, keyless)]).await[0];
    assert_eq!(answer.error_code, 0, "{answer:?}");
}
