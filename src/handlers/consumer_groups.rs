//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, with Kafka's checks (READ on the group and DESCRIBE
//! on every topic named in the subscription to heartbeat, DESCRIBE on the
//! group to describe it). The state machine is the coordinator's.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions as AssignedTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use uuid::Uuid;

use super::groups::{optional, text};
use crate::acl::{Access, GROUP_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use crate::coordinator::consumer::{self, Partitions, TopicShape, Topics};
use crate::coordinator::{Described, GroupRules};
use crate::{errors, Broker};

/// The member types ConsumerGroupDescribe v1 reports (Kafka's; -1 is unknown).
const CONSUMER_MEMBER_TYPE: i8 = 1;
const CLASSIC_MEMBER_TYPE: i8 = 0;

fn refused(error: ResponseError, message: String) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message((!message.is_empty()).then(|| text(&message)))
}

/// Every topic, by name, as the assignors see them.
pub(super) async fn topics(broker: &Broker) -> Result<Topics, ResponseError> {
    let topics = broker
        .catalog
        .list_topics()
        .await
        .map_err(|e| errors::catalog(&e))?;
    Ok(topics
        .into_iter()
        .map(|t| {
            let shape = TopicShape {
                id: t.id,
                partitions: t.partition_count,
            };
            (t.name, shape)
        })
        .collect())
}

/// The rules a group's heartbeats run under: the agent's, with the group's
/// own session timeout and heartbeat interval (group configs) if it sets
/// them.
pub(super) async fn group_rules(
    broker: &Broker,
    group_id: &str,
) -> Result<GroupRules, ResponseError> {
    let configs = crate::share::group_configs(broker, group_id).await?;
    Ok(crate::config::group::rules_of(
        &configs,
        broker.config.group_rules,
    ))
}

pub async fn heartbeat(
    broker: &Broker,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: String,
    client_host: String,
    access: &Access,
) -> ConsumerGroupHeartbeatResponse {
    if request.group_id.is_empty() {
        return refused(
            ResponseError::InvalidRequest,
            "GroupId can't be empty.".into(),
        );
    }
    if !access.allows_group(AclOperation::Read, &request.group_id) {
        return refused(ResponseError::GroupAuthorizationFailed, String::new());
    }
    let names: Option<Vec<String>> = request
        .subscribed_topic_names
        .as_ref()
        .map(|names| names.iter().map(|n| n.to_string()).collect());
    if let Some(names) = &names {
        if let Some(denied) = names
            .iter()
            .find(|n| !access.allows_topic(AclOperation::Describe, n))
        {
            return refused(
                ResponseError::TopicAuthorizationFailed,
                format!("The client is not authorized to describe topic {denied}."),
            );
        }
    }
    let owned = request.topic_partitions.as_ref().map(|topics| {
        let mut owned = Partitions::new();
        for t in topics {
            owned
                .entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        owned
    });
    let heartbeat = consumer::HeartbeatRequest {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: names,
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .as_ref()
            .map(|s| s.to_string()),
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id,
        client_host,
    };
    if let Err((error, message)) = consumer::validate(&heartbeat, version) {
        return refused(error, message);
    }
    let topics = match topics(broker).await {
        Ok(topics) => topics,
        Err(error) => return refused(error, String::new()),
    };
    let rules = match group_rules(broker, &request.group_id).await {
        Ok(rules) => rules,
        Err(error) => return refused(error, String::new()),
    };
    let answer = match broker
        .coordinator
        .consumer_heartbeat(&request.group_id, heartbeat, &topics, &rules)
        .await
    {
        Ok(answer) => answer,
        Err((error, message)) => return refused(error, message),
    };
    let assignment = answer.assignment.map(|partitions| {
        Assignment::default().with_topic_partitions(
            partitions
                .into_iter()
                .filter(|(_, ps)| !ps.is_empty())
                .map(|(id, ps)| {
                    AssignedTopic::default()
                        .with_topic_id(id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(text(&answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment)
}

pub async fn describe(
    broker: &Broker,
    request: ConsumerGroupDescribeRequest,
    version: i16,
    access: &Access,
) -> ConsumerGroupDescribeResponse {
    let mut described = Vec::with_capacity(request.group_ids.len());
    // Topic names for the ids in assignments; an id no longer known (the
    // topic deleted) is shown without a name, as Kafka does.
    let names: BTreeMap<Uuid, String> = match topics(broker).await {
        Ok(topics) => topics.into_iter().map(|(n, s)| (s.id, n)).collect(),
        Err(_) => BTreeMap::new(),
    };
    for group_id in request.group_ids {
        let failed = |error: ResponseError, message: Option<String>| {
            DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_error_code(error.code())
                .with_error_message(message.map(|m| text(&m)))
        };
        if !access.allows_group(AclOperation::Describe, &group_id) {
            described.push(failed(ResponseError::GroupAuthorizationFailed, None));
            continue;
        }
        let group = match broker.coordinator.describe_consumer_group(&group_id).await {
            Ok(Described::Consumer(group)) => group,
            Ok(Described::NotFound(why)) => {
                described.push(failed(ResponseError::GroupIdNotFound, Some(why)));
                continue;
            }
            Err(error) => {
                described.push(failed(error, None));
                continue;
            }
        };
        let operations = if request.include_authorized_operations {
            access.authorized_operations(ResourceType::Group, &group_id, GROUP_OPERATIONS)
        } else {
            OPERATIONS_NOT_REQUESTED
        };
        let assignment = |partitions: &Partitions| {
            DescribedAssignment::default().with_topic_partitions(
                partitions
                    .iter()
                    .filter(|(_, ps)| !ps.is_empty())
                    .map(|(id, ps)| {
                        DescribedTopic::default()
                            .with_topic_id(*id)
                            .with_topic_name(TopicName(text(
                                names.get(id).map(String::as_str).unwrap_or(""),
                            )))
                            .with_partitions(ps.iter().copied().collect())
                    })
                    .collect(),
            )
        };
        let members = group
            .members
            .values()
            .map(|m| {
                let target = group.target.get(&m.id).cloned().unwrap_or_default();
                let member = Member::default()
                    .with_member_id(text(&m.id))
                    .with_instance_id(optional(m.instance_id.as_deref()))
                    .with_rack_id(optional(m.rack_id.as_deref()))
                    .with_member_epoch(m.epoch)
                    .with_client_id(text(&m.client_id))
                    .with_client_host(text(&m.client_host))
                    .with_subscribed_topic_names(
                        m.subscribed_topic_names
                            .iter()
                            .map(|n| TopicName(text(n)))
                            .collect(),
                    )
                    .with_subscribed_topic_regex(optional(m.subscribed_topic_regex.as_deref()))
                    .with_assignment(assignment(&m.assigned))
                    .with_target_assignment(assignment(&target));
                if version >= 1 {
                    member.with_member_type(if m.classic.is_some() {
                        CLASSIC_MEMBER_TYPE
                    } else {
                        CONSUMER_MEMBER_TYPE
                    })
                } else {
                    member
                }
            })
            .collect();
        described.push(
            DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(text(group.state().name()))
                .with_group_epoch(group.epoch)
                .with_assignment_epoch(group.assignment_epoch)
                .with_assignor_name(text(group.assignor().name()))
                .with_members(members)
                .with_authorized_operations(operations),
        );
    }
    ConsumerGroupDescribeResponse::default().with_groups(described)
}
