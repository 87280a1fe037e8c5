//! OffsetCommit, OffsetFetch (single and multi-group forms) and OffsetDelete.
//! Offsets live in the catalog; the coordinator decides whether a commit of a
//! member and generation is allowed.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::groups::{CommittedOffset, OffsetCommit};

use streamhouse_metadata::Topic;
use streamhouse_protocol::topic_id_offsets::FIRST_TOPIC_ID_VERSION;
use uuid::Uuid;

use super::groups::text;
use super::named_topic;
use crate::acl::Access;
use crate::coordinator::{subscribed_topics, GroupState};
use crate::{errors, Broker};

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

/// Whether `topic` has partition `partition`; catalog failures are the error.
async fn partition_exists(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Result<(), ResponseError> {
    match broker.catalog.topic_by_name(topic).await {
        Ok(Some(t)) if (0..t.partition_count).contains(&partition) => Ok(()),
        Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
        Err(e) => Err(errors::catalog(&e)),
    }
}

/// The topic a commit names, by id from v10 (UNKNOWN_TOPIC_ID if none has
/// it) and by name before.
async fn committed_topic(
    broker: &Broker,
    topic: &OffsetCommitRequestTopic,
    by_id: bool,
) -> Result<Topic, ResponseError> {
    match named_topic(broker, &topic.name, topic.topic_id, by_id).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
        Err((error, _)) => Err(error),
    }
}

pub async fn commit(
    broker: &Broker,
    request: OffsetCommitRequest,
    version: i16,
    access: &Access,
) -> OffsetCommitResponse {
    let by_id = version >= FIRST_TOPIC_ID_VERSION;
    let group_allowed = access.allows_group(AclOperation::Read, &request.group_id);
    // (topic index, partition, Some(error) decided before the coordinator is asked).
    let mut outcomes: Vec<(usize, i32, Option<ResponseError>)> = Vec::new();
    let mut commits = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let found = committed_topic(broker, topic, by_id).await;
        // As Kafka: READ on the topic by name, also one that does not exist
        // (an id must name a topic first).
        let topic_allowed = match &found {
            Ok(found) => access.allows_topic(AclOperation::Read, &found.name),
            Err(_) if by_id => true,
            Err(_) => access.allows_topic(AclOperation::Read, &topic.name),
        };
        for p in &topic.partitions {
            let mut error = match &found {
                _ if !group_allowed => Some(ResponseError::GroupAuthorizationFailed),
                _ if !topic_allowed => Some(ResponseError::TopicAuthorizationFailed),
                Ok(found) if (0..found.partition_count).contains(&p.partition_index) => None,
                Ok(_) => Some(ResponseError::UnknownTopicOrPartition),
                Err(error) => Some(*error),
            };
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
            if error.is_none()
                && metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                error = Some(ResponseError::OffsetMetadataTooLarge);
            }
            if let (None, Ok(found)) = (error, &found) {
                commits.push(OffsetCommit {
                    topic: found.name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata,
                });
            }
            outcomes.push((t, p.partition_index, error));
        }
    }
    let group_error = if !group_allowed {
        None
    } else {
        broker
            .coordinator
            .commit_offsets(
                &request.group_id,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id_or_member_epoch,
                &commits,
            )
            .await
    };
    let mut topics: Vec<OffsetCommitResponseTopic> = request
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (t, partition, error) in outcomes {
        topics[t].partitions.push(
            OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(errors::code(error.or(group_error))),
        );
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's requested partitions (None: every committed one), answered,
/// each topic with whether the client may describe it.
type Answer = Result<Vec<(String, bool, Vec<(i32, Option<CommittedOffset>)>)>, ResponseError>;

/// Who asks (OffsetFetch v9+): a member id and epoch, or none and -1.
type Asker<'a> = (Option<&'a str>, i32);

/// No member named (OffsetFetch before v9, or an admin).
const NO_MEMBER: Asker<'static> = (None, -1);

async fn fetch_group(
    broker: &Broker,
    group_id: &str,
    asker: Asker<'_>,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    access: &Access,
) -> Answer {
    if !access.allows_group(AclOperation::Describe, group_id) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    // Offsets are read from the catalog, but only the group's coordinator
    // answers: a client sent elsewhere must learn it and look again.
    broker.coordinator.ensure_owned(group_id).await?;
    broker
        .coordinator
        .check_offset_fetch(group_id, asker.0, asker.1)
        .await?;
    let committed = broker
        .catalog
        .committed_offsets(group_id)
        .await
        .map_err(|e| errors::catalog(&e))?;
    let mut by_partition: HashMap<(String, i32), CommittedOffset> = committed
        .into_iter()
        .map(|c| ((c.topic.clone(), c.partition), c))
        .collect();
    Ok(match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let allowed = access.allows_topic(AclOperation::Describe, &topic);
                let answered = partitions
                    .into_iter()
                    .map(|p| {
                        (
                            p,
                            by_partition.remove(&(topic.clone(), p)).filter(|_| allowed),
                        )
                    })
                    .collect();
                (topic, allowed, answered)
            })
            .collect(),
        None => {
            let mut topics: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> = BTreeMap::new();
            for ((topic, partition), offset) in by_partition {
                topics
                    .entry(topic)
                    .or_default()
                    .push((partition, Some(offset)));
            }
            // As Kafka: topics the client may not describe are left out.
            topics
                .into_iter()
                .filter(|(topic, _)| access.allows_topic(AclOperation::Describe, topic))
                .map(|(topic, mut partitions)| {
                    partitions.sort_by_key(|(p, _)| *p);
                    (topic, true, partitions)
                })
                .collect()
        }
    })
}

/// (offset, leader epoch, metadata) of a partition; -1 and "" if nothing was committed.
fn values(offset: &Option<CommittedOffset>) -> (i64, i32, String) {
    match offset {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            c.metadata.clone().unwrap_or_default(),
        ),
        None => (-1, -1, String::new()),
    }
}

/// The topics of one group of the multi-group form (v8+); from v10 topics
/// are asked for and answered by id, an id no topic has answered
/// UNKNOWN_TOPIC_ID on each partition asked for.
async fn fetch_group_topics(
    broker: &Broker,
    group: OffsetFetchRequestGroup,
    by_id: bool,
    access: &Access,
) -> Result<Vec<OffsetFetchResponseTopics>, ResponseError> {
    let mut ids: HashMap<String, Uuid> = HashMap::new();
    let mut unknown_ids = Vec::new();
    let wanted = match group.topics {
        None => None,
        Some(topics) => {
            let mut named = Vec::with_capacity(topics.len());
            for topic in topics {
                if !by_id {
                    named.push((topic.name.to_string(), topic.partition_indexes));
                    continue;
                }
                match broker.catalog.topic_by_id(topic.topic_id).await {
                    Ok(Some(found)) => {
                        ids.insert(found.name.clone(), found.id);
                        named.push((found.name, topic.partition_indexes));
                    }
                    Ok(None) => unknown_ids.push((topic.topic_id, topic.partition_indexes)),
                    Err(e) => return Err(errors::catalog(&e)),
                }
            }
            Some(named)
        }
    };
    let asker = (group.member_id.as_deref(), group.member_epoch);
    let answered = fetch_group(broker, &group.group_id, asker, wanted, access).await?;
    let mut topics = Vec::with_capacity(answered.len() + unknown_ids.len());
    for (topic, allowed, partitions) in answered {
        let mut response = OffsetFetchResponseTopics::default().with_partitions(
            partitions
                .iter()
                .map(|(p, offset)| {
                    let (o, epoch, metadata) = values(offset);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(*p)
                        .with_committed_offset(o)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(text(&metadata)))
                        .with_error_code(topic_error(allowed))
                })
                .collect(),
        );
        if by_id {
            let id = match ids.get(&topic) {
                Some(id) => *id,
                // Every committed offset was asked for: commits of a topic
                // deleted since have no id to be named by, and are left out.
                None => match broker.catalog.topic_by_name(&topic).await {
                    Ok(Some(found)) => found.id,
                    Ok(None) => continue,
                    Err(e) => return Err(errors::catalog(&e)),
                },
            };
            response = response.with_topic_id(id);
        }
        topics.push(response.with_name(TopicName(text(&topic))));
    }
    for (id, partitions) in unknown_ids {
        topics.push(
            OffsetFetchResponseTopics::default()
                .with_topic_id(id)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(text("")))
                                .with_error_code(ResponseError::UnknownTopicId.code())
                        })
                        .collect(),
                ),
        );
    }
    Ok(topics)
}

pub async fn fetch(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
    access: &Access,
) -> OffsetFetchResponse {
    let require_stable = request.require_stable;
    let group_id = request.group_id.to_string();
    let mut response = fetch_committed(broker, request, version, access).await;
    if require_stable {
        mark_unstable(broker, &mut response, &group_id).await;
    }
    response
}

/// KIP-447: a client asking for stable offsets (read_committed consumers do)
/// is told UNSTABLE_OFFSET_COMMIT, retriable, for a partition whose offset an
/// open transaction has committed, until that transaction ends.
async fn mark_unstable(broker: &Broker, response: &mut OffsetFetchResponse, group_id: &str) {
    for topic in &mut response.topics {
        for partition in &mut topic.partitions {
            let index = partition.partition_index;
            if let Some(error) =
                unstable(broker, group_id, &topic.name, index, partition.error_code).await
            {
                partition.error_code = error;
                partition.committed_offset = -1;
            }
        }
    }
    for group in &mut response.groups {
        for topic in &mut group.topics {
            for partition in &mut topic.partitions {
                let index = partition.partition_index;
                let group_id = group.group_id.as_str();
                if let Some(error) =
                    unstable(broker, group_id, &topic.name, index, partition.error_code).await
                {
                    partition.error_code = error;
                    partition.committed_offset = -1;
                }
            }
        }
    }
}

/// The error for a partition answered without one whose offset is not
/// stable (or whose stability the catalog could not tell).
async fn unstable(
    broker: &Broker,
    group_id: &str,
    topic: &str,
    partition: i32,
    error_code: i16,
) -> Option<i16> {
    if error_code != 0 {
        return None;
    }
    match broker
        .catalog
        .has_pending_transaction_offsets(group_id, topic, partition)
        .await
    {
        Ok(false) => None,
        Ok(true) => Some(ResponseError::UnstableOffsetCommit.code()),
        Err(e) => Some(errors::catalog(&e).code()),
    }
}

async fn fetch_committed(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
    access: &Access,
) -> OffsetFetchResponse {
    if version >= 8 {
        let by_id = version >= FIRST_TOPIC_ID_VERSION;
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let response =
                OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            groups.push(
                match fetch_group_topics(broker, group, by_id, access).await {
                    Err(error) => response.with_error_code(error.code()),
                    Ok(topics) => response.with_topics(topics),
                },
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let asked = wanted.clone().unwrap_or_default();
    match fetch_group(broker, &request.group_id, NO_MEMBER, wanted, access).await {
        Err(error) if version >= 2 => OffsetFetchResponse::default().with_error_code(error.code()),
        // The top-level error exists from v2; before, it can only be said on
        // each partition asked for.
        Err(error) => OffsetFetchResponse::default().with_topics(
            asked
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(text(&topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_metadata(Some(text("")))
                                        .with_error_code(error.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(topic, allowed, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(text(&topic)))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|(p, offset)| {
                                    let (o, epoch, metadata) = values(offset);
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(if version >= 5 {
                                            epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(Some(text(&metadata)))
                                        .with_error_code(topic_error(allowed))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

/// A topic's error on each of its partitions in OffsetFetch.
fn topic_error(allowed: bool) -> i16 {
    if allowed {
        0
    } else {
        ResponseError::TopicAuthorizationFailed.code()
    }
}

pub async fn delete(
    broker: &Broker,
    request: OffsetDeleteRequest,
    access: &Access,
) -> OffsetDeleteResponse {
    if !access.allows_group(AclOperation::Delete, &request.group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let group = match broker.coordinator.owned_group(&request.group_id).await {
        Ok(Some(group)) => group,
        Ok(None) => {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code())
        }
        Err(error) => return OffsetDeleteResponse::default().with_error_code(error.code()),
    };
    let mut group = group.lock().await;
    // None: every topic counts as subscribed (members present, subscriptions unknown).
    let subscribed: Option<Vec<String>> = match group.state {
        GroupState::Dead => {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code())
        }
        // A consumer-protocol group: the topics its members subscribe to,
        // by name or by regex.
        _ if group.consumer.is_some() => {
            let members: Vec<_> = group
                .consumer
                .iter()
                .flat_map(|c| c.members.values())
                .collect();
            Some(
                request
                    .topics
                    .iter()
                    .map(|t| t.name.to_string())
                    .filter(|t| members.iter().any(|m| m.subscribes(t)))
                    .collect(),
            )
        }
        GroupState::Empty => Some(Vec::new()),
        _ if group.protocol_type.as_deref() == Some("consumer") => {
            let protocol = group.protocol_name.clone().unwrap_or_default();
            group
                .members
                .values()
                .map(|m| subscribed_topics(&m.metadata(&protocol)))
                .collect::<Option<Vec<Vec<String>>>>()
                .map(|lists| lists.concat())
        }
        _ => {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::NonEmptyGroup.code())
        }
    };
    let mut deletable = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let is_subscribed = subscribed
            .as_ref()
            .is_none_or(|s| s.iter().any(|t| **t == *topic.name.0));
        let topic_allowed = access.allows_topic(AclOperation::Read, &topic.name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            if !topic_allowed {
                partitions.push((
                    p.partition_index,
                    Some(ResponseError::TopicAuthorizationFailed),
                ));
                continue;
            }
            let error = match partition_exists(broker, &topic.name, p.partition_index).await {
                Err(error) => Some(error),
                Ok(()) if is_subscribed => Some(ResponseError::GroupSubscribedToTopic),
                Ok(()) => {
                    deletable.push((topic.name.to_string(), p.partition_index));
                    None
                }
            };
            partitions.push((p.partition_index, error));
        }
        topics.push((topic.name, partitions));
    }
    let delete_error = if deletable.is_empty() {
        None
    } else {
        broker
            .coordinator
            .delete_offsets(&mut group, &deletable)
            .await
    };
    OffsetDeleteResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, partitions)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, error)| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(errors::code(error.or(delete_error)))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
