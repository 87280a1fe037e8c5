//! Membership in the SQL catalog: the [`AgentCatalog`].
//!
//! Every change of the `agents` row set happens in a transaction that first
//! locks the membership counter (PostgreSQL: `FOR UPDATE`; SQLite's `BEGIN
//! IMMEDIATE` already serialises writers) and bumps it before committing, so
//! the counter's value names exactly one row set. Lease instants are computed
//! by the database ([`catalog_now_ms`]), never by an agent.

use async_trait::async_trait;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::rows::{get, to_i32};
use super::{changes, Backend, SqlCatalog};
use crate::agents::{
    Agent, AgentRegistration, Counters, Endpoint, Membership, Registered, Renewal,
};
use crate::catalog::AgentCatalog;
use crate::{CatalogError, Result};

/// The database's current time in milliseconds since the epoch, as SQL.
///
/// PostgreSQL's `now()` is the start of the transaction: stable within it and a
/// little early, which only makes leases shorter. SQLite's 'now' is fixed for a
/// statement; agents sharing a SQLite file share one machine and one clock.
pub(super) fn catalog_now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "(CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT))",
        Backend::Sqlite => "(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))",
    }
}

#[async_trait]
impl AgentCatalog for SqlCatalog {
    async fn register_agent(&self, registration: &AgentRegistration) -> Result<Registered> {
        let backend = self.backend;
        self.write("register_agent", |tx| register(tx, backend, registration))
            .await
    }

    async fn renew_agent(
        &self,
        node_id: i32,
        incarnation: &str,
        lease_ms: i64,
        reap: bool,
    ) -> Result<Renewal> {
        let backend = self.backend;
        self.write("renew_agent", |tx| {
            renew(tx, backend, node_id, incarnation, lease_ms, reap)
        })
        .await
    }

    async fn deregister_agent(&self, node_id: i32, incarnation: &str) -> Result<()> {
        let backend = self.backend;
        self.write("deregister_agent", |tx| {
            deregister(tx, backend, node_id, incarnation)
        })
        .await
    }

    async fn membership(&self) -> Result<Membership> {
        self.read("membership", |pool| async move {
            // One statement, so the epoch and the rows come from one snapshot; the
            // outer join keeps the epoch when no agent is registered.
            let rows = sqlx::query(
                "SELECT c.value AS epoch, a.node_id, a.incarnation, a.host, a.port, a.zone, \
                 a.listeners \
                 FROM counters c LEFT JOIN agents a ON 1 = 1 \
                 WHERE c.name = 'membership' ORDER BY a.node_id",
            )
            .fetch_all(pool)
            .await?;
            let mut membership = Membership::default();
            for row in rows {
                membership.epoch = get(&row, "epoch")?;
                let Some(node_id) = get::<Option<i64>>(&row, "node_id")? else {
                    continue;
                };
                membership.agents.push(Agent {
                    node_id: to_i32(node_id, "node id")?,
                    incarnation: get(&row, "incarnation")?,
                    host: get(&row, "host")?,
                    port: to_i32(get(&row, "port")?, "port")?,
                    zone: get(&row, "zone")?,
                    endpoints: decode_endpoints(&get::<String>(&row, "listeners")?)?,
                });
            }
            Ok(membership)
        })
        .await
    }

    async fn counters(&self) -> Result<Counters> {
        self.read("counters", |pool| async move {
            let rows = sqlx::query("SELECT name, value FROM counters")
                .fetch_all(pool)
                .await?;
            let mut counters = Counters::default();
            for row in rows {
                let value: i64 = get(&row, "value")?;
                match get::<String>(&row, "name")?.as_str() {
                    "membership" => counters.membership = value,
                    "catalog" => counters.catalog = value,
                    "heads" => counters.heads = value,
                    _ => {}
                }
            }
            Ok(counters)
        })
        .await
    }
}

/// Takes the lock every change of the row set takes first.
async fn lock_membership(tx: &mut Transaction<'static, Any>, backend: Backend) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT value FROM counters WHERE name = 'membership' FOR UPDATE")
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn register(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    registration: &AgentRegistration,
) -> Result<Registered> {
    lock_membership(&mut tx, backend).await?;
    let now = catalog_now_ms(backend);
    let previous = sqlx::query("SELECT node_id FROM agents WHERE host = $1 AND port = $2")
        .bind(&registration.host)
        .bind(i64::from(registration.port))
        .fetch_optional(&mut *tx)
        .await?;
    let node_id = if let Some(row) = previous {
        // Our previous run: we hold its listening port now.
        let registered = to_i32(get(&row, "node_id")?, "node id")?;
        if let Some(requested) = registration.node_id.filter(|&id| id != registered) {
            return Err(CatalogError::AddressHasOtherNodeId {
                host: registration.host.clone(),
                port: registration.port,
                registered,
                requested,
            });
        }
        delete_agent(&mut tx, registered).await?;
        registered
    } else if let Some(requested) = registration.node_id {
        let holder = sqlx::query(AssertSqlSafe(format!(
            "SELECT host, port, CAST(CASE WHEN lease_expires_at_ms > {now} THEN 1 ELSE 0 END \
             AS BIGINT) AS live FROM agents WHERE node_id = $1"
        )))
        .bind(i64::from(requested))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(holder) = holder {
            if get::<i64>(&holder, "live")? == 1 {
                return Err(CatalogError::NodeIdInUse {
                    node_id: requested,
                    host: get(&holder, "host")?,
                    port: to_i32(get(&holder, "port")?, "port")?,
                });
            }
            // Its lease lapsed: the holder is dead or cut off, and will find its
            // row gone at its next renewal.
            delete_agent(&mut tx, requested).await?;
        }
        requested
    } else {
        smallest_free_node_id(&mut tx).await?
    };
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO agents (node_id, incarnation, host, port, zone, listeners, \
         registered_at_ms, lease_expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, {now}, {now} + $7)"
    )))
    .bind(i64::from(node_id))
    .bind(&registration.incarnation)
    .bind(&registration.host)
    .bind(i64::from(registration.port))
    .bind(registration.zone.as_deref())
    .bind(encode_endpoints(&registration.endpoints))
    .bind(registration.lease_ms)
    .execute(&mut *tx)
    .await?;
    let epoch = changes::bump(&mut tx, "membership").await?;
    tx.commit().await?;
    Ok(Registered { node_id, epoch })
}

/// The `listeners` column: Kafka's `advertised.listeners` form,
/// `LISTENER://HOST:PORT` joined by commas (no host has a comma).
fn encode_endpoints(endpoints: &[Endpoint]) -> String {
    endpoints
        .iter()
        .map(Endpoint::to_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads the `listeners` column; empty for a row written by an agent of a
/// version without it.
fn decode_endpoints(text: &str) -> Result<Vec<Endpoint>> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            Endpoint::parse(part).ok_or_else(|| {
                CatalogError::Corrupt(format!(
                    "agents.listeners holds '{part}', not LISTENER://HOST:PORT"
                ))
            })
        })
        .collect()
}

async fn delete_agent(tx: &mut Transaction<'static, Any>, node_id: i32) -> Result<()> {
    sqlx::query("DELETE FROM agents WHERE node_id = $1")
        .bind(i64::from(node_id))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The smallest non-negative id no row holds: a lone agent is node 0, and one
/// restarted after a clean shutdown gets its old id back.
async fn smallest_free_node_id(tx: &mut Transaction<'static, Any>) -> Result<i32> {
    let rows = sqlx::query("SELECT node_id FROM agents ORDER BY node_id")
        .fetch_all(&mut **tx)
        .await?;
    let mut candidate: i64 = 0;
    for row in rows {
        let taken: i64 = get(&row, "node_id")?;
        if taken > candidate {
            break;
        }
        if taken == candidate {
            candidate += 1;
        }
    }
    to_i32(candidate, "node id")
}

async fn renew(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    node_id: i32,
    incarnation: &str,
    lease_ms: i64,
    reap: bool,
) -> Result<Renewal> {
    let now = catalog_now_ms(backend);
    let renewed = sqlx::query(AssertSqlSafe(format!(
        "UPDATE agents SET lease_expires_at_ms = {now} + $1 \
         WHERE node_id = $2 AND incarnation = $3"
    )))
    .bind(lease_ms)
    .bind(i64::from(node_id))
    .bind(incarnation)
    .execute(&mut *tx)
    .await?;
    if renewed.rows_affected() == 0 {
        tx.commit().await?;
        return Ok(Renewal::Gone);
    }
    let mut reaped = Vec::new();
    if reap {
        let lapsed = sqlx::query(AssertSqlSafe(format!(
            "SELECT node_id FROM agents WHERE lease_expires_at_ms <= {now} LIMIT 1"
        )))
        .fetch_optional(&mut *tx)
        .await?;
        if lapsed.is_some() {
            lock_membership(&mut tx, backend).await?;
            let rows = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM agents WHERE lease_expires_at_ms <= {now} RETURNING node_id"
            )))
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                reaped.push(to_i32(get(&row, "node_id")?, "node id")?);
            }
            if !reaped.is_empty() {
                changes::bump(&mut tx, "membership").await?;
            }
        }
    }
    tx.commit().await?;
    Ok(Renewal::Renewed { reaped })
}

async fn deregister(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    node_id: i32,
    incarnation: &str,
) -> Result<()> {
    lock_membership(&mut tx, backend).await?;
    let deleted = sqlx::query("DELETE FROM agents WHERE node_id = $1 AND incarnation = $2")
        .bind(i64::from(node_id))
        .bind(incarnation)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() > 0 {
        changes::bump(&mut tx, "membership").await?;
    }
    // Released, so that the groups' next owners need not wait for anything.
    sqlx::query(
        "UPDATE group_leases SET owner_node_id = NULL, owner_incarnation = NULL \
         WHERE owner_incarnation = $1",
    )
    .bind(incarnation)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
