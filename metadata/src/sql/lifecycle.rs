//! Compaction and garbage collection of objects, the [`LifecycleCatalog`] of the
//! SQL catalog: finding small objects, the swap that moves their index entries to
//! a compacted object, and the sweeps that retire objects nothing points into.
//!
//! Locking follows the committers: a swap locks its partition rows (`SELECT ...
//! FOR UPDATE` in topic/partition order, the committers' own statement) before
//! touching their entries, so it takes turns with commits and DeleteTopics of
//! those partitions on PostgreSQL; on SQLite the write transaction excludes every
//! other writer.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Executor, Transaction};

use super::commit::{self, placeholders, EntryRow, PartitionKey, ROWS_PER_STATEMENT};
use super::rows::{get, to_i32, topic_id};
use super::{Backend, SqlCatalog};
use crate::catalog::LifecycleCatalog;
use crate::compaction::{
    CleanerView, CleaningSwap, CompactionSwap, ObjectEntry, Shards, StoredObject, SwapOutcome,
};
use crate::Result;
use crate::TopicId;

// Compaction and garbage collection never change a topic: the topic cache is
// not involved.
#[async_trait]
impl LifecycleCatalog for SqlCatalog {
    async fn small_live_objects(
        &self,
        max_size_bytes: i64,
        shards: Shards,
        limit: u32,
    ) -> Result<Vec<StoredObject>> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let sql = select_small_live(shards);
        self.read("small_live_objects", |pool| {
            let sql = sql.clone();
            async move {
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(max_size_bytes)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(stored_object).collect()
            }
        })
        .await
    }

    async fn object_entries(&self, objects: &[i64]) -> Result<Vec<ObjectEntry>> {
        self.read("object_entries", |pool| object_entries(pool, objects))
            .await
    }

    async fn swap_compacted(&self, swap: &CompactionSwap) -> Result<SwapOutcome> {
        self.write("swap_compacted", |tx| {
            swap_compacted(tx, self.backend, swap)
        })
        .await
    }

    async fn drop_entries_below_log_start(&self, limit: u32) -> Result<u64> {
        self.write("drop_entries_below_log_start", |tx| {
            drop_entries_below_log_start(tx, limit)
        })
        .await
    }

    async fn mark_unreferenced_objects(
        &self,
        created_before_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<u64> {
        self.write("mark_unreferenced_objects", |tx| {
            mark_unreferenced(tx, created_before_ms, now_ms, limit)
        })
        .await
    }

    async fn objects_to_delete(
        &self,
        deleting_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredObject>> {
        self.read("objects_to_delete", |pool| {
            stored_objects(pool, SELECT_TO_DELETE, deleting_before_ms, limit)
        })
        .await
    }

    async fn forget_objects(&self, objects: &[i64]) -> Result<u64> {
        self.write("forget_objects", |tx| forget(tx, objects)).await
    }

    async fn known_object_keys(&self, keys: &[String]) -> Result<HashSet<String>> {
        self.read("known_object_keys", |pool| known_keys(pool, keys))
            .await
    }

    async fn cleaner_view(
        &self,
        topic: TopicId,
        partition: i32,
        limit: u32,
    ) -> Result<Option<CleanerView>> {
        self.read("cleaner_view", |pool| {
            super::cleaner::cleaner_view(pool, topic, partition, limit)
        })
        .await
    }

    async fn swap_cleaned(&self, swap: &CleaningSwap) -> Result<SwapOutcome> {
        let now_ms = self.clock.now_ms();
        self.write("swap_cleaned", |tx| {
            super::cleaner::swap_cleaned(tx, self.backend, swap, now_ms)
        })
        .await
    }
}

/// Served by the partial index `objects_live_by_size` (migration 0005): once
/// compaction has caught up, the small live objects are a few recent ones among
/// many large ones, so they are found without a scan. `+id` keeps SQLite from
/// preferring a scan in id order to avoid the sort (it has no statistics to know
/// better); while there is a backlog, the sort covers the whole backlog.
/// Served by the partial index `objects_live_by_size`; the shard condition
/// filters what it finds. The shard numbers are integers this crate formats.
fn select_small_live(shards: Shards) -> String {
    let in_shards = if shards.is_all() {
        String::new()
    } else {
        let list: Vec<String> = shards.iter().map(|s| s.to_string()).collect();
        format!(
            " AND ((id / {}) % {}) IN ({})",
            Shards::RUN,
            Shards::COUNT,
            list.join(", ")
        )
    };
    format!(
        "SELECT id, key, size_bytes, created_at_ms FROM objects \
         WHERE state = 'live' AND size_bytes < $1{in_shards} ORDER BY +id LIMIT $2"
    )
}

/// Completed with the objects' ids; served by `index_entries_by_object`.
const SELECT_OBJECT_ENTRIES: &str = "\
    SELECT e.topic_id, e.partition_index, e.base_offset, e.last_offset, e.object_id, \
        e.position, e.length, e.max_timestamp, e.running_max_timestamp, p.log_start_offset \
    FROM index_entries e \
    JOIN partitions p ON p.topic_id = e.topic_id AND p.partition_index = e.partition_index";

const INSERT_OBJECT: &str = "\
    INSERT INTO objects (key, size_bytes, state, created_at_ms) \
    VALUES ($1, $2, 'live', $3) RETURNING id";

/// Only partitions with a log start above 0 can have entries below it, so the
/// scan starts from those and seeks each one's entries by `last_offset`.
const DELETE_BELOW_LOG_START: &str = "\
    DELETE FROM index_entries \
    WHERE (topic_id, partition_index, base_offset) IN ( \
        SELECT e.topic_id, e.partition_index, e.base_offset \
        FROM partitions p \
        JOIN index_entries e \
            ON e.topic_id = p.topic_id AND e.partition_index = p.partition_index \
            AND e.last_offset < p.log_start_offset \
        WHERE p.log_start_offset > 0 \
        LIMIT $1)";

/// A scan of the live objects older than the grace period, each probed in
/// `index_entries_by_object`; it runs once per sweep (10 s).
/// `state = 'live'` is checked again outside the subquery: on PostgreSQL an
/// UPDATE that waited for a row re-checks only its own WHERE clause, and a
/// concurrent swap may have marked the object already.
const MARK_UNREFERENCED: &str = "\
    UPDATE objects SET state = 'deleting', deleting_since_ms = $1 \
    WHERE state = 'live' AND id IN ( \
        SELECT o.id FROM objects o \
        WHERE o.state = 'live' AND o.created_at_ms < $2 \
            AND NOT EXISTS (SELECT 1 FROM index_entries e WHERE e.object_id = o.id) \
        ORDER BY o.id LIMIT $3)";

/// Served by the partial index `objects_deleting_by_time` (migration 0005).
const SELECT_TO_DELETE: &str = "\
    SELECT id, key, size_bytes, created_at_ms FROM objects \
    WHERE state = 'deleting' AND deleting_since_ms < $1 \
    ORDER BY deleting_since_ms, id LIMIT $2";

fn stored_object(row: &AnyRow) -> Result<StoredObject> {
    Ok(StoredObject {
        id: get(row, "id")?,
        key: get(row, "key")?,
        size_bytes: get(row, "size_bytes")?,
        created_at_ms: get(row, "created_at_ms")?,
    })
}

fn object_entry(row: &AnyRow) -> Result<ObjectEntry> {
    Ok(ObjectEntry {
        topic: topic_id(&get::<String>(row, "topic_id")?)?,
        partition: to_i32(get(row, "partition_index")?, "partition index")?,
        base_offset: get(row, "base_offset")?,
        last_offset: get(row, "last_offset")?,
        object_id: get(row, "object_id")?,
        position: get(row, "position")?,
        length: get(row, "length")?,
        max_timestamp: get(row, "max_timestamp")?,
        running_max_timestamp: get(row, "running_max_timestamp")?,
        log_start_offset: get(row, "log_start_offset")?,
    })
}

/// Object rows of a query taking one bound and a limit.
async fn stored_objects<'e, E>(
    executor: E,
    sql: &'static str,
    bound: i64,
    limit: u32,
) -> Result<Vec<StoredObject>>
where
    E: Executor<'e, Database = Any>,
{
    let rows = sqlx::query(sql)
        .bind(bound)
        .bind(i64::from(limit))
        .fetch_all(executor)
        .await?;
    rows.iter().map(stored_object).collect()
}

/// One statement per chunk of objects (a pass has up to a thousand sources),
/// each object's entries found through `index_entries_by_object`.
async fn object_entries(pool: &sqlx::AnyPool, objects: &[i64]) -> Result<Vec<ObjectEntry>> {
    let mut entries = Vec::new();
    for chunk in objects.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "{SELECT_OBJECT_ENTRIES} WHERE e.object_id IN (VALUES {})",
            placeholders(chunk.len(), 1)
        );
        let mut query = commit::multi_row(sql, chunk.len());
        for object in chunk {
            query = query.bind(*object);
        }
        for row in &query.fetch_all(pool).await? {
            entries.push(object_entry(row)?);
        }
    }
    entries.sort_by_key(|e| (e.topic, e.partition, e.base_offset));
    Ok(entries)
}

/// Served by `index_entries_by_object`.
pub(super) fn delete_entries_of_objects_sql(objects: usize) -> String {
    format!(
        "DELETE FROM index_entries WHERE object_id IN (VALUES {})",
        placeholders(objects, 1)
    )
}

/// A fixed number of multi-row statements, like the write path's commit: on
/// SQLite the swap holds the database's only write lock, and every producer's
/// commit waits behind it (one statement per source entry held it for tens of
/// milliseconds per swap).
async fn swap_compacted(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    swap: &CompactionSwap,
) -> Result<SwapOutcome> {
    let inserted = sqlx::query(INSERT_OBJECT)
        .bind(swap.object.key.as_str())
        .bind(swap.object.size_bytes)
        .bind(swap.now_ms)
        .fetch_one(&mut *tx)
        .await?;
    let object_id: i64 = get(&inserted, "id")?;
    let keys: Vec<PartitionKey> = swap
        .partitions
        .iter()
        .map(|p| (p.topic.to_string(), p.partition))
        .collect();
    // Partitions deleted with their topic (entries and all) have nothing to move.
    let existing = commit::lock_partitions(&mut tx, backend, &keys).await?;
    let moved: Vec<(&PartitionKey, &crate::compaction::PartitionSwap)> = keys
        .iter()
        .zip(&swap.partitions)
        .filter(|(key, _)| existing.contains_key(*key))
        .collect();

    // Entries are deleted by object (one bound id per object, a seek in
    // `index_entries_by_object`) rather than by a five-column row per entry,
    // because the swap holds SQLite's write lock while it deletes, and
    // per-entry deletes of a few hundred sources made it several times
    // longer (docs/benchmarks.md has the figures). The count still catches a
    // changed source: an object's entries are only ever removed after its
    // commit (trimmed, deleted with their topic, or moved by a swap), so fewer
    // rows than were read means one of them went meanwhile.
    let expected: usize = moved.iter().map(|(_, p)| p.source_entries).sum();
    let mut deleted = 0;
    for chunk in swap.source_objects.chunks(ROWS_PER_STATEMENT) {
        let mut query = commit::multi_row(delete_entries_of_objects_sql(chunk.len()), chunk.len());
        for source in chunk {
            query = query.bind(*source);
        }
        deleted += query.execute(&mut *tx).await?.rows_affected();
    }
    if deleted != expected as u64 {
        // A source entry is no longer as read. Dropping the transaction rolls it
        // back.
        return Ok(SwapOutcome::Conflict);
    }

    let entries: Vec<EntryRow> = moved
        .iter()
        .flat_map(|((topic, partition), p)| {
            p.entries.iter().map(move |entry| EntryRow {
                topic: topic.clone(),
                partition: *partition,
                base_offset: entry.base_offset,
                last_offset: entry.last_offset,
                object_id,
                position: entry.position,
                length: entry.length,
                max_timestamp: entry.max_timestamp,
                running_max_timestamp: entry.running_max_timestamp,
            })
        })
        .collect();
    commit::insert_entries(&mut tx, &entries).await?;

    for chunk in swap.source_objects.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE objects SET state = 'deleting', deleting_since_ms = ${} \
             WHERE state = 'live' AND id IN (VALUES {})",
            chunk.len() + 1,
            placeholders(chunk.len(), 1)
        );
        let mut query = commit::multi_row(sql, chunk.len());
        for source in chunk {
            query = query.bind(*source);
        }
        query = query.bind(swap.now_ms);
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(SwapOutcome::Swapped)
}

async fn drop_entries_below_log_start(
    mut tx: Transaction<'static, Any>,
    limit: u32,
) -> Result<u64> {
    let deleted = sqlx::query(DELETE_BELOW_LOG_START)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected())
}

async fn mark_unreferenced(
    mut tx: Transaction<'static, Any>,
    created_before_ms: i64,
    now_ms: i64,
    limit: u32,
) -> Result<u64> {
    let marked = sqlx::query(MARK_UNREFERENCED)
        .bind(now_ms)
        .bind(created_before_ms)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(marked.rows_affected())
}

/// Served by the unique index on `objects.key`.
async fn known_keys(pool: &sqlx::AnyPool, keys: &[String]) -> Result<HashSet<String>> {
    let mut known = HashSet::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT key FROM objects WHERE key IN (VALUES {})",
            placeholders(chunk.len(), 1)
        );
        let mut query = commit::multi_row(sql, chunk.len());
        for key in chunk {
            query = query.bind(key.clone());
        }
        for row in &query.fetch_all(pool).await? {
            known.insert(get::<String>(row, "key")?);
        }
    }
    Ok(known)
}

async fn forget(mut tx: Transaction<'static, Any>, objects: &[i64]) -> Result<u64> {
    let mut forgotten = 0;
    for chunk in objects.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM objects WHERE state = 'deleting' AND id IN (VALUES {})",
            placeholders(chunk.len(), 1)
        );
        let mut query = commit::multi_row(sql, chunk.len());
        for object in chunk {
            query = query.bind(*object);
        }
        forgotten += query.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(forgotten)
}
