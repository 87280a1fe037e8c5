//! Transactions open on partitions, inside a commit: read under the
//! partitions' locks for the transactional appends and markers a commit
//! carries, judged with `crate::transactions`, then written back: a
//! transaction's first offset on a partition set by its first batch, a marker's
//! transaction ended (and recorded as aborted when it held data).
//!
//! Statements run only for commits that carry transactional appends; a
//! commit of plain or idempotent batches costs nothing more.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Any, Transaction};

use super::commit::{multi_row, placeholders, PartitionHead, PartitionKey, ROWS_PER_STATEMENT};
use super::rows::{get, to_i16, to_i32};
use crate::transactions::{OpenTxn, TxnAppend};
use crate::{ObjectCommit, Result};

/// (topic id, partition, producer id).
pub(super) type OpenKey = (String, i32, i64);

/// The open transactions a commit touches, as loaded and as the commit leaves
/// them.
#[derive(Default)]
pub(super) struct OpenTxns {
    loaded: BTreeMap<OpenKey, OpenTxn>,
    pub(super) current: BTreeMap<OpenKey, OpenTxn>,
    /// Aborted transactions with data: (key, first offset, marker offset).
    pub(super) aborted: Vec<(OpenKey, i64, i64)>,
}

impl OpenTxns {
    pub(super) fn get(&self, key: &OpenKey) -> Option<&OpenTxn> {
        self.current.get(key)
    }

    /// The transaction's first batch on the partition got `offset`.
    pub(super) fn started_at(&mut self, key: &OpenKey, offset: i64) {
        if let Some(open) = self.current.get_mut(key) {
            open.first_offset.get_or_insert(offset);
        }
    }

    /// Its marker, of `epoch`, got `offset`.
    pub(super) fn ended(&mut self, key: &OpenKey, epoch: i16, commit: bool, offset: i64) {
        if let Some(open) = self.current.get_mut(key) {
            if let (false, Some(first)) = (commit, open.first_offset) {
                self.aborted.push((key.clone(), first, offset));
            }
            open.open = false;
            open.first_offset = None;
            open.epoch = open.epoch.max(epoch);
        }
    }
}

/// The open transactions of every (existing partition, producer) with a
/// transactional append or marker in `commits`.
pub(super) async fn load(
    tx: &mut Transaction<'static, Any>,
    commits: &[ObjectCommit],
    heads: &BTreeMap<PartitionKey, PartitionHead>,
) -> Result<OpenTxns> {
    let mut keys = BTreeSet::new();
    for run in commits.iter().flat_map(|c| &c.runs) {
        let topic = run.topic.to_string();
        if !heads.contains_key(&(topic.clone(), run.partition)) {
            continue;
        }
        for append in &run.appends {
            let producer_id = match (append.txn, append.producer) {
                (Some(TxnAppend::Marker(marker)), _) => marker.producer_id,
                (Some(TxnAppend::Data), Some(producer)) => producer.producer_id,
                _ => continue,
            };
            keys.insert((topic.clone(), run.partition, producer_id));
        }
    }
    let keys: Vec<OpenKey> = keys.into_iter().collect();
    let mut loaded = BTreeMap::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT topic_id, partition_index, producer_id, producer_epoch, txn_seq, is_open, \
             first_offset FROM open_transactions WHERE (topic_id, partition_index, producer_id) IN (VALUES {})",
            placeholders(chunk.len(), 3)
        );
        let mut query = multi_row(sql, chunk.len());
        for (topic, partition, producer_id) in chunk {
            query = query
                .bind(topic.as_str())
                .bind(i64::from(*partition))
                .bind(*producer_id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let key = (
                get::<String>(&row, "topic_id")?,
                to_i32(get(&row, "partition_index")?, "partition index")?,
                get::<i64>(&row, "producer_id")?,
            );
            let open = OpenTxn {
                epoch: to_i16(get(&row, "producer_epoch")?, "producer epoch")?,
                txn_seq: get(&row, "txn_seq")?,
                open: get::<i64>(&row, "is_open")? != 0,
                first_offset: get(&row, "first_offset")?,
            };
            loaded.insert(key, open);
        }
    }
    Ok(OpenTxns {
        current: loaded.clone(),
        loaded,
        aborted: Vec::new(),
    })
}

/// Writes what the commit changed: first offsets set, transactions ended,
/// aborted transactions recorded.
pub(super) async fn record(tx: &mut Transaction<'static, Any>, open: &OpenTxns) -> Result<()> {
    for (key, after) in &open.current {
        if open.loaded.get(key) == Some(after) {
            continue;
        }
        let (topic, partition, producer_id) = key;
        sqlx::query(
            "UPDATE open_transactions SET producer_epoch = $4, is_open = $5, first_offset = $6 \
             WHERE topic_id = $1 AND partition_index = $2 AND producer_id = $3",
        )
        .bind(topic.as_str())
        .bind(i64::from(*partition))
        .bind(*producer_id)
        .bind(i64::from(after.epoch))
        .bind(i64::from(after.open))
        .bind(after.first_offset)
        .execute(&mut **tx)
        .await?;
    }
    for ((topic, partition, producer_id), first_offset, last_offset) in &open.aborted {
        sqlx::query(
            "INSERT INTO aborted_transactions \
             (topic_id, partition_index, last_offset, producer_id, first_offset) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(topic.as_str())
        .bind(i64::from(*partition))
        .bind(*last_offset)
        .bind(*producer_id)
        .bind(*first_offset)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Forgets the aborted transactions that end below a partition's new log
/// start: no read can reach them any more.
pub(super) async fn forget_aborted_below(
    tx: &mut Transaction<'static, Any>,
    topic: &str,
    partition: i32,
    log_start_offset: i64,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM aborted_transactions \
         WHERE topic_id = $1 AND partition_index = $2 AND last_offset < $3",
    )
    .bind(topic)
    .bind(i64::from(partition))
    .bind(log_start_offset)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
