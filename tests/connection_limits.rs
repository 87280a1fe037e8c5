//! Limits that keep one client from exhausting the broker's memory or
//! connections: the fetch response cap, idle and request-read timeouts, and
//! the per-address connection cap.

mod common;

use common::{
    admin, create_topic, decode_records, fetch, fetch_request, produce, record_batch, unique_topic,
    Backend, TestBroker,
};
use kafka_protocol::records::Compression;

/// Kafka's `fetch.max.bytes` caps a fetch whatever `max_bytes` it asks for.
#[tokio::test]
async fn a_fetch_returns_at_most_the_broker_fetch_max_bytes() {
    let broker = TestBroker::start_with(Backend::Embedded, |s| s.fetch_max_bytes = 4096).await;
    let mut client = broker.client().await;
    let topic = unique_topic("fetch-cap");
    create_topic(&mut client, &topic, 1).await;
    // Whole batches fit the cap up to this many bytes: what must come back.
    let (mut fitting, mut full) = (0, false);
    for i in 0..10 {
        let batch = record_batch(20, 20 * i, 1_000, Compression::None);
        assert!(batch.len() < 4096 / 2, "{}-byte batches", batch.len());
        full |= fitting + batch.len() > 4096;
        if !full {
            fitting += batch.len();
        }
        assert_eq!(produce(&mut client, &topic, 0, batch).await.0, 0);
    }
    let mut request = fetch_request(&topic, 0, 0, 0).with_max_bytes(1 << 30);
    request.topics[0].partitions[0].partition_max_bytes = 1 << 30;
    let partition = fetch(&mut client, &request).await;
    assert_eq!(partition.error_code, 0);
    let records = partition.records.unwrap();
    assert!(full, "the topic holds more than the cap");
    assert_eq!(records.len(), fitting);
    let decoded = decode_records(records);
    assert_eq!(decoded.first().map(|r| r.0), Some(0));
    let result = admin::describe(
        &mut client,
        4,
        admin::BROKER,
        "0",
        Some(&["fetch.max.bytes"]),
    )
    .await;
    assert_eq!(admin::config(&result, "fetch.max.bytes").0, "4096");
}

/// A first batch larger than `fetch.max.bytes` still comes back whole, so a
/// consumer is never stuck behind it.
#[tokio::test]
async fn a_first_batch_larger_than_fetch_max_bytes_is_returned_whole() {
    let broker = TestBroker::start_with(Backend::Embedded, |s| s.fetch_max_bytes = 1024).await;
    let mut client = broker.client().await;
    let topic = unique_topic("fetch-cap-big");
    create_topic(&mut client, &topic, 1).await;
    let batch = record_batch(200, 0, 1_000, Compression::None);
    assert!(batch.len() > 1024);
    assert_eq!(produce(&mut client, &topic, 0, batch.clone()).await.0, 0);
    assert_eq!(
        produce(
            &mut client,
            &topic,
            0,
            record_batch(200, 200, 1_000, Compression::None)
        )
        .await
        .0,
        0
    );
    let partition = fetch(&mut client, &fetch_request(&topic, 0, 0, 0)).await;
    let records = partition.records.unwrap();
    assert_eq!(records.len(), batch.len());
    assert_eq!(decode_records(records).len(), 200);
}
