//! DescribeLogDirs: the retained size of each partition, from the catalog;
//! AlterReplicaLogDirs: answered as a Kafka broker with a single log dir.
//!
//! An agent has no disk of its own: its one "log dir" is the object store,
//! named by its URL without the query (which may hold credentials). Each agent
//! lists the partitions Metadata points this client at it for (as a Kafka
//! broker lists the replicas it hosts), so that summing over the cluster's
//! agents, as `kafka-log-dirs.sh` and UIs do, counts each partition once. The
//! sizes are what the partitions' index entries at or above their log start
//! point at, so they fall as retention or DeleteRecords moves a log start and
//! do not count object headers.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::{CatalogError, Topic};

use crate::acl::Access;
use crate::cluster::client_zone;
use crate::{errors, Broker};

/// Kafka's `DescribeLogDirsResponse.UNKNOWN_VOLUME_BYTES`: a bucket has no
/// capacity to report.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

/// The agent's one log dir: its object store's URL without the query.
fn log_dir(broker: &Broker) -> &str {
    let store = broker.config.store_url.as_str();
    store.split_once('?').map_or(store, |(path, _)| path)
}

pub async fn describe(
    broker: &Broker,
    request: DescribeLogDirsRequest,
    client_id: Option<&str>,
    access: &Access,
) -> DescribeLogDirsResponse {
    if !access.allows_cluster(AclOperation::Describe) {
        // As Kafka: no dirs (and from v3 the error).
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(log_dir(broker).to_string()))
        .with_total_bytes(UNKNOWN_VOLUME_BYTES)
        .with_usable_bytes(UNKNOWN_VOLUME_BYTES);
    let result = match topics(broker, request, client_id).await {
        Ok(topics) => result.with_topics(topics),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read partition sizes");
            result.with_error_code(errors::catalog(&e).code())
        }
    };
    DescribeLogDirsResponse::default().with_results(vec![result])
}

async fn topics(
    broker: &Broker,
    request: DescribeLogDirsRequest,
    client_id: Option<&str>,
) -> Result<Vec<DescribeLogDirsTopic>, CatalogError> {
    // None: every topic. Named topics that do not exist are left out, as a
    // Kafka broker leaves out partitions it does not host.
    let wanted: Vec<(Topic, Option<HashSet<i32>>)> = match request.topics {
        None => broker
            .catalog
            .list_topics()
            .await?
            .into_iter()
            .map(|t| (t, None))
            .collect(),
        Some(requested) => {
            let mut found = Vec::new();
            for topic in requested {
                if let Some(t) = broker.catalog.topic_by_name(&topic.topic.0).await? {
                    found.push((t, Some(topic.partitions.into_iter().collect())));
                }
            }
            found
        }
    };
    let view = broker.membership.view();
    let zone = client_zone(client_id);
    let sizes = if wanted.len() == 1 {
        broker.catalog.partition_sizes(Some(wanted[0].0.id)).await?
    } else {
        broker.catalog.partition_sizes(None).await?
    };
    let mut topics = Vec::new();
    for (topic, partitions) in wanted {
        let here = |index: i32| {
            view.partition_leader(topic.id, index, zone)
                .is_none_or(|agent| agent.node_id == broker.node_id())
        };
        let listed: Vec<DescribeLogDirsPartition> = sizes
            .iter()
            .filter(|s| s.topic == topic.id)
            .filter(|s| partitions.as_ref().is_none_or(|p| p.contains(&s.partition)))
            .filter(|s| here(s.partition))
            .map(|s| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(s.partition)
                    .with_partition_size(s.bytes)
                    // One copy in the store: nothing to catch up.
                    .with_offset_lag(0)
                    .with_is_future_key(false)
            })
            .collect();
        if !listed.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name)))
                    .with_partitions(listed),
            );
        }
    }
    Ok(topics)
}

/// Moves nothing, as a Kafka broker with one log dir: a partition this agent
/// hosts (the one Metadata points this client at it for) is already in the
/// named dir if it is the agent's own (NONE), any other dir is unknown
/// (LOG_DIR_NOT_FOUND, Kafka's answer for a dir not in its config), and a
/// partition hosted elsewhere or not at all is REPLICA_NOT_AVAILABLE, as
/// Kafka answers for a replica it does not have.
pub async fn alter(
    broker: &Broker,
    request: AlterReplicaLogDirsRequest,
    client_id: Option<&str>,
    access: &Access,
) -> AlterReplicaLogDirsResponse {
    let allowed = access.allows_cluster(AclOperation::Alter);
    let view = broker.membership.view();
    let zone = client_zone(client_id);
    let own_dir = log_dir(broker);
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for dir in request.dirs {
        let known_dir = dir.path.as_str() == own_dir;
        for topic in dir.topics {
            let found = if allowed {
                broker.catalog.topic_by_name(&topic.name.0).await
            } else {
                Ok(None)
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|&index| {
                    let error = match &found {
                        _ if !allowed => ResponseError::ClusterAuthorizationFailed,
                        Err(e) => errors::catalog(e),
                        Ok(_) if !known_dir => ResponseError::LogDirNotFound,
                        Ok(Some(t))
                            if (0..t.partition_count).contains(&index)
                                && view
                                    .partition_leader(t.id, index, zone)
                                    .is_none_or(|agent| agent.node_id == broker.node_id()) =>
                        {
                            return AlterReplicaLogDirPartitionResult::default()
                                .with_partition_index(index)
                        }
                        Ok(_) => ResponseError::ReplicaNotAvailable,
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(error.code())
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(topic.name)
                    .with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}
