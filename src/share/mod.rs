//! Share groups' records (KIP-932): acquiring records of a partition for a
//! member, acknowledging them, releasing a member's records, and the share
//! sessions ShareFetch and ShareAcknowledge run in.
//!
//! - `partition.rs`: one share partition's record states (pure).
//! - `committed.rs`: what a read_committed share group never delivers.
//! - `sessions.rs`: this agent's share sessions (which partitions a member
//!   fetches here, and the epoch its next request must carry).
//!
//! The state of each (share group, partition) is in the catalog and changed
//! in one transaction holding its row, so any agent may serve any partition
//! of any share group and two members never hold one record at once. A fetch
//! reads the state, reads the log from the first deliverable offset, then
//! acquires in the transaction (judging against the state as it is then).

mod committed;
pub mod partition;
pub mod sessions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use streamhouse_metadata::TopicId;
use streamhouse_protocol::batches::Batches;
use streamhouse_storage::{Freshness, ReadBudget, ReadError};

pub use partition::{AckError, Acquired, SharePartition, ShareRules};

use sessions::{ConnectionId, SessionPartitions};

use crate::config::group;
use crate::{errors, stable_read, Broker};

/// What the share group reads first of a partition it has never read
/// (`share.auto.offset.reset`; Kafka's default is the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ShareStart {
    #[default]
    Latest,
    Earliest,
}

/// The rules of share groups on this agent.
/// The share rules of `group_id`: the agent's, with the group's own lock
/// duration if it has one (`share.record.lock.duration.ms`).
pub async fn rules(broker: &Broker, group_id: &str) -> Result<ShareRules, ResponseError> {
    let configs = group_configs(broker, group_id).await?;
    Ok(rules_of(broker, &configs))
}

fn rules_of(broker: &Broker, configs: &BTreeMap<String, String>) -> ShareRules {
    let groups = group::rules_of(configs, broker.config.group_rules);
    ShareRules {
        lock_ms: i64::from(groups.share_record_lock_ms),
        delivery_limit: groups.share_delivery_limit,
    }
}

/// Whether a control batch commits (`Some(true)`) or aborts its transaction.
fn marker_type(batch: &streamhouse_protocol::batches::Batch) -> Option<bool> {
    let bytes: Vec<u8> = batch.segments().flat_map(|s| s.iter().copied()).collect();
    streamhouse_protocol::control::marker_type(&bytes)
}

/// A group's configs, through the agent's one-second cache.
pub(crate) async fn group_configs(
    broker: &Broker,
    group_id: &str,
) -> Result<Arc<BTreeMap<String, String>>, ResponseError> {
    broker
        .group_configs
        .get(&*broker.catalog, group_id)
        .await
        .map_err(|e| errors::catalog(&e))
}

fn parse(json: Option<&str>) -> Result<Option<SharePartition>, ResponseError> {
    json.map(SharePartition::from_json)
        .transpose()
        .map_err(|error| {
            tracing::error!(%error, "a stored share partition cannot be read");
            ResponseError::UnknownServerError
        })
}

/// One partition's records acquired for a member: the batches that hold
/// them (whole, as stored) and the acquired ranges.
#[derive(Debug, Default)]
pub struct Delivery {
    pub records: Bytes,
    pub acquired: Vec<Acquired>,
}

/// Acquires up to `max_records` records of the partition for `member`,
/// reading at most about `max_bytes`.
pub async fn acquire(
    broker: &Broker,
    group_id: &str,
    topic: TopicId,
    partition: i32,
    member: &str,
    max_records: i64,
    max_bytes: usize,
) -> Result<Delivery, ResponseError> {
    let configs = group_configs(broker, group_id).await?;
    let rules = rules_of(broker, &configs);
    let read_committed = group::share_read_committed(&configs);
    let now_ms = broker.clock.now_ms();
    let stored = broker
        .catalog
        .share_partition(group_id, topic, partition)
        .await
        .map_err(|e| errors::catalog(&e))?;
    let offsets = broker
        .log
        .offsets(topic, partition, Freshness::Cached)
        .await
        .map_err(|e| errors::storage(&e))?
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    let state = parse(stored.as_deref())?;
    // Read only for a partition the group never read: its start is fixed then.
    let start = match &state {
        Some(_) => broker.config.share_start,
        None => group::share_start(&configs, broker.config.share_start),
    };
    let initial = match start {
        ShareStart::Latest => offsets.high_watermark,
        ShareStart::Earliest => offsets.log_start_offset,
    };
    let from = state
        .as_ref()
        .map_or(initial, |s| s.next_candidate(now_ms, &rules))
        .max(offsets.log_start_offset);
    let budget = ReadBudget {
        max_bytes,
        at_least_one_batch: true,
    };
    // read_committed: up to the last stable offset, as a read_committed Fetch.
    let end = if read_committed {
        stable_read::last_stable_offset(broker, topic, partition, offsets).await?
    } else {
        offsets.high_watermark
    };
    let records = if from >= end {
        Batches::default()
    } else {
        match broker.log.read(topic, partition, from, budget).await {
            Ok(read) => read.records,
            // Retention moved the log start meanwhile: the next fetch reads
            // from the new one.
            Err(ReadError::OffsetOutOfRange) => Batches::default(),
            Err(e) => return Err(errors::read(&e)),
        }
    };
    let (mut records, last_read) = stable_read::below(records, end);
    let hidden = match (read_committed, last_read) {
        (true, Some(last)) => {
            let aborted = broker
                .catalog
                .aborted_transactions(topic, partition, from, last)
                .await
                .map_err(|e| errors::catalog(&e))?;
            let facts: Vec<committed::BatchFacts> = records
                .iter()
                .map(|batch| committed::BatchFacts {
                    header: *batch.header(),
                    marker: batch
                        .header()
                        .is_control()
                        .then(|| marker_type(batch))
                        .flatten(),
                })
                .collect();
            committed::hidden(&facts, &aborted)
        }
        _ => vec![false; records.len()],
    };
    // Control records, and the data of aborted transactions at
    // read_committed, are archived rather than delivered.
    let batches: Vec<(i64, i64, bool)> = records
        .iter()
        .zip(hidden)
        .map(|(batch, hidden)| {
            let header = batch.header();
            let undeliverable = header.is_control() || hidden;
            (header.base_offset, batch.last_offset(), undeliverable)
        })
        .collect();
    if state.is_some() && batches.is_empty() {
        return Ok(Delivery::default());
    }
    let acquired = Mutex::new(Vec::new());
    let failed = Mutex::new(None);
    let update = |current: Option<&str>| {
        let mut state = match parse(current) {
            Ok(state) => state.unwrap_or_else(|| SharePartition::starting_at(initial)),
            Err(error) => {
                *lock(&failed) = Some(error);
                return None;
            }
        };
        let before = current.map(str::to_owned);
        state.skip_to(offsets.log_start_offset);
        *lock(&acquired) = state.acquire(&batches, member, now_ms, &rules, max_records);
        let after = state.to_json();
        (before.as_deref() != Some(after.as_str())).then_some(after)
    };
    broker
        .catalog
        .update_share_partition(group_id, topic, partition, &update)
        .await
        .map_err(|e| errors::catalog(&e))?;
    if let Some(error) = lock(&failed).take() {
        return Err(error);
    }
    let acquired = std::mem::take(&mut *lock(&acquired));
    // Only the batches that hold an acquired record go out.
    records.retain(|batch| {
        acquired
            .iter()
            .any(|a| a.first <= batch.last_offset() && a.last >= batch.header().base_offset)
    });
    Ok(Delivery {
        records: records.to_bytes(),
        acquired,
    })
}

/// Applies a member's acknowledgement batches `(first, last, types)` of one
/// partition, in order; the first refused one ends it (those before it
/// stand).
pub async fn acknowledge(
    broker: &Broker,
    group_id: &str,
    topic: TopicId,
    partition: i32,
    member: &str,
    batches: &[(i64, i64, Vec<i8>)],
) -> Result<(), ResponseError> {
    let rules = rules(broker, group_id).await?;
    let now_ms = broker.clock.now_ms();
    let outcome = Mutex::new(Ok(()));
    let update = |current: Option<&str>| {
        let mut state = match parse(current) {
            Ok(Some(state)) => state,
            Ok(None) => {
                *lock(&outcome) = Err(ResponseError::InvalidRecordState);
                return None;
            }
            Err(error) => {
                *lock(&outcome) = Err(error);
                return None;
            }
        };
        *lock(&outcome) = Ok(());
        for (first, last, types) in batches {
            if let Err(error) = state.acknowledge(*first, *last, types, member, now_ms, &rules) {
                *lock(&outcome) = Err(match error {
                    AckError::NotAcquired => ResponseError::InvalidRecordState,
                    AckError::Malformed(_) => ResponseError::InvalidRequest,
                });
                break;
            }
        }
        Some(state.to_json())
    };
    broker
        .catalog
        .update_share_partition(group_id, topic, partition, &update)
        .await
        .map_err(|e| errors::catalog(&e))?;
    let outcome = std::mem::replace(&mut *lock(&outcome), Ok(()));
    outcome
}

/// Makes every record `member` holds in the partition available again (its
/// share session closed).
pub async fn release(
    broker: &Broker,
    group_id: &str,
    topic: TopicId,
    partition: i32,
    member: &str,
) -> Result<(), ResponseError> {
    let rules = rules(broker, group_id).await?;
    let update = |current: Option<&str>| {
        let mut state = parse(current).ok()??;
        let before = state.to_json();
        state.release_member(member, &rules);
        let after = state.to_json();
        (after != before).then_some(after)
    };
    broker
        .catalog
        .update_share_partition(group_id, topic, partition, &update)
        .await
        .map_err(|e| errors::catalog(&e))?;
    Ok(())
}

/// A closed session's records go back to the group.
pub async fn release_session(
    broker: &Broker,
    group_id: &str,
    member: &str,
    partitions: &SessionPartitions,
) {
    for &(topic, partition) in partitions {
        if let Err(error) = release(broker, group_id, topic, partition, member).await {
            tracing::warn!(group_id, member, %topic, partition, ?error, "cannot release a closed share session's records");
        }
    }
}

/// A client connection ended: the share sessions it opened close, and
/// their members' records go back to their groups.
pub async fn connection_closed(broker: &Broker, connection: ConnectionId) {
    for orphaned in broker.share_sessions.close_connection(connection) {
        tracing::debug!(
            group_id = orphaned.group_id,
            member = orphaned.member_id,
            "share session closed with its connection"
        );
        release_session(
            broker,
            &orphaned.group_id,
            &orphaned.member_id,
            &orphaned.partitions,
        )
        .await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Held only for a move in or out: nothing is left half-done by a panic.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
