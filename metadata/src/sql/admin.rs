//! Changes to existing topics that admin requests make: replacing their configs,
//! adding partitions, advancing a partition's log start offset (DeleteRecords),
//! and listing the idempotent producers that wrote to a partition.
//!
//! Each change is one transaction that first takes a row lock (a no-op UPDATE,
//! which both databases accept, unlike `SELECT ... FOR UPDATE`), so concurrent
//! changes of one topic or partition on PostgreSQL take turns; on SQLite the
//! write transaction already excludes every other writer.

use std::collections::BTreeMap;

use sqlx::AnyPool;

use super::rows::{get, to_i32};
use super::topics::by_name;
use super::SqlCatalog;
use crate::producers::ProducerBatch;
use crate::{CatalogError, PartitionOffsets, Result, Topic, TopicId};

/// Computes a topic's new config set from its current one, or says why not.
pub type ConfigUpdate<'a> = &'a (dyn Fn(&BTreeMap<String, String>) -> std::result::Result<BTreeMap<String, String>, String>
         + Send
         + Sync);

/// Partition rows for indexes `$2 .. $3`, starting empty at offset 0.
const INSERT_PARTITION_RANGE: &str = "\
    WITH RECURSIVE seq (n) AS ( \
        SELECT CAST($2 AS BIGINT) WHERE CAST($2 AS BIGINT) < CAST($3 AS BIGINT) \
        UNION ALL \
        SELECT n + 1 FROM seq WHERE n + 1 < CAST($3 AS BIGINT) \
    ) \
    INSERT INTO partitions \
        (topic_id, partition_index, next_offset, log_start_offset, max_timestamp) \
    SELECT CAST($1 AS TEXT), n, 0, 0, CAST($4 AS BIGINT) FROM seq";

/// Locks the topic's row; false if there is no such topic.
async fn lock_topic(tx: &mut sqlx::Transaction<'static, sqlx::Any>, name: &str) -> Result<bool> {
    let locked = sqlx::query("UPDATE topics SET partition_count = partition_count WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(locked.rows_affected() == 1)
}

pub(super) async fn update_configs(
    catalog: &SqlCatalog,
    name: &str,
    update: ConfigUpdate<'_>,
) -> Result<Topic> {
    let unknown = || CatalogError::UnknownTopic(name.to_owned());
    let mut tx = catalog.begin_write().await?;
    if !lock_topic(&mut tx, name).await? {
        return Err(unknown());
    }
    let mut topic = by_name(&mut *tx, name).await?.ok_or_else(unknown)?;
    let configs = update(&topic.configs).map_err(CatalogError::InvalidConfig)?;
    let id = topic.id.to_string();
    sqlx::query("DELETE FROM topic_configs WHERE topic_id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    for (key, value) in &configs {
        sqlx::query("INSERT INTO topic_configs (topic_id, key, value) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(key.as_str())
            .bind(value.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    topic.configs = configs;
    Ok(topic)
}

pub(super) async fn add_partitions(
    catalog: &SqlCatalog,
    name: &str,
    partition_count: i32,
) -> Result<Topic> {
    let unknown = || CatalogError::UnknownTopic(name.to_owned());
    let mut tx = catalog.begin_write().await?;
    if !lock_topic(&mut tx, name).await? {
        return Err(unknown());
    }
    let mut topic = by_name(&mut *tx, name).await?.ok_or_else(unknown)?;
    if partition_count <= topic.partition_count {
        return Err(CatalogError::PartitionCountNotIncreased {
            topic: name.to_owned(),
            current: topic.partition_count,
            requested: partition_count,
        });
    }
    let id = topic.id.to_string();
    sqlx::query("UPDATE topics SET partition_count = $1 WHERE id = $2")
        .bind(i64::from(partition_count))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(INSERT_PARTITION_RANGE)
        .bind(id.as_str())
        .bind(i64::from(topic.partition_count))
        .bind(i64::from(partition_count))
        .bind(i64::MIN)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    topic.partition_count = partition_count;
    Ok(topic)
}

pub(super) async fn delete_records(
    catalog: &SqlCatalog,
    topic: TopicId,
    partition: i32,
    before_offset: i64,
) -> Result<Option<PartitionOffsets>> {
    let topic = topic.to_string();
    let mut tx = catalog.begin_write().await?;
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
    sqlx::query(
        "UPDATE partitions SET log_start_offset = $1 WHERE topic_id = $2 AND partition_index = $3",
    )
    .bind(log_start_offset)
    .bind(topic.as_str())
    .bind(i64::from(partition))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(PartitionOffsets {
        log_start_offset,
        high_watermark,
    }))
}

/// The newest batch of every producer that wrote to the partition, by producer id.
pub(super) async fn partition_producers(
    pool: &AnyPool,
    topic: TopicId,
    partition: i32,
) -> Result<Vec<ProducerBatch>> {
    let rows = sqlx::query(
        "SELECT b.producer_id, b.epoch, b.first_sequence, b.last_sequence, b.base_offset \
         FROM producer_batches b \
         WHERE b.topic_id = $1 AND b.partition_index = $2 \
           AND b.base_offset = (SELECT MAX(n.base_offset) FROM producer_batches n \
               WHERE n.topic_id = b.topic_id AND n.partition_index = b.partition_index \
                 AND n.producer_id = b.producer_id) \
         ORDER BY b.producer_id",
    )
    .bind(topic.to_string())
    .bind(i64::from(partition))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let epoch: i64 = get(row, "epoch")?;
            Ok(ProducerBatch {
                producer_id: get(row, "producer_id")?,
                epoch: i16::try_from(epoch)
                    .map_err(|_| CatalogError::Corrupt(format!("epoch {epoch} out of range")))?,
                first_sequence: to_i32(get(row, "first_sequence")?, "sequence")?,
                last_sequence: to_i32(get(row, "last_sequence")?, "sequence")?,
                base_offset: get(row, "base_offset")?,
            })
        })
        .collect()
}
