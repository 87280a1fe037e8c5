//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup: translating
//! each wire version to and from the coordinator's terms. The group logic is in
//! `crate::coordinator`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator as WireCoordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use streamhouse_metadata::acls::{AclOperation, ResourceType};

use super::cluster;
use crate::acl::Access;
use crate::config::listeners::SecurityProtocol;
use crate::coordinator::{
    CoordinatorNode, JoinRequest, JoinResult, SyncRequest, KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION,
};
use crate::{errors, Broker};

pub(super) fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

pub(super) fn optional(value: Option<&str>) -> Option<StrBytes> {
    value.map(text)
}

/// FindCoordinator: each key's coordinator, named by its endpoint on the
/// client's listener. A coordinator without that listener is answered as
/// Kafka answers it, COORDINATOR_NOT_AVAILABLE.
pub async fn find_coordinator(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
    access: &Access,
    listener: SecurityProtocol,
) -> FindCoordinatorResponse {
    let key_type = request.key_type;
    let keys = if version >= 4 {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let nodes: Vec<CoordinatorNode> = match key_type {
        KEY_TYPE_GROUP => {
            let ids: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            broker.coordinator.group_coordinators(&ids).await
        }
        KEY_TYPE_TRANSACTION => vec![broker.coordinator.this_node().clone(); keys.len()],
        _ => Vec::new(),
    };
    // As Kafka: DESCRIBE on the group or transactional id the key names.
    let refused = |key: &str| match key_type {
        KEY_TYPE_GROUP if !access.allows_group(AclOperation::Describe, key) => {
            Some(ResponseError::GroupAuthorizationFailed)
        }
        KEY_TYPE_TRANSACTION
            if !access.allows(AclOperation::Describe, ResourceType::TransactionalId, key) =>
        {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        }
        _ => None,
    };
    let brokers = cluster::brokers(broker, &broker.membership.view(), listener);
    let mut coordinators = Vec::with_capacity(keys.len());
    for (i, key) in keys.into_iter().enumerate() {
        let refusal = refused(&key);
        let entry = WireCoordinator::default().with_key(key);
        let node = nodes.get(i);
        let endpoint = node.and_then(|n| brokers.iter().find(|b| b.node_id == n.node_id));
        coordinators.push(match (refusal, node, endpoint) {
            (Some(error), _, _) => entry
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(error.code())
                .with_error_message(Some(text(error.to_string().as_str()))),
            (None, Some(_), Some(endpoint)) => entry
                .with_node_id(BrokerId(endpoint.node_id))
                .with_host(text(&endpoint.host))
                .with_port(endpoint.port),
            // Kafka's Node.noNode() and the error's own message.
            (None, Some(_), None) => entry
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(text("The coordinator is not available."))),
            (None, None, _) => entry
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(text(&format!("unknown key type {key_type}")))),
        });
    }
    let response = FindCoordinatorResponse::default();
    if version >= 4 {
        return response.with_coordinators(coordinators);
    }
    match coordinators.pop() {
        Some(c) => response
            .with_error_code(c.error_code)
            .with_error_message(if version >= 1 { c.error_message } else { None })
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port),
        None => response.with_error_code(ResponseError::InvalidRequest.code()),
    }
}

pub async fn join(
    broker: &Broker,
    request: JoinGroupRequest,
    version: i16,
    client_id: String,
    client_host: String,
    access: &Access,
) -> JoinGroupResponse {
    let authorized = access.allows_group(AclOperation::Read, &request.group_id);
    let joining = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id,
        client_host,
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let result = if authorized {
        let topics = super::consumer_groups::topics(broker);
        broker
            .coordinator
            .join(&request.group_id, joining, topics)
            .await
    } else {
        JoinResult::error(&joining.member_id, ResponseError::GroupAuthorizationFailed)
    };
    let members = result
        .members
        .iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(text(&m.member_id))
                .with_group_instance_id(if version >= 5 {
                    optional(m.instance_id.as_deref())
                } else {
                    None
                })
                .with_metadata(m.metadata.clone())
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(errors::code(result.error))
        .with_generation_id(result.generation)
        .with_protocol_type(if version >= 7 {
            optional(result.protocol_type.as_deref())
        } else {
            None
        })
        // Nullable only from v7.
        .with_protocol_name(match (&result.protocol_name, version >= 7) {
            (Some(name), _) => Some(text(name)),
            (None, true) => None,
            (None, false) => Some(StrBytes::default()),
        })
        .with_leader(text(&result.leader))
        .with_skip_assignment(version >= 9 && result.skip_assignment)
        .with_member_id(text(&result.member_id))
        .with_members(members)
}

pub async fn sync(
    broker: &Broker,
    request: SyncGroupRequest,
    version: i16,
    access: &Access,
) -> SyncGroupResponse {
    if !access.allows_group(AclOperation::Read, &request.group_id) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let syncing = SyncRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: request.generation_id,
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let result = broker.coordinator.sync(&request.group_id, syncing).await;
    let response = SyncGroupResponse::default()
        .with_error_code(errors::code(result.error))
        .with_assignment(result.assignment);
    if version >= 5 {
        response
            .with_protocol_type(optional(result.protocol_type.as_deref()))
            .with_protocol_name(optional(result.protocol_name.as_deref()))
    } else {
        response
    }
}

pub async fn heartbeat(
    broker: &Broker,
    request: HeartbeatRequest,
    access: &Access,
) -> HeartbeatResponse {
    if !access.allows_group(AclOperation::Read, &request.group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let error = broker
        .coordinator
        .heartbeat(
            &request.group_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
        )
        .await;
    HeartbeatResponse::default().with_error_code(errors::code(error))
}

pub async fn leave(
    broker: &Broker,
    request: LeaveGroupRequest,
    version: i16,
    access: &Access,
) -> LeaveGroupResponse {
    if !access.allows_group(AclOperation::Read, &request.group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let errors = match broker.coordinator.leave(&request.group_id, &leaving).await {
        Ok(errors) => errors,
        // Not for this agent: the whole request is answered so.
        Err(error) => return LeaveGroupResponse::default().with_error_code(error.code()),
    };
    if version < 3 {
        let error = errors.into_iter().flatten().next();
        return LeaveGroupResponse::default().with_error_code(errors::code(error));
    }
    let members = leaving
        .into_iter()
        .zip(errors)
        .map(|((member_id, instance_id), error)| {
            MemberResponse::default()
                .with_member_id(text(&member_id))
                .with_group_instance_id(optional(instance_id.as_deref()))
                .with_error_code(errors::code(error))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
