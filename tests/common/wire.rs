//! Requests most wire tests share: topics created, record batches built
//! (by the protocol crate's `BatchBuilder`), produced, fetched and listed.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use streamhouse_protocol::versions::advertised;
use streamhouse_testkit::BatchBuilder;

use super::{Stream, TestClient};

pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub fn name(topic: &str) -> TopicName {
    TopicName(s(topic))
}

pub fn unique_topic(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Every advertised version of an API.
pub fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let api = advertised(key).expect("advertised");
    api.min..=api.max
}

/// Kafka's (error code, error message) of creating `topic` with `partitions`
/// partitions and `configs`, over CreateTopics v7.
pub async fn create_topic_with(
    client: &mut TestClient<impl Stream>,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )]);
    let ResponseKind::CreateTopics(r) = client.call(ApiKey::CreateTopics, 7, &request).await else {
        panic!("not a CreateTopics response")
    };
    let created = &r.topics[0];
    (
        created.error_code,
        created.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Creates `topic` with `partitions` partitions and no configs; panics if
/// the broker refuses.
pub async fn create_topic(client: &mut TestClient<impl Stream>, topic: &str, partitions: i32) {
    let (error_code, message) = create_topic_with(client, topic, partitions, &[]).await;
    assert_eq!(error_code, 0, "creating {topic}: {message:?}");
}

/// A record batch of `count` keyed records with one header each.
pub fn record_batch(count: usize, first: usize, timestamp: i64, compression: Compression) -> Bytes {
    producer_batch(count, first, timestamp, compression, -1, -1, -1)
}

/// A batch from an idempotent producer (`producer_id` >= 0) whose first record
/// has sequence `base_sequence`.
pub fn producer_batch(
    count: usize,
    first: usize,
    timestamp: i64,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    BatchBuilder::keyed(count, first)
        .timestamp(timestamp)
        .compression(compression)
        .producer(producer_id, producer_epoch, base_sequence)
        .build()
}

/// Decodes fetched records into (offset, key, value).
pub fn decode_records(mut records: Bytes) -> Vec<(i64, String, String)> {
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
    sets.into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

/// (error code, base offset) of producing `batch` with acks=all to one
/// partition, over Produce v9.
/// Produce v9 (acks=all) of `batch` to `partition` of `topic`: the response.
pub async fn produce_response(
    client: &mut TestClient<impl Stream>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> ProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let ResponseKind::Produce(response) = client.call(ApiKey::Produce, 9, &request).await else {
        panic!("not a Produce response")
    };
    response
}

/// [`produce_response`]'s (error code, base offset).
pub async fn produce(
    client: &mut TestClient<impl Stream>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> (i16, i64) {
    let response = produce_response(client, topic, partition, batch).await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Produces `batch` to partition 0 of `topic`, which must accept it: the
/// throttle_time_ms of the response.
pub async fn produce_throttle(
    client: &mut TestClient<impl Stream>,
    topic: &str,
    batch: Bytes,
) -> i32 {
    let response = produce_response(client, topic, 0, batch).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    response.throttle_time_ms
}

/// A Fetch of one partition from `offset`, waiting at most `max_wait_ms`.
pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1024 * 1024)])])
}

/// The one partition a `fetch_request` asked for, over Fetch v12.
pub async fn fetch(
    client: &mut TestClient<impl Stream>,
    request: &FetchRequest,
) -> fetch_response::PartitionData {
    let ResponseKind::Fetch(response) = client.call(ApiKey::Fetch, 12, request).await else {
        panic!("not a Fetch response")
    };
    response.responses[0].partitions[0].clone()
}

/// ListOffsets v6 of partition 0 at `timestamp` (-1 latest, -2 earliest).
pub async fn list_offsets(
    client: &mut TestClient<impl Stream>,
    topic: &str,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let ResponseKind::ListOffsets(response) = client.call(ApiKey::ListOffsets, 6, &request).await
    else {
        panic!("not a ListOffsets response")
    };
    response.topics[0].partitions[0].clone()
}

/// (error code, offset) of `list_offsets`.
pub async fn list_offset(
    client: &mut TestClient<impl Stream>,
    topic: &str,
    timestamp: i64,
) -> (i16, i64) {
    let p = list_offsets(client, topic, timestamp).await;
    (p.error_code, p.offset)
}
