//! Transactions: the [`TransactionCatalog`] of the SQL catalog. Every
//! coordinator transition is one transaction on the transactional id's row
//! (locked `FOR UPDATE` on PostgreSQL; SQLite's write lock), so agents serving
//! the same id take turns and each sees the other's state. The per-partition
//! side (open transactions' first offsets, markers, aborted transactions) is
//! written by the commit (`open_txns.rs`).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::agents::catalog_now_ms;
use super::rows::{get, to_i16, to_i32, topic_id};
use super::{Backend, SqlCatalog};
use crate::catalog::TransactionCatalog;
use crate::producers::ProducerIdentity;
use crate::transactions::{
    check_producer, AbortedTxn, Completion, EndOutcome, InitOutcome, TransactionDescription,
    TransactionListing, TxnError, TxnOffset, TxnState,
};
use crate::{CatalogError, Result, TopicId};

/// Kafka gives a producer a new id rather than let its epoch reach the maximum.
const LAST_USABLE_EPOCH: i16 = i16::MAX - 1;

#[async_trait]
impl TransactionCatalog for SqlCatalog {
    async fn init_transactional_producer(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        existing: Option<ProducerIdentity>,
    ) -> Result<InitOutcome> {
        let backend = self.backend;
        self.write("init_transactional_producer", |tx| {
            init(tx, backend, transactional_id, timeout_ms, existing)
        })
        .await
    }

    async fn add_partitions_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        partitions: &[(TopicId, i32)],
    ) -> Result<()> {
        let backend = self.backend;
        self.write("add_partitions_to_transaction", |tx| {
            add_partitions(tx, backend, transactional_id, producer, partitions)
        })
        .await
    }

    async fn add_group_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        group_id: &str,
    ) -> Result<()> {
        let backend = self.backend;
        self.write("add_group_to_transaction", |tx| {
            add_group(tx, backend, transactional_id, producer, group_id)
        })
        .await
    }

    async fn commit_transaction_offsets(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        group_id: &str,
        offsets: &[TxnOffset],
    ) -> Result<()> {
        let backend = self.backend;
        let now = self.clock.now_ms();
        self.write("commit_transaction_offsets", |tx| {
            commit_offsets(
                tx,
                backend,
                transactional_id,
                producer,
                group_id,
                offsets,
                now,
            )
        })
        .await
    }

    async fn end_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        commit: bool,
        bump_epoch: bool,
    ) -> Result<EndOutcome> {
        let backend = self.backend;
        self.write("end_transaction", |tx| {
            end(tx, backend, transactional_id, producer, commit, bump_epoch)
        })
        .await
    }

    async fn complete_transaction(&self, completion: &Completion) -> Result<()> {
        let backend = self.backend;
        self.write("complete_transaction", |tx| {
            complete(tx, backend, completion)
        })
        .await
    }

    async fn transactions_to_finish(
        &self,
        stalled_after_ms: i64,
        limit: u32,
    ) -> Result<Vec<Completion>> {
        let backend = self.backend;
        self.write("transactions_to_finish", |tx| {
            to_finish(tx, backend, stalled_after_ms, limit)
        })
        .await
    }

    async fn list_transactions(&self) -> Result<Vec<TransactionListing>> {
        let backend = self.backend;
        self.read("list_transactions", |pool| async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT transactional_id, producer_id, state, started_at_ms, {} AS now_ms \
                 FROM transactions ORDER BY transactional_id",
                catalog_now_ms(backend)
            )))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let state = state_of(row)?;
                    let started: i64 = get(row, "started_at_ms")?;
                    let now: i64 = get(row, "now_ms")?;
                    Ok(TransactionListing {
                        transactional_id: get(row, "transactional_id")?,
                        producer_id: get(row, "producer_id")?,
                        state,
                        duration_ms: if state == TxnState::Ongoing || state.is_prepared() {
                            (now - started).max(0)
                        } else {
                            -1
                        },
                    })
                })
                .collect()
        })
        .await
    }

    async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<Option<TransactionDescription>> {
        self.read("describe_transaction", |pool| async move {
            let Some(row) = sqlx::query(
                "SELECT producer_id, producer_epoch, state, timeout_ms, started_at_ms \
                 FROM transactions WHERE transactional_id = $1",
            )
            .bind(transactional_id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let rows = sqlx::query(
                "SELECT topic_id, partition_index FROM transaction_partitions \
                 WHERE transactional_id = $1 ORDER BY topic_id, partition_index",
            )
            .bind(transactional_id)
            .fetch_all(pool)
            .await?;
            let partitions = rows.iter().map(partition_of).collect::<Result<Vec<_>>>()?;
            let state = state_of(&row)?;
            let open = state == TxnState::Ongoing || state.is_prepared();
            Ok(Some(TransactionDescription {
                transactional_id: transactional_id.to_string(),
                producer_id: get(&row, "producer_id")?,
                producer_epoch: to_i16(get(&row, "producer_epoch")?, "producer epoch")?,
                state,
                timeout_ms: to_i32(get(&row, "timeout_ms")?, "transaction timeout")?,
                start_time_ms: if open {
                    get(&row, "started_at_ms")?
                } else {
                    -1
                },
                partitions,
            }))
        })
        .await
    }

    async fn first_unstable_offset(&self, topic: TopicId, partition: i32) -> Result<Option<i64>> {
        self.read("first_unstable_offset", |pool| async move {
            let row = sqlx::query(
                "SELECT MIN(first_offset) AS first FROM open_transactions \
                 WHERE topic_id = $1 AND partition_index = $2 AND is_open = 1 \
                   AND first_offset IS NOT NULL",
            )
            .bind(topic.to_string())
            .bind(i64::from(partition))
            .fetch_one(pool)
            .await?;
            get::<Option<i64>>(&row, "first")
        })
        .await
    }

    async fn aborted_transactions(
        &self,
        topic: TopicId,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTxn>> {
        self.read("aborted_transactions", |pool| async move {
            let rows = sqlx::query(
                "SELECT producer_id, first_offset FROM aborted_transactions \
                 WHERE topic_id = $1 AND partition_index = $2 AND last_offset >= $3 \
                   AND first_offset <= $4 ORDER BY first_offset",
            )
            .bind(topic.to_string())
            .bind(i64::from(partition))
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(AbortedTxn {
                        producer_id: get(row, "producer_id")?,
                        first_offset: get(row, "first_offset")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn open_transactions(&self, topic: TopicId, partition: i32) -> Result<Vec<(i64, i64)>> {
        self.read("open_transactions", |pool| async move {
            let rows = sqlx::query(
                "SELECT producer_id, first_offset FROM open_transactions \
                 WHERE topic_id = $1 AND partition_index = $2 AND is_open = 1 \
                 ORDER BY producer_id",
            )
            .bind(topic.to_string())
            .bind(i64::from(partition))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let first: Option<i64> = get(row, "first_offset")?;
                    Ok((get(row, "producer_id")?, first.unwrap_or(-1)))
                })
                .collect()
        })
        .await
    }

    async fn has_pending_transaction_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Result<bool> {
        self.read("has_pending_transaction_offsets", |pool| async move {
            let row = sqlx::query(
                "SELECT COUNT(*) AS pending FROM transaction_offsets \
                 WHERE group_id = $1 AND topic_name = $2 AND partition_index = $3",
            )
            .bind(group_id)
            .bind(topic)
            .bind(i64::from(partition))
            .fetch_one(pool)
            .await?;
            Ok(get::<i64>(&row, "pending")? > 0)
        })
        .await
    }
}

/// A transactional id's row, locked for the rest of the transaction.
struct TxnRow {
    producer_id: i64,
    producer_epoch: i16,
    last_producer_epoch: i16,
    state: TxnState,
    txn_seq: i64,
}

impl TxnRow {
    fn identity(&self) -> ProducerIdentity {
        ProducerIdentity {
            producer_id: self.producer_id,
            epoch: self.producer_epoch,
        }
    }
}

fn state_of(row: &AnyRow) -> Result<TxnState> {
    let name: String = get(row, "state")?;
    TxnState::parse(&name)
        .ok_or_else(|| CatalogError::Corrupt(format!("unknown transaction state '{name}'")))
}

fn partition_of(row: &AnyRow) -> Result<(TopicId, i32)> {
    Ok((
        topic_id(&get::<String>(row, "topic_id")?)?,
        to_i32(get(row, "partition_index")?, "partition index")?,
    ))
}

async fn lock_row(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
) -> Result<Option<TxnRow>> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT producer_id, producer_epoch, last_producer_epoch, state, txn_seq \
         FROM transactions WHERE transactional_id = $1{lock}"
    )))
    .bind(transactional_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(TxnRow {
            producer_id: get(&row, "producer_id")?,
            producer_epoch: to_i16(get(&row, "producer_epoch")?, "producer epoch")?,
            last_producer_epoch: to_i16(get(&row, "last_producer_epoch")?, "producer epoch")?,
            state: state_of(&row)?,
            txn_seq: get(&row, "txn_seq")?,
        })
    })
    .transpose()
}

/// The row of a producer's request (AddPartitions, AddOffsets, TxnOffsetCommit,
/// EndTxn), checked against the producer's identity.
async fn producer_row(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    producer: ProducerIdentity,
) -> Result<TxnRow> {
    let row = lock_row(tx, backend, transactional_id)
        .await?
        .ok_or_else(|| TxnError::InvalidProducerIdMapping(transactional_id.to_string()))?;
    check_producer(transactional_id, row.identity(), producer)?;
    Ok(row)
}

async fn partitions_of(
    tx: &mut Transaction<'static, Any>,
    transactional_id: &str,
) -> Result<Vec<(TopicId, i32)>> {
    let rows = sqlx::query(
        "SELECT topic_id, partition_index FROM transaction_partitions \
         WHERE transactional_id = $1 ORDER BY topic_id, partition_index",
    )
    .bind(transactional_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(partition_of).collect()
}

/// The completion of `row`'s prepared transaction.
async fn completion_of(
    tx: &mut Transaction<'static, Any>,
    transactional_id: &str,
    row: &TxnRow,
) -> Result<Completion> {
    Ok(Completion {
        transactional_id: transactional_id.to_string(),
        producer_id: row.producer_id,
        epoch: row.producer_epoch,
        txn_seq: row.txn_seq,
        commit: row.state == TxnState::PrepareCommit,
        partitions: partitions_of(tx, transactional_id).await?,
    })
}

async fn set_state(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    state: TxnState,
) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE transactions SET state = $2, updated_at_ms = {} WHERE transactional_id = $1",
        catalog_now_ms(backend)
    )))
    .bind(transactional_id)
    .bind(state.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The next producer id from the counter idempotent producers share.
async fn next_producer_id(tx: &mut Transaction<'static, Any>) -> Result<i64> {
    let row = sqlx::query(
        "UPDATE producer_ids SET next_producer_id = next_producer_id + 1 \
         WHERE singleton = 1 RETURNING next_producer_id",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(get::<i64>(&row, "next_producer_id")? - 1)
}

async fn init(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    timeout_ms: i32,
    existing: Option<ProducerIdentity>,
) -> Result<InitOutcome> {
    let now = catalog_now_ms(backend);
    let Some(row) = lock_row(&mut tx, backend, transactional_id).await? else {
        if existing.is_some() {
            return Err(TxnError::InvalidProducerIdMapping(transactional_id.to_string()).into());
        }
        let producer_id = next_producer_id(&mut tx).await?;
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO transactions (transactional_id, producer_id, producer_epoch, \
             timeout_ms, state, updated_at_ms) VALUES ($1, $2, 0, $3, 'Empty', {now}) \
             ON CONFLICT (transactional_id) DO NOTHING"
        )))
        .bind(transactional_id)
        .bind(producer_id)
        .bind(i64::from(timeout_ms))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Another agent created the id meanwhile (PostgreSQL: nothing to
            // lock before it existed). The client asks again and finds it.
            return Err(TxnError::ConcurrentTransactions(transactional_id.to_string()).into());
        }
        tx.commit().await?;
        return Ok(InitOutcome::Ready(ProducerIdentity {
            producer_id,
            epoch: 0,
        }));
    };
    if let Some(asked) = existing {
        let known = asked.producer_id == row.producer_id
            && (asked.epoch == row.producer_epoch || asked.epoch == row.last_producer_epoch);
        if !known {
            return Err(TxnError::ProducerFenced {
                transactional_id: transactional_id.to_string(),
                epoch: asked.epoch,
                current: row.producer_epoch,
            }
            .into());
        }
    }
    match row.state {
        TxnState::Ongoing => {
            // The previous incarnation's transaction: fence it (its epoch is
            // bumped, so its batches and EndTxn are refused) and abort it.
            let fenced = fence(&mut tx, backend, transactional_id, &row).await?;
            let completion = completion_of(&mut tx, transactional_id, &fenced).await?;
            tx.commit().await?;
            Ok(InitOutcome::MustComplete(completion))
        }
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            let completion = completion_of(&mut tx, transactional_id, &row).await?;
            tx.commit().await?;
            Ok(InitOutcome::MustComplete(completion))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let identity = if row.producer_epoch >= LAST_USABLE_EPOCH {
                ProducerIdentity {
                    producer_id: next_producer_id(&mut tx).await?,
                    epoch: 0,
                }
            } else {
                ProducerIdentity {
                    producer_id: row.producer_id,
                    epoch: row.producer_epoch + 1,
                }
            };
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE transactions SET producer_id = $2, producer_epoch = $3, \
                 last_producer_epoch = -1, timeout_ms = $4, state = 'Empty', \
                 started_at_ms = -1, updated_at_ms = {now} WHERE transactional_id = $1"
            )))
            .bind(transactional_id)
            .bind(identity.producer_id)
            .bind(i64::from(identity.epoch))
            .bind(i64::from(timeout_ms))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(InitOutcome::Ready(identity))
        }
    }
}

/// Bumps an ongoing transaction's epoch and prepares it to abort: its producer
/// is fenced. Returns the row as it now is.
async fn fence(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    row: &TxnRow,
) -> Result<TxnRow> {
    // At the last usable epoch the abort keeps it: the next InitProducerId
    // moves the id to a new producer id anyway.
    let epoch = if row.producer_epoch >= LAST_USABLE_EPOCH {
        row.producer_epoch
    } else {
        row.producer_epoch + 1
    };
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE transactions SET producer_epoch = $2, last_producer_epoch = $3, \
         state = 'PrepareAbort', updated_at_ms = {} WHERE transactional_id = $1",
        catalog_now_ms(backend)
    )))
    .bind(transactional_id)
    .bind(i64::from(epoch))
    .bind(i64::from(row.producer_epoch))
    .execute(&mut **tx)
    .await?;
    Ok(TxnRow {
        producer_epoch: epoch,
        last_producer_epoch: row.producer_epoch,
        state: TxnState::PrepareAbort,
        ..*row
    })
}

/// Opens a transaction on `row` if none is open (AddPartitionsToTxn and
/// AddOffsetsToTxn both begin one). Returns its sequence number.
async fn begin_if_needed(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    row: &TxnRow,
) -> Result<i64> {
    match row.state {
        TxnState::Ongoing => Ok(row.txn_seq),
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            Err(TxnError::ConcurrentTransactions(transactional_id.to_string()).into())
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let now = catalog_now_ms(backend);
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE transactions SET state = 'Ongoing', txn_seq = txn_seq + 1, \
                 started_at_ms = {now}, updated_at_ms = {now} WHERE transactional_id = $1"
            )))
            .bind(transactional_id)
            .execute(&mut **tx)
            .await?;
            Ok(row.txn_seq + 1)
        }
    }
}

async fn add_partitions(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    producer: ProducerIdentity,
    partitions: &[(TopicId, i32)],
) -> Result<()> {
    let row = producer_row(&mut tx, backend, transactional_id, producer).await?;
    let txn_seq = begin_if_needed(&mut tx, backend, transactional_id, &row).await?;
    for (topic, partition) in partitions {
        sqlx::query(
            "INSERT INTO transaction_partitions (transactional_id, topic_id, partition_index) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(transactional_id)
        .bind(topic.to_string())
        .bind(i64::from(*partition))
        .execute(&mut *tx)
        .await?;
        // The producer's row of an earlier transaction on the partition (ended,
        // or whose marker never landed because the partition went meanwhile)
        // becomes this transaction's.
        sqlx::query(
            "INSERT INTO open_transactions (topic_id, partition_index, producer_id, \
             producer_epoch, txn_seq, is_open, first_offset) VALUES ($1, $2, $3, $4, $5, 1, NULL) \
             ON CONFLICT (topic_id, partition_index, producer_id) DO UPDATE SET \
                 producer_epoch = excluded.producer_epoch, txn_seq = excluded.txn_seq, \
                 is_open = 1, \
                 first_offset = CASE WHEN open_transactions.txn_seq = excluded.txn_seq \
                     THEN open_transactions.first_offset ELSE NULL END",
        )
        .bind(topic.to_string())
        .bind(i64::from(*partition))
        .bind(producer.producer_id)
        .bind(i64::from(producer.epoch))
        .bind(txn_seq)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn add_group(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    producer: ProducerIdentity,
    group_id: &str,
) -> Result<()> {
    let row = producer_row(&mut tx, backend, transactional_id, producer).await?;
    begin_if_needed(&mut tx, backend, transactional_id, &row).await?;
    sqlx::query(
        "INSERT INTO transaction_groups (transactional_id, group_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(transactional_id)
    .bind(group_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn commit_offsets(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    producer: ProducerIdentity,
    group_id: &str,
    offsets: &[TxnOffset],
    now_ms: i64,
) -> Result<()> {
    let row = producer_row(&mut tx, backend, transactional_id, producer).await?;
    let added = sqlx::query(
        "SELECT 1 AS added FROM transaction_groups WHERE transactional_id = $1 AND group_id = $2",
    )
    .bind(transactional_id)
    .bind(group_id)
    .fetch_optional(&mut *tx)
    .await?
    .is_some();
    if row.state != TxnState::Ongoing || !added {
        return Err(TxnError::InvalidTxnState {
            transactional_id: transactional_id.to_string(),
            state: row.state.as_str(),
            detail: "the group was not added to an open transaction (AddOffsetsToTxn)",
        }
        .into());
    }
    for offset in offsets {
        sqlx::query(
            "INSERT INTO transaction_offsets (group_id, topic_name, partition_index, \
             transactional_id, committed_offset, leader_epoch, metadata, commit_timestamp_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (group_id, topic_name, partition_index, transactional_id) DO UPDATE SET \
                 committed_offset = excluded.committed_offset, \
                 leader_epoch = excluded.leader_epoch, metadata = excluded.metadata, \
                 commit_timestamp_ms = excluded.commit_timestamp_ms",
        )
        .bind(group_id)
        .bind(offset.topic.as_str())
        .bind(i64::from(offset.partition))
        .bind(transactional_id)
        .bind(offset.offset)
        .bind(i64::from(offset.leader_epoch))
        .bind(offset.metadata.as_deref())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn end(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    transactional_id: &str,
    producer: ProducerIdentity,
    commit: bool,
    bump_epoch: bool,
) -> Result<EndOutcome> {
    let row = lock_row(&mut tx, backend, transactional_id)
        .await?
        .ok_or_else(|| TxnError::InvalidProducerIdMapping(transactional_id.to_string()))?;
    // The epoch before the coordinator's last bump may still end its
    // transaction the way it went (Kafka's lastProducerEpoch): a producer
    // fenced by the abort of its timed-out transaction aborting it, or an
    // EndTxn v5 retried after its bump.
    let ended_this_way = if commit {
        matches!(
            row.state,
            TxnState::PrepareCommit | TxnState::CompleteCommit
        )
    } else {
        matches!(row.state, TxnState::PrepareAbort | TxnState::CompleteAbort)
    };
    let retry_of_bumped = ended_this_way
        && producer.producer_id == row.producer_id
        && producer.epoch == row.last_producer_epoch;
    if !retry_of_bumped {
        check_producer(transactional_id, row.identity(), producer)?;
    }
    let invalid = |detail| -> CatalogError {
        TxnError::InvalidTxnState {
            transactional_id: transactional_id.to_string(),
            state: row.state.as_str(),
            detail,
        }
        .into()
    };
    match (row.state, commit) {
        (TxnState::Ongoing, _) => {
            let prepared = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            // Transaction version 2 (EndTxn v5): every transaction ends with
            // an epoch bump, the markers carry the new epoch and the producer
            // goes on with it.
            let (epoch, last_epoch) = if bump_epoch && row.producer_epoch < LAST_USABLE_EPOCH {
                (row.producer_epoch + 1, row.producer_epoch)
            } else {
                (row.producer_epoch, row.last_producer_epoch)
            };
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE transactions SET state = $2, producer_epoch = $3, \
                 last_producer_epoch = $4, updated_at_ms = {} WHERE transactional_id = $1",
                catalog_now_ms(backend)
            )))
            .bind(transactional_id)
            .bind(prepared.as_str())
            .bind(i64::from(epoch))
            .bind(i64::from(last_epoch))
            .execute(&mut *tx)
            .await?;
            let row = TxnRow {
                state: prepared,
                producer_epoch: epoch,
                last_producer_epoch: last_epoch,
                ..row
            };
            let completion = completion_of(&mut tx, transactional_id, &row).await?;
            tx.commit().await?;
            Ok(EndOutcome::MustComplete(completion))
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            let completion = completion_of(&mut tx, transactional_id, &row).await?;
            tx.commit().await?;
            Ok(EndOutcome::MustComplete(completion))
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Ok(EndOutcome::Done(row.identity()))
        }
        (TxnState::Empty, _) => Err(invalid("no transaction is open")),
        _ => Err(invalid("the transaction was completed the other way")),
    }
}

async fn complete(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    completion: &Completion,
) -> Result<()> {
    let id = completion.transactional_id.as_str();
    let Some(row) = lock_row(&mut tx, backend, id).await? else {
        return Ok(());
    };
    let prepared = if completion.commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    if row.state != prepared
        || row.txn_seq != completion.txn_seq
        || row.producer_id != completion.producer_id
    {
        // Completed already, by this agent's retry or another agent.
        return Ok(());
    }
    if completion.commit {
        sqlx::query(
            "INSERT INTO group_offsets (group_id, topic_name, partition_index, committed_offset, \
                 leader_epoch, metadata, commit_timestamp_ms) \
             SELECT group_id, topic_name, partition_index, committed_offset, leader_epoch, \
                 metadata, commit_timestamp_ms FROM transaction_offsets \
             WHERE transactional_id = $1 \
             ON CONFLICT (group_id, topic_name, partition_index) DO UPDATE SET \
                 committed_offset = excluded.committed_offset, \
                 leader_epoch = excluded.leader_epoch, metadata = excluded.metadata, \
                 commit_timestamp_ms = excluded.commit_timestamp_ms",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    for table in [
        "transaction_offsets",
        "transaction_partitions",
        "transaction_groups",
    ] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE transactional_id = $1"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let done = if completion.commit {
        TxnState::CompleteCommit
    } else {
        TxnState::CompleteAbort
    };
    set_state(&mut tx, backend, id, done).await?;
    tx.commit().await?;
    Ok(())
}

async fn to_finish(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    stalled_after_ms: i64,
    limit: u32,
) -> Result<Vec<Completion>> {
    let now = catalog_now_ms(backend);
    // FOR UPDATE on PostgreSQL: a row another agent changed meanwhile (the
    // producer committed and began its next transaction) is judged again on
    // its new version, so only a transaction that really passed its timeout
    // is fenced. SQLite's write lock is held from the start.
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT transactional_id FROM transactions \
         WHERE (state = 'Ongoing' AND started_at_ms + timeout_ms < {now}) \
            OR (state IN ('PrepareCommit', 'PrepareAbort') AND updated_at_ms + $1 < {now}) \
         ORDER BY transactional_id LIMIT $2{lock}"
    )))
    .bind(stalled_after_ms)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|row| get(row, "transactional_id"))
        .collect::<Result<_>>()?;
    let mut completions = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(row) = lock_row(&mut tx, backend, &id).await? else {
            continue;
        };
        let row = match row.state {
            TxnState::Ongoing => fence(&mut tx, backend, &id, &row).await?,
            state if state.is_prepared() => {
                // Touched, so that agents sweeping together do not all take it.
                set_state(&mut tx, backend, &id, state).await?;
                row
            }
            _ => continue,
        };
        completions.push(completion_of(&mut tx, &id, &row).await?);
    }
    tx.commit().await?;
    Ok(completions)
}
