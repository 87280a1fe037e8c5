//! The [`ChangeCatalog`] of the SQL catalog: the heads changed since a point,
//! PostgreSQL's head notifications, and the counter bumps of changes.
//!
//! SQLite: every change of heads (a commit, DeleteRecords) bumps the `heads`
//! counter and stamps the rows it changes with the new value
//! (`partitions.change_seq`); SQLite has one writer at a time, so the values
//! become visible in order and a poller resuming after the last it saw misses
//! none. PostgreSQL: that counter would be one row locked by every agent's
//! commit, so it stays 0 there and agents notify each other instead, on
//! connections of their own, after their transactions (`NOTIFY` inside a
//! transaction takes a global lock at commit that would serialise every
//! agent's commits).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Any, Executor, Transaction};

use super::commit::{multi_row, placeholders, ROWS_PER_STATEMENT};
use super::rows::{get, to_i32, topic_id};
use super::{Backend, SqlCatalog};
use crate::catalog::{ChangeCatalog, HeadListener};
use crate::heads::{self, HeadCursor, HeadFeed, HeadUpdate};
use crate::{CatalogError, PartitionOffsets, Result, TopicId};

/// Bumps a counter inside a change's transaction and returns its new value.
pub(super) async fn bump(tx: &mut Transaction<'static, Any>, counter: &str) -> Result<i64> {
    let row = sqlx::query("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value")
        .bind(counter)
        .fetch_one(&mut **tx)
        .await?;
    super::rows::get(&row, "value")
}

/// Takes the next head change sequence number on SQLite, which the statements
/// after it write into the heads they change as `change_seq = ` [`HEAD_SEQ`].
/// Nothing on PostgreSQL, where `change_seq` stays 0.
pub(super) async fn next_head_seq(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
) -> Result<()> {
    match backend {
        Backend::Sqlite => bump(tx, "heads").await.map(|_| ()),
        Backend::Postgres => Ok(()),
    }
}

/// The current head change sequence number, as SQL.
pub(super) const HEAD_SEQ: &str = "(SELECT value FROM counters WHERE name = 'heads')";

/// PostgreSQL's notification connections: one pool (of one connection, made on
/// first use) to send, and the options to open a listener's own.
pub(super) struct Notifications {
    send: PgPool,
    options: PgConnectOptions,
}

impl Notifications {
    pub(super) fn new(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let send = PgPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // A lost notification costs a fallback poll at worst; not
                    // waiting for its WAL flush keeps notifications from
                    // queueing behind the data commits' flushes.
                    conn.execute("SET synchronous_commit = off").await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        Ok(Self { send, options })
    }

    pub(super) async fn close(&self) {
        self.send.close().await;
    }
}

impl fmt::Debug for Notifications {
    // The options hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Notifications")
    }
}

#[async_trait]
impl ChangeCatalog for SqlCatalog {
    fn head_feed(&self) -> HeadFeed {
        match self.backend {
            Backend::Sqlite => HeadFeed::Poll,
            Backend::Postgres => HeadFeed::Notify,
        }
    }

    async fn head_changes(
        &self,
        after: &HeadCursor,
        limit: u32,
    ) -> Result<(Vec<HeadUpdate>, HeadCursor)> {
        self.read("head_changes", |pool| async move {
            // The index on change_seq finds the first row; the rest of the
            // condition resumes inside a sequence number cut by the limit.
            let rows = sqlx::query(
                "SELECT topic_id, partition_index, next_offset, log_start_offset, change_seq \
                 FROM partitions \
                 WHERE change_seq >= $1 AND (change_seq > $1 OR topic_id > $2 \
                     OR (topic_id = $2 AND partition_index > $3)) \
                 ORDER BY change_seq, topic_id, partition_index LIMIT $4",
            )
            .bind(after.seq)
            .bind(after.topic.as_str())
            .bind(after.partition)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let mut cursor = after.clone();
            let mut updates = Vec::with_capacity(rows.len());
            for row in &rows {
                let topic: String = get(row, "topic_id")?;
                let partition: i64 = get(row, "partition_index")?;
                updates.push(head(row, &topic, partition)?);
                cursor = HeadCursor {
                    seq: get(row, "change_seq")?,
                    topic,
                    partition,
                };
            }
            Ok((updates, cursor))
        })
        .await
    }

    async fn heads(&self, partitions: &[(TopicId, i32)]) -> Result<Vec<HeadUpdate>> {
        let mut heads = Vec::with_capacity(partitions.len());
        for chunk in partitions.chunks(ROWS_PER_STATEMENT) {
            let keys: Vec<(String, i64)> = chunk
                .iter()
                .map(|(topic, partition)| (topic.to_string(), i64::from(*partition)))
                .collect();
            let rows = self
                .read("heads", |pool| {
                    let sql = format!(
                        "SELECT topic_id, partition_index, next_offset, log_start_offset \
                         FROM partitions WHERE (topic_id, partition_index) IN (VALUES {})",
                        placeholders(keys.len(), 2)
                    );
                    let mut query = multi_row(sql, keys.len());
                    for (topic, partition) in &keys {
                        query = query.bind(topic.as_str()).bind(*partition);
                    }
                    async move { Ok(query.fetch_all(pool).await?) }
                })
                .await?;
            for row in &rows {
                let topic: String = get(row, "topic_id")?;
                heads.push(head(row, &topic, get(row, "partition_index")?)?);
            }
        }
        Ok(heads)
    }

    async fn existing_topics(&self, topics: &[TopicId]) -> Result<Vec<TopicId>> {
        let mut existing = Vec::with_capacity(topics.len());
        for chunk in topics.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<String> = chunk.iter().map(TopicId::to_string).collect();
            let rows = self
                .read("existing_topics", |pool| {
                    let sql = format!(
                        "SELECT id FROM topics WHERE id IN (VALUES {})",
                        placeholders(ids.len(), 1)
                    );
                    let mut query = multi_row(sql, ids.len());
                    for id in &ids {
                        query = query.bind(id.as_str());
                    }
                    async move { Ok(query.fetch_all(pool).await?) }
                })
                .await?;
            for row in &rows {
                existing.push(topic_id(&get::<String>(row, "id")?)?);
            }
        }
        Ok(existing)
    }

    async fn notify_heads(&self, node_id: i32, updates: &[HeadUpdate]) -> Result<()> {
        let Some(notifications) = &self.notifications else {
            return Ok(());
        };
        for payload in heads::encode(node_id, updates) {
            let payload = payload.as_str();
            self.retrying("notify_heads", || async move {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(heads::CHANNEL)
                    .bind(payload)
                    .execute(&notifications.send)
                    .await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn listen_heads(&self) -> Result<Option<Box<dyn HeadListener>>> {
        let Some(notifications) = &self.notifications else {
            return Ok(None);
        };
        let listen = async {
            // A pool of its own: the listener keeps its connection for life and
            // replaces it from this pool if it is lost.
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_with(notifications.options.clone())
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection is reported, not silently replaced: the
            // notifications sent meanwhile are gone and the caller must catch up.
            listener.eager_reconnect(false);
            listener.listen(heads::CHANNEL).await?;
            Ok::<_, CatalogError>(listener)
        };
        let listener = tokio::time::timeout(self.timeout, listen)
            .await
            .map_err(|_| CatalogError::Timeout {
                operation: "listen_heads",
                after: self.timeout,
            })??;
        Ok(Some(Box::new(PgHeadListener { listener })))
    }

    async fn forget_cached_topics(&self) {
        self.topic_cache.forget_all();
    }
}

/// A row's head (columns topic_id, partition_index, next_offset,
/// log_start_offset), with its topic id text already read.
fn head(row: &sqlx::any::AnyRow, topic: &str, partition: i64) -> Result<HeadUpdate> {
    Ok(HeadUpdate {
        topic: topic_id(topic)?,
        partition: to_i32(partition, "partition index")?,
        offsets: PartitionOffsets {
            log_start_offset: get(row, "log_start_offset")?,
            high_watermark: get(row, "next_offset")?,
        },
    })
}

struct PgHeadListener {
    listener: PgListener,
}

#[async_trait]
impl HeadListener for PgHeadListener {
    async fn next(&mut self) -> Result<Vec<HeadUpdate>> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Err(CatalogError::Database(sqlx::Error::Io(
                    std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "head notification connection lost",
                    ),
                )));
            };
            // Another version's payloads are not for us.
            if let Some(updates) = heads::decode(notification.payload()) {
                return Ok(updates);
            }
        }
    }
}
