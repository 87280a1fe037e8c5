//! The partitions' logs: their offsets, the committed objects and the offset
//! index, the [`LogCatalog`] of the SQL catalog. Commits (the one write on the
//! produce path) are long enough for a file of their own, `commit.rs`.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Executor, Transaction};

use super::rows::{get, index_entry};
use super::{changes, commit, Backend, SqlCatalog};
use crate::catalog::LogCatalog;
use crate::{
    CatalogError, IndexEntry, ObjectCommit, PartitionOffsets, Result, RunAppend, RunOutcome,
    TopicId,
};

#[async_trait]
impl LogCatalog for SqlCatalog {
    async fn partition_offsets(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<PartitionOffsets>> {
        self.read("partition_offsets", |pool| {
            partition_offsets(pool, topic, partition)
        })
        .await
    }

    async fn commit_objects(&self, commits: &[ObjectCommit]) -> Result<Vec<Vec<RunOutcome>>> {
        for commit in commits {
            check_runs(&commit.runs)?;
        }
        let outcomes = self
            .write("commit_objects", |tx| {
                commit::commit_objects(tx, self.backend, commits, self.clock.now_ms())
            })
            .await?;
        // A run for a vanished partition means its topic was deleted (by another
        // agent, or the cache would have forgotten it already): stop serving it.
        let runs = commits.iter().flat_map(|commit| &commit.runs);
        for (run, outcome) in runs.zip(outcomes.iter().flatten()) {
            if *outcome == RunOutcome::UnknownPartition {
                self.topic_cache.forget_id(run.topic).await;
            }
        }
        Ok(outcomes)
    }

    async fn index_entries(
        &self,
        topic: TopicId,
        partition: i32,
        from_offset: i64,
        limit: u32,
    ) -> Result<Vec<IndexEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read("index_entries", |pool| {
            index_entries(pool, topic, partition, from_offset, limit)
        })
        .await
    }

    async fn first_entry_at_or_after_timestamp(
        &self,
        topic: TopicId,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<IndexEntry>> {
        self.read("first_entry_at_or_after_timestamp", |pool| {
            first_entry_at_or_after_timestamp(pool, topic, partition, timestamp)
        })
        .await
    }

    async fn delete_records(
        &self,
        topic: TopicId,
        partition: i32,
        before_offset: i64,
    ) -> Result<Option<PartitionOffsets>> {
        self.write("delete_records", |tx| {
            delete_records(tx, self.backend, topic, partition, before_offset)
        })
        .await
    }
}

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
fn check_runs(runs: &[RunAppend]) -> Result<()> {
    for run in runs {
        let invalid = |what: String| {
            Err(CatalogError::InvalidArgument(format!(
                "run for partition {} of topic {}: {what}",
                run.partition, run.topic
            )))
        };
        if run.appends.is_empty() {
            return invalid("no append; a run holds at least one".into());
        }
        if let Some(append) = run
            .appends
            .iter()
            .find(|a| a.offset_count < 1 || a.length < 0)
        {
            return invalid(format!(
                "an append of {} offsets and {} bytes; an append holds at least one offset",
                append.offset_count, append.length
            ));
        }
    }
    Ok(())
}

async fn partition_offsets<'e, E>(
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

async fn index_entries<'e, E>(
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

async fn first_entry_at_or_after_timestamp<'e, E>(
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

/// Locks the partition's row (a no-op UPDATE, which both databases accept) and
/// moves its log start.
async fn delete_records(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    topic: TopicId,
    partition: i32,
    before_offset: i64,
) -> Result<Option<PartitionOffsets>> {
    let topic = topic.to_string();
    // The lock also serialises with committers, which update this row: the high
    // watermark read here cannot move until the transaction ends.
    let current = sqlx::query(
        "UPDATE partitions SET log_start_offset = log_start_offset \
         WHERE topic_id = $1 AND partition_index = $2 \
         RETURNING log_start_offset, next_offset",
    )
    .bind(topic.as_str())
    .bind(i64::from(partition))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Ok(None);
    };
    let log_start_offset: i64 = get(&current, "log_start_offset")?;
    let high_watermark: i64 = get(&current, "next_offset")?;
    let target = if before_offset == -1 {
        high_watermark
    } else {
        before_offset
    };
    if target < 0 || target > high_watermark {
        return Err(CatalogError::OffsetBeyondHighWatermark {
            requested: before_offset,
            high_watermark,
        });
    }
    // The log start never moves back: deleting below it again is a no-op.
    let log_start_offset = log_start_offset.max(target);
    changes::next_head_seq(&mut tx, backend).await?;
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE partitions SET log_start_offset = $1, change_seq = {} \
         WHERE topic_id = $2 AND partition_index = $3",
        changes::HEAD_SEQ
    )))
    .bind(log_start_offset)
    .bind(topic.as_str())
    .bind(i64::from(partition))
    .execute(&mut *tx)
    .await?;
    super::open_txns::forget_aborted_below(&mut tx, &topic, partition, log_start_offset).await?;
    tx.commit().await?;
    Ok(Some(PartitionOffsets {
        log_start_offset,
        high_watermark,
    }))
}
