//! Share groups (KIP-932, queues) over the wire, on both backend pairs:
//! ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch, ShareAcknowledge and
//! DescribeShareGroupOffsets, AlterShareGroupOffsets and
//! DeleteShareGroupOffsets at every advertised version; two members sharing
//! one partition, each record with one member at a time; release and
//! redelivery with delivery counts; share-session epochs; a closed
//! connection releasing its member's records; the state surviving an agent
//! killed and started again; offsets reset and deleted only while the group
//! is empty; the group configs served per group (where a group begins, its
//! lock duration, its members' heartbeat intervals); Kafka's `simple`
//! assignor splitting partitions between members.

mod common;

use common::{
    create_topic, on_both_backends, produce, record_batch, s, unique_topic, versions, Backend,
    TestBroker, TestClient,
};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use uuid::Uuid;

on_both_backends!(
    members_share_a_partition_one_record_holder_at_a_time,
    acquired_records_stay_locked_across_a_restart,
    the_end_of_a_connection_releases_what_its_member_held,
    offsets_are_reset_and_deleted_only_while_the_group_is_empty,
    the_group_config_share_auto_offset_reset_says_where_a_group_begins,
    a_group_lock_duration_applies_to_its_members_only,
    a_groups_heartbeat_interval_reaches_its_members,
    the_simple_assignor_splits_partitions_between_members,
    a_groups_delivery_count_limit_archives_records_sooner,
);

const INVALID_RECORD_STATE: i16 = 121;
const SHARE_SESSION_NOT_FOUND: i16 = 122;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
const GROUP_ID_NOT_FOUND: i16 = 69;
const NON_EMPTY_GROUP: i16 = 68;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;

const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;

/// Starts a broker whose share groups begin at the earliest offset.
async fn broker(backend: Backend) -> TestBroker {
    TestBroker::start_with(backend, |cli| {
        cli.group_share_auto_offset_reset = "earliest".into();
    })
    .await
}

/// Joins `member` to the share group: (epoch, assigned partitions of the topic).
async fn join(client: &mut TestClient, group: &str, member: &str, topic: &str) -> (i32, Vec<i32>) {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(s(group).into())
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![s(topic).into()]));
    let (epoch, partitions) = share_heartbeat(client, &request).await;
    (epoch, partitions.unwrap_or_default())
}

/// A ShareGroupHeartbeat: (epoch, the partitions of a new assignment, if
/// it carries one).
async fn share_heartbeat(
    client: &mut TestClient,
    request: &ShareGroupHeartbeatRequest,
) -> (i32, Option<Vec<i32>>) {
    let ResponseKind::ShareGroupHeartbeat(r) =
        client.call(ApiKey::ShareGroupHeartbeat, 1, request).await
    else {
        panic!("not a ShareGroupHeartbeat response")
    };
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let partitions = r.assignment.map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect()
    });
    (r.member_epoch, partitions)
}

/// A ShareFetch of partition 0; acks are (first, last, type).
async fn share_fetch(
    client: &mut TestClient,
    group: &str,
    member: &str,
    epoch: i32,
    topic: Uuid,
    max_records: i32,
    acks: &[(i64, i64, i8)],
) -> ShareFetchResponse {
    let request = ShareFetchRequest::default()
        .with_group_id(Some(s(group).into()))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_max_records(max_records)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![FetchPartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(
                    acks.iter()
                        .map(|(first, last, kind)| {
                            AcknowledgementBatch::default()
                                .with_first_offset(*first)
                                .with_last_offset(*last)
                                .with_acknowledge_types(vec![*kind])
                        })
                        .collect(),
                )])]);
    let ResponseKind::ShareFetch(r) = client.call(ApiKey::ShareFetch, 1, &request).await else {
        panic!("not a ShareFetch response")
    };
    r
}

/// (first, last, delivery count) of each acquired range in partition 0.
fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

async fn share_ack(
    client: &mut TestClient,
    group: &str,
    member: &str,
    epoch: i32,
    topic: Uuid,
    acks: &[(i64, i64, i8)],
) -> (i16, Vec<i16>) {
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(s(group).into()))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(
                    acks.iter()
                        .map(|(first, last, kind)| {
                            AckBatch::default()
                                .with_first_offset(*first)
                                .with_last_offset(*last)
                                .with_acknowledge_types(vec![*kind])
                        })
                        .collect(),
                )])]);
    let ResponseKind::ShareAcknowledge(r) =
        client.call(ApiKey::ShareAcknowledge, 1, &request).await
    else {
        panic!("not a ShareAcknowledge response")
    };
    let codes = r
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect();
    (r.error_code, codes)
}

async fn start_offset(client: &mut TestClient, group: &str, topic: &str) -> i64 {
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(s(group).into())
            .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                .with_topic_name(s(topic).into())
                .with_partitions(vec![0])])),
    ]);
    let ResponseKind::DescribeShareGroupOffsets(r) = client
        .call(ApiKey::DescribeShareGroupOffsets, 0, &request)
        .await
    else {
        panic!("not a DescribeShareGroupOffsets response")
    };
    assert_eq!(r.groups[0].error_code, 0);
    r.groups[0].topics[0].partitions[0].start_offset
}

/// The topic's id, from a share group heartbeat's assignment.
async fn topic_id(client: &mut TestClient, topic: &str) -> Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(s(topic).into())),
    ]));
    let ResponseKind::Metadata(r) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    r.topics[0].topic_id
}

async fn ten_records(client: &mut TestClient, topic: &str) -> Uuid {
    create_topic(client, topic, 1).await;
    let (error, _) = produce(client, topic, 0, record_batch(10, 0, 0, Compression::None)).await;
    assert_eq!(error, 0);
    topic_id(client, topic).await
}

#[tokio::test]
async fn every_advertised_version_answers() {
    let broker = broker(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgv");
    let id = ten_records(&mut client, &topic).await;
    let group = format!("{topic}-g");
    assert_eq!(versions(ApiKey::ShareGroupHeartbeat), 1..=1);
    let (epoch, partitions) = join(&mut client, &group, "m", &topic).await;
    assert_eq!((epoch, partitions), (1, vec![0]));
    for version in versions(ApiKey::ShareGroupDescribe) {
        let request = ShareGroupDescribeRequest::default()
            .with_group_ids(vec![s(&group).into(), s("absent").into()])
            .with_include_authorized_operations(true);
        let ResponseKind::ShareGroupDescribe(r) = client
            .call(ApiKey::ShareGroupDescribe, version, &request)
            .await
        else {
            panic!()
        };
        assert_eq!(r.groups[0].error_code, 0);
        assert_eq!(r.groups[0].group_state.as_str(), "Stable");
        assert_eq!(r.groups[0].members[0].member_id.as_str(), "m");
        assert_eq!(
            r.groups[0].members[0].assignment.topic_partitions[0]
                .topic_name
                .as_str(),
            topic
        );
        assert_eq!(r.groups[1].error_code, GROUP_ID_NOT_FOUND);
    }
    for version in versions(ApiKey::ShareFetch) {
        assert_eq!(version, 1);
        let r = share_fetch(&mut client, &group, "m", 0, id, 500, &[]).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(acquired(&r), vec![(0, 9, 1)]);
        let records = r.responses[0].partitions[0].records.clone().unwrap();
        assert!(!records.is_empty());
    }
    for version in versions(ApiKey::ShareAcknowledge) {
        let request = ShareAcknowledgeRequest::default()
            .with_group_id(Some(s(&group).into()))
            .with_member_id(Some(s("m")))
            .with_share_session_epoch(1);
        let ResponseKind::ShareAcknowledge(r) = client
            .call(ApiKey::ShareAcknowledge, version, &request)
            .await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0);
    }
    assert_eq!(start_offset(&mut client, &group, &topic).await, 0);
    let (code, partitions) = share_ack(&mut client, &group, "m", 2, id, &[(0, 9, ACCEPT)]).await;
    assert_eq!((code, partitions), (0, vec![0]));
    assert_eq!(start_offset(&mut client, &group, &topic).await, 10);
}

async fn members_share_a_partition_one_record_holder_at_a_time(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sg");
    let id = ten_records(&mut client, &topic).await;
    let group = format!("{topic}-g");
    join(&mut client, &group, "a", &topic).await;
    join(&mut client, &group, "b", &topic).await;

    let a = share_fetch(&mut client, &group, "a", 0, id, 4, &[]).await;
    assert_eq!(acquired(&a), vec![(0, 3, 1)]);
    let b = share_fetch(&mut client, &group, "b", 0, id, 100, &[]).await;
    assert_eq!(acquired(&b), vec![(4, 9, 1)], "a's records are not b's");

    // b cannot acknowledge a's records; a accepts its own.
    let (_, codes) = share_ack(&mut client, &group, "b", 1, id, &[(0, 3, ACCEPT)]).await;
    assert_eq!(codes, vec![INVALID_RECORD_STATE]);
    let (_, codes) = share_ack(&mut client, &group, "a", 1, id, &[(0, 3, ACCEPT)]).await;
    assert_eq!(codes, vec![0]);
    // b releases two and accepts the rest, piggy-backed on its next fetch.
    let b = share_fetch(
        &mut client,
        &group,
        "b",
        2,
        id,
        100,
        &[(4, 5, RELEASE), (6, 9, ACCEPT)],
    )
    .await;
    assert_eq!(b.responses[0].partitions[0].acknowledge_error_code, 0);
    // b's fetch took the released records again itself (count 2), or left
    // them to a: either way each goes to one member.
    let mut again = acquired(&b);
    if again.is_empty() {
        again = acquired(&share_fetch(&mut client, &group, "a", 2, id, 100, &[]).await);
    }
    assert_eq!(again, vec![(4, 5, 2)]);
    assert_eq!(start_offset(&mut client, &group, &topic).await, 4);

    // Session epochs: a wrong one, and a session that does not exist.
    let wrong = share_fetch(&mut client, &group, "a", 9, id, 100, &[]).await;
    assert_eq!(wrong.error_code, INVALID_SHARE_SESSION_EPOCH);
    let none = share_fetch(&mut client, &group, "nobody", 1, id, 100, &[]).await;
    assert_eq!(none.error_code, SHARE_SESSION_NOT_FOUND);

    // Closing b's session releases what it holds.
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(s(&group).into()))
        .with_member_id(Some(s("b")))
        .with_share_session_epoch(-1);
    let _ = client.call(ApiKey::ShareAcknowledge, 1, &request).await;
    let a = share_fetch(&mut client, &group, "a", 0, id, 100, &[]).await;
    let left = acquired(&a);
    assert!(left.is_empty() || left == vec![(4, 5, 3)], "{left:?}");
}

async fn acquired_records_stay_locked_across_a_restart(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgr");
    let id = ten_records(&mut client, &topic).await;
    let group = format!("{topic}-g");
    join(&mut client, &group, "a", &topic).await;
    let a = share_fetch(&mut client, &group, "a", 0, id, 3, &[]).await;
    assert_eq!(acquired(&a), vec![(0, 2, 1)]);

    // Killed, its connections end without it seeing them go (a graceful
    // stop would release a's records as their connection closes).
    let mut broker = broker;
    broker.kill();
    drop(client);
    // The aborted agent lets go of its port once the runtime gets to it.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    join(&mut client, &group, "b", &topic).await;
    let b = share_fetch(&mut client, &group, "b", 0, id, 100, &[]).await;
    assert_eq!(acquired(&b), vec![(3, 9, 1)], "a's lock outlives the agent");
    // a's session was this agent's memory: it opens a new one and still
    // holds its records.
    let a = share_fetch(&mut client, &group, "a", 0, id, 100, &[]).await;
    assert!(acquired(&a).is_empty());
    let (_, codes) = share_ack(&mut client, &group, "a", 1, id, &[(0, 2, ACCEPT)]).await;
    assert_eq!(codes, vec![0]);
}

async fn the_end_of_a_connection_releases_what_its_member_held(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgd");
    let id = ten_records(&mut client, &topic).await;
    let group = format!("{topic}-g");
    join(&mut client, &group, "a", &topic).await;
    join(&mut client, &group, "b", &topic).await;
    let mut a = broker.client().await;
    let held = share_fetch(&mut a, &group, "a", 0, id, 4, &[]).await;
    assert_eq!(acquired(&held), vec![(0, 3, 1)]);
    // b's session is on another connection: it stays.
    let b_first = share_fetch(&mut client, &group, "b", 0, id, 2, &[]).await;
    assert_eq!(acquired(&b_first), vec![(4, 5, 1)]);

    drop(a);
    // The agent sees the connection end a moment later; a's records are
    // then b's to take, long before their 30 s locks lapse.
    let mut taken = Vec::new();
    for epoch in 1..=50 {
        taken = acquired(&share_fetch(&mut client, &group, "b", epoch, id, 100, &[]).await);
        if taken.first().is_some_and(|r| r.0 == 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        taken.first(),
        Some(&(0, 3, 2)),
        "a's records delivered again: {taken:?}"
    );
}

/// AlterShareGroupOffsets of (topic, partition, start offset) triples:
/// (top-level error, each partition's error).
async fn alter_offsets(
    client: &mut TestClient,
    group: &str,
    offsets: &[(&str, i32, i64)],
) -> (i16, Vec<i16>) {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    let topics = offsets
        .iter()
        .map(|(topic, partition, start)| {
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(s(topic).into())
                .with_partitions(vec![AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_start_offset(*start)])
        })
        .collect();
    let request = AlterShareGroupOffsetsRequest::default()
        .with_group_id(s(group).into())
        .with_topics(topics);
    let ResponseKind::AlterShareGroupOffsets(r) = client
        .call(ApiKey::AlterShareGroupOffsets, 0, &request)
        .await
    else {
        panic!("not an AlterShareGroupOffsets response")
    };
    let codes = r
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect();
    (r.error_code, codes)
}

/// DeleteShareGroupOffsets of the topics: (top-level error, each topic's).
async fn delete_offsets(client: &mut TestClient, group: &str, topics: &[&str]) -> (i16, Vec<i16>) {
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    let request = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(s(group).into())
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(s(t).into())
                })
                .collect(),
        );
    let ResponseKind::DeleteShareGroupOffsets(r) = client
        .call(ApiKey::DeleteShareGroupOffsets, 0, &request)
        .await
    else {
        panic!("not a DeleteShareGroupOffsets response")
    };
    (
        r.error_code,
        r.responses.iter().map(|t| t.error_code).collect(),
    )
}

async fn leave(client: &mut TestClient, group: &str, member: &str) {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(s(group).into())
        .with_member_id(s(member))
        .with_member_epoch(-1);
    let ResponseKind::ShareGroupHeartbeat(r) =
        client.call(ApiKey::ShareGroupHeartbeat, 1, &request).await
    else {
        panic!("not a ShareGroupHeartbeat response")
    };
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
}

async fn offsets_are_reset_and_deleted_only_while_the_group_is_empty(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgo");
    let id = ten_records(&mut client, &topic).await;
    let group = format!("{topic}-g");
    join(&mut client, &group, "a", &topic).await;
    let a = share_fetch(&mut client, &group, "a", 0, id, 100, &[]).await;
    assert_eq!(acquired(&a), vec![(0, 9, 1)]);
    let (_, codes) = share_ack(&mut client, &group, "a", 1, id, &[(0, 4, ACCEPT)]).await;
    assert_eq!(codes, vec![0]);
    assert_eq!(start_offset(&mut client, &group, &topic).await, 5);

    // A member holds the group: nothing changes.
    assert_eq!(
        alter_offsets(&mut client, &group, &[(&topic, 0, 2)])
            .await
            .0,
        NON_EMPTY_GROUP
    );
    assert_eq!(
        delete_offsets(&mut client, &group, &[&topic]).await.0,
        NON_EMPTY_GROUP
    );
    assert_eq!(start_offset(&mut client, &group, &topic).await, 5);

    leave(&mut client, &group, "a").await;
    let (code, partitions) = alter_offsets(
        &mut client,
        &group,
        &[
            (&topic, 0, 2),
            (&topic, 1, 0),
            ("no-such-topic", 0, 0),
            (&topic, 0, -5),
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        partitions,
        vec![
            0,
            UNKNOWN_TOPIC_OR_PARTITION,
            UNKNOWN_TOPIC_OR_PARTITION,
            INVALID_REQUEST
        ]
    );
    assert_eq!(start_offset(&mut client, &group, &topic).await, 2);
    // Begun again at 2: a's locks on 5-9 are forgotten with the rest.
    join(&mut client, &group, "b", &topic).await;
    let b = share_fetch(&mut client, &group, "b", 0, id, 100, &[]).await;
    assert_eq!(acquired(&b), vec![(2, 9, 1)]);
    leave(&mut client, &group, "b").await;

    let (code, topics) = delete_offsets(&mut client, &group, &[&topic, "no-such-topic"]).await;
    assert_eq!((code, topics), (0, vec![0, UNKNOWN_TOPIC_OR_PARTITION]));
    assert_eq!(start_offset(&mut client, &group, &topic).await, -1);
    let (_, topics) = delete_offsets(&mut client, &group, &[&topic]).await;
    assert_eq!(
        topics,
        vec![UNKNOWN_TOPIC_OR_PARTITION],
        "nothing left to delete"
    );
    // The group begins the topic anew, at the earliest offset (the agent's
    // share.auto.offset.reset here).
    join(&mut client, &group, "c", &topic).await;
    let c = share_fetch(&mut client, &group, "c", 0, id, 100, &[]).await;
    assert_eq!(acquired(&c), vec![(0, 9, 1)]);

    // Not a share group, or none at all.
    assert_eq!(
        alter_offsets(&mut client, "no-such-group", &[(&topic, 0, 0)])
            .await
            .0,
        GROUP_ID_NOT_FOUND
    );
    assert_eq!(
        delete_offsets(&mut client, "no-such-group", &[&topic])
            .await
            .0,
        GROUP_ID_NOT_FOUND
    );
}

/// IncrementalAlterConfigs of the group resource: (error code, message).
async fn alter_group_config(
    client: &mut TestClient,
    group: &str,
    key: &str,
    value: &str,
) -> (i16, Option<String>) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s(group))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let ResponseKind::IncrementalAlterConfigs(r) = client
        .call(ApiKey::IncrementalAlterConfigs, 1, &request)
        .await
    else {
        panic!("not an IncrementalAlterConfigs response")
    };
    (
        r.responses[0].error_code,
        r.responses[0].error_message.as_ref().map(|m| m.to_string()),
    )
}

async fn the_group_config_share_auto_offset_reset_says_where_a_group_begins(backend: Backend) {
    // The agent's default is latest: only the group config makes it earliest.
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgc");
    let id = ten_records(&mut client, &topic).await;
    let (early, late) = (format!("{topic}-early"), format!("{topic}-late"));

    let (code, message) =
        alter_group_config(&mut client, &early, "share.auto.offset.reset", "earliest").await;
    assert_eq!(code, 0, "{message:?}");
    let (code, _) =
        alter_group_config(&mut client, &early, "share.auto.offset.reset", "sometimes").await;
    assert_eq!(code, 40, "INVALID_CONFIG");
    let (code, message) =
        alter_group_config(&mut client, &early, "streams.num.standby.replicas", "1").await;
    assert_eq!(code, 40, "not served per group: {message:?}");
    let (code, message) =
        alter_group_config(&mut client, &early, "share.session.timeout.ms", "30000").await;
    assert_eq!(code, 40, "below Kafka's minimum: {message:?}");

    let request = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s(&early))
            .with_configuration_keys(None),
    ]);
    let ResponseKind::DescribeConfigs(r) = client.call(ApiKey::DescribeConfigs, 4, &request).await
    else {
        panic!()
    };
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    let config = &r.results[0].configs[0];
    assert_eq!(
        (
            config.name.as_str(),
            config.value.as_ref().map(|v| v.as_str()),
            config.config_source
        ),
        ("share.auto.offset.reset", Some("earliest"), 8)
    );
    let request = ListConfigResourcesRequest::default().with_resource_types(vec![32]);
    let ResponseKind::ListConfigResources(r) =
        client.call(ApiKey::ListConfigResources, 1, &request).await
    else {
        panic!()
    };
    assert!(r
        .config_resources
        .iter()
        .any(|c| c.resource_name.as_str() == early));

    join(&mut client, &early, "a", &topic).await;
    let a = share_fetch(&mut client, &early, "a", 0, id, 100, &[]).await;
    assert_eq!(acquired(&a), vec![(0, 9, 1)], "earliest: the ten records");
    join(&mut client, &late, "a", &topic).await;
    let a = share_fetch(&mut client, &late, "a", 0, id, 100, &[]).await;
    assert!(acquired(&a).is_empty(), "latest: none of the ten");
    assert_eq!(start_offset(&mut client, &late, &topic).await, 10);
}

async fn a_group_lock_duration_applies_to_its_members_only(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgl");
    let id = ten_records(&mut client, &topic).await;
    let (short, long) = (format!("{topic}-short"), format!("{topic}-long"));
    for (value, code) in [("14999", 40), ("60001", 40), ("15000", 0)] {
        let (got, message) =
            alter_group_config(&mut client, &short, "share.record.lock.duration.ms", value).await;
        assert_eq!(got, code, "{value}: {message:?}");
    }

    join(&mut client, &short, "a", &topic).await;
    join(&mut client, &short, "b", &topic).await;
    let a = share_fetch(&mut client, &short, "a", 0, id, 100, &[]).await;
    assert_eq!(a.acquisition_lock_timeout_ms, 15_000);
    assert_eq!(acquired(&a), vec![(0, 9, 1)]);
    join(&mut client, &long, "a", &topic).await;
    let other = share_fetch(&mut client, &long, "a", 0, id, 100, &[]).await;
    assert_eq!(other.acquisition_lock_timeout_ms, 30_000, "the agent's");

    // a holds 0-9 (its session stays open on this connection); once its
    // 15 s locks lapse, b gets them for a second delivery.
    let mut b_client = broker.client().await;
    let b = share_fetch(&mut b_client, &short, "b", 0, id, 100, &[]).await;
    assert!(acquired(&b).is_empty(), "locked by a");
    tokio::time::sleep(std::time::Duration::from_millis(15_300)).await;
    let b = share_fetch(&mut b_client, &short, "b", 1, id, 100, &[]).await;
    assert_eq!(acquired(&b), vec![(0, 9, 2)], "a's locks lapsed after 15 s");
}

async fn a_groups_heartbeat_interval_reaches_its_members(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgh");
    ten_records(&mut client, &topic).await;
    let (share, consumer) = (format!("{topic}-share"), format!("{topic}-consumer"));
    for (group, key, value) in [
        (&share, "share.heartbeat.interval.ms", "9000"),
        (&share, "share.session.timeout.ms", "50000"),
        (&consumer, "consumer.heartbeat.interval.ms", "7000"),
        (&consumer, "consumer.session.timeout.ms", "50000"),
    ] {
        let (code, message) = alter_group_config(&mut client, group, key, value).await;
        assert_eq!(code, 0, "{key}={value}: {message:?}");
    }
    let (code, message) = alter_group_config(
        &mut client,
        &consumer,
        "consumer.heartbeat.interval.ms",
        "16000",
    )
    .await;
    assert_eq!(code, 40, "above Kafka's maximum: {message:?}");

    let share_beat = |group: &str| {
        ShareGroupHeartbeatRequest::default()
            .with_group_id(s(group).into())
            .with_member_id(s(&Uuid::new_v4().to_string()))
            .with_member_epoch(0)
            .with_subscribed_topic_names(Some(vec![s(&topic).into()]))
    };
    for (group, interval) in [(share.clone(), 9000), (format!("{topic}-plain"), 5000)] {
        let ResponseKind::ShareGroupHeartbeat(r) = client
            .call(ApiKey::ShareGroupHeartbeat, 1, &share_beat(&group))
            .await
        else {
            panic!("not a ShareGroupHeartbeat response")
        };
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.heartbeat_interval_ms, interval, "{group}");
    }
    let consumer_beat = |group: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(s(group).into())
            .with_member_id(s(&Uuid::new_v4().to_string()))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![s(&topic).into()]))
            .with_topic_partitions(Some(vec![]))
    };
    for (group, interval) in [(consumer.clone(), 7000), (format!("{topic}-plain2"), 5000)] {
        let ResponseKind::ConsumerGroupHeartbeat(r) = client
            .call(ApiKey::ConsumerGroupHeartbeat, 1, &consumer_beat(&group))
            .await
        else {
            panic!("not a ConsumerGroupHeartbeat response")
        };
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.heartbeat_interval_ms, interval, "{group}");
    }
}

/// A ShareGroupHeartbeat of a member at `epoch` that names no subscription.
async fn beat(
    client: &mut TestClient,
    group: &str,
    member: &str,
    epoch: i32,
) -> (i32, Option<Vec<i32>>) {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(s(group).into())
        .with_member_id(s(member))
        .with_member_epoch(epoch);
    share_heartbeat(client, &request).await
}

async fn the_simple_assignor_splits_partitions_between_members(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sga");
    create_topic(&mut client, &topic, 4).await;
    let group = format!("{topic}-g");
    let (_, a) = join(&mut client, &group, "a", &topic).await;
    assert_eq!(a, vec![0, 1, 2, 3], "alone, a reads every partition");
    let (_, b) = join(&mut client, &group, "b", &topic).await;
    assert_eq!(b.len(), 2, "{b:?}");
    // a's next heartbeat gives it the other two: no partition read twice.
    let (epoch, a) = beat(&mut client, &group, "a", 1).await;
    let mut a = a.expect("a new assignment for a");
    assert_eq!(a.len(), 2, "{a:?}");
    a.extend(&b);
    a.sort();
    assert_eq!(a, vec![0, 1, 2, 3]);
    // b leaves: a gets every partition back.
    beat(&mut client, &group, "b", -1).await;
    let (_, a) = beat(&mut client, &group, "a", epoch).await;
    assert_eq!(a, Some(vec![0, 1, 2, 3]));
}

async fn a_groups_delivery_count_limit_archives_records_sooner(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("sgd");
    let id = ten_records(&mut client, &topic).await;
    let (two, five) = (format!("{topic}-two"), format!("{topic}-five"));
    for (value, code) in [("1", 40), ("11", 40), ("2", 0)] {
        let (got, message) =
            alter_group_config(&mut client, &two, "share.delivery.count.limit", value).await;
        assert_eq!(got, code, "{value}: {message:?}");
    }
    // Released after each delivery: the group limited to two archives the
    // records at the second release; the agent's limit (5) delivers again.
    for (group, third) in [(&two, vec![]), (&five, vec![(0, 9, 3)])] {
        join(&mut client, group, "a", &topic).await;
        let first = share_fetch(&mut client, group, "a", 0, id, 100, &[]).await;
        assert_eq!(acquired(&first), vec![(0, 9, 1)], "{group}");
        let release = [(0, 9, RELEASE)];
        let second = share_fetch(&mut client, group, "a", 1, id, 100, &release).await;
        assert_eq!(acquired(&second), vec![(0, 9, 2)], "{group}");
        let last = share_fetch(&mut client, group, "a", 2, id, 100, &release).await;
        assert_eq!(acquired(&last), third, "{group}");
    }
}
