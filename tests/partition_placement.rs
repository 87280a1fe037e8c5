//! The partition placement admin APIs (ElectLeaders, ListPartitionReassignments,
//! AlterPartitionReassignments) and DescribeTopicPartitions over the wire, on
//! both backends, at every advertised version.

mod common;

use common::{
    create_topic, name, on_both_backends, unique_topic, versions, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

on_both_backends!(
    an_election_is_never_needed,
    nothing_is_reassigned_and_a_move_is_refused,
    topic_partitions_are_described_a_page_at_a_time,
    topic_partitions_match_metadata_and_every_topic_is_listed,
);

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

async fn elect(
    client: &mut TestClient,
    version: i16,
    request: &ElectLeadersRequest,
) -> ElectLeadersResponse {
    let ResponseKind::ElectLeaders(r) = client.call(ApiKey::ElectLeaders, version, request).await
    else {
        panic!("not an ElectLeaders response")
    };
    r
}

async fn an_election_is_never_needed(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("elect");
    create_topic(&mut client, &topic, 2).await;
    let missing = unique_topic("missing");
    for version in versions(ApiKey::ElectLeaders) {
        for election_type in [0, 1] {
            let request = ElectLeadersRequest::default()
                .with_election_type(election_type)
                .with_topic_partitions(Some(vec![
                    TopicPartitions::default()
                        .with_topic(name(&topic))
                        .with_partitions(vec![0, 1, 5]),
                    TopicPartitions::default()
                        .with_topic(name(&missing))
                        .with_partitions(vec![0]),
                ]))
                .with_timeout_ms(30_000);
            let r = elect(&mut client, version, &request).await;
            assert_eq!(r.error_code, 0, "v{version}");
            let codes: Vec<(String, Vec<(i32, i16)>)> = r
                .replica_election_results
                .iter()
                .map(|t| {
                    (
                        t.topic.0.to_string(),
                        t.partition_result
                            .iter()
                            .map(|p| (p.partition_id, p.error_code))
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(
                codes,
                [
                    (
                        topic.clone(),
                        vec![
                            (0, ELECTION_NOT_NEEDED),
                            (1, ELECTION_NOT_NEEDED),
                            (5, UNKNOWN_TOPIC_OR_PARTITION)
                        ]
                    ),
                    (missing.clone(), vec![(0, UNKNOWN_TOPIC_OR_PARTITION)]),
                ],
                "v{version} election type {election_type}"
            );
            if version == 0 {
                break; // v0 has no election type: always preferred.
            }
        }
        // Every partition: those already led as wanted are left out, as Kafka does.
        let all = elect(
            &mut client,
            version,
            &ElectLeadersRequest::default().with_topic_partitions(None),
        )
        .await;
        assert_eq!(all.error_code, 0);
        assert!(
            all.replica_election_results.is_empty(),
            "v{version}: {all:?}"
        );
        if version >= 1 {
            let bad = elect(
                &mut client,
                version,
                &ElectLeadersRequest::default()
                    .with_election_type(2)
                    .with_topic_partitions(None),
            )
            .await;
            assert_eq!(
                bad.error_code, INVALID_REQUEST,
                "v{version} election type 2"
            );
        }
    }
}

/// The leader Metadata names for partition 0 of `topic`, for this client.
async fn leader(client: &mut TestClient, topic: &str) -> BrokerId {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let ResponseKind::Metadata(r) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    r.topics[0].partitions[0].leader_id
}

async fn nothing_is_reassigned_and_a_move_is_refused(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("reassign");
    create_topic(&mut client, &topic, 2).await;
    let leader = leader(&mut client, &topic).await;

    for version in versions(ApiKey::ListPartitionReassignments) {
        for topics in [
            None,
            Some(vec![ListPartitionReassignmentsTopics::default()
                .with_name(name(&topic))
                .with_partition_indexes(vec![0, 1])]),
        ] {
            let request = ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(topics);
            let ResponseKind::ListPartitionReassignments(r) = client
                .call(ApiKey::ListPartitionReassignments, version, &request)
                .await
            else {
                panic!("not a ListPartitionReassignments response")
            };
            assert_eq!(r.error_code, 0);
            assert!(r.topics.is_empty(), "v{version}: {r:?}");
        }
    }

    let missing = unique_topic("missing");
    let partition = |index: i32, replicas: Option<Vec<BrokerId>>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas)
    };
    for version in versions(ApiKey::AlterPartitionReassignments) {
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(name(&topic))
                    .with_partitions(vec![
                        // What it has: done at once, as in Kafka.
                        partition(0, Some(vec![leader])),
                        partition(0, Some(vec![leader, BrokerId(leader.0 + 1)])),
                        partition(1, Some(vec![BrokerId(77)])),
                        partition(1, None),
                        partition(9, Some(vec![leader])),
                    ]),
                ReassignableTopic::default()
                    .with_name(name(&missing))
                    .with_partitions(vec![partition(0, None)]),
            ]);
        let ResponseKind::AlterPartitionReassignments(r) = client
            .call(ApiKey::AlterPartitionReassignments, version, &request)
            .await
        else {
            panic!("not an AlterPartitionReassignments response")
        };
        assert_eq!(r.error_code, 0, "v{version}");
        let codes: Vec<Vec<(i32, i16)>> = r
            .responses
            .iter()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.error_code))
                    .collect()
            })
            .collect();
        assert_eq!(
            codes,
            [
                vec![
                    (0, 0),
                    (0, INVALID_REPLICA_ASSIGNMENT),
                    (1, INVALID_REPLICA_ASSIGNMENT),
                    (1, NO_REASSIGNMENT_IN_PROGRESS),
                    (9, UNKNOWN_TOPIC_OR_PARTITION),
                ],
                vec![(0, UNKNOWN_TOPIC_OR_PARTITION)],
            ],
            "v{version}"
        );
        let refused = &r.responses[0].partitions[1];
        assert!(
            refused
                .error_message
                .as_ref()
                .is_some_and(|m| m.contains("places partitions itself")),
            "{refused:?}"
        );
    }
}

async fn describe(
    client: &mut TestClient,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(name(topic))
                .with_partition_index(partition)
        }));
    let ResponseKind::DescribeTopicPartitions(r) = client
        .call(ApiKey::DescribeTopicPartitions, 0, &request)
        .await
    else {
        panic!("not a DescribeTopicPartitions response")
    };
    r
}

/// (topic, error, partitions) of a page, and its next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(r: &DescribeTopicPartitionsResponse) -> Page {
    (
        r.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect(),
        r.next_cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index)),
    )
}

async fn topic_partitions_are_described_a_page_at_a_time(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let prefix = unique_topic("pages");
    let (a, b, c, m) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("{prefix}-c"),
        format!("{prefix}-m"),
    );
    create_topic(&mut client, &a, 3).await;
    create_topic(&mut client, &b, 2).await;
    create_topic(&mut client, &c, 1).await;
    // Named out of order, with an unknown one (m) that sorts last.
    let named = [m.as_str(), b.as_str(), a.as_str(), c.as_str()];
    let owned = |s: &str| s.to_owned();

    let first = describe(&mut client, &named, 2, None).await;
    assert_eq!(
        page(&first),
        (vec![(owned(&a), 0, vec![0, 1])], Some((owned(&a), 2)))
    );
    let second = describe(&mut client, &named, 2, Some((&a, 2))).await;
    assert_eq!(
        page(&second),
        (
            vec![(owned(&a), 0, vec![2]), (owned(&b), 0, vec![0])],
            Some((owned(&b), 1))
        )
    );
    // Full exactly at c's end: the cursor points at the next topic, known or not.
    let third = describe(&mut client, &named, 2, Some((&b, 1))).await;
    assert_eq!(
        page(&third),
        (
            vec![(owned(&b), 0, vec![1]), (owned(&c), 0, vec![0])],
            Some((owned(&m), 0))
        )
    );
    let last = describe(&mut client, &named, 2, Some((&m, 0))).await;
    assert_eq!(
        page(&last),
        (vec![(owned(&m), UNKNOWN_TOPIC_OR_PARTITION, vec![])], None)
    );
    // All at once: the limit is capped at 2000, not refused.
    let all = describe(&mut client, &named, i32::MAX, None).await;
    assert_eq!(
        page(&all),
        (
            vec![
                (owned(&a), 0, vec![0, 1, 2]),
                (owned(&b), 0, vec![0, 1]),
                (owned(&c), 0, vec![0]),
                (owned(&m), UNKNOWN_TOPIC_OR_PARTITION, vec![]),
            ],
            None
        )
    );
    // A cursor on a topic not named is Kafka's invalid request, on every topic.
    let stray = describe(&mut client, &[&a, &b], 10, Some((&c, 0))).await;
    assert_eq!(
        page(&stray),
        (
            vec![
                (owned(&a), INVALID_REQUEST, vec![]),
                (owned(&b), INVALID_REQUEST, vec![])
            ],
            None
        )
    );
    // An invalid name is Kafka's INVALID_TOPIC_EXCEPTION.
    let invalid = describe(&mut client, &["bad name!"], 10, None).await;
    assert_eq!(invalid.topics[0].error_code, 17);
}

async fn topic_partitions_match_metadata_and_every_topic_is_listed(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await.with_client_id("zone-test");
    let prefix = unique_topic("every");
    let (x, y) = (format!("{prefix}-x"), format!("{prefix}-y"));
    create_topic(&mut client, &y, 2).await;
    create_topic(&mut client, &x, 4).await;

    // Every topic includes the internal `__consumer_offsets` (1 partition),
    // first in name order.
    let every = describe(&mut client, &[], 4, None).await;
    assert_eq!(
        page(&every),
        (
            vec![
                ("__consumer_offsets".to_string(), 0, vec![0]),
                (x.clone(), 0, vec![0, 1, 2])
            ],
            Some((x.clone(), 3))
        )
    );
    assert!(every.topics[0].is_internal && !every.topics[1].is_internal);
    let rest = describe(&mut client, &[], 3, Some((&x, 3))).await;
    assert_eq!(
        page(&rest),
        (
            vec![(x.clone(), 0, vec![3]), (y.clone(), 0, vec![0, 1])],
            None
        )
    );

    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(&x))),
    ]));
    let ResponseKind::Metadata(metadata) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    let described = describe(&mut client, &[&x], 100, None).await;
    let topic = &described.topics[0];
    assert_eq!(topic.topic_id, metadata.topics[0].topic_id);
    assert!(!topic.is_internal);
    assert_eq!(
        topic.topic_authorized_operations, 3576,
        "every topic operation"
    );
    for (p, m) in topic.partitions.iter().zip(&metadata.topics[0].partitions) {
        assert_eq!(p.error_code, 0);
        assert_eq!(
            (p.leader_id, p.leader_epoch, &p.replica_nodes, &p.isr_nodes),
            (m.leader_id, m.leader_epoch, &m.replica_nodes, &m.isr_nodes)
        );
        assert_eq!(p.eligible_leader_replicas, Some(vec![]));
        assert!(p.offline_replicas.is_empty());
    }
}
