//! Share groups: the [`ShareCatalog`] of the SQL catalog. An update reads the
//! partition's row `FOR UPDATE` on PostgreSQL (SQLite's write lock holds the
//! whole transaction), so agents acquiring records of one partition for one
//! share group take turns and never hand a record out twice.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::agents::catalog_now_ms;
use super::rows::{get, to_i32, topic_id};
use super::{Backend, SqlCatalog};
use crate::catalog::{ShareCatalog, ShareUpdate, StoredSharePartition};
use crate::{Result, TopicId};

#[async_trait]
impl ShareCatalog for SqlCatalog {
    async fn update_share_partition(
        &self,
        group_id: &str,
        topic: TopicId,
        partition: i32,
        update: ShareUpdate<'_>,
    ) -> Result<Option<String>> {
        let backend = self.backend;
        self.write("update_share_partition", |tx| {
            update_partition(tx, backend, group_id, topic, partition, update)
        })
        .await
    }

    async fn share_partition(
        &self,
        group_id: &str,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<String>> {
        let topic = topic.to_string();
        self.read("share_partition", |pool| {
            let topic = topic.clone();
            async move {
                let row = sqlx::query(
                    "SELECT state FROM share_partitions \
                     WHERE group_id = $1 AND topic_id = $2 AND partition_index = $3",
                )
                .bind(group_id)
                .bind(topic)
                .bind(i64::from(partition))
                .fetch_optional(pool)
                .await?;
                Ok(row.map(|row| row.try_get("state")).transpose()?)
            }
        })
        .await
    }

    async fn share_partitions(&self, group_id: &str) -> Result<Vec<StoredSharePartition>> {
        self.read("share_partitions", |pool| async move {
            let rows = sqlx::query(
                "SELECT topic_id, partition_index, state FROM share_partitions \
                 WHERE group_id = $1 ORDER BY topic_id, partition_index",
            )
            .bind(group_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(StoredSharePartition {
                        topic: topic_id(&get::<String>(row, "topic_id")?)?,
                        partition: to_i32(get(row, "partition_index")?, "partition")?,
                        state: get(row, "state")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_share_topic(&self, group_id: &str, topic: TopicId) -> Result<u64> {
        let topic = topic.to_string();
        self.write("delete_share_topic", |mut tx| {
            let topic = topic.clone();
            async move {
                let deleted = sqlx::query(
                    "DELETE FROM share_partitions WHERE group_id = $1 AND topic_id = $2",
                )
                .bind(group_id)
                .bind(topic)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(deleted)
            }
        })
        .await
    }
}

async fn update_partition(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    group_id: &str,
    topic: TopicId,
    partition: i32,
    update: ShareUpdate<'_>,
) -> Result<Option<String>> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let topic = topic.to_string();
    let current: Option<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT state FROM share_partitions \
         WHERE group_id = $1 AND topic_id = $2 AND partition_index = $3{lock}"
    )))
    .bind(group_id)
    .bind(topic.as_str())
    .bind(i64::from(partition))
    .fetch_optional(&mut *tx)
    .await?
    .map(|row| row.try_get("state"))
    .transpose()?;
    let Some(state) = update(current.as_deref()) else {
        return Ok(current);
    };
    let now = catalog_now_ms(backend);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO share_partitions (group_id, topic_id, partition_index, state, updated_at_ms) \
         VALUES ($1, $2, $3, $4, {now}) \
         ON CONFLICT (group_id, topic_id, partition_index) DO UPDATE SET \
            state = excluded.state, updated_at_ms = excluded.updated_at_ms"
    )))
    .bind(group_id)
    .bind(topic.as_str())
    .bind(i64::from(partition))
    .bind(state.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(state))
}
