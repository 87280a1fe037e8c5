//! Two agents on one catalog and one store: what one changes, the other sees
//! within a second (usually milliseconds), on both backend pairs. The
//! single-agent cases of each API live with that API's tests.

mod common;

use std::time::{Duration, Instant};

use common::admin::incremental;
use common::{
    create_topic, fetch, fetch_request, list_offset, name, on_both_backends, produce, record_batch,
    unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(
    a_commit_through_one_agent_wakes_a_fetch_waiting_on_another,
    offsets_handed_out_by_one_agent_are_in_range_on_another,
    records_deleted_through_one_agent_are_out_of_range_on_another,
    a_config_change_through_one_agent_applies_on_another_within_a_second,
    a_topic_deleted_through_one_agent_is_gone_from_another_within_a_second,
);

const WITHIN: Duration = Duration::from_secs(1);
const TOPIC: i8 = 2;
const SET: i8 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;

async fn two_agents(backend: Backend) -> (TestBroker, TestBroker) {
    let a = TestBroker::start(backend).await;
    let b = a.another_agent(|_| {}).await;
    (a, b)
}

async fn produce_records(client: &mut TestClient, topic: &str, count: usize, first: usize) -> i64 {
    let (code, base) = produce(
        client,
        topic,
        0,
        record_batch(count, first, 1, Compression::None),
    )
    .await;
    assert_eq!(code, 0);
    base
}

async fn a_commit_through_one_agent_wakes_a_fetch_waiting_on_another(backend: Backend) {
    let (a, b) = two_agents(backend).await;
    let t = unique_topic("wake");
    create_topic(&mut a.client().await, &t, 1).await;
    let mut on_b = b.client().await;
    // B holds the head (empty) before anything is written.
    assert_eq!(
        fetch(&mut on_b, &fetch_request(&t, 0, 0, 0))
            .await
            .high_watermark,
        0
    );
    let waiting = tokio::spawn({
        let t = t.clone();
        async move {
            let data = fetch(&mut on_b, &fetch_request(&t, 0, 0, 20_000)).await;
            (data, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the fetch must be waiting");
    produce_records(&mut a.client().await, &t, 3, 0).await;
    let acknowledged = Instant::now();
    let (data, answered) = waiting.await.unwrap();
    let delay = answered.saturating_duration_since(acknowledged);
    assert!(
        delay < WITHIN,
        "the fetch on B answered {delay:?} after A's commit"
    );
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 3);
    assert_eq!(common::decode_records(data.records.unwrap()).len(), 3);
}

/// A consumer that read through A moves to B: B must not call the offsets A
/// handed out out of range, though its view may not have heard of them yet.
async fn offsets_handed_out_by_one_agent_are_in_range_on_another(backend: Backend) {
    let (a, b) = two_agents(backend).await;
    let t = unique_topic("range");
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    create_topic(&mut on_a, &t, 1).await;
    fetch(&mut on_b, &fetch_request(&t, 0, 0, 0)).await;
    for round in 0..5 {
        let base = produce_records(&mut on_a, &t, 2, round * 2).await;
        // At once, through B: at the new end, and at the last record.
        let at_end = fetch(&mut on_b, &fetch_request(&t, 0, base + 2, 0)).await;
        assert_eq!(at_end.error_code, 0, "round {round}: fetch at {}", base + 2);
        assert_eq!(at_end.high_watermark, base + 2);
        let last = fetch(&mut on_b, &fetch_request(&t, 0, base + 1, 0)).await;
        assert_eq!(last.error_code, 0, "round {round}: fetch at {}", base + 1);
        let records = common::decode_records(last.records.unwrap());
        assert_eq!(records.last().map(|r| r.0), Some(base + 1));
        // ListOffsets answers as the leader would: every acknowledged record.
        let (code, latest) = list_offset(&mut on_b, &t, -1).await;
        assert_eq!((code, latest), (0, base + 2));
    }
    let beyond = fetch(&mut on_b, &fetch_request(&t, 0, 11, 0)).await;
    assert_eq!(beyond.error_code, OFFSET_OUT_OF_RANGE);
}

async fn delete_records(client: &mut TestClient, topic: &str, before: i64) -> i16 {
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(before)])])
        .with_timeout_ms(5000);
    let ResponseKind::DeleteRecords(r) = client.call(ApiKey::DeleteRecords, 2, &request).await
    else {
        panic!("not a DeleteRecords response")
    };
    r.topics[0].partitions[0].error_code
}

async fn records_deleted_through_one_agent_are_out_of_range_on_another(backend: Backend) {
    let (a, b) = two_agents(backend).await;
    let t = unique_topic("trim");
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    create_topic(&mut on_a, &t, 1).await;
    produce_records(&mut on_a, &t, 4, 0).await;
    let read = fetch(&mut on_b, &fetch_request(&t, 0, 0, 0)).await;
    assert_eq!((read.error_code, read.log_start_offset), (0, 0));
    assert_eq!(delete_records(&mut on_a, &t, 3).await, 0);
    let deleted_at = Instant::now();
    loop {
        let read = fetch(&mut on_b, &fetch_request(&t, 0, 0, 0)).await;
        if read.error_code == OFFSET_OUT_OF_RANGE {
            break;
        }
        assert!(
            deleted_at.elapsed() < WITHIN,
            "B still serves deleted records"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let read = fetch(&mut on_b, &fetch_request(&t, 0, 3, 0)).await;
    assert_eq!((read.error_code, read.log_start_offset), (0, 3));
    assert_eq!(list_offset(&mut on_b, &t, -2).await, (0, 3));
}

async fn produce_code(client: &mut TestClient, topic: &str) -> i16 {
    produce(client, topic, 0, record_batch(5, 0, 1, Compression::None))
        .await
        .0
}

async fn a_config_change_through_one_agent_applies_on_another_within_a_second(backend: Backend) {
    let (a, b) = two_agents(backend).await;
    let t = unique_topic("limit");
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    create_topic(&mut on_a, &t, 1).await;
    // B has the topic cached, which alone would serve it for 5 s.
    assert_eq!(produce_code(&mut on_b, &t).await, 0);
    let change = [("max.message.bytes", SET, "100")];
    assert_eq!(
        incremental(&mut on_a, 1, TOPIC, &t, &change, false).await,
        (0, None)
    );
    let changed_at = Instant::now();
    while produce_code(&mut on_b, &t).await != MESSAGE_TOO_LARGE {
        assert!(
            changed_at.elapsed() < WITHIN,
            "B still accepts large batches"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_topic_deleted_through_one_agent_is_gone_from_another_within_a_second(backend: Backend) {
    let (a, b) = two_agents(backend).await;
    let t = unique_topic("gone");
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    create_topic(&mut on_a, &t, 1).await;
    assert_eq!(produce_code(&mut on_b, &t).await, 0);
    let waiting = tokio::spawn({
        let t = t.clone();
        async move { fetch(&mut on_b, &fetch_request(&t, 0, 5, 20_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the fetch must be waiting");
    let request = DeleteTopicsRequest::default().with_topic_names(vec![name(&t)]);
    let ResponseKind::DeleteTopics(r) = on_a.call(ApiKey::DeleteTopics, 4, &request).await else {
        panic!("not a DeleteTopics response")
    };
    assert_eq!(r.responses[0].error_code, 0);
    let deleted_at = Instant::now();
    let data = tokio::time::timeout(WITHIN + Duration::from_millis(500), waiting)
        .await
        .expect("the waiting fetch on B answers once the topic is gone")
        .unwrap();
    assert_eq!(data.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let mut on_b = b.client().await;
    while produce_code(&mut on_b, &t).await != UNKNOWN_TOPIC_OR_PARTITION {
        assert!(
            deleted_at.elapsed() < WITHIN,
            "B still accepts records for the deleted topic"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
