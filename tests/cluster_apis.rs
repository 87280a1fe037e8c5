//! DescribeCluster, DescribeProducers, OffsetForLeaderEpoch and Metadata's
//! authorized operations over the wire, on both backends, and every advertised
//! version of each.

mod common;

use common::{
    create_topic, name, on_both_backends, produce, producer_batch, record_batch, unique_topic,
    versions, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(
    describe_cluster_names_this_agent,
    describe_producers_lists_idempotent_producers,
    offset_for_leader_epoch_ends_every_epoch_at_the_high_watermark,
    metadata_reports_every_operation_when_asked,
);

/// Kafka's bit sets of every topic and every cluster operation.
const TOPIC_OPERATIONS: i32 = 3576;
const CLUSTER_OPERATIONS: i32 = 8096;

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

/// Every partition's leader epoch is the membership epoch Metadata reports.
async fn leader_epoch(client: &mut TestClient, topic: &str) -> i32 {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let ResponseKind::Metadata(r) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!()
    };
    r.topics[0].partitions[0].leader_epoch
}

async fn offset_for_leader_epoch_ends_every_epoch_at_the_high_watermark(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("epochs");
    create_topic(&mut client, &t, 1).await;
    produce(&mut client, &t, 0, record_batch(4, 0, 1, Compression::None)).await;
    let current = leader_epoch(&mut client, &t).await;
    assert!(current >= 1, "a registered agent's epoch: {current}");
    for version in versions(ApiKey::OffsetForLeaderEpoch) {
        assert_eq!(
            end_offset(&mut client, version, &t, 0, current, 0).await,
            (0, 0, 4),
            "v{version}: epoch 0 ends at the high watermark"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 0, -1, current).await,
            (0, current, 4),
            "v{version}: no fencing; the current epoch too"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 0, -1, current + 1).await,
            (0, -1, -1),
            "v{version}: an epoch never seen"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 0, current + 1, 0).await,
            (75, -1, -1),
            "v{version}: UNKNOWN_LEADER_EPOCH"
        );
        assert_eq!(
            end_offset(&mut client, version, &t, 0, current - 1, 0).await,
            (74, -1, -1),
            "v{version}: FENCED_LEADER_EPOCH"
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
