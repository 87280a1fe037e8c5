//! Share groups' offsets (KIP-932): DescribeShareGroupOffsets (each share
//! partition's start offset), AlterShareGroupOffsets (a partition begun
//! again at an offset) and DeleteShareGroupOffsets (a topic's state
//! forgotten, begun again as `share.auto.offset.reset` says), as
//! `kafka-share-groups --describe --offsets`, `--reset-offsets` and
//! `--delete-offsets` use them. Kafka's checks: DESCRIBE on the group and
//! on each topic shown to describe; READ on the group (DELETE to delete) and
//! READ on each topic to change. A group's offsets change only while it has
//! no members (NON_EMPTY_GROUP otherwise), held so for the whole change.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, TopicName,
};
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::TopicId;
use uuid::Uuid;

use super::consumer_groups::topics;
use super::groups::text;
use crate::acl::Access;
use crate::coordinator::DescribedShare;
use crate::share::SharePartition;
use crate::{errors, Broker};

/// DescribeShareGroupOffsets: each share partition's start offset (where the
/// group's undelivered or unacknowledged records begin); -1 for a partition
/// the group never read.
pub async fn describe_offsets(
    broker: &Broker,
    request: DescribeShareGroupOffsetsRequest,
    access: &Access,
) -> DescribeShareGroupOffsetsResponse {
    let known = topics(broker).await.unwrap_or_default();
    let mut groups = Vec::with_capacity(request.groups.len());
    for wanted in request.groups {
        let group_id = wanted.group_id.clone();
        let failed = |error: ResponseError, message: Option<String>| {
            DescribeShareGroupOffsetsResponseGroup::default()
                .with_group_id(group_id.clone())
                .with_error_code(error.code())
                .with_error_message(message.map(|m| text(&m)))
        };
        if !access.allows_group(AclOperation::Describe, &group_id) {
            groups.push(failed(ResponseError::GroupAuthorizationFailed, None));
            continue;
        }
        match broker.coordinator.describe_share_group(&group_id).await {
            Ok(DescribedShare::Share(_)) => {}
            Ok(DescribedShare::NotFound(why)) => {
                groups.push(failed(ResponseError::GroupIdNotFound, Some(why)));
                continue;
            }
            Err(error) => {
                groups.push(failed(error, None));
                continue;
            }
        }
        let stored = match broker.catalog.share_partitions(&group_id).await {
            Ok(stored) => stored,
            Err(e) => {
                groups.push(failed(errors::catalog(&e), None));
                continue;
            }
        };
        let mut starts: BTreeMap<(Uuid, i32), i64> = BTreeMap::new();
        for partition in stored {
            if let Ok(state) = SharePartition::from_json(&partition.state) {
                starts.insert((partition.topic, partition.partition), state.start());
            }
        }
        let names: BTreeMap<Uuid, &str> = known.iter().map(|(n, s)| (s.id, n.as_str())).collect();
        // (topic name, id, partitions) to answer.
        let asked: Vec<(String, Uuid, Vec<i32>)> = match &wanted.topics {
            Some(topics) => topics
                .iter()
                .filter_map(|t| {
                    let shape = known.get(t.topic_name.as_str())?;
                    Some((t.topic_name.to_string(), shape.id, t.partitions.clone()))
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in starts.keys() {
                    by_topic.entry(*topic).or_default().push(*partition);
                }
                by_topic
                    .into_iter()
                    .filter_map(|(id, ps)| Some((names.get(&id)?.to_string(), id, ps)))
                    .collect()
            }
        };
        let topics = asked
            .into_iter()
            .filter(|(name, _, _)| access.allows_topic(AclOperation::Describe, name))
            .map(|(name, id, partitions)| {
                DescribeShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(TopicName(text(&name)))
                    .with_topic_id(id)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|p| {
                                DescribeShareGroupOffsetsResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_start_offset(starts.get(&(id, p)).copied().unwrap_or(-1))
                                    .with_leader_epoch(0)
                            })
                            .collect(),
                    )
            })
            .collect();
        groups.push(
            DescribeShareGroupOffsetsResponseGroup::default()
                .with_group_id(group_id)
                .with_topics(topics),
        );
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

/// Why a change of `group_id`'s offsets is refused before anything is
/// read: no group named, or `operation` on it not allowed.
fn refused_group(
    access: &Access,
    group_id: &str,
    operation: AclOperation,
) -> Option<ResponseError> {
    if group_id.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else if !access.allows_group(operation, group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    }
}

/// A requested topic by name: its id and partition count, or why not.
async fn resolve(
    broker: &Broker,
    access: &Access,
    name: &str,
) -> Result<(TopicId, i32), ResponseError> {
    if !access.allows_topic(AclOperation::Read, name) {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    match broker.catalog.topic_by_name(name).await {
        Ok(Some(topic)) => Ok((topic.id, topic.partition_count)),
        Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
        Err(e) => Err(errors::catalog(&e)),
    }
}

fn partition_answer(
    partition: i32,
    error: Option<ResponseError>,
) -> AlterShareGroupOffsetsResponsePartition {
    AlterShareGroupOffsetsResponsePartition::default()
        .with_partition_index(partition)
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_error_message(error.map(|e| text(&e.to_string())))
}

/// AlterShareGroupOffsets: each named partition begins again at its start
/// offset, whatever it held (records acquired, acknowledged or archived
/// above it are forgotten: the group has no members to hold any).
pub async fn alter_offsets(
    broker: &Broker,
    request: AlterShareGroupOffsetsRequest,
    access: &Access,
) -> AlterShareGroupOffsetsResponse {
    let failed = |error: ResponseError, message: Option<String>| {
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(error.code())
            .with_error_message(message.map(|m| text(&m)))
    };
    let group_id = request.group_id.to_string();
    if let Some(error) = refused_group(access, &group_id, AclOperation::Read) {
        return failed(error, None);
    }
    // Per topic: its id (nil when unknown) and each partition's start
    // offset, or why it is refused.
    type Plan = Vec<(String, Uuid, Vec<(i32, Result<i64, ResponseError>)>)>;
    let mut plan: Plan = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.topic_name.to_string();
        let resolved = resolve(broker, access, &name).await;
        let id = resolved.map_or(Uuid::nil(), |(id, _)| id);
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let wanted = match resolved {
                    Err(error) => Err(error),
                    Ok((_, count)) if !(0..count).contains(&p.partition_index) => {
                        Err(ResponseError::UnknownTopicOrPartition)
                    }
                    Ok(_) if p.start_offset < 0 => Err(ResponseError::InvalidRequest),
                    Ok(_) => Ok(p.start_offset),
                };
                (p.partition_index, wanted)
            })
            .collect();
        plan.push((name, id, partitions));
    }
    let change = async {
        let mut topics = Vec::with_capacity(plan.len());
        for (name, id, partitions) in &plan {
            let mut answers = Vec::with_capacity(partitions.len());
            for &(partition, wanted) in partitions {
                let error = match wanted {
                    Err(error) => Some(error),
                    Ok(start) => {
                        let state = SharePartition::starting_at(start).to_json();
                        let written = broker
                            .catalog
                            .update_share_partition(&group_id, *id, partition, &|_| {
                                Some(state.clone())
                            })
                            .await;
                        written.err().map(|e| errors::catalog(&e))
                    }
                };
                answers.push(partition_answer(partition, error));
            }
            topics.push(
                AlterShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(TopicName(text(name)))
                    .with_topic_id(*id)
                    .with_partitions(answers),
            );
        }
        topics
    };
    match broker
        .coordinator
        .while_share_group_empty(&group_id, change)
        .await
    {
        Ok(topics) => AlterShareGroupOffsetsResponse::default().with_responses(topics),
        Err((error, message)) => failed(error, (!message.is_empty()).then_some(message)),
    }
}

/// DeleteShareGroupOffsets: the group forgets its state of each named topic
/// (UNKNOWN_TOPIC_OR_PARTITION for a topic it holds none of, as Kafka).
pub async fn delete_offsets(
    broker: &Broker,
    request: DeleteShareGroupOffsetsRequest,
    access: &Access,
) -> DeleteShareGroupOffsetsResponse {
    let failed = |error: ResponseError, message: Option<String>| {
        DeleteShareGroupOffsetsResponse::default()
            .with_error_code(error.code())
            .with_error_message(message.map(|m| text(&m)))
    };
    let group_id = request.group_id.to_string();
    if let Some(error) = refused_group(access, &group_id, AclOperation::Delete) {
        return failed(error, None);
    }
    let mut plan: Vec<(String, Result<TopicId, ResponseError>)> = Vec::new();
    for topic in &request.topics {
        let name = topic.topic_name.to_string();
        let resolved = resolve(broker, access, &name).await.map(|(id, _)| id);
        plan.push((name, resolved));
    }
    let change = async {
        let mut topics = Vec::with_capacity(plan.len());
        for (name, resolved) in &plan {
            let outcome = match resolved {
                Err(error) => Err((*error, None)),
                Ok(id) => match broker.catalog.delete_share_topic(&group_id, *id).await {
                    Ok(0) => Err((
                        ResponseError::UnknownTopicOrPartition,
                        Some("There is no offset information to delete."),
                    )),
                    Ok(_) => Ok(*id),
                    Err(e) => Err((errors::catalog(&e), None)),
                },
            };
            let answer = DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(text(name)));
            topics.push(match outcome {
                Ok(id) => answer.with_topic_id(id),
                Err((error, message)) => answer
                    .with_topic_id(resolved.unwrap_or_default())
                    .with_error_code(error.code())
                    .with_error_message(Some(text(message.unwrap_or(&error.to_string())))),
            });
        }
        topics
    };
    match broker
        .coordinator
        .while_share_group_empty(&group_id, change)
        .await
    {
        Ok(topics) => DeleteShareGroupOffsetsResponse::default().with_responses(topics),
        Err((error, message)) => failed(error, (!message.is_empty()).then_some(message)),
    }
}
