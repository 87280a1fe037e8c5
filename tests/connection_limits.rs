//! Limits that keep one client from exhausting the broker's memory or
//! connections: the fetch response cap, idle and request-read timeouts, and
//! the per-address connection cap.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use common::{
    admin, create_topic, decode_records, fetch, fetch_request, produce, record_batch, unique_topic,
    Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use streamhouse_testkit::BatchBuilder;
use tokio::io::AsyncWriteExt;

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

/// A broker whose connections idle out after `idle_ms`.
async fn broker_idling_after(idle_ms: u64) -> TestBroker {
    TestBroker::start_with(Backend::Embedded, |s| s.connections_max_idle_ms = idle_ms).await
}

async fn api_versions(client: &mut TestClient) {
    let response = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert!(matches!(response, ResponseKind::ApiVersions(r) if r.error_code == 0));
}

/// Kafka's `connections.max.idle.ms`: a socket that never sends a byte is
/// closed once it has been idle that long, not before.
#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let broker = broker_idling_after(300).await;
    let started = Instant::now();
    let mut silent = broker.client().await;
    assert!(silent.is_closed().await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    api_versions(&mut broker.client().await).await;
}

/// Idle means no request: a client sending one every 100 ms outlives the
/// 300 ms timeout many times over, then idles out once it stops.
#[tokio::test]
async fn a_connection_sending_requests_is_not_idle() {
    let broker = broker_idling_after(300).await;
    let mut client = broker.client().await;
    for _ in 0..12 {
        api_versions(&mut client).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client.is_closed().await);
}

/// A client waiting on a long-polling fetch is owed a response, so it is not
/// idle even when the wait is longer than the idle timeout.
#[tokio::test]
async fn a_long_poll_longer_than_the_idle_timeout_is_answered() {
    let broker = broker_idling_after(300).await;
    let mut client = broker.client().await;
    let topic = unique_topic("long-poll");
    create_topic(&mut client, &topic, 1).await;
    let started = Instant::now();
    let partition = fetch(&mut client, &fetch_request(&topic, 0, 0, 1_000)).await;
    assert_eq!(partition.error_code, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    api_versions(&mut client).await;
}

/// A request trickled in a byte at a time never leaves the socket idle, but
/// its bytes must all arrive within the timeout of its first.
#[tokio::test]
async fn a_request_trickled_slower_than_the_timeout_closes_the_connection() {
    let broker = broker_idling_after(500).await;
    let mut client = broker.client().await;
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(0)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str(
            "a-slow-client-with-a-long-id",
        )))
        .encode(&mut frame, 1)
        .unwrap();
    let length = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    // 100 ms apart: well inside the idle timeout, but the whole request
    // takes several times that.
    assert!(frame.len() * 100 > 2 * 500);
    for byte in frame.iter() {
        if client.stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client.is_closed().await,
        "no response, the connection closed"
    );
}

/// A client that pipelines fetches and never reads their responses is closed
/// once a response has waited the idle timeout to be written, rather than
/// holding its responses in memory for good.
#[tokio::test]
async fn a_client_that_does_not_read_its_responses_is_closed() {
    let broker = broker_idling_after(500).await;
    let mut client = broker.client().await;
    let topic = unique_topic("unread");
    create_topic(&mut client, &topic, 1).await;
    for i in 0..4 {
        let batch = BatchBuilder::new(8)
            .first(8 * i)
            .value(|_| vec![7u8; 100_000])
            .build();
        assert_eq!(produce(&mut client, &topic, 0, batch).await.0, 0);
    }
    // 32 responses of about 1 MiB: far more than the sockets' buffers hold.
    for _ in 0..32 {
        client
            .send(ApiKey::Fetch, 12, &fetch_request(&topic, 0, 0, 0))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let mut responses = 0;
    while client.receive_frame().await.is_some() {
        responses += 1;
    }
    assert!(
        responses < 32,
        "{responses} responses, then the connection closed"
    );
}

/// Kafka's `max.connections.per.ip`: past the cap, a new connection from the
/// same address is closed at once; the ones open keep working, and a slot
/// freed by a closed connection can be used again.
#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed() {
    let broker = TestBroker::start_with(Backend::Embedded, |s| s.max_connections_per_ip = 2).await;
    let mut first = broker.client().await;
    let mut second = broker.client().await;
    api_versions(&mut first).await;
    api_versions(&mut second).await;
    let started = Instant::now();
    let mut third = broker.client().await;
    assert!(third.is_closed().await);
    assert!(started.elapsed() < Duration::from_secs(1), "closed at once");
    api_versions(&mut first).await;
    api_versions(&mut second).await;
    drop(first);
    // The broker notices the close when it next reads: retry for a while.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = broker.client().await;
        let request = ApiVersionsRequest::default();
        again.send(ApiKey::ApiVersions, 3, &request).await;
        if again.receive_frame().await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot is used again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
