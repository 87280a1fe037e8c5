//! Partition administration over the wire: CreatePartitions growing a topic
//! and DeleteRecords advancing a partition's log start, on both backends, and
//! every advertised version of each.

mod common;

use common::{
    create_topic, fetch_request, list_offset, name, on_both_backends, produce, record_batch,
    unique_topic, versions, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(
    create_partitions_only_grows_a_topic,
    delete_records_advances_the_log_start_durably,
);

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
    list_offset(client, topic, -2).await.1
}

/// (error code, offsets of the fetched records).
async fn fetch(client: &mut TestClient, topic: &str, offset: i64) -> (i16, Vec<i64>) {
    let p = common::fetch(client, &fetch_request(topic, 0, offset, 0)).await;
    let offsets = p
        .records
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
