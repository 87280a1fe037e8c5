//! Retention and retained sizes, the [`RetentionCatalog`] of the SQL catalog.
//!
//! Retention locks the topic's partition rows first (`FOR UPDATE` on
//! PostgreSQL, in partition order as committers lock them; on SQLite the write
//! transaction excludes every other writer), then decides each new log start on
//! what it read under the lock: a commit or a DeleteRecords running at the same
//! time either comes before (and is seen) or waits, so a log start never moves
//! back and never passes the high watermark.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::rows::{get, to_i32, topic_id};
use super::{changes, Backend, SqlCatalog};
use crate::catalog::RetentionCatalog;
use crate::compaction::{Shards, StoredObject};
use crate::retention::{PartitionSize, RetentionMove, RetentionRule, TopicUsage};
use crate::{Result, TopicId};

#[async_trait]
impl RetentionCatalog for SqlCatalog {
    async fn apply_retention(&self, rule: &RetentionRule) -> Result<Vec<RetentionMove>> {
        self.write("apply_retention", |tx| {
            apply_retention(tx, self.backend, *rule)
        })
        .await
    }

    async fn partition_sizes(&self, topic: Option<TopicId>) -> Result<Vec<PartitionSize>> {
        self.read("partition_sizes", |pool| async move {
            let rows = match topic {
                Some(topic) => {
                    let sql = format!(
                        "{SELECT_PARTITION_SIZES} WHERE p.topic_id = $1 {GROUP_PARTITIONS}"
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(topic.to_string())
                        .fetch_all(pool)
                        .await?
                }
                None => {
                    let sql = format!("{SELECT_PARTITION_SIZES} {GROUP_PARTITIONS}");
                    sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await?
                }
            };
            rows.iter().map(partition_size).collect()
        })
        .await
    }

    async fn topic_usage(&self) -> Result<Vec<TopicUsage>> {
        self.read("topic_usage", |pool| async move {
            let rows = sqlx::query(SELECT_TOPIC_USAGE).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(TopicUsage {
                        topic: topic_id(&get::<String>(row, "topic_id")?)?,
                        bytes: get(row, "bytes")?,
                        objects: get(row, "objects")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn sparse_live_objects(
        &self,
        min_size_bytes: i64,
        shards: Shards,
        limit: u32,
    ) -> Result<Vec<StoredObject>> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let sql = select_sparse_live(shards);
        self.read("sparse_live_objects", |pool| {
            let sql = sql.clone();
            async move {
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(min_size_bytes)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(StoredObject {
                            id: get(row, "id")?,
                            key: get(row, "key")?,
                            size_bytes: get(row, "size_bytes")?,
                            created_at_ms: get(row, "created_at_ms")?,
                        })
                    })
                    .collect()
            }
        })
        .await
    }
}

/// A scan of the large live objects, each probed in `index_entries_by_object`
/// (as garbage collection's search for unreferenced objects); compaction runs
/// it once per garbage collection interval, not per pass. Objects with no
/// retained entry are left to the collector. The shard numbers are integers
/// this crate formats.
fn select_sparse_live(shards: Shards) -> String {
    let in_shards = if shards.is_all() {
        String::new()
    } else {
        let list: Vec<String> = shards.iter().map(|s| s.to_string()).collect();
        format!(
            " AND ((o.id / {}) % {}) IN ({})",
            Shards::RUN,
            Shards::COUNT,
            list.join(", ")
        )
    };
    format!(
        "SELECT o.id, o.key, o.size_bytes, o.created_at_ms FROM ( \
            SELECT o.id, o.key, o.size_bytes, o.created_at_ms, \
                (SELECT CAST(COALESCE(SUM(e.length), 0) AS BIGINT) \
                 FROM index_entries e \
                 JOIN partitions p \
                    ON p.topic_id = e.topic_id AND p.partition_index = e.partition_index \
                 WHERE e.object_id = o.id AND e.last_offset >= p.log_start_offset) AS retained \
            FROM objects o \
            WHERE o.state = 'live' AND o.size_bytes >= $1{in_shards}) o \
         WHERE o.retained > 0 AND 2 * o.retained < o.size_bytes \
         ORDER BY o.id LIMIT $2"
    )
}

/// SUM of BIGINT is NUMERIC on PostgreSQL, which the `Any` driver cannot read
/// as `i64`: every sum is cast back.
const SELECT_PARTITION_SIZES: &str = "\
    SELECT p.topic_id, p.partition_index, \
        CAST(COALESCE(SUM(e.length), 0) AS BIGINT) AS bytes \
    FROM partitions p \
    LEFT JOIN index_entries e \
        ON e.topic_id = p.topic_id AND e.partition_index = p.partition_index \
        AND e.last_offset >= p.log_start_offset";

const GROUP_PARTITIONS: &str =
    "GROUP BY p.topic_id, p.partition_index ORDER BY p.topic_id, p.partition_index";

/// A scan of every retained entry; run once per retention check (30 s) by one
/// agent, not per request.
const SELECT_TOPIC_USAGE: &str = "\
    SELECT e.topic_id, CAST(SUM(e.length) AS BIGINT) AS bytes, \
        COUNT(DISTINCT e.object_id) AS objects \
    FROM partitions p \
    JOIN index_entries e \
        ON e.topic_id = p.topic_id AND e.partition_index = p.partition_index \
        AND e.last_offset >= p.log_start_offset \
    GROUP BY e.topic_id ORDER BY e.topic_id";

/// Per partition, the first entry the time rule keeps: the first whose
/// `running_max_timestamp` reaches the cutoff (every entry before it has a
/// smaller max timestamp, and its own max timestamp is the one that reached
/// it). One seek in `index_entries_by_timestamp` per partition.
const SELECT_TIME_KEEP_FROM: &str = "\
    SELECT p.partition_index, \
        (SELECT e.base_offset FROM index_entries e \
         WHERE e.topic_id = p.topic_id AND e.partition_index = p.partition_index \
            AND e.running_max_timestamp >= $2 AND e.last_offset >= p.log_start_offset \
         ORDER BY e.running_max_timestamp, e.base_offset LIMIT 1) AS keep_from \
    FROM partitions p WHERE p.topic_id = $1";

/// Per partition, the first entry the size rule keeps: the first whose
/// followers add up to less than the limit (`after`). A partition whose
/// entries all have followers of at least the limit (a limit of 0) has no row:
/// everything goes. A scan of the topic's retained entries.
const SELECT_SIZE_KEEP_FROM: &str = "\
    SELECT partition_index, MIN(base_offset) AS keep_from FROM ( \
        SELECT e.partition_index, e.base_offset, \
            SUM(e.length) OVER (PARTITION BY e.partition_index ORDER BY e.base_offset DESC) \
                - e.length AS after \
        FROM partitions p \
        JOIN index_entries e \
            ON e.topic_id = p.topic_id AND e.partition_index = p.partition_index \
            AND e.last_offset >= p.log_start_offset \
        WHERE p.topic_id = $1) s \
    WHERE after < $2 GROUP BY partition_index";

/// Bytes of a partition's entries between two log starts, for the counter of
/// bytes deleted by retention.
const SELECT_BYTES_BETWEEN: &str = "\
    SELECT CAST(COALESCE(SUM(length), 0) AS BIGINT) AS bytes FROM index_entries \
    WHERE topic_id = $1 AND partition_index = $2 AND last_offset >= $3 AND last_offset < $4";

fn partition_size(row: &AnyRow) -> Result<PartitionSize> {
    Ok(PartitionSize {
        topic: topic_id(&get::<String>(row, "topic_id")?)?,
        partition: to_i32(get(row, "partition_index")?, "partition index")?,
        bytes: get(row, "bytes")?,
    })
}

/// Where each partition's kept entries begin, by partition; a partition
/// missing from the answer keeps nothing.
async fn keep_from(
    tx: &mut Transaction<'static, Any>,
    sql: &'static str,
    topic: &str,
    bound: i64,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let rows = sqlx::query(sql)
        .bind(topic)
        .bind(bound)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                to_i32(get(row, "partition_index")?, "partition index")?,
                get::<Option<i64>>(row, "keep_from")?,
            ))
        })
        .collect()
}

async fn apply_retention(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    rule: RetentionRule,
) -> Result<Vec<RetentionMove>> {
    if rule.delete_before_timestamp.is_none() && rule.retain_bytes.is_none() {
        return Ok(Vec::new());
    }
    let topic = rule.topic.to_string();
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let heads = sqlx::query(AssertSqlSafe(format!(
        "SELECT partition_index, log_start_offset, next_offset FROM partitions \
         WHERE topic_id = $1 ORDER BY partition_index{lock}"
    )))
    .bind(topic.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let by_time = match rule.delete_before_timestamp {
        Some(cutoff) => Some(keep_from(&mut tx, SELECT_TIME_KEEP_FROM, &topic, cutoff).await?),
        None => None,
    };
    let by_size = match rule.retain_bytes {
        Some(limit) => Some(keep_from(&mut tx, SELECT_SIZE_KEEP_FROM, &topic, limit).await?),
        None => None,
    };
    let mut moves = Vec::new();
    for row in &heads {
        let partition = to_i32(get(row, "partition_index")?, "partition index")?;
        let log_start: i64 = get(row, "log_start_offset")?;
        let high_watermark: i64 = get(row, "next_offset")?;
        // No kept entry: everything up to the high watermark goes.
        let kept = |answer: &Option<BTreeMap<i32, Option<i64>>>| {
            answer.as_ref().map(|by_partition| {
                by_partition
                    .get(&partition)
                    .copied()
                    .flatten()
                    .unwrap_or(high_watermark)
            })
        };
        let target = [kept(&by_time), kept(&by_size)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(log_start)
            .min(high_watermark);
        if target > log_start {
            moves.push(RetentionMove {
                topic: rule.topic,
                partition,
                from: log_start,
                to: target,
                bytes: 0,
            });
        }
    }
    if moves.is_empty() {
        return Ok(moves);
    }
    for moved in &mut moves {
        let bytes = sqlx::query(SELECT_BYTES_BETWEEN)
            .bind(topic.as_str())
            .bind(i64::from(moved.partition))
            .bind(moved.from)
            .bind(moved.to)
            .fetch_one(&mut *tx)
            .await?;
        moved.bytes = get(&bytes, "bytes")?;
    }
    changes::next_head_seq(&mut tx, backend).await?;
    for moved in &moves {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE partitions SET log_start_offset = $1, change_seq = {} \
             WHERE topic_id = $2 AND partition_index = $3",
            changes::HEAD_SEQ
        )))
        .bind(moved.to)
        .bind(topic.as_str())
        .bind(i64::from(moved.partition))
        .execute(&mut *tx)
        .await?;
        super::open_txns::forget_aborted_below(&mut tx, &topic, moved.partition, moved.to).await?;
    }
    tx.commit().await?;
    Ok(moves)
}
