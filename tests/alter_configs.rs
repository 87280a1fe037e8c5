//! Changing topic configs over the wire: AlterConfigs, IncrementalAlterConfigs
//! and their effect on Produce (max.message.bytes, message.timestamp.type), on
//! both backends.

mod common;

use common::admin::*;
use common::{
    create_topic_with, fetch_request, list_offsets, name, on_both_backends, produce, record_batch,
    unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use streamhouse_protocol::batch;

on_both_backends!(
    alter_configs_replaces_the_whole_set,
    incremental_alter_sets_deletes_appends_and_subtracts,
    a_new_max_message_bytes_applies_to_the_next_produce,
    log_append_time_stamps_batches_with_the_broker_clock,
);

async fn alter_configs_replaces_the_whole_set(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("alter");
    create_topic_with(&mut client, &t, 1, &[("cleanup.policy", "compact")]).await;

    assert_eq!(
        alter(&mut client, 2, TOPIC, &t, &[("retention.ms", "1000")], true).await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![("cleanup.policy".into(), "compact".into(), 1)],
        "validate_only changes nothing"
    );

    assert_eq!(
        alter(
            &mut client,
            2,
            TOPIC,
            &t,
            &[("retention.ms", "1000")],
            false
        )
        .await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![("retention.ms".into(), "1000".into(), 1)],
        "cleanup.policy reset to its default"
    );

    let refused = alter(&mut client, 2, TOPIC, &t, &[("retention.ms", "-5")], false).await;
    assert_eq!(
        refused,
        (
            40,
            Some(
                "Invalid value -5 for configuration retention.ms: Value must be at least -1".into()
            )
        )
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![("retention.ms".into(), "1000".into(), 1)],
        "unchanged"
    );

    assert_eq!(
        alter(&mut client, 2, TOPIC, "never-created", &[], false)
            .await
            .0,
        3
    );
    assert_eq!(
        alter(
            &mut client,
            2,
            BROKER,
            "0",
            &[("num.partitions", "3")],
            false
        )
        .await
        .0,
        42
    );
    assert_eq!(alter(&mut client, 2, GROUP, "g", &[], false).await.0, 42);
}

async fn incremental_alter_sets_deletes_appends_and_subtracts(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("incremental");
    create_topic_with(&mut client, &t, 1, &[("min.insync.replicas", "2")]).await;

    let ops = [
        ("retention.ms", SET, "1000"),
        ("cleanup.policy", APPEND, "compact"),
    ];
    assert_eq!(
        incremental(&mut client, 1, TOPIC, &t, &ops, false).await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![
            ("cleanup.policy".into(), "delete,compact".into(), 1),
            ("min.insync.replicas".into(), "2".into(), 1),
            ("retention.ms".into(), "1000".into(), 1),
        ],
        "APPEND starts from the default; untouched keys stay"
    );
    let ops = [
        ("cleanup.policy", SUBTRACT, "delete"),
        ("retention.ms", DELETE, ""),
    ];
    assert_eq!(
        incremental(&mut client, 1, TOPIC, &t, &ops, false).await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![
            ("cleanup.policy".into(), "compact".into(), 1),
            ("min.insync.replicas".into(), "2".into(), 1)
        ]
    );
    assert_eq!(
        config(
            &describe(&mut client, 4, TOPIC, &t, None).await,
            "retention.ms"
        ),
        ("604800000".into(), 5),
        "a deleted key is back to Kafka's default"
    );

    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("retention.ms", APPEND, "1")],
            false
        )
        .await,
        (
            42,
            Some("Config value append is not allowed for config key: retention.ms".into())
        )
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("retention.ms", SET, "1"), ("retention.ms", SET, "2")],
            false
        )
        .await,
        (42, Some("Error due to duplicate config keys".into()))
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("no.such.key", SET, "1")],
            false
        )
        .await,
        (40, Some("Unknown topic config name: no.such.key".into()))
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("retention.ms", SET, "5")],
            true
        )
        .await,
        (0, None)
    );
    assert_eq!(
        config(
            &describe(&mut client, 4, TOPIC, &t, None).await,
            "retention.ms"
        ),
        ("604800000".into(), 5),
        "validate_only changes nothing"
    );
    assert_eq!(
        incremental(&mut client, 1, TOPIC, "never-created", &ops, false)
            .await
            .0,
        3
    );
}

async fn produce_code(client: &mut TestClient, topic: &str) -> i16 {
    let batch = record_batch(5, 0, 1, Compression::None);
    produce(client, topic, 0, batch).await.0
}

async fn a_new_max_message_bytes_applies_to_the_next_produce(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("limit");
    create_topic_with(&mut client, &t, 1, &[]).await;
    assert_eq!(produce_code(&mut client, &t).await, 0);
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("max.message.bytes", SET, "100")],
            false
        )
        .await,
        (0, None)
    );
    assert_eq!(
        produce_code(&mut client, &t).await,
        10,
        "MESSAGE_TOO_LARGE at once, not after the cache expires"
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("max.message.bytes", DELETE, "")],
            false
        )
        .await,
        (0, None)
    );
    assert_eq!(produce_code(&mut client, &t).await, 0);
}

/// The (attributes, max timestamp) of every batch fetched from offset 0, each
/// checked for a valid CRC.
async fn fetched_batch_headers(client: &mut TestClient, topic: &str) -> Vec<(i16, i64)> {
    let records = common::fetch(client, &fetch_request(topic, 0, 0, 0))
        .await
        .records
        .expect("records");
    batch::split(&records)
        .expect("whole batches")
        .into_iter()
        .map(|range| {
            let header = batch::validate(&records[range]).expect("valid batch and CRC");
            (header.attributes, header.max_timestamp)
        })
        .collect()
}

async fn log_append_time_stamps_batches_with_the_broker_clock(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("append-time");
    create_topic_with(
        &mut client,
        &t,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(&t))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(record_batch(3, 0, 1, Compression::None)))])]);
    let ResponseKind::Produce(r) = client.call(ApiKey::Produce, 9, &request).await else {
        panic!("not a Produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let stamped = p.log_append_time_ms;
    assert!(
        stamped >= before,
        "{stamped} is the append time, not the producer's 1"
    );
    assert_eq!(
        fetched_batch_headers(&mut client, &t).await,
        vec![(0x08, stamped)],
        "timestamp-type bit set, max timestamp = append time, CRC recomputed"
    );
    let found = list_offsets(&mut client, &t, stamped).await;
    assert_eq!(
        (found.offset, found.timestamp),
        (0, stamped),
        "every record has the append time"
    );

    // Back to CreateTime: the next batch keeps the producer's timestamps.
    let ops = [("message.timestamp.type", DELETE, "")];
    assert_eq!(
        incremental(&mut client, 1, TOPIC, &t, &ops, false).await,
        (0, None)
    );
    assert_eq!(
        produce(&mut client, &t, 0, record_batch(1, 3, 7, Compression::None)).await,
        (0, 3)
    );
    let headers = fetched_batch_headers(&mut client, &t).await;
    assert_eq!(headers[1], (0, 7));
}
