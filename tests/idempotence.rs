//! Idempotent producers over the wire: InitProducerId, retries answered with the
//! original offset, sequence gaps and stale epochs refused, state surviving a
//! restart on both backends.

mod common;

use common::{
    name, on_both_backends, producer_batch, unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(
    retries_are_answered_with_the_original_offset,
    a_producer_moving_between_agents_keeps_its_sequence_and_retries_append_once,
);

async fn init(client: &mut TestClient, current: Option<(i64, i16)>) -> (i16, i64, i16) {
    let (id, epoch) = current.unwrap_or((-1, -1));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch);
    let ResponseKind::InitProducerId(r) = client.call(ApiKey::InitProducerId, 4, &request).await
    else {
        panic!("not an InitProducerId response")
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// (error code, base offset) of producing `batch` to partition 0.
async fn produce(client: &mut TestClient, topic: &str, batch: bytes::Bytes) -> (i16, i64) {
    common::produce(client, topic, 0, batch).await
}

async fn auto_create(client: &mut TestClient, topic: &str) {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    client.call(ApiKey::Metadata, 4, &request).await;
}

fn batch(pid: i64, epoch: i16, seq: i32, count: usize) -> bytes::Bytes {
    producer_batch(count, seq as usize, 1, Compression::Lz4, pid, epoch, seq)
}

async fn retries_are_answered_with_the_original_offset(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("idem");
    auto_create(&mut client, &topic).await;
    let (error, pid, epoch) = init(&mut client, None).await;
    assert_eq!((error, epoch), (0, 0));
    assert!(pid >= 0);
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    // A retry of either of the last batches: no error, the original offset.
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    // A gap in the sequence.
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 9, 1)).await.0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    // After a restart the retry is still recognised and the sequence continues.
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 5, 1)).await,
        (0, 5)
    );
    // Nothing was stored twice.
    let (high_watermark, offsets) = stored_offsets(&mut client, &topic).await;
    assert_eq!(high_watermark, 6);
    assert_eq!(offsets, (0..6).collect::<Vec<_>>());
}

/// Two agents on one catalog and store: the commit judges sequences, so a
/// retry through the other agent is a duplicate, and an agent that last saw
/// the producer several batches ago does not refuse its next one.
async fn a_producer_moving_between_agents_keeps_its_sequence_and_retries_append_once(
    backend: Backend,
) {
    let a = TestBroker::start(backend).await;
    let b = a.another_agent(|_| {}).await;
    let (mut to_a, mut to_b) = (a.client().await, b.client().await);
    let topic = unique_topic("moving");
    auto_create(&mut to_a, &topic).await;
    let (_, pid, _) = init(&mut to_a, None).await;
    assert_eq!(
        produce(&mut to_a, &topic, batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    // The answer was lost; the client retries through the other agent.
    assert_eq!(
        produce(&mut to_b, &topic, batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut to_b, &topic, batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    // Back on the first agent, which last saw sequence 0.
    assert_eq!(
        produce(&mut to_a, &topic, batch(pid, 0, 5, 1)).await,
        (0, 5)
    );
    assert_eq!(
        produce(&mut to_b, &topic, batch(pid, 0, 9, 1)).await.0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    let (high_watermark, offsets) = stored_offsets(&mut to_a, &topic).await;
    assert_eq!(high_watermark, 6);
    assert_eq!(offsets, (0..6).collect::<Vec<_>>(), "nothing stored twice");
}

#[tokio::test]
async fn a_bumped_epoch_fences_the_old_one_and_restarts_sequences() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("epoch");
    auto_create(&mut client, &topic).await;
    let (_, pid, _) = init(&mut client, None).await;
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 0, 2)).await,
        (0, 0)
    );
    assert_eq!(init(&mut client, Some((pid, 0))).await, (0, pid, 1));
    assert_eq!(
        init(&mut client, Some((pid, 0))).await.0,
        90,
        "PRODUCER_FENCED"
    );
    // The new epoch must start at sequence 0.
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 1, 5, 1)).await.0,
        45
    );
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 1, 0, 1)).await,
        (0, 2)
    );
    // Once the partition has seen the new epoch, the old one is refused (as in
    // Kafka, a partition learns of an epoch from the batches it appends).
    assert_eq!(
        produce(&mut client, &topic, batch(pid, 0, 2, 1)).await.0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
}

#[tokio::test]
async fn separate_producers_get_separate_ids() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let (_, a, _) = init(&mut client, None).await;
    let (_, b, _) = init(&mut client, None).await;
    assert_ne!(a, b);
    assert_eq!(
        init(&mut client, Some((123_456, 0))).await.0,
        49,
        "INVALID_PRODUCER_ID_MAPPING"
    );
}

/// Kafka answers a retry with the original batch's LogAppendTime, not the
/// time the retry arrived.
#[tokio::test]
async fn a_retry_on_a_log_append_time_topic_gets_the_original_append_time() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("stamped");
    let configs = [("message.timestamp.type", "LogAppendTime")];
    let (error, message) = common::create_topic_with(&mut client, &topic, 1, &configs).await;
    assert_eq!(error, 0, "{message:?}");
    let (_, pid, _) = init(&mut client, None).await;
    let mut send = async |batch| {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name(&topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ])]);
        let ResponseKind::Produce(r) = client.call(ApiKey::Produce, 9, &request).await else {
            panic!("not a Produce response")
        };
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset, p.log_append_time_ms)
    };
    let (error, base_offset, original) = send(batch(pid, 0, 0, 2)).await;
    assert_eq!((error, base_offset), (0, 0));
    assert!(original > 0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(send(batch(pid, 0, 0, 2)).await, (0, 0, original));
    let (error, base_offset, later) = send(batch(pid, 0, 2, 1)).await;
    assert_eq!((error, base_offset), (0, 2));
    assert!(later >= original + 20, "{later} {original}");
}

/// The high watermark of partition 0 and the offsets of every record stored
/// there.
async fn stored_offsets(client: &mut TestClient, topic: &str) -> (i64, Vec<i64>) {
    let p = common::fetch(client, &common::fetch_request(topic, 0, 0, 0)).await;
    let offsets = p
        .records
        .map(common::decode_records)
        .unwrap_or_default()
        .iter()
        .map(|r| r.0)
        .collect();
    (p.high_watermark, offsets)
}
