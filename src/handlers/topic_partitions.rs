//! DescribeTopicPartitions (KIP-966): topics and their partitions a page at a
//! time, as the Java admin client's `describeTopics` asks for them when a
//! broker advertises the API.
//!
//! Paging follows Kafka's broker: topics in name order from the cursor's
//! topic (which must be among those named, if any are), that topic from the
//! cursor's partition and every later one from partition 0; at most
//! min(`response_partition_limit`, 2000) partitions. A topic cut short ends
//! the page with a cursor at its next partition; a page that filled up exactly
//! at a topic's end points the cursor at the next topic's partition 0. Unknown
//! topics named in the request are answered with UNKNOWN_TOPIC_OR_PARTITION
//! (INVALID_TOPIC_EXCEPTION for an invalid name); asking for every topic lists
//! only existing ones. Partitions are described as Metadata describes them to
//! the same client, but for a leader without the client's listener: Kafka
//! reports no leader (-1) here without an error.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use streamhouse_metadata::Topic;

use super::metadata::Placement;
use crate::acl::{Access, TOPIC_OPERATIONS};
use crate::config::listeners::SecurityProtocol;
use crate::config::topic::{invalid_topic_name, is_reserved_topic_name};
use crate::{errors, Broker};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one
/// response describes, whatever the client asks.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub async fn describe(
    broker: &Broker,
    request: DescribeTopicPartitionsRequest,
    client_id: Option<&str>,
    access: &Access,
    listener: SecurityProtocol,
) -> DescribeTopicPartitionsResponse {
    let cursor_topic = request
        .cursor
        .as_ref()
        .map(|c| c.topic_name.0.to_string())
        .unwrap_or_default();
    let every_topic = request.topics.is_empty();
    // Name order; every topic comes with its row, named ones are looked up
    // when their turn comes.
    let mut listed: BTreeMap<String, Option<Topic>> = if every_topic {
        match broker.catalog.list_topics().await {
            // As Kafka: the topics the client may not describe are left out.
            Ok(topics) => topics
                .into_iter()
                .filter(|t| access.allows_topic(AclOperation::Describe, &t.name))
                .map(|t| (t.name.clone(), Some(t)))
                .collect(),
            Err(e) => {
                // Kafka answers a failed request with the error on every topic
                // named, and here none is.
                tracing::error!(error = %e, "cannot list topics");
                return DescribeTopicPartitionsResponse::default();
            }
        }
    } else {
        request
            .topics
            .iter()
            .map(|t| (t.name.0.to_string(), None))
            .collect()
    };
    listed.retain(|name, _| *name >= cursor_topic);
    if !every_topic && request.cursor.is_some() && !listed.contains_key(&cursor_topic) {
        // Kafka's InvalidRequestException, answered on every topic named.
        return DescribeTopicPartitionsResponse::default().with_topics(
            request
                .topics
                .iter()
                .map(|t| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(t.name.clone()))
                        .with_error_code(ResponseError::InvalidRequest.code())
                })
                .collect(),
        );
    }
    let placement = Placement::for_client(broker, client_id);
    let mut remaining = request
        .response_partition_limit
        .min(MAX_PARTITIONS_PER_RESPONSE);
    let mut response = DescribeTopicPartitionsResponse::default();
    for (name, row) in listed {
        if remaining <= 0 {
            if remaining == 0 {
                response.next_cursor = Some(cursor(&name, 0));
            }
            break;
        }
        let found = match row {
            Some(topic) => Ok(topic),
            None if !access.allows_topic(AclOperation::Describe, &name) => {
                Err(ResponseError::TopicAuthorizationFailed)
            }
            None => lookup(broker, &name).await,
        };
        let topic = match found {
            Ok(topic) => topic,
            Err(error) => {
                // Listed topics have rows; only named ones can be missing.
                if !every_topic {
                    response.topics.push(
                        DescribeTopicPartitionsResponseTopic::default()
                            .with_name(Some(topic_name(&name)))
                            .with_error_code(error.code()),
                    );
                }
                continue;
            }
        };
        let first = match &request.cursor {
            Some(c) if c.topic_name.0.as_str() == name => c.partition_index.max(0),
            _ => 0,
        };
        let end = topic.partition_count.min(first.saturating_add(remaining));
        let partitions: Vec<_> = (first..end)
            .map(|index| partition(broker, &placement, &topic, index, listener))
            .collect();
        remaining -= partitions.len() as i32;
        response.topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(&name)))
                .with_topic_id(topic.id)
                .with_is_internal(is_reserved_topic_name(&name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(access.authorized_operations(
                    ResourceType::Topic,
                    &name,
                    TOPIC_OPERATIONS,
                )),
        );
        if end < topic.partition_count {
            response.next_cursor = Some(cursor(&name, end));
            break;
        }
    }
    response
}

async fn lookup(broker: &Broker, name: &str) -> Result<Topic, ResponseError> {
    if invalid_topic_name(name).is_some() {
        return Err(ResponseError::InvalidTopicException);
    }
    match broker.catalog.topic_by_name(name).await {
        Ok(Some(topic)) => Ok(topic),
        Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
        Err(e) => Err(errors::catalog(&e)),
    }
}

fn partition(
    broker: &Broker,
    placement: &Placement,
    topic: &Topic,
    index: i32,
    listener: SecurityProtocol,
) -> DescribeTopicPartitionsResponsePartition {
    let leader = placement.leader(broker, topic.id, index);
    // A leader without the client's listener is reported as none, with no
    // error, as Kafka does here; the replicas stay as they are.
    let reported = match placement.reachable(broker, leader, listener) {
        true => leader,
        false => BrokerId(-1),
    };
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(reported)
        .with_leader_epoch(placement.view.leader_epoch())
        .with_replica_nodes(vec![leader])
        .with_isr_nodes(vec![leader])
        // No eligible leader replicas (KIP-966) beyond the ISR: empty, as
        // Kafka reports them without ELR.
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(topic))
        .with_partition_index(partition)
}
