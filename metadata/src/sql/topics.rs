//! Topics, their configs and partition counts, and the cluster id: the
//! [`TopicCatalog`] of the SQL catalog, with its topic-lookup cache.
//!
//! Every change of a topic bumps the `catalog` counter in its transaction, so
//! other agents' counter polls drop their cached topics.
//! Lookups by name and id go through the cache; every change of a topic made
//! here (create, delete, configs, partitions) invalidates it, also when the change
//! failed, since a failure may be a commit whose answer was lost, or (creating)
//! a name taken by a topic the cache still holds under an older id.
//!
//! Changes of an existing topic first take a row lock (a no-op UPDATE, which both
//! databases accept, unlike `SELECT ... FOR UPDATE`), so concurrent changes of one
//! topic on PostgreSQL take turns; on SQLite the write transaction already
//! excludes every other writer.

use std::collections::BTreeMap;
use std::future::Future;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Transaction};

use super::rows::{get, to_i32, topic_id};
use super::{changes, cluster, SqlCatalog};
use crate::catalog::{ConfigUpdate, TopicCatalog};
use crate::{CatalogError, NewTopic, Result, Topic, TopicId};

#[async_trait]
impl TopicCatalog for SqlCatalog {
    async fn cluster_id(&self) -> Result<String> {
        // Two statements on two pools, neither in a transaction: a read, then an
        // insert that does nothing if the row exists, so an attempt may repeat.
        self.retrying("cluster_id", || cluster::cluster_id(self))
            .await
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<Topic> {
        let created = self
            .write("create_topic", |tx| create(tx, topic, self.clock.now_ms()))
            .await;
        // Also on failure: TopicAlreadyExists means our entry, if any, may be a
        // since deleted and recreated namesake.
        self.topic_cache.forget_name(&topic.name).await;
        created
    }

    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        self.change_topic("delete_topic", name, |tx| delete(tx, name))
            .await
    }

    async fn topic_by_name(&self, name: &str) -> Result<Option<Topic>> {
        let load = || self.read("topic_by_name", |pool| by_name(pool, name));
        self.topic_cache.by_name(name, load).await
    }

    async fn topic_by_id(&self, id: TopicId) -> Result<Option<Topic>> {
        let load = || self.read("topic_by_id", |pool| by_id(pool, id));
        self.topic_cache.by_id(id, load).await
    }

    async fn list_topics(&self) -> Result<Vec<Topic>> {
        self.read("list_topics", list).await
    }

    async fn update_topic_configs(&self, name: &str, update: ConfigUpdate<'_>) -> Result<Topic> {
        self.change_topic("update_topic_configs", name, |tx| {
            update_configs(tx, name, update)
        })
        .await
    }

    async fn add_partitions(&self, name: &str, partition_count: i32) -> Result<Topic> {
        self.change_topic("add_partitions", name, |tx| {
            add_partitions(tx, name, partition_count)
        })
        .await
    }
}

impl SqlCatalog {
    /// A write transaction that changes the topic called `name`, after which the
    /// cache forgets it, so the next produce sees the change (a deleted topic, a
    /// new max.message.bytes, new partitions) at once. Also after a failure,
    /// which may have been a commit whose answer was lost.
    async fn change_topic<F, Fut>(
        &self,
        operation: &'static str,
        name: &str,
        transaction: F,
    ) -> Result<Topic>
    where
        F: Fn(Transaction<'static, Any>) -> Fut,
        Fut: Future<Output = Result<Topic>>,
    {
        let changed = self.write(operation, transaction).await;
        self.topic_cache.forget_changed(name, &changed).await;
        changed
    }
}

/// A topic with its configs, one row per config (one row with NULL config columns
/// for a topic without any), rows of one topic adjacent.
macro_rules! select_topics {
    ($tail:literal) => {
        concat!(
            "SELECT t.id, t.name, t.partition_count, t.created_at_ms, ",
            "c.key AS config_key, c.value AS config_value ",
            "FROM topics t LEFT JOIN topic_configs c ON c.topic_id = t.id ",
            $tail
        )
    };
}

/// One partition row per index in `0..count`, in one statement. The casts pin the
/// parameter types for PostgreSQL, which infers them from context.
const INSERT_PARTITIONS: &str = "\
    WITH RECURSIVE seq (n) AS ( \
        SELECT CAST(0 AS BIGINT) WHERE CAST($2 AS BIGINT) > 0 \
        UNION ALL \
        SELECT n + 1 FROM seq WHERE n + 1 < CAST($2 AS BIGINT) \
    ) \
    INSERT INTO partitions \
        (topic_id, partition_index, next_offset, log_start_offset, max_timestamp) \
    SELECT CAST($1 AS TEXT), n, 0, 0, CAST($3 AS BIGINT) FROM seq";

async fn create(mut tx: Transaction<'static, Any>, new: &NewTopic, now_ms: i64) -> Result<Topic> {
    if new.partition_count < 1 {
        return Err(CatalogError::InvalidArgument(format!(
            "topic '{}' needs at least one partition, not {}",
            new.name, new.partition_count
        )));
    }
    let taken = sqlx::query("SELECT id FROM topics WHERE name = $1")
        .bind(new.name.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(CatalogError::TopicAlreadyExists(new.name.clone()));
    }
    let topic = Topic {
        id: TopicId::new_v4(),
        name: new.name.clone(),
        partition_count: new.partition_count,
        configs: new.configs.clone(),
        created_at_ms: now_ms,
    };
    let id = topic.id.to_string();
    sqlx::query(
        "INSERT INTO topics (id, name, partition_count, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_str())
    .bind(topic.name.as_str())
    .bind(i64::from(topic.partition_count))
    .bind(topic.created_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        // PostgreSQL: another agent inserted the name after our check; its
        // transaction committed while ours waited on the unique index.
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            CatalogError::TopicAlreadyExists(topic.name.clone())
        }
        e => e.into(),
    })?;
    sqlx::query(INSERT_PARTITIONS)
        .bind(id.as_str())
        .bind(i64::from(topic.partition_count))
        .bind(i64::MIN)
        .execute(&mut *tx)
        .await?;
    for (key, value) in &topic.configs {
        sqlx::query("INSERT INTO topic_configs (topic_id, key, value) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(key.as_str())
            .bind(value.as_str())
            .execute(&mut *tx)
            .await?;
    }
    changes::bump(&mut tx, "catalog").await?;
    tx.commit().await?;
    Ok(topic)
}

async fn delete(mut tx: Transaction<'static, Any>, name: &str) -> Result<Topic> {
    let unknown = || CatalogError::UnknownTopic(name.to_owned());
    let topic = by_name(&mut *tx, name).await?.ok_or_else(unknown)?;
    let id = topic.id.to_string();
    // Lock the partition rows first, in the order committers lock them. A commit
    // already holding one finishes first, and its index rows are then deleted
    // below (each PostgreSQL statement sees what committed before it); a commit
    // arriving later finds the rows gone and reports UnknownPartition. Without
    // this, a commit could slip an index row in between our deletes. (On SQLite
    // the transaction already excludes every other writer.)
    for partition in 0..topic.partition_count {
        sqlx::query(
            "UPDATE partitions SET next_offset = next_offset \
             WHERE topic_id = $1 AND partition_index = $2",
        )
        .bind(id.as_str())
        .bind(i64::from(partition))
        .execute(&mut *tx)
        .await?;
    }
    for statement in [
        "DELETE FROM index_entries WHERE topic_id = $1",
        "DELETE FROM producer_batches WHERE topic_id = $1",
        // Its transactions' per-partition state; a transaction still naming
        // the topic finds it gone when its markers are written, and skips it.
        "DELETE FROM open_transactions WHERE topic_id = $1",
        "DELETE FROM aborted_transactions WHERE topic_id = $1",
        // What share groups read of it.
        "DELETE FROM share_partitions WHERE topic_id = $1",
        "DELETE FROM partitions WHERE topic_id = $1",
        "DELETE FROM topic_configs WHERE topic_id = $1",
    ] {
        sqlx::query(statement)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
    }
    let deleted = sqlx::query("DELETE FROM topics WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() != 1 {
        // Another agent deleted it while we waited for the partition locks.
        return Err(unknown());
    }
    changes::bump(&mut tx, "catalog").await?;
    tx.commit().await?;
    Ok(topic)
}

async fn by_name<'e, E>(executor: E, name: &str) -> Result<Option<Topic>>
where
    E: Executor<'e, Database = Any>,
{
    let rows = sqlx::query(select_topics!("WHERE t.name = $1 ORDER BY c.key"))
        .bind(name)
        .fetch_all(executor)
        .await?;
    at_most_one(assemble(&rows)?)
}

async fn by_id<'e, E>(executor: E, id: TopicId) -> Result<Option<Topic>>
where
    E: Executor<'e, Database = Any>,
{
    let id = id.to_string();
    let rows = sqlx::query(select_topics!("WHERE t.id = $1 ORDER BY c.key"))
        .bind(id.as_str())
        .fetch_all(executor)
        .await?;
    at_most_one(assemble(&rows)?)
}

async fn list<'e, E>(executor: E) -> Result<Vec<Topic>>
where
    E: Executor<'e, Database = Any>,
{
    let rows = sqlx::query(select_topics!("ORDER BY t.name, c.key"))
        .fetch_all(executor)
        .await?;
    assemble(&rows)
}

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
async fn lock_topic(tx: &mut Transaction<'static, Any>, name: &str) -> Result<bool> {
    let locked = sqlx::query("UPDATE topics SET partition_count = partition_count WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(locked.rows_affected() == 1)
}

async fn update_configs(
    mut tx: Transaction<'static, Any>,
    name: &str,
    update: ConfigUpdate<'_>,
) -> Result<Topic> {
    let unknown = || CatalogError::UnknownTopic(name.to_owned());
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
    changes::bump(&mut tx, "catalog").await?;
    tx.commit().await?;
    topic.configs = configs;
    Ok(topic)
}

async fn add_partitions(
    mut tx: Transaction<'static, Any>,
    name: &str,
    partition_count: i32,
) -> Result<Topic> {
    let unknown = || CatalogError::UnknownTopic(name.to_owned());
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
    changes::bump(&mut tx, "catalog").await?;
    tx.commit().await?;
    topic.partition_count = partition_count;
    Ok(topic)
}

fn at_most_one(mut topics: Vec<Topic>) -> Result<Option<Topic>> {
    match topics.len() {
        0 | 1 => Ok(topics.pop()),
        n => Err(CatalogError::Corrupt(format!(
            "{n} topics share a name or an id"
        ))),
    }
}

/// Folds the rows of `select_topics!` into topics, keeping their order.
fn assemble(rows: &[AnyRow]) -> Result<Vec<Topic>> {
    let mut topics: Vec<Topic> = Vec::new();
    for row in rows {
        let id = topic_id(&get::<String>(row, "id")?)?;
        if topics.last().is_none_or(|t| t.id != id) {
            topics.push(Topic {
                id,
                name: get(row, "name")?,
                partition_count: to_i32(get(row, "partition_count")?, "partition count")?,
                configs: BTreeMap::new(),
                created_at_ms: get(row, "created_at_ms")?,
            });
        }
        let key: Option<String> = get(row, "config_key")?;
        let value: Option<String> = get(row, "config_value")?;
        if let (Some(key), Some(value), Some(topic)) = (key, value, topics.last_mut()) {
            topic.configs.insert(key, value);
        }
    }
    Ok(topics)
}
