//! The transaction coordinator: what InitProducerId, EndTxn and the timeout
//! sweep do beyond the catalog's state transitions, namely writing the markers.
//!
//! No agent owns a transactional id (see `streamhouse_metadata::transactions`):
//! the catalog serialises the transitions, and completing a prepared
//! transaction is idempotent, so whichever agent a client reaches completes
//! what it finds prepared, and the sweep every agent runs completes what a dead
//! agent left.

use std::sync::Arc;
use std::time::Duration;

use streamhouse_metadata::producers::ProducerIdentity;
use streamhouse_metadata::transactions::{Completion, EndOutcome, InitOutcome, TxnAppend};
use streamhouse_metadata::CatalogError;
use streamhouse_protocol::control;
use streamhouse_storage::{Append, StorageError};

use crate::Broker;

/// A prepared transaction untouched this long was left by an agent that
/// stopped while writing its markers; the sweep completes it.
const STALLED_COMPLETION_MS: i64 = 10_000;

/// Transactions the sweep finishes per catalog call.
const SWEEP_BATCH: u32 = 100;

/// Rounds of "complete what is in the way, ask again" before giving up: each
/// round completes one transaction, and a client's own retry finds the next.
const MAX_ROUNDS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("writing a transaction marker failed: {0}")]
    Marker(Arc<StorageError>),
    #[error("transactional id '{0}' is still completing a transaction")]
    StillCompleting(String),
}

/// Writes the markers of a prepared transaction to each of its partitions,
/// then records it complete.
pub async fn complete(broker: &Broker, completion: &Completion) -> Result<(), CoordinatorError> {
    let now = broker.clock.now_ms();
    let marker = completion.marker();
    let bytes =
        control::end_transaction_marker(marker.producer_id, marker.epoch, marker.commit, 0, now);
    let mut pending = Vec::with_capacity(completion.partitions.len());
    for (topic, partition) in &completion.partitions {
        let append = Append {
            topic: *topic,
            partition: *partition,
            batches: bytes.clone(),
            batch_count: 1,
            offset_count: 1,
            min_timestamp: now,
            max_timestamp: now,
            append_time_ms: -1,
            producer: None,
            txn: Some(TxnAppend::Marker(marker)),
        };
        let outcome = broker
            .log
            .append(append)
            .await
            .map_err(|e| CoordinatorError::Marker(Arc::new(e)))?;
        pending.push(outcome);
    }
    for outcome in pending {
        match outcome.await {
            Ok(Ok(_)) => {}
            // The topic went while the transaction was open: nothing to end.
            Ok(Err(e)) if matches!(*e, StorageError::UnknownPartition) => {}
            Ok(Err(e)) => return Err(CoordinatorError::Marker(e)),
            Err(_) => {
                return Err(CoordinatorError::Marker(Arc::new(
                    StorageError::ShuttingDown,
                )))
            }
        }
    }
    broker.catalog.complete_transaction(completion).await?;
    tracing::debug!(
        transactional_id = %completion.transactional_id,
        commit = completion.commit,
        partitions = completion.partitions.len(),
        "transaction completed"
    );
    Ok(())
}

/// InitProducerId with a transactional id: completes (aborting an open one)
/// whatever transaction is in the way, then bumps the epoch.
pub async fn init_producer(
    broker: &Broker,
    transactional_id: &str,
    timeout_ms: i32,
    existing: Option<ProducerIdentity>,
) -> Result<ProducerIdentity, CoordinatorError> {
    for _ in 0..MAX_ROUNDS {
        match broker
            .catalog
            .init_transactional_producer(transactional_id, timeout_ms, existing)
            .await?
        {
            InitOutcome::Ready(identity) => return Ok(identity),
            // An epoch the client names that the abort bumped is now the one
            // before the current, which the catalog still accepts.
            InitOutcome::MustComplete(completion) => complete(broker, &completion).await?,
        }
    }
    Err(CoordinatorError::StillCompleting(
        transactional_id.to_string(),
    ))
}

/// EndTxn: prepares the transaction, writes its markers and completes it.
/// Returns the producer's identity for its next transaction (bumped with
/// `bump_epoch`, transaction version 2).
pub async fn end(
    broker: &Broker,
    transactional_id: &str,
    producer: ProducerIdentity,
    commit: bool,
    bump_epoch: bool,
) -> Result<ProducerIdentity, CoordinatorError> {
    match broker
        .catalog
        .end_transaction(transactional_id, producer, commit, bump_epoch)
        .await?
    {
        EndOutcome::Done(identity) => Ok(identity),
        EndOutcome::MustComplete(completion) => {
            complete(broker, &completion).await?;
            Ok(ProducerIdentity {
                producer_id: completion.producer_id,
                epoch: completion.epoch,
            })
        }
    }
}

/// Aborts timed-out transactions and completes those a dead agent left
/// prepared, every `interval`, until the broker stops.
pub fn sweep_in_background(broker: &Arc<Broker>, interval: Duration) {
    let broker = Arc::downgrade(broker);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(broker) = broker.upgrade() else {
                return;
            };
            sweep(&broker).await;
        }
    });
}

async fn sweep(broker: &Broker) {
    let completions = match broker
        .catalog
        .transactions_to_finish(STALLED_COMPLETION_MS, SWEEP_BATCH)
        .await
    {
        Ok(completions) => completions,
        Err(e) => {
            tracing::warn!("transaction timeout sweep failed: {e}");
            return;
        }
    };
    for completion in completions {
        if let Err(e) = complete(broker, &completion).await {
            tracing::warn!(
                transactional_id = %completion.transactional_id,
                "completing a transaction failed, retried at the next sweep: {e}"
            );
        } else if !completion.commit {
            tracing::info!(
                transactional_id = %completion.transactional_id,
                "aborted a transaction that passed its timeout or was left prepared"
            );
        }
    }
}
