//! Retention over the wire, on two agents sharing a catalog and a store:
//! records whose batches' max timestamp is older than retention.ms leave the
//! log (the earliest offset advances, a fetch below it is out of range), a
//! partition keeps at least retention.bytes as Kafka's size rule does, the
//! agent's --log-retention-ms is the default topics report and follow, and
//! DescribeLogDirs answers the retained sizes, each partition by one agent.
//!
//! Old data is made with old timestamps rather than a clock: the rule compares
//! the batches' max timestamp with the time of the pass.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    admin, create_topic_with, fetch, fetch_request, list_offset, name, on_both_backends, produce,
    record_batch, unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(
    expired_records_leave_the_log_on_the_agents_default,
    a_partition_keeps_at_least_retention_bytes,
);

const EARLIEST: i64 = -2;
const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Two agents checking retention every 100 ms (only one of them does).
async fn two_agents(backend: Backend, log_retention_ms: i64) -> (TestBroker, TestBroker) {
    let settings = move |s: &mut streamhouse::Settings| {
        s.retention_check_interval_ms = 100;
        s.log_retention_ms = log_retention_ms;
    };
    let first = TestBroker::start_with(backend, settings).await;
    let second = first.another_agent(settings).await;
    // Each lists the partitions placed on it: both must see both.
    for agent in [&first, &second] {
        let mut client = agent.client().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let request = MetadataRequest::default().with_topics(Some(vec![]));
            let ResponseKind::Metadata(r) = client.call(ApiKey::Metadata, 12, &request).await
            else {
                panic!("not a Metadata response")
            };
            if r.brokers.len() == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "agents do not see each other");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (first, second)
}

/// Waits until partition 0's earliest offset is `expected`, asking through
/// `client`.
async fn await_earliest(client: &mut TestClient, topic: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (error, earliest) = list_offset(client, topic, EARLIEST).await;
        assert_eq!(error, 0);
        if earliest == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "earliest offset still {earliest}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sizes DescribeLogDirs reports for `topic` through `client`:
/// (log dir, partition, size).
async fn log_dir_sizes(
    client: &mut TestClient,
    topic: &str,
    version: i16,
) -> Vec<(String, i32, i64)> {
    let request =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![0, 1])]));
    let ResponseKind::DescribeLogDirs(r) = client
        .call(ApiKey::DescribeLogDirs, version, &request)
        .await
    else {
        panic!("not a DescribeLogDirs response")
    };
    assert_eq!(r.results.len(), 1, "one log dir per agent");
    let dir = &r.results[0];
    assert_eq!(dir.error_code, 0);
    dir.topics
        .iter()
        .flat_map(|t| {
            assert_eq!(t.name.0.as_str(), topic);
            t.partitions
                .iter()
                .map(|p| (dir.log_dir.to_string(), p.partition_index, p.partition_size))
        })
        .collect()
}

/// Partition sizes summed over both agents' answers, each partition listed
/// by exactly one of them.
async fn cluster_sizes(agents: &[&TestBroker], topic: &str) -> Vec<(i32, i64)> {
    let mut sizes = Vec::new();
    for (i, agent) in agents.iter().enumerate() {
        let mut client = agent.client().await;
        // Every version answers the same sizes.
        let version = [1, 4][i % 2];
        for (dir, partition, size) in log_dir_sizes(&mut client, topic, version).await {
            assert!(!dir.contains('?'), "no query (credentials) in {dir}");
            sizes.push((partition, size));
        }
    }
    sizes.sort_unstable();
    sizes
}

async fn expired_records_leave_the_log_on_the_agents_default(backend: Backend) {
    let (first, second) = two_agents(backend, HOUR_MS).await;
    let mut client = first.client().await;
    let topic = unique_topic("retention-time");
    let (error, message) = create_topic_with(&mut client, &topic, 2, &[]).await;
    assert_eq!(error, 0, "{message:?}");
    let described = admin::describe(&mut client, 4, admin::TOPIC, &topic, None).await;
    assert_eq!(
        admin::config(&described, "retention.ms"),
        (HOUR_MS.to_string(), 4),
        "the agent's default, as a static broker config"
    );

    // Each produce is acknowledged before the next is sent: separate objects,
    // separate index entries.
    let old = record_batch(5, 0, now_ms() - 2 * HOUR_MS, Compression::None);
    let recent = record_batch(3, 5, now_ms(), Compression::None);
    assert_eq!(produce(&mut client, &topic, 0, old.clone()).await, (0, 0));
    assert_eq!(produce(&mut client, &topic, 0, old.clone()).await, (0, 5));
    assert_eq!(
        produce(&mut client, &topic, 0, recent.clone()).await,
        (0, 10)
    );
    // Older again, but behind a recent batch: kept, as Kafka keeps a segment
    // behind a newer one.
    assert_eq!(produce(&mut client, &topic, 0, old.clone()).await, (0, 13));
    assert_eq!(produce(&mut client, &topic, 1, old.clone()).await, (0, 0));

    let mut other = second.client().await;
    await_earliest(&mut other, &topic, 10).await;
    let below = fetch(&mut other, &fetch_request(&topic, 0, 0, 0)).await;
    assert_eq!(
        below.error_code, 1,
        "OFFSET_OUT_OF_RANGE below the log start"
    );
    // Whichever agent moved it, the other's view follows within its feed's
    // delay (a poll period on SQLite).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kept = fetch(&mut client, &fetch_request(&topic, 0, 10, 0)).await;
        assert_eq!(kept.error_code, 0);
        if kept.log_start_offset == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log start {}",
            kept.log_start_offset
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Partition 1 held only expired records: nothing is left, the next
    // offset stays.
    let earliest_1 = || async {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(name(&topic))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(1)
                        .with_timestamp(EARLIEST),
                ])]);
        let mut client = first.client().await;
        let ResponseKind::ListOffsets(r) = client.call(ApiKey::ListOffsets, 6, &request).await
        else {
            panic!("not a ListOffsets response")
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.offset
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while earliest_1().await != 5 {
        assert!(Instant::now() < deadline, "partition 1 keeps its records");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let sizes = cluster_sizes(&[&first, &second], &topic).await;
    let expected = (recent.len() + old.len()) as i64;
    assert_eq!(sizes, vec![(0, expected), (1, 0)]);
}

async fn a_partition_keeps_at_least_retention_bytes(backend: Backend) {
    let (first, second) = two_agents(backend, -1).await;
    let mut client = second.client().await;
    let topic = unique_topic("retention-size");
    let batch = record_batch(4, 0, now_ms(), Compression::None);
    let size = batch.len() as i64;
    // Three batches of `size` bytes: dropping the first leaves 2 × size, at
    // least the limit; dropping the second would leave less.
    let limit = (size + 1).to_string();
    let (error, message) =
        create_topic_with(&mut client, &topic, 1, &[("retention.bytes", &limit)]).await;
    assert_eq!(error, 0, "{message:?}");
    for base in [0, 4, 8] {
        assert_eq!(
            produce(&mut client, &topic, 0, batch.clone()).await,
            (0, base)
        );
    }
    let mut other = first.client().await;
    await_earliest(&mut other, &topic, 4).await;
    // It stays there: what is left is under twice the limit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(list_offset(&mut other, &topic, EARLIEST).await, (0, 4));
    assert_eq!(
        cluster_sizes(&[&first, &second], &topic).await,
        vec![(0, 2 * size)]
    );
}
