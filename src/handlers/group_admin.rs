//! ListGroups, DescribeGroups and DeleteGroups of groups of both protocols
//! (DescribeGroups describes classic groups only), with Kafka's checks: DESCRIBE
//! on a group to list or describe it (or on the cluster to list every group),
//! DELETE to delete it.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::acls::{AclOperation, ResourceType};

use super::groups::{optional, text};
use crate::acl::{Access, GROUP_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use crate::coordinator::GroupState;
use crate::{errors, Broker};

pub async fn list(
    broker: &Broker,
    request: ListGroupsRequest,
    version: i16,
    access: &Access,
) -> ListGroupsResponse {
    // As Kafka: DESCRIBE on the cluster lists every group, else only those
    // the client may describe.
    let every_group = access.allows_cluster(AclOperation::Describe);
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let groups = match broker.coordinator.listed_groups().await {
        Ok(groups) => groups,
        Err(error) => return ListGroupsResponse::default().with_error_code(error.code()),
    };
    let mut listed = Vec::new();
    for group in groups {
        let state = group.state;
        if (!states.is_empty() && !states.contains(&state.to_lowercase()))
            || (!types.is_empty() && !types.iter().any(|t| t == group.group_type))
            || !(every_group || access.allows_group(AclOperation::Describe, &group.group_id))
        {
            continue;
        }
        let mut entry = ListedGroup::default()
            .with_group_id(GroupId(text(&group.group_id)))
            .with_protocol_type(text(group.protocol_type.as_deref().unwrap_or("")));
        if version >= 4 {
            entry = entry.with_group_state(text(state));
        }
        if version >= 5 {
            entry = entry.with_group_type(text(group.group_type));
        }
        listed.push(entry);
    }
    ListGroupsResponse::default().with_groups(listed)
}

pub async fn describe(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
    access: &Access,
) -> DescribeGroupsResponse {
    let mut described = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        if !access.allows_group(AclOperation::Describe, &group_id) {
            described.push(
                DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
            );
            continue;
        }
        let operations = if version >= 3 && request.include_authorized_operations {
            access.authorized_operations(ResourceType::Group, &group_id, GROUP_OPERATIONS)
        } else {
            OPERATIONS_NOT_REQUESTED
        };
        let group = match broker.coordinator.owned_group(&group_id).await {
            Ok(group) => group,
            Err(error) => {
                described.push(
                    DescribedGroup::default()
                        .with_group_id(group_id)
                        .with_error_code(error.code()),
                );
                continue;
            }
        };
        let Some(group) = group else {
            // As Kafka's classic coordinator: an unknown group is described as Dead.
            described.push(
                DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_group_state(text(GroupState::Dead.name()))
                    .with_authorized_operations(operations),
            );
            continue;
        };
        let group = group.lock().await;
        if group.consumer.is_some() || group.share.is_some() {
            // As Kafka: DescribeGroups describes classic groups only (the
            // admin client asks ConsumerGroupDescribe first).
            described.push(
                DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupIdNotFound.code()),
            );
            continue;
        }
        // Metadata and assignments are only meaningful once the generation is
        // complete; Kafka leaves them empty in every other state.
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| {
                let member = DescribedGroupMember::default()
                    .with_member_id(text(&m.id))
                    .with_client_id(text(&m.client_id))
                    .with_client_host(text(&m.client_host))
                    .with_group_instance_id(if version >= 4 {
                        optional(m.instance_id.as_deref())
                    } else {
                        None
                    });
                if stable {
                    member
                        .with_member_metadata(m.metadata(&protocol))
                        .with_member_assignment(m.assignment.clone())
                } else {
                    member
                }
            })
            .collect();
        described.push(
            DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(text(group.state.name()))
                .with_protocol_type(text(group.protocol_type.as_deref().unwrap_or("")))
                .with_protocol_data(text(if stable { &protocol } else { "" }))
                .with_members(members)
                .with_authorized_operations(operations),
        );
    }
    DescribeGroupsResponse::default().with_groups(described)
}

pub async fn delete(
    broker: &Broker,
    request: DeleteGroupsRequest,
    access: &Access,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let error = if access.allows_group(AclOperation::Delete, &group_id) {
            broker.coordinator.delete_group(&group_id).await
        } else {
            Some(ResponseError::GroupAuthorizationFailed)
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(errors::code(error)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
