//! DescribeProducers: the idempotent producers that wrote to each partition, from
//! the batches the catalog keeps for sequence checks, with the start of their
//! open transaction there (what `kafka-transactions find-hanging` looks at).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::AclOperation;

use crate::acl::Access;
use crate::{errors, Broker};

pub async fn describe(
    broker: &Broker,
    request: DescribeProducersRequest,
    access: &Access,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let allowed = access.allows_topic(AclOperation::Read, &topic.name.0);
        let found = if allowed {
            broker.catalog.topic_by_name(&topic.name.0).await
        } else {
            Ok(None)
        };
        let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
        for index in topic.partition_indexes {
            let response = PartitionResponse::default().with_partition_index(index);
            let producers = match &found {
                _ if !allowed => Err((
                    ResponseError::TopicAuthorizationFailed,
                    "Topic authorization failed.".to_string(),
                )),
                Err(e) => Err((errors::catalog(e), e.to_string())),
                Ok(Some(t)) if (0..t.partition_count).contains(&index) => {
                    let producers = broker.catalog.partition_producers(t.id, index).await;
                    let open = broker.catalog.open_transactions(t.id, index).await;
                    producers
                        .and_then(|producers| Ok((producers, open?)))
                        .map_err(|e| (errors::catalog(&e), e.to_string()))
                }
                Ok(_) => Err((
                    ResponseError::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.".to_string(),
                )),
            };
            partitions.push(match producers {
                Ok((batches, open)) => response.with_active_producers(
                    batches
                        .iter()
                        .map(|b| {
                            // The first offset of its open transaction here,
                            // -1 when none is open (or it has no batch yet).
                            let txn_start = open
                                .iter()
                                .find(|(producer_id, _)| *producer_id == b.producer_id)
                                .map_or(-1, |(_, first)| *first);
                            ProducerState::default()
                                .with_producer_id(ProducerId(b.producer_id))
                                .with_producer_epoch(i32::from(b.epoch))
                                .with_last_sequence(b.last_sequence)
                                // The catalog keeps no append times; Kafka's
                                // "unknown" is -1. No coordinator epochs here
                                // (no agent owns a transactional id).
                                .with_last_timestamp(-1)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(txn_start)
                        })
                        .collect(),
                ),
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
