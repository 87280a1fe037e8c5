//! Share groups' membership APIs (KIP-932): ShareGroupHeartbeat and
//! ShareGroupDescribe, with Kafka's checks (READ on the group and DESCRIBE on
//! each subscribed topic to heartbeat, DESCRIBE on the group to describe
//! it). Records move through ShareFetch and ShareAcknowledge
//! (`share_fetch.rs`); the groups' offsets are `share_offsets.rs`'s.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::share_group_heartbeat_response::{
    Assignment, TopicPartitions as AssignedTopic,
};
use kafka_protocol::messages::{
    ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse, TopicName,
};
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use uuid::Uuid;

use super::consumer_groups::{group_rules, topics};
use super::groups::{optional, text};
use crate::acl::{Access, GROUP_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use crate::coordinator::share_group::{validate_share, ShareHeartbeat};
use crate::coordinator::DescribedShare;
use crate::Broker;

/// The only assignor of share groups (Kafka's name for it).
const SHARE_ASSIGNOR: &str = "simple";

fn refused(error: ResponseError, message: String) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message((!message.is_empty()).then(|| text(&message)))
}

pub async fn heartbeat(
    broker: &Broker,
    request: ShareGroupHeartbeatRequest,
    client_id: String,
    client_host: String,
    access: &Access,
) -> ShareGroupHeartbeatResponse {
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
    if let Some(denied) = names
        .iter()
        .flatten()
        .find(|n| !access.allows_topic(AclOperation::Describe, n))
    {
        return refused(
            ResponseError::TopicAuthorizationFailed,
            format!("The client is not authorized to describe topic {denied}."),
        );
    }
    let beat = ShareHeartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        subscribed_topic_names: names,
        client_id,
        client_host,
    };
    if let Err((error, message)) = validate_share(&beat) {
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
    let member_id = beat.member_id.clone();
    let answer = match broker
        .coordinator
        .share_heartbeat(&request.group_id, beat, &topics, &rules)
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
    ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(text(&member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment)
}

pub async fn describe(
    broker: &Broker,
    request: ShareGroupDescribeRequest,
    access: &Access,
) -> ShareGroupDescribeResponse {
    let names: BTreeMap<Uuid, String> = match topics(broker).await {
        Ok(topics) => topics.into_iter().map(|(n, s)| (s.id, n)).collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut described = Vec::with_capacity(request.group_ids.len());
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
        let group = match broker.coordinator.describe_share_group(&group_id).await {
            Ok(DescribedShare::Share(group)) => group,
            Ok(DescribedShare::NotFound(why)) => {
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
        let members = group
            .members
            .values()
            .map(|m| {
                let assignment = DescribedAssignment::default().with_topic_partitions(
                    m.assigned
                        .iter()
                        .map(|(id, ps)| {
                            DescribedTopic::default()
                                .with_topic_id(*id)
                                .with_topic_name(TopicName(text(
                                    names.get(id).map(String::as_str).unwrap_or(""),
                                )))
                                .with_partitions(ps.iter().copied().collect())
                        })
                        .collect(),
                );
                Member::default()
                    .with_member_id(text(&m.id))
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
                    .with_assignment(assignment)
            })
            .collect();
        described.push(
            DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(text(group.state_name()))
                .with_group_epoch(group.epoch)
                .with_assignment_epoch(group.epoch)
                .with_assignor_name(text(SHARE_ASSIGNOR))
                .with_members(members)
                .with_authorized_operations(operations),
        );
    }
    ShareGroupDescribeResponse::default().with_groups(described)
}
