//! Producer ids, epochs and the recent batches of idempotent producers: the
//! [`ProducerCatalog`] of the SQL catalog. The batches are judged and recorded
//! by the commit that appends them (`commit.rs`, `producer_windows.rs`).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Transaction};

use super::rows::{get, to_i32};
use super::SqlCatalog;
use crate::catalog::ProducerCatalog;
use crate::producers::{ProducerBatch, ProducerIdentity, RECENT_BATCHES_KEPT};
use crate::{CatalogError, Result, TopicId};

#[async_trait]
impl ProducerCatalog for SqlCatalog {
    async fn init_producer(&self, existing: Option<ProducerIdentity>) -> Result<ProducerIdentity> {
        self.write("init_producer", |tx| {
            init_producer(tx, existing, self.clock.now_ms())
        })
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
}

/// Kafka gives a producer a new id rather than let its epoch reach the maximum.
const LAST_USABLE_EPOCH: i16 = i16::MAX - 1;

async fn init_producer(
    mut tx: Transaction<'static, Any>,
    existing: Option<ProducerIdentity>,
    now_ms: i64,
) -> Result<ProducerIdentity> {
    let identity = match existing {
        None => allocate(&mut tx, now_ms).await?,
        Some(current) => {
            let row = sqlx::query("SELECT epoch FROM producers WHERE producer_id = $1")
                .bind(current.producer_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(CatalogError::UnknownProducer(current.producer_id));
            };
            let stored: i64 = get(&row, "epoch")?;
            if stored != i64::from(current.epoch) {
                return Err(CatalogError::ProducerFenced {
                    producer_id: current.producer_id,
                    epoch: current.epoch,
                });
            }
            if current.epoch >= LAST_USABLE_EPOCH {
                allocate(&mut tx, now_ms).await?
            } else {
                let bumped = ProducerIdentity {
                    producer_id: current.producer_id,
                    epoch: current.epoch + 1,
                };
                sqlx::query(
                    "UPDATE producers SET epoch = $1, updated_at_ms = $2 WHERE producer_id = $3",
                )
                .bind(i64::from(bumped.epoch))
                .bind(now_ms)
                .bind(bumped.producer_id)
                .execute(&mut *tx)
                .await?;
                bumped
            }
        }
    };
    tx.commit().await?;
    Ok(identity)
}

async fn allocate(tx: &mut Transaction<'static, Any>, now_ms: i64) -> Result<ProducerIdentity> {
    let row = sqlx::query(
        "UPDATE producer_ids SET next_producer_id = next_producer_id + 1 \
         WHERE singleton = 1 RETURNING next_producer_id",
    )
    .fetch_one(&mut **tx)
    .await?;
    let producer_id = get::<i64>(&row, "next_producer_id")? - 1;
    sqlx::query("INSERT INTO producers (producer_id, epoch, updated_at_ms) VALUES ($1, 0, $2)")
        .bind(producer_id)
        .bind(now_ms)
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
