//! CreatePartitions (grow a topic) and DeleteRecords (advance a partition's log
//! start offset).
//!
//! DeleteRecords moves the log start in the catalog, then in this agent's
//! watermark view, so Fetch below it answers OFFSET_OUT_OF_RANGE and ListOffsets
//! "earliest" reports it at once. The index entries below it are hidden by the
//! catalog's queries; removing them and their objects is garbage collection's job.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::CatalogError;

use super::configs::{find_topic, unknown_topic};
use super::topics::MAX_PARTITIONS;
use crate::acl::Access;
use crate::{errors, Broker};

pub async fn create(
    broker: &Broker,
    request: CreatePartitionsRequest,
    access: &Access,
) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let outcome = if duplicates.contains(&name) {
            Err((
                ResponseError::InvalidRequest,
                "Duplicate topic in request.".to_string(),
            ))
        } else if !access.allows_topic(AclOperation::Alter, &name) {
            Err((
                ResponseError::TopicAuthorizationFailed,
                "The topic authorization is failed.".to_string(),
            ))
        } else {
            grow(
                broker,
                &name,
                topic.count,
                // Null and empty both mean "no assignments".
                topic.assignments.as_ref().map(Vec::len).filter(|n| *n > 0),
                request.validate_only,
            )
            .await
        };
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => result,
            Err((error, message)) => result
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<usize>,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let topic = find_topic(broker, name).await?;
    let current = topic.partition_count;
    let invalid = |message: String| Err((ResponseError::InvalidPartitions, message));
    if count < current {
        return invalid(format!(
            "Topic currently has {current} partitions, which is higher than the requested {count}."
        ));
    }
    if count == current {
        return invalid(format!("Topic already has {current} partitions."));
    }
    if count > MAX_PARTITIONS {
        return invalid(format!(
            "Number of partitions must be between 1 and {MAX_PARTITIONS}, not {count}."
        ));
    }
    // Every partition is served by every agent, so the brokers named in an
    // assignment do not matter; only their number must fit, as Kafka checks.
    if let Some(given) = assignments {
        let added = (count - current) as usize;
        if given != added {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!("Increasing the number of partitions by {added} but {given} assignments provided."),
            ));
        }
    }
    if validate_only {
        return Ok(());
    }
    match broker.catalog.add_partitions(name, count).await {
        Ok(topic) => {
            tracing::info!(topic = %name, partitions = topic.partition_count, "added partitions");
            Ok(())
        }
        Err(CatalogError::UnknownTopic(_)) => Err(unknown_topic(name)),
        // Another client grew the topic between our check and the catalog's.
        Err(CatalogError::PartitionCountNotIncreased { current, .. }) => invalid(format!(
            "Topic currently has {current} partitions, which is higher than the requested {count}."
        )),
        Err(e) => Err((errors::catalog(&e), e.to_string())),
    }
}

pub async fn delete_records(
    broker: &Broker,
    request: DeleteRecordsRequest,
    access: &Access,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let allowed = access.allows_topic(AclOperation::Delete, &topic.name.0);
        let found = if allowed {
            broker.catalog.topic_by_name(&topic.name.0).await
        } else {
            Ok(None)
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let index = partition.partition_index;
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(index)
                .with_low_watermark(-1);
            let outcome = match &found {
                _ if !allowed => Err(ResponseError::TopicAuthorizationFailed),
                Err(e) => Err(errors::catalog(e)),
                Ok(Some(t)) if (0..t.partition_count).contains(&index) => {
                    match broker
                        .log
                        .delete_records(t.id, index, partition.offset)
                        .await
                    {
                        Ok(Some(offsets)) => {
                            tracing::info!(topic = %t.name, partition = index, log_start_offset = offsets.log_start_offset, "deleted records");
                            Ok(offsets.log_start_offset)
                        }
                        Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
                        Err(e) => Err(errors::storage(&e)),
                    }
                }
                Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
            };
            partitions.push(match outcome {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(error) => result.with_error_code(error.code()),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
