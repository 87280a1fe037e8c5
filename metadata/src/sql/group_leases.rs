//! Group leases (`group_leases`): which agent coordinates each group, and the
//! fencing check every group write makes. The bodies `groups.rs` calls.
//!
//! A lease needs no renewal of its own: it holds while the owner's agents row
//! (same node id and incarnation) exists, so one agent lease covers all its
//! groups. Rows are never deleted, so a group's epoch never repeats; every
//! acquisition bumps it, and a write made under an older epoch is refused in
//! its own transaction.

use sqlx::{Any, AnyPool, AssertSqlSafe, Transaction};

use super::agents::catalog_now_ms;
use super::rows::{get, to_i32};
use super::Backend;
use crate::groups::{Acquisition, GroupFence, GroupLease, LeaseOwner};
use crate::{CatalogError, Result};

/// Group ids per lease read: far below either database's limit on parameters.
const IDS_PER_STATEMENT: usize = 500;

/// `FOR UPDATE` where the database has row locks; SQLite's `BEGIN IMMEDIATE`
/// already holds the one write lock for the whole transaction.
fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// Refuses the write unless the group's lease is at the fence's epoch, and
/// keeps the lease row locked until the transaction ends, so an acquisition
/// cannot slip in between this check and the write.
pub(super) async fn check_fence(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    group_id: &str,
    fence: GroupFence,
) -> Result<()> {
    let GroupFence::Lease(epoch) = fence else {
        return Ok(());
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT lease_epoch FROM group_leases WHERE group_id = $1{}",
        for_update(backend)
    )))
    .bind(group_id)
    .fetch_optional(&mut **tx)
    .await?;
    let current = row.map(|row| get::<i64>(&row, "lease_epoch")).transpose()?;
    if current == Some(epoch) {
        return Ok(());
    }
    Err(CatalogError::NotCoordinator {
        group_id: group_id.to_owned(),
        epoch,
        current,
    })
}

/// Whether an agents row with this node id and incarnation exists, as SQL
/// over the lease's columns (`l`).
const OWNER_REGISTERED: &str = "CAST(CASE WHEN EXISTS (SELECT 1 FROM agents a \
     WHERE a.node_id = l.owner_node_id AND a.incarnation = l.owner_incarnation) \
     THEN 1 ELSE 0 END AS BIGINT)";

pub(super) async fn group_leases(pool: &AnyPool, group_ids: &[String]) -> Result<Vec<GroupLease>> {
    let mut leases = Vec::new();
    for chunk in group_ids.chunks(IDS_PER_STATEMENT) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT l.group_id, l.owner_node_id, l.owner_incarnation, l.lease_epoch, \
                {OWNER_REGISTERED} AS owner_registered \
             FROM group_leases l WHERE l.group_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(pool).await? {
            leases.push(lease(&row)?);
        }
    }
    leases.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    leases.dedup_by(|a, b| a.group_id == b.group_id);
    Ok(leases)
}

fn lease(row: &sqlx::any::AnyRow) -> Result<GroupLease> {
    let owner = match get::<Option<i64>>(row, "owner_node_id")? {
        None => None,
        Some(node_id) => Some(LeaseOwner {
            node_id: to_i32(node_id, "node id")?,
            incarnation: get::<Option<String>>(row, "owner_incarnation")?.unwrap_or_default(),
            registered: get::<i64>(row, "owner_registered")? == 1,
        }),
    };
    Ok(GroupLease {
        group_id: get(row, "group_id")?,
        epoch: get(row, "lease_epoch")?,
        owner,
    })
}

pub(super) async fn acquire(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    group_id: &str,
    node_id: i32,
    incarnation: &str,
) -> Result<Acquisition> {
    let now = catalog_now_ms(backend);
    // A row to lock, also for a group never leased: of two agents inserting it
    // together on PostgreSQL, the second waits for the first and then finds
    // the row (and, once the first committed, its owner).
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO group_leases (group_id, owner_node_id, owner_incarnation, lease_epoch, \
            acquired_at_ms) VALUES ($1, NULL, NULL, 0, {now}) \
         ON CONFLICT (group_id) DO NOTHING"
    )))
    .bind(group_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "SELECT lease_epoch FROM group_leases WHERE group_id = $1{}",
        for_update(backend)
    )))
    .bind(group_id)
    .fetch_one(&mut *tx)
    .await?;
    // Read after the lock: an owner that registered or left meanwhile is seen.
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT l.group_id, l.owner_node_id, l.owner_incarnation, l.lease_epoch, \
            {OWNER_REGISTERED} AS owner_registered \
         FROM group_leases l WHERE l.group_id = $1"
    )))
    .bind(group_id)
    .fetch_one(&mut *tx)
    .await?;
    let current = lease(&row)?;
    if let Some(owner) = current.live_owner() {
        if owner.incarnation != incarnation {
            return Ok(Acquisition::Held {
                node_id: owner.node_id,
            });
        }
    }
    // An agent that was reaped must not take groups: its lease would be void
    // from the start, and a successor would take the group straight back.
    let registered =
        sqlx::query("SELECT 1 AS one FROM agents WHERE node_id = $1 AND incarnation = $2")
            .bind(i64::from(node_id))
            .bind(incarnation)
            .fetch_optional(&mut *tx)
            .await?;
    if registered.is_none() {
        return Ok(Acquisition::NotRegistered);
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "UPDATE group_leases SET owner_node_id = $1, owner_incarnation = $2, \
            lease_epoch = lease_epoch + 1, acquired_at_ms = {now} \
         WHERE group_id = $3 RETURNING lease_epoch"
    )))
    .bind(i64::from(node_id))
    .bind(incarnation)
    .bind(group_id)
    .fetch_one(&mut *tx)
    .await?;
    let epoch = get(&row, "lease_epoch")?;
    tx.commit().await?;
    Ok(Acquisition::Acquired { epoch })
}

pub(super) async fn release(
    mut tx: Transaction<'static, Any>,
    group_id: &str,
    epoch: i64,
) -> Result<bool> {
    let released = sqlx::query(
        "UPDATE group_leases SET owner_node_id = NULL, owner_incarnation = NULL \
         WHERE group_id = $1 AND lease_epoch = $2",
    )
    .bind(group_id)
    .bind(epoch)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(released.rows_affected() > 0)
}
