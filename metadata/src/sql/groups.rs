//! Consumer groups: committed offsets (`group_offsets`) and the persisted state of
//! classic groups (`consumer_groups`, `consumer_group_members`).
//!
//! The [`GroupCatalog`] of the SQL catalog.
//!
//! A group is stored whole: its row and all member rows are replaced in one
//! transaction, so a reader never sees members of two generations mixed. Every
//! write first checks the group's fence (`group_leases.rs`) in the same
//! transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Any, AnyPool, AssertSqlSafe, Transaction};

use super::group_leases::{acquire, check_fence, group_leases, release};
use super::rows::{get, to_i32};
use super::SqlCatalog;
use crate::catalog::{ConfigUpdate, GroupCatalog};
use crate::groups::{
    Acquisition, CommittedOffset, GroupFence, GroupLease, OffsetCommit, StoredGroup, StoredMember,
};
use crate::Result;

// Nothing here is cached: the coordinator holds its groups in memory.
#[async_trait]
impl GroupCatalog for SqlCatalog {
    async fn commit_offsets(
        &self,
        group_id: &str,
        fence: GroupFence,
        commits: &[OffsetCommit],
    ) -> Result<()> {
        let backend = self.backend;
        self.write("commit_offsets", |mut tx| async move {
            check_fence(&mut tx, backend, group_id, fence).await?;
            commit_offsets(tx, group_id, commits, self.clock.now_ms()).await
        })
        .await
    }

    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        self.read("committed_offsets", |pool| {
            committed_offsets(pool, group_id)
        })
        .await
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        fence: GroupFence,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let backend = self.backend;
        self.write("delete_offsets", |mut tx| async move {
            check_fence(&mut tx, backend, group_id, fence).await?;
            delete_offsets(tx, group_id, partitions).await
        })
        .await
    }

    async fn store_group(&self, group: &StoredGroup, fence: GroupFence) -> Result<()> {
        let backend = self.backend;
        self.write("store_group", |mut tx| async move {
            check_fence(&mut tx, backend, &group.group_id, fence).await?;
            store_group(tx, group, self.clock.now_ms()).await
        })
        .await
    }

    async fn load_group(&self, group_id: &str) -> Result<Option<StoredGroup>> {
        let groups = self
            .read("load_group", |pool| load_groups(pool, Some(group_id)))
            .await?;
        Ok(groups.into_iter().next())
    }

    async fn load_groups(&self) -> Result<Vec<StoredGroup>> {
        self.read("load_groups", |pool| load_groups(pool, None))
            .await
    }

    async fn delete_group(&self, group_id: &str, fence: GroupFence) -> Result<()> {
        let backend = self.backend;
        self.write("delete_group", |mut tx| async move {
            check_fence(&mut tx, backend, group_id, fence).await?;
            delete_group(tx, group_id).await
        })
        .await
    }

    async fn group_leases(&self, group_ids: &[String]) -> Result<Vec<GroupLease>> {
        self.read("group_leases", |pool| group_leases(pool, group_ids))
            .await
    }

    async fn acquire_group(
        &self,
        group_id: &str,
        node_id: i32,
        incarnation: &str,
    ) -> Result<Acquisition> {
        let backend = self.backend;
        self.write("acquire_group", |tx| {
            acquire(tx, backend, group_id, node_id, incarnation)
        })
        .await
    }

    async fn group_configs(&self, group_id: &str) -> Result<BTreeMap<String, String>> {
        self.read("group_configs", |pool| async move {
            let rows = sqlx::query("SELECT key, value FROM group_configs WHERE group_id = $1")
                .bind(group_id)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| Ok((get(row, "key")?, get(row, "value")?)))
                .collect()
        })
        .await
    }

    async fn update_group_configs(
        &self,
        group_id: &str,
        update: ConfigUpdate<'_>,
    ) -> Result<BTreeMap<String, String>> {
        self.write("update_group_configs", |mut tx| async move {
            let rows = sqlx::query("SELECT key, value FROM group_configs WHERE group_id = $1")
                .bind(group_id)
                .fetch_all(&mut *tx)
                .await?;
            let current = rows
                .iter()
                .map(|row| Ok((get(row, "key")?, get(row, "value")?)))
                .collect::<Result<BTreeMap<String, String>>>()?;
            let configs = update(&current).map_err(crate::CatalogError::InvalidConfig)?;
            sqlx::query("DELETE FROM group_configs WHERE group_id = $1")
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
            for (key, value) in &configs {
                sqlx::query("INSERT INTO group_configs (group_id, key, value) VALUES ($1, $2, $3)")
                    .bind(group_id)
                    .bind(key.as_str())
                    .bind(value.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(configs)
        })
        .await
    }

    async fn groups_with_configs(&self) -> Result<Vec<String>> {
        self.read("groups_with_configs", |pool| async move {
            let rows = sqlx::query("SELECT DISTINCT group_id FROM group_configs ORDER BY group_id")
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| get(row, "group_id")).collect()
        })
        .await
    }

    async fn release_group(&self, group_id: &str, epoch: i64) -> Result<bool> {
        self.write("release_group", |tx| release(tx, group_id, epoch))
            .await
    }
}

/// Insert or overwrite one partition's offset; both databases know this form.
const UPSERT_OFFSET: &str = "\
    INSERT INTO group_offsets (group_id, topic_name, partition_index, committed_offset, \
        leader_epoch, metadata, commit_timestamp_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (group_id, topic_name, partition_index) DO UPDATE SET \
        committed_offset = excluded.committed_offset, \
        leader_epoch = excluded.leader_epoch, \
        metadata = excluded.metadata, \
        commit_timestamp_ms = excluded.commit_timestamp_ms";

async fn commit_offsets(
    mut tx: Transaction<'static, Any>,
    group_id: &str,
    commits: &[OffsetCommit],
    now_ms: i64,
) -> Result<()> {
    for commit in commits {
        sqlx::query(UPSERT_OFFSET)
            .bind(group_id)
            .bind(commit.topic.as_str())
            .bind(i64::from(commit.partition))
            .bind(commit.offset)
            .bind(i64::from(commit.leader_epoch))
            .bind(commit.metadata.clone())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn committed_offsets(pool: &AnyPool, group_id: &str) -> Result<Vec<CommittedOffset>> {
    let rows = sqlx::query(
        "SELECT topic_name, partition_index, committed_offset, leader_epoch, metadata, \
            commit_timestamp_ms \
         FROM group_offsets WHERE group_id = $1 ORDER BY topic_name, partition_index",
    )
    .bind(group_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CommittedOffset {
                topic: get(row, "topic_name")?,
                partition: to_i32(get(row, "partition_index")?, "partition")?,
                offset: get(row, "committed_offset")?,
                leader_epoch: to_i32(get(row, "leader_epoch")?, "leader epoch")?,
                metadata: get(row, "metadata")?,
                commit_timestamp_ms: get(row, "commit_timestamp_ms")?,
            })
        })
        .collect()
}

async fn delete_offsets(
    mut tx: Transaction<'static, Any>,
    group_id: &str,
    partitions: &[(String, i32)],
) -> Result<()> {
    for (topic, partition) in partitions {
        sqlx::query(
            "DELETE FROM group_offsets \
             WHERE group_id = $1 AND topic_name = $2 AND partition_index = $3",
        )
        .bind(group_id)
        .bind(topic.as_str())
        .bind(i64::from(*partition))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn store_group(
    mut tx: Transaction<'static, Any>,
    group: &StoredGroup,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO consumer_groups (group_id, protocol_type, protocol_name, generation, \
            leader_id, updated_at_ms, consumer_state) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (group_id) DO UPDATE SET protocol_type = excluded.protocol_type, \
            protocol_name = excluded.protocol_name, generation = excluded.generation, \
            leader_id = excluded.leader_id, updated_at_ms = excluded.updated_at_ms, \
            consumer_state = excluded.consumer_state",
    )
    .bind(group.group_id.as_str())
    .bind(group.protocol_type.clone())
    .bind(group.protocol_name.clone())
    .bind(i64::from(group.generation))
    .bind(group.leader_id.clone())
    .bind(now_ms)
    .bind(group.consumer_state.clone())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM consumer_group_members WHERE group_id = $1")
        .bind(group.group_id.as_str())
        .execute(&mut *tx)
        .await?;
    for member in &group.members {
        sqlx::query(
            "INSERT INTO consumer_group_members (group_id, member_id, group_instance_id, \
                client_id, client_host, rebalance_timeout_ms, session_timeout_ms, \
                subscription, assignment) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(group.group_id.as_str())
        .bind(member.member_id.as_str())
        .bind(member.group_instance_id.clone())
        .bind(member.client_id.as_str())
        .bind(member.client_host.as_str())
        .bind(i64::from(member.rebalance_timeout_ms))
        .bind(i64::from(member.session_timeout_ms))
        .bind(member.subscription.clone())
        .bind(member.assignment.clone())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every stored group, or only `only`.
async fn load_groups(pool: &AnyPool, only: Option<&str>) -> Result<Vec<StoredGroup>> {
    let filter = if only.is_some() {
        "WHERE group_id = $1"
    } else {
        ""
    };
    let mut query = sqlx::query(AssertSqlSafe(format!(
        "SELECT group_id, protocol_type, protocol_name, generation, leader_id, consumer_state \
         FROM consumer_groups {filter} ORDER BY group_id"
    )));
    if let Some(group_id) = only {
        query = query.bind(group_id);
    }
    let group_rows = query.fetch_all(pool).await?;
    let mut groups = BTreeMap::new();
    for row in &group_rows {
        let group_id: String = get(row, "group_id")?;
        groups.insert(
            group_id.clone(),
            StoredGroup {
                group_id,
                protocol_type: get(row, "protocol_type")?,
                protocol_name: get(row, "protocol_name")?,
                generation: to_i32(get(row, "generation")?, "generation")?,
                leader_id: get(row, "leader_id")?,
                members: Vec::new(),
                consumer_state: get(row, "consumer_state")?,
            },
        );
    }
    let mut query = sqlx::query(AssertSqlSafe(format!(
        "SELECT group_id, member_id, group_instance_id, client_id, client_host, \
            rebalance_timeout_ms, session_timeout_ms, subscription, assignment \
         FROM consumer_group_members {filter} ORDER BY group_id, member_id"
    )));
    if let Some(group_id) = only {
        query = query.bind(group_id);
    }
    let member_rows = query.fetch_all(pool).await?;
    for row in &member_rows {
        let group_id: String = get(row, "group_id")?;
        let member = StoredMember {
            member_id: get(row, "member_id")?,
            group_instance_id: get(row, "group_instance_id")?,
            client_id: get(row, "client_id")?,
            client_host: get(row, "client_host")?,
            rebalance_timeout_ms: to_i32(get(row, "rebalance_timeout_ms")?, "timeout")?,
            session_timeout_ms: to_i32(get(row, "session_timeout_ms")?, "timeout")?,
            subscription: get(row, "subscription")?,
            assignment: get(row, "assignment")?,
        };
        // The foreign key guarantees the group row; a member without one would be
        // a database written by something else.
        match groups.get_mut(&group_id) {
            Some(group) => group.members.push(member),
            None => {
                return Err(crate::CatalogError::Corrupt(format!(
                    "member of unknown group '{group_id}'"
                )))
            }
        }
    }
    Ok(groups.into_values().collect())
}

async fn delete_group(mut tx: Transaction<'static, Any>, group_id: &str) -> Result<()> {
    for statement in [
        "DELETE FROM consumer_group_members WHERE group_id = $1",
        "DELETE FROM consumer_groups WHERE group_id = $1",
        "DELETE FROM group_offsets WHERE group_id = $1",
        "DELETE FROM share_partitions WHERE group_id = $1",
        "DELETE FROM group_configs WHERE group_id = $1",
    ] {
        sqlx::query(statement)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
