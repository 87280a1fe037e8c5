//! AlterReplicaLogDirs at every advertised version: an agent's one log dir
//! (its object store) holds every partition it hosts, so a move there is
//! already done, a move anywhere else names a dir the agent does not have,
//! and a partition it does not host (unknown, or placed on another agent)
//! is not available, as a Kafka broker answers each.

mod common;

use std::time::{Duration, Instant};

use common::TestClient;
use common::{create_topic, name, on_both_backends, s, unique_topic, Backend, TestBroker};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::*;

on_both_backends!(moves_into_the_agents_own_dir_are_done_and_others_refused);

const NONE: i16 = 0;
const REPLICA_NOT_AVAILABLE: i16 = 9;
const LOG_DIR_NOT_FOUND: i16 = 57;

async fn own_log_dir(client: &mut TestClient) -> String {
    let ResponseKind::DescribeLogDirs(response) = client
        .call(
            ApiKey::DescribeLogDirs,
            4,
            &DescribeLogDirsRequest::default(),
        )
        .await
    else {
        panic!("not a DescribeLogDirs response")
    };
    response.results[0].log_dir.to_string()
}

/// (topic, partition, error) of moving `partitions` of `topic` to `dir`.
async fn alter(
    client: &mut TestClient,
    version: i16,
    dir: &str,
    topics: &[(&str, &[i32])],
) -> Vec<(String, i32, i16)> {
    let request =
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(s(dir))
            .with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        AlterReplicaLogDirTopic::default()
                            .with_name(name(topic))
                            .with_partitions(partitions.to_vec())
                    })
                    .collect(),
            )]);
    let ResponseKind::AlterReplicaLogDirs(response) = client
        .call(ApiKey::AlterReplicaLogDirs, version, &request)
        .await
    else {
        panic!("not an AlterReplicaLogDirs response")
    };
    response
        .results
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic_name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

async fn moves_into_the_agents_own_dir_are_done_and_others_refused(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("dirs");
    create_topic(&mut client, &topic, 2).await;
    let dir = own_log_dir(&mut client).await;
    for version in common::versions(ApiKey::AlterReplicaLogDirs) {
        assert_eq!(
            alter(
                &mut client,
                version,
                &dir,
                &[(&topic, &[0, 1, 2]), ("no-such-topic", &[0])]
            )
            .await,
            vec![
                (topic.clone(), 0, NONE),
                (topic.clone(), 1, NONE),
                (topic.clone(), 2, REPLICA_NOT_AVAILABLE),
                ("no-such-topic".to_owned(), 0, REPLICA_NOT_AVAILABLE),
            ],
            "v{version}"
        );
        assert_eq!(
            alter(
                &mut client,
                version,
                "/var/lib/kafka/other",
                &[(&topic, &[0])]
            )
            .await,
            vec![(topic.clone(), 0, LOG_DIR_NOT_FOUND)],
            "v{version}"
        );
    }
}

/// With two agents, each partition is hosted by the agent Metadata points
/// clients at: that agent has it in its dir, the other does not have it.
#[tokio::test]
async fn only_the_hosting_agent_has_the_partition() {
    let a = TestBroker::start(Backend::Embedded).await;
    let b = a.another_agent(|_| {}).await;
    let topic = unique_topic("dirs-two");
    let mut client_a = a.client().await;
    create_topic(&mut client_a, &topic, 8).await;
    // Both agents see both once membership settles.
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(&topic))),
    ]));
    let started = Instant::now();
    let leaders = loop {
        let ResponseKind::Metadata(r) = client_a.call(ApiKey::Metadata, 12, &request).await else {
            panic!()
        };
        let leaders: Vec<i32> = r.topics[0]
            .partitions
            .iter()
            .map(|p| p.leader_id.0)
            .collect();
        if r.brokers.len() == 2 && leaders.iter().any(|&l| l != leaders[0]) {
            let mut by_partition: Vec<(i32, i32)> = r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect();
            by_partition.sort();
            break by_partition;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "agents never both led"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let partitions: Vec<i32> = leaders.iter().map(|(p, _)| *p).collect();
    for (agent, mut client) in [(&a, client_a), (&b, b.client().await)] {
        let node = agent.broker().node_id();
        let dir = own_log_dir(&mut client).await;
        let answered = alter(&mut client, 2, &dir, &[(&topic, &partitions)]).await;
        let expected: Vec<(String, i32, i16)> = leaders
            .iter()
            .map(|(p, leader)| {
                let error = if *leader == node {
                    NONE
                } else {
                    REPLICA_NOT_AVAILABLE
                };
                (topic.clone(), *p, error)
            })
            .collect();
        assert_eq!(answered, expected, "agent {node}");
    }
}
