//! The memory budget of fetch responses across connections
//! (`--fetch-memory-bytes`): clients that do not read their responses hold at
//! most the budget between them, and clients that read keep being served.
//!
//! The budget is measured as the test process's peak resident memory (the
//! broker runs in it), so this file's tests run one at a time ([`one_at_a_time`]).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{create_topic, fetch, fetch_request, produce, unique_topic, Backend, TestClient};
use kafka_protocol::messages::ApiKey;
use streamhouse_testkit::BatchBuilder;
use tokio::net::TcpSocket;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Held for the whole of each test, so that no other test's broker grows the
/// resident memory one measures. (A tokio mutex: each test has a runtime of
/// its own, and the guard is held across awaits.)
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// Produces `batches` batches of 8 records of 32 KiB (256 KiB a batch) to
/// partition 0 of a new topic.
async fn topic_of_large_batches(client: &mut TestClient, batches: usize) -> String {
    let topic = unique_topic("large-batches");
    create_topic(client, &topic, 1).await;
    for i in 0..batches {
        let batch = BatchBuilder::new(8)
            .first(8 * i)
            .value(|_| vec![7u8; 32 * KIB])
            .build();
        assert_eq!(produce(client, &topic, 0, batch).await.0, 0);
    }
    topic
}

/// A connection whose client sends requests and never reads. Its receive
/// buffer is small, so the broker's writes stall after a few KiB instead of
/// after whatever the kernel would take in.
async fn not_reading(addr: std::net::SocketAddr) -> TestClient {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4 * KIB as u32).unwrap();
    TestClient::on(socket.connect(addr).await.unwrap())
}

/// The records of one fetch of `topic` from `offset`, waiting 300 ms at most.
async fn fetch_records(client: &mut TestClient, topic: &str, offset: i64) -> Bytes {
    let partition = fetch(client, &fetch_request(topic, 0, offset, 300)).await;
    assert_eq!(partition.error_code, 0);
    partition.records.unwrap_or_default()
}

/// Fetches until records come back; how long that took.
async fn fetch_until_served(client: &mut TestClient, topic: &str, offset: i64) -> Duration {
    let started = Instant::now();
    while fetch_records(client, topic, offset).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a reading consumer was not served for 20 s"
        );
    }
    started.elapsed()
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A fetch of all of `topic` the 50 MiB fetch limit allows.
fn fetch_everything(topic: &str, max_wait_ms: i32) -> kafka_protocol::messages::FetchRequest {
    let mut request = fetch_request(topic, 0, 0, max_wait_ms);
    request.topics[0].partitions[0].partition_max_bytes = 50 * MIB as i32;
    request
}

/// Eight clients that each pipeline four fetches of 10 MiB and read none
/// would hold 320 MiB (less what the kernel's send buffers take, 4 MiB a
/// socket); with a budget of 8 MiB the process's peak grows by at most twice
/// the budget (a response read, then encoded) and a margin, and a consumer
/// that reads is served all along: the first non-reader takes 31 of the 40
/// batches, less than a batch is left, and the non-readers holding memory
/// are closed once fetches wait for it.
#[tokio::test]
async fn clients_that_do_not_read_hold_at_most_the_budget() {
    let _alone = one_at_a_time().await;
    const BUDGET: usize = 8 * MIB;
    const MARGIN: usize = 16 * MIB;
    let broker =
        common::TestBroker::start_with(Backend::Embedded, |s| s.fetch_memory_bytes = BUDGET).await;
    let mut consumer = broker.client().await;
    let large = topic_of_large_batches(&mut consumer, 40).await;
    // Read once, so the objects are in the read cache before the baseline.
    assert!(!fetch_records(&mut consumer, &large, 0).await.is_empty());

    // Reset the peak to what is resident now (Linux: "5" to clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let baseline = status_kib("VmRSS:");
    let mut flood = Vec::new();
    for _ in 0..8 {
        let mut client = not_reading(broker.addr).await;
        for _ in 0..4 {
            client
                .send(ApiKey::Fetch, 12, &fetch_everything(&large, 1_000))
                .await;
        }
        flood.push(client);
    }
    let mut slowest = Duration::ZERO;
    for batch in 0..5 {
        slowest = slowest.max(fetch_until_served(&mut consumer, &large, 8 * batch).await);
    }
    // Let the flood do its worst: its fetches wait for memory for a second.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let peak = status_kib("VmHWM:");
    let grown = peak.saturating_sub(baseline) * KIB;
    eprintln!(
        "resident {} MiB before the flood, peak {} MiB; slowest consumer fetch {slowest:?}",
        baseline / KIB,
        peak / KIB
    );
    assert!(
        grown <= 2 * BUDGET + MARGIN,
        "the peak grew by {} MiB with a budget of {} MiB",
        grown / MIB,
        BUDGET / MIB
    );
    drop(flood);
}

/// While a client that does not read holds the budget, a fetch that needs
/// more answers at its max wait with the offsets and no records (no error:
/// the client asks again); once the holder has taken nothing for a second
/// while fetches wait, it is closed and the fetch is served.
#[tokio::test]
async fn a_fetch_short_of_memory_answers_empty_then_is_served() {
    let _alone = one_at_a_time().await;
    let broker =
        common::TestBroker::start_with(Backend::Embedded, |s| s.fetch_memory_bytes = 8 * MIB).await;
    let mut consumer = broker.client().await;
    let large = topic_of_large_batches(&mut consumer, 40).await;
    let mut holder = not_reading(broker.addr).await;
    // 31 of the 40 batches fit the 8 MiB it takes: less than a batch is left,
    // and the 7.75 MiB response is more than the kernel takes in (4 MiB), so
    // its write stalls.
    holder
        .send(ApiKey::Fetch, 12, &fetch_everything(&large, 0))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let partition = fetch(&mut consumer, &fetch_request(&large, 0, 0, 300)).await;
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 320);
    assert_eq!(partition.records.unwrap_or_default().len(), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "answered at its max wait, not before: {:?}",
        started.elapsed()
    );
    let waited = fetch_until_served(&mut consumer, &large, 0).await;
    assert!(waited < Duration::from_secs(3), "served after {waited:?}");
    drop(holder);
}

/// One response larger than the whole budget is still served, holding all of
/// it: a 256 KiB batch with a budget of 64 KiB.
#[tokio::test]
async fn a_response_larger_than_the_whole_budget_is_served_alone() {
    let _alone = one_at_a_time().await;
    let broker =
        common::TestBroker::start_with(Backend::Embedded, |s| s.fetch_memory_bytes = 64 * KIB)
            .await;
    let mut client = broker.client().await;
    let large = topic_of_large_batches(&mut client, 2).await;
    let mut records = fetch_records(&mut client, &large, 0).await;
    let batches = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
    let records: usize = batches.iter().map(|batch| batch.records.len()).sum();
    assert_eq!(records, 8);
}
