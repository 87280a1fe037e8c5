//! `streamctl group ...`: list, describe (members, committed offsets, lag),
//! reset-offsets and delete, over ListGroups, FindCoordinator,
//! DescribeGroups (ConsumerGroupDescribe for groups of the KIP-848 protocol),
//! OffsetFetch, ListOffsets, OffsetCommit and DeleteGroups.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Buf;
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, ResponseKind,
};
use kafka_protocol::protocol::Decodable;
use serde_json::json;

use crate::client::{
    check, name, partitions_of, text, unexpected, ClientError, Cluster, EARLIEST, LATEST,
};
use crate::output::{self, Format};
use crate::topic::list_offset;

fn group_id(group: &str) -> GroupId {
    GroupId(text(group))
}

/// Every group any agent coordinates, with its state and protocol type.
pub async fn list(cluster: &mut Cluster, format: Format) -> Result<(), ClientError> {
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (node, _) in cluster.agents().await? {
        let connection = cluster.agent(node).await?;
        let request = ListGroupsRequest::default();
        let ResponseKind::ListGroups(response) =
            connection.call(ApiKey::ListGroups, 4, &request).await?
        else {
            return Err(unexpected("ListGroups"));
        };
        check(
            || format!("listing the groups of agent {node}"),
            response.error_code,
            None,
        )?;
        for g in response.groups {
            groups.insert(
                g.group_id.0.to_string(),
                (g.group_state.to_string(), g.protocol_type.to_string()),
            );
        }
    }
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|(group, (state, kind))| vec![group, state, kind])
        .collect();
    output::table(format, &["GROUP", "STATE", "PROTOCOL TYPE"], &rows);
    Ok(())
}

/// The group's committed offsets as (topic, partition) -> offset.
async fn committed(
    cluster: &mut Cluster,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
    let request =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(None)]);
    let coordinator = cluster.coordinator(group).await?;
    let ResponseKind::OffsetFetch(response) =
        coordinator.call(ApiKey::OffsetFetch, 8, &request).await?
    else {
        return Err(unexpected("OffsetFetch"));
    };
    let answer = response
        .groups
        .first()
        .ok_or_else(|| unexpected("OffsetFetch"))?;
    check(
        || format!("the offsets of group {group}"),
        answer.error_code,
        None,
    )?;
    let mut out = BTreeMap::new();
    for topic in &answer.topics {
        for p in &topic.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (topic.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// A member as either group protocol describes it.
struct MemberView {
    member_id: String,
    client_id: String,
    client_host: String,
    instance_id: Option<String>,
}

/// A group's state, protocol type and members, and which member holds each
/// (topic, partition).
struct Membership {
    state: String,
    protocol_type: String,
    members: Vec<MemberView>,
    owners: BTreeMap<(String, i32), String>,
}

/// Kafka's GROUP_ID_NOT_FOUND: DescribeGroups' answer for a group of the
/// KIP-848 protocol, which ConsumerGroupDescribe describes.
const GROUP_ID_NOT_FOUND: i16 = 69;

async fn membership(cluster: &mut Cluster, group: &str) -> Result<Membership, ClientError> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let coordinator = cluster.coordinator(group).await?;
    let ResponseKind::DescribeGroups(response) = coordinator
        .call(ApiKey::DescribeGroups, 5, &request)
        .await?
    else {
        return Err(unexpected("DescribeGroups"));
    };
    let described = response
        .groups
        .first()
        .ok_or_else(|| unexpected("DescribeGroups"))?;
    if described.error_code == GROUP_ID_NOT_FOUND {
        return consumer_membership(cluster, group).await;
    }
    check(
        || format!("describing group {group}"),
        described.error_code,
        described.error_message.as_ref(),
    )?;
    let mut owners = BTreeMap::new();
    for member in &described.members {
        for (topic, partition) in assigned(&member.member_assignment) {
            owners.insert((topic, partition), member.member_id.to_string());
        }
    }
    Ok(Membership {
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        members: described
            .members
            .iter()
            .map(|m| MemberView {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect(),
        owners,
    })
}

/// A group of the KIP-848 protocol, by ConsumerGroupDescribe.
async fn consumer_membership(
    cluster: &mut Cluster,
    group: &str,
) -> Result<Membership, ClientError> {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
    let coordinator = cluster.coordinator(group).await?;
    let ResponseKind::ConsumerGroupDescribe(response) = coordinator
        .call(ApiKey::ConsumerGroupDescribe, 0, &request)
        .await?
    else {
        return Err(unexpected("ConsumerGroupDescribe"));
    };
    let described = response
        .groups
        .first()
        .ok_or_else(|| unexpected("ConsumerGroupDescribe"))?;
    check(
        || format!("describing group {group}"),
        described.error_code,
        described.error_message.as_ref(),
    )?;
    let mut owners = BTreeMap::new();
    for member in &described.members {
        for topic in &member.assignment.topic_partitions {
            for &partition in &topic.partitions {
                owners.insert(
                    (topic.topic_name.0.to_string(), partition),
                    member.member_id.to_string(),
                );
            }
        }
    }
    Ok(Membership {
        state: described.group_state.to_string(),
        protocol_type: "consumer".to_owned(),
        members: described
            .members
            .iter()
            .map(|m| MemberView {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                instance_id: m.instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect(),
        owners,
    })
}

/// The group's state and members, and per partition it has offsets for or
/// members are assigned: committed offset, latest offset, lag and member.
/// Groups of either consumer protocol.
pub async fn describe(
    cluster: &mut Cluster,
    format: Format,
    group: &str,
) -> Result<(), ClientError> {
    let Membership {
        state,
        protocol_type,
        members,
        owners,
    } = membership(cluster, group).await?;
    let committed = committed(cluster, group).await?;
    if state == "Dead" && committed.is_empty() {
        return Err(ClientError::Usage(format!("group {group} does not exist")));
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owners.keys()).cloned().collect();
    let mut rows = Vec::new();
    let mut topics = BTreeMap::new();
    for (topic, partition) in keys {
        if !topics.contains_key(&topic) {
            topics.insert(topic.clone(), cluster.topic(&topic).await?);
        }
        let metadata = &topics[&topic];
        let latest = list_offset(cluster, metadata, &topic, partition, LATEST).await?;
        let offset = committed.get(&(topic.clone(), partition)).copied();
        let lag = offset.map(|o| (latest - o).max(0));
        let dash = || "-".to_string();
        rows.push(vec![
            topic.clone(),
            partition.to_string(),
            offset.map_or_else(dash, |o| o.to_string()),
            latest.to_string(),
            lag.map_or_else(dash, |l| l.to_string()),
            owners
                .get(&(topic, partition))
                .cloned()
                .unwrap_or_else(dash),
        ]);
    }
    match format {
        Format::Table => {
            println!("group {group}  state {state}  members {}", members.len());
            output::table(
                format,
                &["TOPIC", "PARTITION", "COMMITTED", "LATEST", "LAG", "MEMBER"],
                &rows,
            );
        }
        Format::Json => {
            let members: Vec<_> = members
                .iter()
                .map(|m| {
                    json!({
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "group_instance_id": m.instance_id,
                    })
                })
                .collect();
            let partitions: Vec<_> = rows
                .iter()
                .map(|r| {
                    let number = |s: &str| s.parse::<i64>().ok();
                    json!({
                        "topic": r[0],
                        "partition": number(&r[1]),
                        "committed": number(&r[2]),
                        "latest": number(&r[3]),
                        "lag": number(&r[4]),
                        "member": (r[5] != "-").then(|| r[5].clone()),
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "group": group,
                    "state": state,
                    "protocol_type": protocol_type,
                    "members": members,
                    "partitions": partitions,
                })
            );
        }
    }
    Ok(())
}

/// (topic, partition) of a consumer member's assignment: a version, then
/// the consumer protocol's assignment; nothing for other protocols.
fn assigned(assignment: &bytes::Bytes) -> Vec<(String, i32)> {
    let mut bytes = assignment.clone();
    if bytes.remaining() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16();
    let Ok(decoded) = ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3)) else {
        return Vec::new();
    };
    decoded
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
        .collect()
}

/// Where `reset-offsets` moves a group's offsets.
#[derive(Clone, Copy, Debug)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
}

/// Commits new offsets for `topic` (one partition or all) in `group`, which
/// must have no members (the coordinator refuses otherwise, as Kafka's tool
/// requires).
pub async fn reset_offsets(
    cluster: &mut Cluster,
    format: Format,
    group: &str,
    topic: &str,
    partition: Option<i32>,
    to: ResetTo,
) -> Result<(), ClientError> {
    let metadata = cluster.topic(topic).await?;
    let partitions = partitions_of(&metadata, partition);
    let mut offsets = Vec::new();
    for p in partitions {
        let offset = match to {
            ResetTo::Earliest => list_offset(cluster, &metadata, topic, p, EARLIEST).await?,
            ResetTo::Latest => list_offset(cluster, &metadata, topic, p, LATEST).await?,
            ResetTo::Offset(o) => o,
        };
        offsets.push((p, offset));
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|&(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(o)
                            .with_committed_leader_epoch(-1)
                    })
                    .collect(),
            )]);
    let coordinator = cluster.coordinator(group).await?;
    let ResponseKind::OffsetCommit(response) =
        coordinator.call(ApiKey::OffsetCommit, 8, &request).await?
    else {
        return Err(unexpected("OffsetCommit"));
    };
    for t in &response.topics {
        for p in &t.partitions {
            check(
                || format!("resetting group {group} on {topic}[{}]", p.partition_index),
                p.error_code,
                None,
            )?;
        }
    }
    let rows: Vec<Vec<String>> = offsets
        .iter()
        .map(|(p, o)| vec![topic.to_string(), p.to_string(), o.to_string()])
        .collect();
    output::table(format, &["TOPIC", "PARTITION", "NEW OFFSET"], &rows);
    Ok(())
}

pub async fn delete(cluster: &mut Cluster, format: Format, group: &str) -> Result<(), ClientError> {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    let coordinator = cluster.coordinator(group).await?;
    let ResponseKind::DeleteGroups(response) =
        coordinator.call(ApiKey::DeleteGroups, 2, &request).await?
    else {
        return Err(unexpected("DeleteGroups"));
    };
    let result = response
        .results
        .first()
        .ok_or_else(|| unexpected("DeleteGroups"))?;
    check(
        || format!("deleting group {group}"),
        result.error_code,
        None,
    )?;
    output::done(
        format,
        &format!("deleted group {group}"),
        json!({ "group": group, "deleted": true }),
    );
    Ok(())
}
