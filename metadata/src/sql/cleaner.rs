//! The log cleaner's reads and swap, part of the [`crate::LifecycleCatalog`]
//! of the SQL catalog: a partition's entries with their objects, and the
//! transaction that replaces a cleaned range of them.
//!
//! The swap locks the partition row first (the committers' statement), so it
//! takes turns with commits, DeleteRecords and DeleteTopics of the partition
//! on PostgreSQL; on SQLite the write transaction excludes every other writer.
//! Sources are deleted by their full identity (offsets, object, position,
//! length), a fixed number of multi-row statements, and counted: one missing
//! means another agent's cleaner or compactor, or a trim, got there first.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::commit::{self, placeholders, EntryRow, ROWS_PER_STATEMENT};
use super::rows::get;
use super::Backend;
use crate::compaction::{CleanerView, CleaningSwap, PartitionEntry, SwapOutcome};
use crate::{Result, TopicId};

const SELECT_PARTITION: &str = "\
    SELECT log_start_offset, next_offset, cleaned_offset, cleaned_bytes, cleaner_limit_offset, \
        tombstones_expire_at_ms FROM partitions \
    WHERE topic_id = $1 AND partition_index = $2";

/// Served by `index_entries_by_last_offset`, as the read path's query.
const SELECT_ENTRIES: &str = "\
    SELECT e.base_offset, e.last_offset, e.object_id, o.key AS object_key, e.position, \
        e.length, e.max_timestamp, e.running_max_timestamp \
    FROM index_entries e JOIN objects o ON o.id = e.object_id \
    WHERE e.topic_id = $1 AND e.partition_index = $2 AND e.last_offset >= $3 \
    ORDER BY e.last_offset LIMIT $4";

const INSERT_OBJECT: &str = "\
    INSERT INTO objects (key, size_bytes, state, created_at_ms) \
    VALUES ($1, $2, 'live', $3) RETURNING id";

/// The cleaned-up-to offset only moves forward.
const RAISE_CLEANED: &str = "\
    UPDATE partitions SET cleaned_offset = $3, cleaned_bytes = $4, cleaner_limit_offset = $5, \
        tombstones_expire_at_ms = $6 \
    WHERE topic_id = $1 AND partition_index = $2 AND cleaned_offset <= $3";

/// Columns identifying a source entry exactly.
const SOURCE_COLUMNS: usize = 7;

pub(super) async fn cleaner_view(
    pool: &sqlx::AnyPool,
    topic: TopicId,
    partition: i32,
    limit: u32,
) -> Result<Option<CleanerView>> {
    let topic = topic.to_string();
    let Some(row) = sqlx::query(SELECT_PARTITION)
        .bind(topic.as_str())
        .bind(i64::from(partition))
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let log_start_offset: i64 = get(&row, "log_start_offset")?;
    let rows = sqlx::query(SELECT_ENTRIES)
        .bind(topic.as_str())
        .bind(i64::from(partition))
        .bind(log_start_offset)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(Some(CleanerView {
        log_start_offset,
        high_watermark: get(&row, "next_offset")?,
        cleaned_offset: get(&row, "cleaned_offset")?,
        cleaned_bytes: get(&row, "cleaned_bytes")?,
        cleaner_limit: get(&row, "cleaner_limit_offset")?,
        tombstones_expire_at_ms: get(&row, "tombstones_expire_at_ms")?,
        entries: rows.iter().map(partition_entry).collect::<Result<_>>()?,
    }))
}

fn partition_entry(row: &AnyRow) -> Result<PartitionEntry> {
    Ok(PartitionEntry {
        base_offset: get(row, "base_offset")?,
        last_offset: get(row, "last_offset")?,
        object_id: get(row, "object_id")?,
        object_key: get(row, "object_key")?,
        position: get(row, "position")?,
        length: get(row, "length")?,
        max_timestamp: get(row, "max_timestamp")?,
        running_max_timestamp: get(row, "running_max_timestamp")?,
    })
}

pub(super) async fn swap_cleaned(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    swap: &CleaningSwap,
    now_ms: i64,
) -> Result<SwapOutcome> {
    let topic = swap.topic.to_string();
    let key = (topic.clone(), swap.partition);
    let existing = commit::lock_partitions(&mut tx, backend, std::slice::from_ref(&key)).await?;
    if !existing.contains_key(&key) {
        return Ok(SwapOutcome::Conflict);
    }
    let mut deleted = 0;
    for chunk in swap.sources.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM index_entries WHERE (topic_id, partition_index, base_offset, \
             last_offset, object_id, position, length) IN (VALUES {})",
            placeholders(chunk.len(), SOURCE_COLUMNS)
        );
        let mut query = commit::multi_row(sql, chunk.len());
        for source in chunk {
            query = query
                .bind(topic.as_str())
                .bind(i64::from(swap.partition))
                .bind(source.base_offset)
                .bind(source.last_offset)
                .bind(source.object_id)
                .bind(source.position)
                .bind(source.length);
        }
        deleted += query.execute(&mut *tx).await?.rows_affected();
    }
    if deleted != swap.sources.len() as u64 {
        // Dropping the transaction rolls it back.
        return Ok(SwapOutcome::Conflict);
    }
    if let Some(object) = &swap.object {
        let inserted = sqlx::query(INSERT_OBJECT)
            .bind(object.key.as_str())
            .bind(object.size_bytes)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
        let object_id: i64 = get(&inserted, "id")?;
        let rows: Vec<EntryRow> = swap
            .entries
            .iter()
            .map(|entry| EntryRow {
                topic: topic.clone(),
                partition: swap.partition,
                base_offset: entry.base_offset,
                last_offset: entry.last_offset,
                object_id,
                position: entry.position,
                length: entry.length,
                max_timestamp: entry.max_timestamp,
                running_max_timestamp: entry.running_max_timestamp,
            })
            .collect();
        commit::insert_entries(&mut tx, &rows).await?;
    }
    sqlx::query(RAISE_CLEANED)
        .bind(topic.as_str())
        .bind(i64::from(swap.partition))
        .bind(swap.cleaned_offset)
        .bind(swap.cleaned_bytes)
        .bind(swap.cleaner_limit)
        .bind(swap.tombstones_expire_at_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(SwapOutcome::Swapped)
}
