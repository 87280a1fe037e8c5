//! CreatePartitions, DeleteRecords, DescribeCluster, DescribeProducers,
//! OffsetForLeaderEpoch and Metadata's authorized operations over the wire, on
//! both backends, and every advertised version of each.

mod common;

use common::{producer_batch, record_batch, unique_topic, Backend, TestBroker, TestClient};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use streamhouse_protocol::versions::advertised;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::Embedded).await })*
        }
        mod postgres_s3 {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::PostgresS3).await })*
        }
    };
}

on_both_backends!(
    create_partitions_only_grows_a_topic,
    delete_records_advances_the_log_start_durably,
    describe_cluster_names_this_agent,
    describe_producers_lists_idempotent_producers,
    offset_for_leader_epoch_answers_for_epoch_zero,
    metadata_reports_every_operation_when_asked,
);

const TOPIC_OPERATIONS: i32 = 3576;
const CLUSTER_OPERATIONS: i32 = 8096;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let api = advertised(key).expect("advertised");
    api.min..=api.max
}

async fn create_topic(client: &mut TestClient, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let ResponseKind::CreateTopics(r) = client.call(ApiKey::CreateTopics, 7, &request).await else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, 0);
}

async fn produce(
    client: &mut TestClient,
    topic: &str,
    partition: i32,
    batch: bytes::Bytes,
) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let ResponseKind::Produce(r) = client.call(ApiKey::Produce, 9, &request).await else {
        panic!()
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn partition_count(client: &mut TestClient, topic: &str) -> usize {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let ResponseKind::Metadata(r) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!()
    };
    r.topics[0].partitions.len()
}

async fn create_partitions(
    client: &mut TestClient,
    version: i16,
    topic: &str,
    count: i32,
    validate_only: bool,
) -> (i16, Option<String>) {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name(topic))
            .with_count(count)])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only);
    let ResponseKind::CreatePartitions(r) = client
        .call(ApiKey::CreatePartitions, version, &request)
        .await
    else {
        panic!()
    };
    (
        r.results[0].error_code,
        r.results[0].error_message.as_ref().map(|m| m.to_string()),
    )
}

async fn create_partitions_only_grows_a_topic(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("grow");
    create_topic(&mut client, &t, 2).await;
    assert_eq!(
        create_partitions(&mut client, 3, &t, 6, true).await,
        (0, None)
    );
    assert_eq!(
        partition_count(&mut client, &t).await,
        2,
        "validate_only adds nothing"
    );
    assert_eq!(
        create_partitions(&mut client, 3, &t, 4, false).await,
        (0, None)
    );
    assert_eq!(partition_count(&mut client, &t).await, 4);
    assert_eq!(
        produce(&mut client, &t, 3, record_batch(2, 0, 1, Compression::None)).await,
        (0, 0),
        "a new partition takes records at once"
    );
    assert_eq!(
        create_partitions(&mut client, 3, &t, 3, false).await,
        (
            37,
            Some("Topic currently has 4 partitions, which is higher than the requested 3.".into())
        )
    );
    assert_eq!(
        create_partitions(&mut client, 3, &t, 4, false).await,
        (37, Some("Topic already has 4 partitions.".into()))
    );
    assert_eq!(
        create_partitions(&mut client, 3, "never-created", 4, false)
            .await
            .0,
        3
    );
    for version in versions(ApiKey::CreatePartitions) {
        let count = 5 + i32::from(version);
        assert_eq!(
            create_partitions(&mut client, version, &t, count, false).await,
            (0, None),
            "CreatePartitions v{version}"
        );
        assert_eq!(
            create_partitions(&mut client, version, &t, 1, false)
                .await
                .0,
            37,
            "CreatePartitions v{version}"
        );
    }
}

async fn delete_records(
    client: &mut TestClient,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])])
        .with_timeout_ms(5000);
    let ResponseKind::DeleteRecords(r) =
        client.call(ApiKey::DeleteRecords, version, &request).await
    else {
        panic!()
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

async fn earliest(client: &mut TestClient, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)])]);
    let ResponseKind::ListOffsets(r) = client.call(ApiKey::ListOffsets, 6, &request).await else {
        panic!()
    };
    r.topics[0].partitions[0].offset
}

/// (error code, offsets of the fetched records).
async fn fetch(client: &mut TestClient, topic: &str, offset: i64) -> (i16, Vec<i64>) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(r) = client.call(ApiKey::Fetch, 12, &request).await else {
        panic!()
    };
    let p = &r.responses[0].partitions[0];
    let offsets = p
        .records
        .clone()
        .map(common::decode_records)
        .unwrap_or_default()
        .iter()
        .map(|r| r.0)
        .collect();
    (p.error_code, offsets)
}

async fn delete_records_advances_the_log_start_durably(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("trim");
    create_topic(&mut client, &t, 1).await;
    for i in 0..5 {
        produce(
            &mut client,
            &t,
            0,
            record_batch(2, 2 * i, 1, Compression::None),
        )
        .await;
    }
    assert_eq!(delete_records(&mut client, 2, &t, 0, 4).await, (0, 4));
    assert_eq!(earliest(&mut client, &t).await, 4);
    assert_eq!(
        fetch(&mut client, &t, 2).await.0,
        1,
        "OFFSET_OUT_OF_RANGE below the log start"
    );
    assert_eq!(fetch(&mut client, &t, 4).await, (0, vec![4, 5, 6, 7, 8, 9]));
    assert_eq!(
        delete_records(&mut client, 2, &t, 0, 11).await,
        (1, -1),
        "beyond the high watermark"
    );
    assert_eq!(
        delete_records(&mut client, 2, &t, 0, -1).await,
        (0, 10),
        "-1 is the high watermark"
    );
    assert_eq!(
        delete_records(&mut client, 2, &t, 0, 2).await,
        (0, 10),
        "never moves back"
    );
    assert_eq!(
        delete_records(&mut client, 2, &t, 1, 0).await,
        (3, -1),
        "no partition 1"
    );
    assert_eq!(
        delete_records(&mut client, 2, "never-created", 0, 0).await,
        (3, -1)
    );
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(earliest(&mut client, &t).await, 10, "kept in the catalog");
    for version in versions(ApiKey::DeleteRecords) {
        assert_eq!(
            delete_records(&mut client, version, &t, 0, -1).await,
            (0, 10),
            "DeleteRecords v{version}"
        );
    }
}

async fn describe_cluster_names_this_agent(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let ResponseKind::Metadata(metadata) = client
        .call(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await
    else {
        panic!()
    };
    for version in versions(ApiKey::DescribeCluster) {
        for asked in [false, true] {
            let request =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(asked);
            let ResponseKind::DescribeCluster(r) = client
                .call(ApiKey::DescribeCluster, version, &request)
                .await
            else {
                panic!()
            };
            assert_eq!(r.error_code, 0, "DescribeCluster v{version}");
            assert_eq!(
                Some(r.cluster_id.clone()),
                metadata.cluster_id,
                "same cluster id as Metadata"
            );
            assert_eq!(r.controller_id, BrokerId(0));
            let brokers: Vec<(i32, String, i32)> = r
                .brokers
                .iter()
                .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
                .collect();
            assert_eq!(
                brokers,
                vec![(0, "127.0.0.1".to_string(), i32::from(broker.addr.port()))]
            );
            let expected = if asked { CLUSTER_OPERATIONS } else { i32::MIN };
            assert_eq!(
                r.cluster_authorized_operations, expected,
                "v{version} asked={asked}"
            );
        }
    }
    let request = DescribeClusterRequest::default().with_endpoint_type(2);
    let ResponseKind::DescribeCluster(r) = client.call(ApiKey::DescribeCluster, 1, &request).await
    else {
        panic!()
    };
    assert_eq!(
        r.error_code, 114,
        "MISMATCHED_ENDPOINT_TYPE for a controller request"
    );
}

async fn describe_producers_lists_idempotent_producers(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("producers");
    create_topic(&mut client, &t, 1).await;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let ResponseKind::InitProducerId(init) = client.call(ApiKey::InitProducerId, 4, &request).await
    else {
        panic!()
    };
    let id = init.producer_id.0;
    assert_eq!(
        produce(
            &mut client,
            &t,
            0,
            producer_batch(3, 0, 1, Compression::None, id, 0, 0)
        )
        .await,
        (0, 0)
    );
    assert_eq!(
        produce(
            &mut client,
            &t,
            0,
            producer_batch(2, 3, 1, Compression::None, id, 0, 3)
        )
        .await,
        (0, 3)
    );
    produce(&mut client, &t, 0, record_batch(2, 5, 1, Compression::None)).await;
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name(&t))
        .with_partition_indexes(vec![0, 1])]);
    let ResponseKind::DescribeProducers(r) =
        client.call(ApiKey::DescribeProducers, 0, &request).await
    else {
        panic!()
    };
    let partitions = &r.topics[0].partitions;
    assert_eq!(
        (partitions[0].partition_index, partitions[0].error_code),
        (0, 0)
    );
    let producers: Vec<(i64, i32, i32, i64, i64)> = partitions[0]
        .active_producers
        .iter()
        .map(|p| {
            (
                p.producer_id.0,
                p.producer_epoch,
                p.last_sequence,
                p.last_timestamp,
                p.current_txn_start_offset,
            )
        })
        .collect();
    assert_eq!(
        producers,
        vec![(id, 0, 4, -1, -1)],
        "one producer; its last sequence; no transaction"
    );
    assert_eq!(
        (partitions[1].partition_index, partitions[1].error_code),
        (1, 3),
        "no partition 1"
    );
}

async fn end_offset(
    client: &mut TestClient,
    version: i16,
    topic: &str,
    partition: i32,
    current: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let ResponseKind::OffsetForLeaderEpoch(r) = client
        .call(ApiKey::OffsetForLeaderEpoch, version, &request)
        .await
    else {
        panic!()
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

async fn offset_for_leader_epoch_answers_for_epoch_zero(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("epochs");
    create_topic(&mut client, &t, 1).await;
    produce(&mut client, &t, 0, record_batch(4, 0, 1, Compression::None)).await;
    for version in versions(ApiKey::OffsetForLeaderEpoch) {
        assert_eq!(
            end_offset(&mut client, version, &t, 0, 0, 0).await,
            (0, 0, 4),
            "v{version}: epoch 0 ends at the high watermark"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 0, -1, 0).await,
            (0, 0, 4),
            "v{version}: no fencing"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 0, -1, 3).await,
            (0, -1, -1),
            "v{version}: an epoch never seen"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 0, 2, 0).await,
            (75, -1, -1),
            "v{version}: UNKNOWN_LEADER_EPOCH"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 1, -1, 0).await,
            (3, -1, -1),
            "v{version}: no partition 1"
        );
    }
}

async fn metadata_reports_every_operation_when_asked(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("ops");
    create_topic(&mut client, &t, 1).await;
    for version in 8..=12 {
        for asked in [false, true] {
            let request = MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(name(&t)))
                ]))
                .with_include_cluster_authorized_operations(asked && version <= 10)
                .with_include_topic_authorized_operations(asked);
            let ResponseKind::Metadata(r) = client.call(ApiKey::Metadata, version, &request).await
            else {
                panic!()
            };
            let topic_ops = if asked { TOPIC_OPERATIONS } else { i32::MIN };
            assert_eq!(
                r.topics[0].topic_authorized_operations, topic_ops,
                "v{version} asked={asked}"
            );
            let cluster_ops = if asked && version <= 10 {
                CLUSTER_OPERATIONS
            } else {
                i32::MIN
            };
            assert_eq!(
                r.cluster_authorized_operations, cluster_ops,
                "v{version} asked={asked}"
            );
        }
    }
}
