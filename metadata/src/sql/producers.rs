//! Producer ids, epochs and the recent batches of idempotent producers: the
//! [`ProducerCatalog`] of the SQL catalog. The batches are judged and recorded
//! by the commit that appends them (`commit.rs`, `producer_windows.rs`), and
//! expired with the ids by `producer_expiry.rs`.
//!
//! A producer id's row (its epoch) is stamped with the catalog's clock
//! ([`catalog_now_ms`]), which its expiry compares with.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, AssertSqlSafe, Transaction};

use super::agents::catalog_now_ms;
use super::rows::{get, to_i32};
use super::{producer_expiry, Backend, SqlCatalog};
use crate::catalog::ProducerCatalog;
use crate::producers::{
    ExpiryCursor, ExpiryStep, ProducerBatch, ProducerIdentity, RECENT_BATCHES_KEPT,
};
use crate::{CatalogError, Result, TopicId};

#[async_trait]
impl ProducerCatalog for SqlCatalog {
    async fn init_producer(&self, existing: Option<ProducerIdentity>) -> Result<ProducerIdentity> {
        let backend = self.backend;
        self.write("init_producer", |tx| init_producer(tx, backend, existing))
            .await
    }

    async fn producer_batches(
        &self,
        topic: TopicId,
        partition: i32,
        producer_id: i64,
    ) -> Result<Vec<ProducerBatch>> {
        self.read("producer_batches", |pool| {
            recent_batches(pool, topic, partition, producer_id)
        })
        .await
    }

    async fn partition_producers(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Vec<ProducerBatch>> {
        self.read("partition_producers", |pool| {
            partition_producers(pool, topic, partition)
        })
        .await
    }

    async fn expire_producer_states(
        &self,
        expiration_ms: i64,
        from: &ExpiryCursor,
        limit: u32,
    ) -> Result<ExpiryStep> {
        let backend = self.backend;
        self.write("expire_producer_states", |tx| {
            producer_expiry::expire_states(tx, backend, expiration_ms, from, limit)
        })
        .await
    }

    async fn expire_producer_ids(&self, expiration_ms: i64, limit: u32) -> Result<u64> {
        let backend = self.backend;
        self.write("expire_producer_ids", |tx| {
            producer_expiry::expire_ids(tx, backend, expiration_ms, limit)
        })
        .await
    }
}

/// Kafka gives a producer a new id rather than let its epoch reach the maximum.
const LAST_USABLE_EPOCH: i16 = i16::MAX - 1;

async fn init_producer(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    existing: Option<ProducerIdentity>,
) -> Result<ProducerIdentity> {
    let identity = match existing {
        None => allocate(&mut tx, backend).await?,
        Some(current) => {
            // FOR UPDATE: the bump and the expiry of this row take turns on
            // PostgreSQL (SQLite's write lock already serialises them).
            let lock = match backend {
                Backend::Postgres => " FOR UPDATE",
                Backend::Sqlite => "",
            };
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT epoch FROM producers WHERE producer_id = $1{lock}"
            )))
            .bind(current.producer_id)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None if handed_out(&mut tx, current.producer_id).await? => {
                    // Expired (producer_expiry.rs): Kafka answers every
                    // InitProducerId without a transactional id with a new id.
                    allocate(&mut tx, backend).await?
                }
                None => return Err(CatalogError::UnknownProducer(current.producer_id)),
                Some(row) => {
                    let stored: i64 = get(&row, "epoch")?;
                    if stored != i64::from(current.epoch) {
                        return Err(CatalogError::ProducerFenced {
                            producer_id: current.producer_id,
                            epoch: current.epoch,
                        });
                    }
                    if current.epoch >= LAST_USABLE_EPOCH {
                        allocate(&mut tx, backend).await?
                    } else {
                        bump(&mut tx, backend, current).await?
                    }
                }
            }
        }
    };
    tx.commit().await?;
    Ok(identity)
}

/// Whether `producer_id` was ever handed out: ids are handed out in order and
/// never again, so every id below the next one was.
async fn handed_out(tx: &mut Transaction<'static, Any>, producer_id: i64) -> Result<bool> {
    let row = sqlx::query("SELECT next_producer_id FROM producer_ids WHERE singleton = 1")
        .fetch_one(&mut **tx)
        .await?;
    Ok((0..get::<i64>(&row, "next_producer_id")?).contains(&producer_id))
}

async fn bump(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    current: ProducerIdentity,
) -> Result<ProducerIdentity> {
    let bumped = ProducerIdentity {
        producer_id: current.producer_id,
        epoch: current.epoch + 1,
    };
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE producers SET epoch = $1, updated_at_ms = {} WHERE producer_id = $2",
        catalog_now_ms(backend)
    )))
    .bind(i64::from(bumped.epoch))
    .bind(bumped.producer_id)
    .execute(&mut **tx)
    .await?;
    Ok(bumped)
}

async fn allocate(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
) -> Result<ProducerIdentity> {
    let row = sqlx::query(
        "UPDATE producer_ids SET next_producer_id = next_producer_id + 1 \
         WHERE singleton = 1 RETURNING next_producer_id",
    )
    .fetch_one(&mut **tx)
    .await?;
    let producer_id = get::<i64>(&row, "next_producer_id")? - 1;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO producers (producer_id, epoch, updated_at_ms) VALUES ($1, 0, {})",
        catalog_now_ms(backend)
    )))
    .bind(producer_id)
    .execute(&mut **tx)
    .await?;
    Ok(ProducerIdentity {
        producer_id,
        epoch: 0,
    })
}

/// The producer's newest batches on a partition, oldest first.
async fn recent_batches(
    pool: &AnyPool,
    topic: TopicId,
    partition: i32,
    producer_id: i64,
) -> Result<Vec<ProducerBatch>> {
    let rows = sqlx::query(
        "SELECT producer_id, epoch, first_sequence, last_sequence, base_offset, append_time_ms \
         FROM producer_batches \
         WHERE topic_id = $1 AND partition_index = $2 AND producer_id = $3 \
         ORDER BY base_offset DESC LIMIT $4",
    )
    .bind(topic.to_string())
    .bind(i64::from(partition))
    .bind(producer_id)
    .bind(RECENT_BATCHES_KEPT as i64)
    .fetch_all(pool)
    .await?;
    let mut batches = rows
        .iter()
        .map(batch_from_row)
        .collect::<Result<Vec<_>>>()?;
    batches.reverse();
    Ok(batches)
}

/// The newest batch of every producer that wrote to the partition, by producer id.
async fn partition_producers(
    pool: &AnyPool,
    topic: TopicId,
    partition: i32,
) -> Result<Vec<ProducerBatch>> {
    let rows = sqlx::query(
        "SELECT b.producer_id, b.epoch, b.first_sequence, b.last_sequence, b.base_offset, \
                b.append_time_ms \
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
    rows.iter().map(batch_from_row).collect()
}

/// Columns: producer_id, epoch, first_sequence, last_sequence, base_offset,
/// append_time_ms.
pub(super) fn batch_from_row(row: &AnyRow) -> Result<ProducerBatch> {
    let epoch: i64 = get(row, "epoch")?;
    Ok(ProducerBatch {
        producer_id: get(row, "producer_id")?,
        epoch: i16::try_from(epoch)
            .map_err(|_| CatalogError::Corrupt(format!("epoch {epoch} out of range")))?,
        first_sequence: to_i32(get(row, "first_sequence")?, "sequence")?,
        last_sequence: to_i32(get(row, "last_sequence")?, "sequence")?,
        base_offset: get(row, "base_offset")?,
        append_time_ms: get(row, "append_time_ms")?,
    })
}
