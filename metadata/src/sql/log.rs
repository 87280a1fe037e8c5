//! The partitions' logs: their offsets and the offset index, read back. Writing
//! them is `commit.rs`.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use super::rows::{get, index_entry};
use crate::{CatalogError, IndexEntry, PartitionOffsets, Result, RunAppend, TopicId};

/// Index entries with the key of their object, limited to what lies at or above the
/// partition's log start. Entries never overlap, so ordering by `last_offset` is
/// ordering by offset, and it lets the `(topic, partition, last_offset)` index both
/// find the first entry and deliver the rest in order.
const SELECT_ENTRIES_FROM: &str = "\
    SELECT e.base_offset, e.last_offset, o.key AS object_key, e.position, e.length, \
        e.max_timestamp \
    FROM partitions p \
    JOIN index_entries e \
        ON e.topic_id = p.topic_id AND e.partition_index = p.partition_index \
    JOIN objects o ON o.id = e.object_id \
    WHERE p.topic_id = $1 AND p.partition_index = $2 \
        AND e.last_offset >= $3 AND e.last_offset >= p.log_start_offset \
    ORDER BY e.last_offset \
    LIMIT $4";

/// `running_max_timestamp` never decreases with the offset, so the entries that
/// might match form a suffix of the partition, found by one index seek, in offset
/// order; the first whose own `max_timestamp` matches is the answer.
const SELECT_ENTRY_BY_TIMESTAMP: &str = "\
    SELECT e.base_offset, e.last_offset, o.key AS object_key, e.position, e.length, \
        e.max_timestamp \
    FROM partitions p \
    JOIN index_entries e \
        ON e.topic_id = p.topic_id AND e.partition_index = p.partition_index \
    JOIN objects o ON o.id = e.object_id \
    WHERE p.topic_id = $1 AND p.partition_index = $2 \
        AND e.running_max_timestamp >= $3 AND e.max_timestamp >= $3 \
        AND e.last_offset >= p.log_start_offset \
    ORDER BY e.running_max_timestamp, e.base_offset \
    LIMIT 1";

/// Rejects runs that would break the index's invariants, before any transaction.
pub(super) fn check_runs(runs: &[RunAppend]) -> Result<()> {
    match runs.iter().find(|r| r.record_offsets < 1) {
        Some(run) => Err(CatalogError::InvalidArgument(format!(
            "run for partition {} of topic {} holds {} offsets; a run holds at least one",
            run.partition, run.topic, run.record_offsets
        ))),
        None => Ok(()),
    }
}

pub(super) async fn partition_offsets<'e, E>(
    executor: E,
    topic: TopicId,
    partition: i32,
) -> Result<Option<PartitionOffsets>>
where
    E: Executor<'e, Database = Any>,
{
    let topic = topic.to_string();
    let row = sqlx::query(
        "SELECT log_start_offset, next_offset FROM partitions \
         WHERE topic_id = $1 AND partition_index = $2",
    )
    .bind(topic.as_str())
    .bind(i64::from(partition))
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        Ok(PartitionOffsets {
            log_start_offset: get(&row, "log_start_offset")?,
            high_watermark: get(&row, "next_offset")?,
        })
    })
    .transpose()
}

pub(super) async fn index_entries<'e, E>(
    executor: E,
    topic: TopicId,
    partition: i32,
    from_offset: i64,
    limit: u32,
) -> Result<Vec<IndexEntry>>
where
    E: Executor<'e, Database = Any>,
{
    let topic = topic.to_string();
    let rows = sqlx::query(SELECT_ENTRIES_FROM)
        .bind(topic.as_str())
        .bind(i64::from(partition))
        .bind(from_offset)
        .bind(i64::from(limit))
        .fetch_all(executor)
        .await?;
    rows.iter().map(index_entry).collect()
}

pub(super) async fn first_entry_at_or_after_timestamp<'e, E>(
    executor: E,
    topic: TopicId,
    partition: i32,
    timestamp: i64,
) -> Result<Option<IndexEntry>>
where
    E: Executor<'e, Database = Any>,
{
    let topic = topic.to_string();
    let row: Option<AnyRow> = sqlx::query(SELECT_ENTRY_BY_TIMESTAMP)
        .bind(topic.as_str())
        .bind(i64::from(partition))
        .bind(timestamp)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(index_entry).transpose()
}
