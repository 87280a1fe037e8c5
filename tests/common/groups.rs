//! Consumer-group calls for the wire tests: one helper per API, speaking its
//! newest version unless a test asks for another, and the group error codes.

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use uuid::Uuid;

use super::{s, TestClient};

pub const NONE: i16 = 0;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// ConsumerProtocolSubscription v0 metadata subscribing to `topics`.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut bytes = vec![0u8, 0];
    bytes.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        bytes.extend_from_slice(topic.as_bytes());
    }
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(bytes)
}

pub struct Join<'a> {
    pub group: &'a str,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub protocol_type: &'a str,
    pub protocols: Vec<(&'a str, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
}

impl<'a> Join<'a> {
    pub fn consumer(group: &'a str, member_id: &'a str, topics: &[&str]) -> Join<'a> {
        Join {
            group,
            member_id,
            instance_id: None,
            protocol_type: "consumer",
            protocols: vec![("range", subscription(topics))],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
        }
    }

    pub fn request(&self) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(self.group)))
            .with_member_id(s(self.member_id))
            .with_group_instance_id(self.instance_id.map(s))
            .with_protocol_type(s(self.protocol_type))
            .with_session_timeout_ms(self.session_timeout_ms)
            .with_rebalance_timeout_ms(self.rebalance_timeout_ms)
            .with_protocols(
                self.protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(name))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            )
    }
}

pub async fn join_v(client: &mut TestClient, join: &Join<'_>, version: i16) -> JoinGroupResponse {
    let ResponseKind::JoinGroup(r) = client
        .call(ApiKey::JoinGroup, version, &join.request())
        .await
    else {
        panic!("not a JoinGroup response")
    };
    r
}

pub async fn join(client: &mut TestClient, join: &Join<'_>) -> JoinGroupResponse {
    join_v(client, join, 9).await
}

/// Joins as a new member the v4+ way: MEMBER_ID_REQUIRED first, then with the id.
pub async fn join_new(client: &mut TestClient, mut request: Join<'_>) -> JoinGroupResponse {
    let first = join(client, &request).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let id = first.member_id.to_string();
    request.member_id = &id;
    join(client, &request).await
}

pub async fn sync_v(
    client: &mut TestClient,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, &[u8])],
    version: i16,
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_assignments(
            assignments
                .iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(member))
                        .with_assignment(Bytes::copy_from_slice(assignment))
                })
                .collect(),
        );
    let ResponseKind::SyncGroup(r) = client.call(ApiKey::SyncGroup, version, &request).await else {
        panic!("not a SyncGroup response")
    };
    r
}

pub async fn sync(
    client: &mut TestClient,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, &[u8])],
) -> SyncGroupResponse {
    sync_v(client, group, generation, member_id, assignments, 5).await
}

pub async fn heartbeat(
    client: &mut TestClient,
    group: &str,
    generation: i32,
    member_id: &str,
) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id));
    let ResponseKind::Heartbeat(r) = client.call(ApiKey::Heartbeat, 4, &request).await else {
        panic!("not a Heartbeat response")
    };
    r.error_code
}

pub async fn leave(client: &mut TestClient, group: &str, member_id: &str) -> i16 {
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s(member_id))
        ]);
    let ResponseKind::LeaveGroup(r) = client.call(ApiKey::LeaveGroup, 5, &request).await else {
        panic!("not a LeaveGroup response")
    };
    assert_eq!(r.error_code, NONE);
    r.members[0].error_code
}

/// Commits (topic, partition, offset, metadata); answers (topic, partition, error).
pub async fn commit(
    client: &mut TestClient,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64, &str)],
) -> Vec<(String, i32, i16)> {
    let topics = offsets
        .iter()
        .map(|(topic, partition, offset, metadata)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_metadata(Some(s(metadata)))])
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(topics);
    let ResponseKind::OffsetCommit(r) = client.call(ApiKey::OffsetCommit, 9, &request).await else {
        panic!("not an OffsetCommit response")
    };
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// Fetches offsets at v7; answers (topic, partition, offset, metadata).
pub async fn fetch(
    client: &mut TestClient,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> Vec<(String, i32, i64, String)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|(t, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partition_indexes(partitions.to_vec())
                })
                .collect()
        }));
    let ResponseKind::OffsetFetch(r) = client.call(ApiKey::OffsetFetch, 7, &request).await else {
        panic!("not an OffsetFetch response")
    };
    assert_eq!(r.error_code, NONE);
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                assert_eq!(p.error_code, NONE);
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

pub async fn describe(
    client: &mut TestClient,
    group: &str,
) -> describe_groups_response::DescribedGroup {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let ResponseKind::DescribeGroups(mut r) =
        client.call(ApiKey::DescribeGroups, 5, &request).await
    else {
        panic!("not a DescribeGroups response")
    };
    r.groups.remove(0)
}

/// A ConsumerGroupHeartbeat at `version`; `owned`: (topic id, partitions).
pub async fn consumer_heartbeat_v(
    client: &mut TestClient,
    version: i16,
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
    owned: Option<&[(Uuid, Vec<i32>)]>,
) -> ConsumerGroupHeartbeatResponse {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(s(group).into())
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
        .with_subscribed_topic_names(topics.map(|ts| ts.iter().map(|t| s(t).into()).collect()))
        .with_topic_partitions(owned.map(|o| {
            o.iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps.clone())
                })
                .collect()
        }));
    let ResponseKind::ConsumerGroupHeartbeat(r) = client
        .call(ApiKey::ConsumerGroupHeartbeat, version, &request)
        .await
    else {
        panic!("not a ConsumerGroupHeartbeat response")
    };
    r
}
