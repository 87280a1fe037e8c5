//! The idempotent producers' windows inside a commit: read under the
//! partitions' locks before offsets are assigned, so the sequence rules
//! (`crate::producers`) judge every append against everything committed
//! before it, by any agent; then the appended batches are recorded and each
//! window trimmed to [`RECENT_BATCHES_KEPT`].

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Any, Transaction};

use super::commit::{multi_row, placeholders, PartitionHead, PartitionKey, ROWS_PER_STATEMENT};
use super::producers::batch_from_row;
use super::rows::{get, to_i32};
use crate::producers::{ProducerBatch, Window, RECENT_BATCHES_KEPT};
use crate::{ObjectCommit, Result};

/// (topic id, partition, producer id).
pub(super) type WindowKey = (String, i32, i64);

/// The windows of the producers a commit carries; `None` for a producer the
/// partition has not seen.
pub(super) type Windows = BTreeMap<WindowKey, Option<Window>>;

/// An appended idempotent batch to record.
pub(super) struct ProducerRow {
    pub topic: String,
    pub partition: i32,
    pub batch: ProducerBatch,
}

/// The committed batches, oldest first, of each (existing partition, producer)
/// whose appends `commits` carry. One indexed statement (a primary-key prefix
/// seek per key), none when no append is idempotent.
pub(super) async fn load(
    tx: &mut Transaction<'static, Any>,
    commits: &[ObjectCommit],
    heads: &BTreeMap<PartitionKey, PartitionHead>,
) -> Result<Windows> {
    let mut keys = BTreeSet::new();
    for run in commits.iter().flat_map(|c| &c.runs) {
        let topic = run.topic.to_string();
        if !heads.contains_key(&(topic.clone(), run.partition)) {
            continue;
        }
        for producer in run.appends.iter().filter_map(|a| a.producer) {
            keys.insert((topic.clone(), run.partition, producer.producer_id));
        }
    }
    let keys: Vec<WindowKey> = keys.into_iter().collect();
    let mut committed: BTreeMap<WindowKey, Vec<ProducerBatch>> = BTreeMap::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let mut query = multi_row(load_windows_sql(chunk.len()), chunk.len());
        for (topic, partition, producer_id) in chunk {
            query = query
                .bind(topic.as_str())
                .bind(i64::from(*partition))
                .bind(*producer_id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let batch = batch_from_row(&row)?;
            let key = (
                get::<String>(&row, "topic_id")?,
                to_i32(get(&row, "partition_index")?, "partition index")?,
                batch.producer_id,
            );
            committed.entry(key).or_default().push(batch);
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| {
            let window = committed
                .get(&key)
                .and_then(|batches| Window::from_committed(batches));
            (key, window)
        })
        .collect())
}

/// Ordered by base offset within each key, so a window reads oldest first.
pub(super) fn load_windows_sql(rows: usize) -> String {
    format!(
        "SELECT topic_id, partition_index, producer_id, epoch, first_sequence, last_sequence, \
         base_offset, append_time_ms FROM producer_batches \
         WHERE (topic_id, partition_index, producer_id) IN (VALUES {}) \
         ORDER BY topic_id, partition_index, producer_id, base_offset",
        placeholders(rows, 3)
    )
}

/// Keeps the newest [`RECENT_BATCHES_KEPT`] batches of each (partition,
/// producer) given. The subquery finds the oldest batch still kept (NULL while
/// fewer are stored, which deletes nothing).
pub(super) fn trim_producer_batches_sql(rows: usize) -> String {
    format!(
        "DELETE FROM producer_batches \
         WHERE (topic_id, partition_index, producer_id) IN (VALUES {}) \
           AND base_offset < (SELECT kept.base_offset FROM producer_batches AS kept \
               WHERE kept.topic_id = producer_batches.topic_id \
                 AND kept.partition_index = producer_batches.partition_index \
                 AND kept.producer_id = producer_batches.producer_id \
               ORDER BY kept.base_offset DESC LIMIT 1 OFFSET {})",
        placeholders(rows, 3),
        RECENT_BATCHES_KEPT - 1
    )
}

/// Records the appended idempotent batches with their offsets and append
/// times, and forgets all but the newest [`RECENT_BATCHES_KEPT`] of each
/// producer on each partition touched. `committed_at_ms`, which their expiry
/// compares with (`producer_expiry.rs`), is left to its default: the catalog's
/// clock at the insert (migration 0007).
pub(super) async fn record(tx: &mut Transaction<'static, Any>, rows: &[ProducerRow]) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO producer_batches (topic_id, partition_index, producer_id, epoch, \
             first_sequence, last_sequence, base_offset, append_time_ms) VALUES {}",
            placeholders(chunk.len(), 8)
        );
        let mut query = multi_row(sql, chunk.len());
        for row in chunk {
            query = query
                .bind(row.topic.as_str())
                .bind(i64::from(row.partition))
                .bind(row.batch.producer_id)
                .bind(i64::from(row.batch.epoch))
                .bind(i64::from(row.batch.first_sequence))
                .bind(i64::from(row.batch.last_sequence))
                .bind(row.batch.base_offset)
                .bind(row.batch.append_time_ms);
        }
        query.execute(&mut **tx).await?;
    }
    let mut producers: Vec<(&str, i32, i64)> = rows
        .iter()
        .map(|row| (row.topic.as_str(), row.partition, row.batch.producer_id))
        .collect();
    producers.sort_unstable();
    producers.dedup();
    for chunk in producers.chunks(ROWS_PER_STATEMENT) {
        let mut query = multi_row(trim_producer_batches_sql(chunk.len()), chunk.len());
        for (topic, partition, producer_id) in chunk {
            query = query
                .bind(*topic)
                .bind(i64::from(*partition))
                .bind(*producer_id);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
