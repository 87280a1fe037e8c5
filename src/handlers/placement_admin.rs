//! ElectLeaders, ListPartitionReassignments and AlterPartitionReassignments:
//! the admin APIs of partition placement, answered as a Kafka cluster answers
//! when there is nothing to do.
//!
//! StreamHouse places partitions itself: every agent serves every partition
//! from the shared store, and the "leader" Metadata reports is the agent a
//! client is pointed at (rendezvous hashing over the live agents, see
//! `cluster`). There is one replica per partition as clients see it, the
//! leader is always that preferred replica, and nothing is ever being
//! reassigned. So an election is never needed (ELECTION_NOT_NEEDED, as Kafka
//! says for a partition already led by its preferred replica), the list of
//! ongoing reassignments is empty, and a reassignment is refused with
//! INVALID_REPLICA_ASSIGNMENT and a message saying why, unless it asks for the
//! replicas a partition already has (which Kafka completes at once).

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ElectLeadersRequest,
    ElectLeadersResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::Topic;

use super::metadata::Placement;
use crate::acl::Access;
use crate::{errors, Broker};

const REASSIGNMENT_REFUSED: &str = "StreamHouse places partitions itself: every agent serves \
every partition from the shared object store, so replicas cannot be assigned by hand";

/// The topics named, looked up once each: `Ok(None)` for an unknown one, or
/// the catalog's error as a Kafka error.
async fn lookup<'n>(
    broker: &Broker,
    names: impl Iterator<Item = &'n TopicName>,
) -> HashMap<&'n TopicName, Result<Option<Topic>, ResponseError>> {
    let mut topics = HashMap::new();
    for name in names {
        if topics.contains_key(name) {
            continue;
        }
        let found = broker
            .catalog
            .topic_by_name(&name.0)
            .await
            .map_err(|e| errors::catalog(&e));
        topics.insert(name, found);
    }
    topics
}

/// The topic when it has `partition`, else the error to answer.
fn existing(
    topic: &Result<Option<Topic>, ResponseError>,
    partition: i32,
) -> Result<&Topic, ResponseError> {
    match topic {
        Ok(Some(topic)) if (0..topic.partition_count).contains(&partition) => Ok(topic),
        Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
        Err(error) => Err(*error),
    }
}

/// ElectLeaders v1+ `election_type`: 0 preferred, 1 unclean.
const ELECTION_TYPES: std::ops::RangeInclusive<i8> = 0..=1;

pub async fn elect_leaders(
    broker: &Broker,
    request: ElectLeadersRequest,
    access: &Access,
) -> ElectLeadersResponse {
    if !access.allows_cluster(AclOperation::Alter) {
        // As Kafka: the error on the request and on each partition named.
        let denied = ResponseError::ClusterAuthorizationFailed.code();
        let results = request
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|asked| {
                ReplicaElectionResult::default()
                    .with_partition_result(
                        asked
                            .partitions
                            .iter()
                            .map(|&partition| {
                                PartitionResult::default()
                                    .with_partition_id(partition)
                                    .with_error_code(denied)
                            })
                            .collect(),
                    )
                    .with_topic(asked.topic)
            })
            .collect();
        return ElectLeadersResponse::default()
            .with_error_code(denied)
            .with_replica_election_results(results);
    }
    if !ELECTION_TYPES.contains(&request.election_type) {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    // Every partition asked for ALL partitions: Kafka leaves out those already
    // led by the replica wanted, which here is all of them.
    let Some(wanted) = request.topic_partitions else {
        return ElectLeadersResponse::default();
    };
    let topics = lookup(broker, wanted.iter().map(|t| &t.topic)).await;
    let results = wanted
        .iter()
        .map(|asked| {
            let topic = &topics[&asked.topic];
            let partitions = asked
                .partitions
                .iter()
                .map(|&partition| {
                    // Preferred: the leader is the preferred (only) replica.
                    // Unclean: the leader is alive. Either way, nothing to do.
                    let error = existing(topic, partition)
                        .err()
                        .unwrap_or(ResponseError::ElectionNotNeeded);
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(error.code())
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(asked.topic.clone())
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// Nothing is ever being reassigned: for every topic, named or not, the list
/// is empty (Kafka lists only partitions with a reassignment in progress).
pub fn list_reassignments(
    _request: ListPartitionReassignmentsRequest,
    access: &Access,
) -> ListPartitionReassignmentsResponse {
    if !access.allows_cluster(AclOperation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(CLUSTER_DENIED)));
    }
    ListPartitionReassignmentsResponse::default()
}

const CLUSTER_DENIED: &str = "Cluster authorization failed.";

pub async fn alter_reassignments(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    client_id: Option<&str>,
    access: &Access,
) -> AlterPartitionReassignmentsResponse {
    if !access.allows_cluster(AclOperation::Alter) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(CLUSTER_DENIED)));
    }
    let placement = Placement::for_client(broker, client_id);
    let topics = lookup(broker, request.topics.iter().map(|t| &t.name)).await;
    let responses = request
        .topics
        .iter()
        .map(|asked| {
            let topic = &topics[&asked.name];
            let partitions = asked
                .partitions
                .iter()
                .map(|p| {
                    let answer = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let topic = match existing(topic, p.partition_index) {
                        Ok(topic) => topic,
                        Err(error) => return answer.with_error_code(error.code()),
                    };
                    match &p.replicas {
                        // A cancellation: there is never one to cancel.
                        None => {
                            answer.with_error_code(ResponseError::NoReassignmentInProgress.code())
                        }
                        Some(replicas)
                            if *replicas
                                == [placement.leader(broker, topic.id, p.partition_index)] =>
                        {
                            answer
                        }
                        Some(_) => answer
                            .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                REASSIGNMENT_REFUSED,
                            ))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(asked.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change)
        .with_responses(responses)
}
