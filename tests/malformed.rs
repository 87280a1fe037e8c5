//! Malformed input gets Kafka's error or a closed connection, never a panic, and
//! the broker keeps serving other connections.

mod common;

use bytes::{BufMut, BytesMut};
use common::{
    create_topic_with, name, record_batch, unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// The broker still answers a fresh connection.
async fn still_serving(broker: &TestBroker) {
    let mut client = broker.client().await;
    let response = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert!(matches!(response, ResponseKind::ApiVersions(r) if r.error_code == 0));
}

fn header_only(api_key: i16, version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i32(8);
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf
}

#[tokio::test]
async fn a_negative_frame_length_closes_the_connection() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    client.send_raw(&(-5i32).to_be_bytes()).await;
    assert!(client.is_closed().await);
    still_serving(&broker).await;
}

#[tokio::test]
async fn an_oversized_frame_length_closes_the_connection_without_allocating() {
    let broker =
        TestBroker::start_with(Backend::Embedded, |cli| cli.max_frame_bytes = 1024 * 1024).await;
    let mut client = broker.client().await;
    client.send_raw(&i32::MAX.to_be_bytes()).await;
    assert!(client.is_closed().await);
    still_serving(&broker).await;
}

#[tokio::test]
async fn a_truncated_request_closes_the_connection() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    // A Metadata v1 frame whose topic array is cut off after two bytes.
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2 + 2);
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(1);
    frame.put_i32(1);
    frame.put_i16(-1); // null client id
    frame.put_i16(0); // half of the array length
    client.send_raw(&frame).await;
    assert!(client.is_closed().await);
    still_serving(&broker).await;
}

#[tokio::test]
async fn an_unknown_api_key_closes_the_connection() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    client.send_raw(&header_only(999, 0, 1)).await;
    assert!(client.is_closed().await);
    still_serving(&broker).await;
}

#[tokio::test]
async fn an_unadvertised_api_closes_the_connection() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    // SaslAuthenticate exists in Kafka but is not served here.
    client
        .send_raw(&header_only(ApiKey::SaslAuthenticate as i16, 0, 1))
        .await;
    assert!(client.is_closed().await);
    still_serving(&broker).await;
}

#[tokio::test]
async fn an_unknown_api_versions_version_gets_a_v0_error_with_the_supported_list() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    client
        .send_raw(&header_only(ApiKey::ApiVersions as i16, 99, 77))
        .await;
    let mut frame = client.receive_frame().await.expect("a response");
    use bytes::Buf;
    assert_eq!(frame.get_i32(), 77, "correlation id");
    assert_eq!(frame.get_i16(), 35, "UNSUPPORTED_VERSION");
    let count = frame.get_i32();
    let keys: Vec<i16> = (0..count)
        .map(|_| {
            let key = frame.get_i16();
            frame.get_i16();
            frame.get_i16();
            key
        })
        .collect();
    assert!(keys.contains(&(ApiKey::Produce as i16)));
    assert!(keys.contains(&(ApiKey::ApiVersions as i16)));
}

#[tokio::test]
async fn a_huge_array_count_in_a_tiny_frame_is_refused_without_crashing() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    // Metadata v0 claiming 2^31-1 topics in 4 bytes of body.
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2 + 4);
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_i32(i32::MAX);
    client.send_raw(&frame).await;
    assert!(client.is_closed().await);
    still_serving(&broker).await;
}

async fn produce_raw(client: &mut TestClient, topic: &str, records: bytes::Bytes) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let ResponseKind::Produce(response) = client.call(ApiKey::Produce, 9, &request).await else {
        panic!("not a Produce response")
    };
    response.responses[0].partition_responses[0].error_code
}

#[tokio::test]
async fn a_batch_with_a_bad_crc_is_a_corrupt_message() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("crc");
    // Metadata auto-creates the topic.
    client
        .call(
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name(&topic))),
            ])),
        )
        .await;
    let mut batch = record_batch(3, 0, 1, Compression::None).to_vec();
    let last = batch.len() - 1;
    batch[last] ^= 0x55;
    assert_eq!(
        produce_raw(&mut client, &topic, batch.into()).await,
        2,
        "CORRUPT_MESSAGE"
    );
    // A batch whose length runs past the data is corrupt too.
    let good = record_batch(3, 0, 1, Compression::None);
    let cut = good.slice(..good.len() - 3);
    assert_eq!(
        produce_raw(&mut client, &topic, cut).await,
        2,
        "CORRUPT_MESSAGE"
    );
    // The connection is still usable and a good batch lands at offset 0.
    assert_eq!(produce_raw(&mut client, &topic, good).await, 0);
}

#[tokio::test]
async fn a_batch_larger_than_max_message_bytes_is_refused() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("too-large");
    create_topic_with(&mut client, &topic, 1, &[("max.message.bytes", "100")]).await;
    let big = record_batch(20, 0, 1, Compression::None);
    assert!(big.len() > 100);
    assert_eq!(
        produce_raw(&mut client, &topic, big).await,
        10,
        "MESSAGE_TOO_LARGE"
    );
}

#[tokio::test]
async fn invalid_acks_are_refused() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let request = ProduceRequest::default()
        .with_acks(2)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("any")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(record_batch(1, 0, 1, Compression::None)))])]);
    let ResponseKind::Produce(response) = client.call(ApiKey::Produce, 9, &request).await else {
        panic!()
    };
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );
}
