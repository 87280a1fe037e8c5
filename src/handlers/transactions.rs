//! The transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
//! EndTxn, ListTransactions and DescribeTransactions (InitProducerId has its
//! own file). The state transitions are the catalog's; writing markers is
//! `crate::transactions`'.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use streamhouse_metadata::producers::ProducerIdentity;
use streamhouse_metadata::transactions::{TxnOffset, TxnState};

use crate::acl::Access;
use crate::transactions::{self, CoordinatorError};
use crate::{errors, Broker};

/// The Kafka error for a coordinator failure.
pub fn coordinator_error(error: &CoordinatorError) -> ResponseError {
    match error {
        CoordinatorError::Catalog(e) => errors::catalog(e),
        // Retriable for the client: it sends the request again, and the
        // completion picks up where this one stopped.
        CoordinatorError::Marker(_) | CoordinatorError::StillCompleting(_) => {
            ResponseError::ConcurrentTransactions
        }
    }
}

fn allows_transaction(access: &Access, operation: AclOperation, id: &str) -> bool {
    access.allows(operation, ResourceType::TransactionalId, id)
}

/// AddPartitionsToTxn v0-3 (the client's form: one transaction per request).
pub async fn add_partitions(
    broker: &Broker,
    request: AddPartitionsToTxnRequest,
    access: &Access,
) -> AddPartitionsToTxnResponse {
    let id = request.v3_and_below_transactional_id.0.to_string();
    let producer = ProducerIdentity {
        producer_id: request.v3_and_below_producer_id.0,
        epoch: request.v3_and_below_producer_epoch,
    };
    // (topic name, partition, error decided before the catalog is asked).
    let mut outcomes: Vec<(TopicName, i32, Option<ResponseError>)> = Vec::new();
    let mut partitions = Vec::new();
    let id_allowed = allows_transaction(access, AclOperation::Write, &id);
    for topic in &request.v3_and_below_topics {
        let found = broker.catalog.topic_by_name(&topic.name.0).await;
        let topic_allowed = access.allows_topic(AclOperation::Write, &topic.name.0);
        for &partition in &topic.partitions {
            let error = match &found {
                _ if !id_allowed => Some(ResponseError::TransactionalIdAuthorizationFailed),
                _ if !topic_allowed => Some(ResponseError::TopicAuthorizationFailed),
                Ok(Some(found)) if (0..found.partition_count).contains(&partition) => {
                    partitions.push((found.id, partition));
                    None
                }
                Ok(_) => Some(ResponseError::UnknownTopicOrPartition),
                Err(e) => Some(errors::catalog(e)),
            };
            outcomes.push((topic.name.clone(), partition, error));
        }
    }
    // As Kafka: if any partition is refused, none is added and the others
    // answer OPERATION_NOT_ATTEMPTED.
    let refused = outcomes.iter().any(|(_, _, error)| error.is_some());
    let common = if refused {
        Some(ResponseError::OperationNotAttempted)
    } else {
        broker
            .catalog
            .add_partitions_to_transaction(&id, producer, &partitions)
            .await
            .err()
            .map(|e| errors::catalog(&e))
    };
    let mut by_topic: BTreeMap<TopicName, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for (topic, partition, error) in outcomes {
        let code = error.or(common).map_or(0, |e| e.code());
        by_topic.entry(topic).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(partition)
                .with_partition_error_code(code),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
        by_topic
            .into_iter()
            .map(|(name, results)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(name)
                    .with_results_by_partition(results)
            })
            .collect(),
    )
}

/// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
pub async fn add_offsets(
    broker: &Broker,
    request: AddOffsetsToTxnRequest,
    access: &Access,
) -> AddOffsetsToTxnResponse {
    let id = request.transactional_id.0.to_string();
    let error = if !allows_transaction(access, AclOperation::Write, &id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !access.allows_group(AclOperation::Read, &request.group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        let producer = ProducerIdentity {
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
        };
        broker
            .catalog
            .add_group_to_transaction(&id, producer, &request.group_id)
            .await
            .err()
            .map(|e| errors::catalog(&e))
    };
    AddOffsetsToTxnResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}

/// TxnOffsetCommit, served by the group's coordinator: the offsets wait in the
/// catalog for the transaction's end.
pub async fn commit_offsets(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    version: i16,
    access: &Access,
) -> TxnOffsetCommitResponse {
    let id = request.transactional_id.0.to_string();
    let group_id = request.group_id.0.to_string();
    let common = if !allows_transaction(access, AclOperation::Write, &id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !access.allows_group(AclOperation::Read, &group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        check_member(broker, &request).await.err()
    };
    let mut errors_by_partition = BTreeMap::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        let allowed = access.allows_topic(AclOperation::Read, &topic.name.0);
        let found = broker.catalog.topic_by_name(&topic.name.0).await;
        for p in &topic.partitions {
            let error = match &found {
                _ if common.is_some() => common,
                _ if !allowed => Some(ResponseError::TopicAuthorizationFailed),
                Ok(Some(found)) if (0..found.partition_count).contains(&p.partition_index) => {
                    offsets.push(TxnOffset {
                        topic: found.name.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    });
                    None
                }
                Ok(_) => Some(ResponseError::UnknownTopicOrPartition),
                Err(e) => Some(errors::catalog(e)),
            };
            errors_by_partition.insert((topic.name.clone(), p.partition_index), error);
        }
    }
    if !offsets.is_empty() {
        let producer = ProducerIdentity {
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
        };
        // Transaction version 2: no AddOffsetsToTxn, the group joins the
        // transaction with its first offsets.
        let added = if version >= FIRST_TRANSACTION_V2_TXN_OFFSET_COMMIT {
            broker
                .catalog
                .add_group_to_transaction(&id, producer, &group_id)
                .await
        } else {
            Ok(())
        };
        let committed = match added {
            Ok(()) => {
                broker
                    .catalog
                    .commit_transaction_offsets(&id, producer, &group_id, &offsets)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            let error = errors::catalog(&e);
            for slot in errors_by_partition.values_mut() {
                slot.get_or_insert(error);
            }
        }
    }
    let mut topics: BTreeMap<TopicName, Vec<TxnOffsetCommitResponsePartition>> = BTreeMap::new();
    for ((topic, partition), error) in errors_by_partition {
        topics.entry(topic).or_default().push(
            TxnOffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(error.map_or(0, |e| e.code())),
        );
    }
    TxnOffsetCommitResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, partitions)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

/// As Kafka's group coordinator: this agent must coordinate the group, and a
/// request naming a member and generation (v3+, KIP-447) must name current
/// ones, so that a zombie of a rebalanced-away member cannot commit.
async fn check_member(
    broker: &Broker,
    request: &TxnOffsetCommitRequest,
) -> Result<(), ResponseError> {
    let group = broker.coordinator.owned_group(&request.group_id).await?;
    let member_id = request.member_id.as_str();
    if request.generation_id < 0 && member_id.is_empty() {
        return Ok(());
    }
    let Some(group) = group else {
        return Err(ResponseError::IllegalGeneration);
    };
    let group = group.lock().await;
    if !member_id.is_empty() && !group.members.contains_key(member_id) {
        return Err(ResponseError::UnknownMemberId);
    }
    if request.generation_id >= 0 && request.generation_id != group.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(())
}

/// EndTxn: commits or aborts, markers written before the answer. From v5
/// (transaction version 2) the epoch is bumped and the answer names the
/// producer's id and epoch for its next transaction.
pub async fn end(
    broker: &Broker,
    request: EndTxnRequest,
    version: i16,
    access: &Access,
) -> EndTxnResponse {
    let id = request.transactional_id.0.to_string();
    let producer = ProducerIdentity {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    };
    let bump_epoch = version >= FIRST_TRANSACTION_V2_END_TXN;
    let outcome = if !allows_transaction(access, AclOperation::Write, &id) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        transactions::end(broker, &id, producer, request.committed, bump_epoch)
            .await
            .map_err(|e| {
                tracing::debug!(transactional_id = %id, "EndTxn refused: {e}");
                coordinator_error(&e)
            })
    };
    match outcome {
        Ok(next) => EndTxnResponse::default()
            .with_producer_id(ProducerId(next.producer_id))
            .with_producer_epoch(next.epoch),
        Err(error) => EndTxnResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// EndTxn and TxnOffsetCommit of transaction version 2 (KIP-890 part 2).
const FIRST_TRANSACTION_V2_END_TXN: i16 = 5;
const FIRST_TRANSACTION_V2_TXN_OFFSET_COMMIT: i16 = 5;

/// ListTransactions v0-1: the transactional ids the client may describe,
/// filtered by state, producer id and (v1) duration.
pub async fn list(
    broker: &Broker,
    request: ListTransactionsRequest,
    access: &Access,
) -> ListTransactionsResponse {
    let listed = match broker.catalog.list_transactions().await {
        Ok(listed) => listed,
        Err(e) => {
            return ListTransactionsResponse::default().with_error_code(errors::catalog(&e).code())
        }
    };
    let unknown_state_filters: Vec<StrBytes> = request
        .state_filters
        .iter()
        .filter(|name| TxnState::parse(name).is_none())
        .cloned()
        .collect();
    let states = listed
        .into_iter()
        .filter(|t| {
            request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|s| s.as_str() == t.state.as_str())
        })
        .filter(|t| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == t.producer_id)
        })
        // As Kafka: a duration filter keeps transactions running longer.
        .filter(|t| request.duration_filter < 0 || t.duration_ms > request.duration_filter)
        .filter(|t| allows_transaction(access, AclOperation::Describe, &t.transactional_id))
        .map(|t| {
            ListedState::default()
                .with_transactional_id(StrBytes::from_string(t.transactional_id).into())
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(StrBytes::from_static_str(t.state.as_str()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown_state_filters)
        .with_transaction_states(states)
}

/// DescribeTransactions.
pub async fn describe(
    broker: &Broker,
    request: DescribeTransactionsRequest,
    access: &Access,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let entry = DescribedState::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        if !allows_transaction(access, AclOperation::Describe, &id) {
            states.push(
                entry.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()),
            );
            continue;
        }
        let described = match broker.catalog.describe_transaction(&id).await {
            Ok(Some(described)) => described,
            Ok(None) => {
                states.push(entry.with_error_code(ResponseError::TransactionalIdNotFound.code()));
                continue;
            }
            Err(e) => {
                states.push(entry.with_error_code(errors::catalog(&e).code()));
                continue;
            }
        };
        let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &described.partitions {
            let name = match broker.catalog.topic_by_id(*topic).await {
                Ok(Some(found)) => found.name,
                _ => continue,
            };
            topics.entry(name).or_default().push(*partition);
        }
        states.push(
            entry
                .with_transaction_state(StrBytes::from_static_str(described.state.as_str()))
                .with_transaction_timeout_ms(described.timeout_ms)
                .with_transaction_start_time_ms(described.start_time_ms)
                .with_producer_id(ProducerId(described.producer_id))
                .with_producer_epoch(described.producer_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            TopicData::default()
                                .with_topic(StrBytes::from_string(name).into())
                                .with_partitions(partitions)
                        })
                        .collect(),
                ),
        );
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
