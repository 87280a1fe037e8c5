//! Producer ids, epochs and the recent batches of idempotent producers.

use sqlx::{Any, AnyPool, Transaction};

use super::rows::{get, now_ms};
use super::SqlCatalog;
use crate::producers::{ProducerBatch, ProducerIdentity, RECENT_BATCHES_KEPT};
use crate::{CatalogError, Result, TopicId};

/// Kafka gives a producer a new id rather than let its epoch reach the maximum.
const LAST_USABLE_EPOCH: i16 = i16::MAX - 1;

pub(super) async fn init_producer(
    catalog: &SqlCatalog,
    existing: Option<ProducerIdentity>,
) -> Result<ProducerIdentity> {
    let mut tx = catalog.begin_write().await?;
    let identity = match existing {
        None => allocate(&mut tx).await?,
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
                allocate(&mut tx).await?
            } else {
                let bumped = ProducerIdentity {
                    producer_id: current.producer_id,
                    epoch: current.epoch + 1,
                };
                sqlx::query(
                    "UPDATE producers SET epoch = $1, updated_at_ms = $2 WHERE producer_id = $3",
                )
                .bind(i64::from(bumped.epoch))
                .bind(now_ms())
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

async fn allocate(tx: &mut Transaction<'static, Any>) -> Result<ProducerIdentity> {
    let row = sqlx::query(
        "UPDATE producer_ids SET next_producer_id = next_producer_id + 1 \
         WHERE singleton = 1 RETURNING next_producer_id",
    )
    .fetch_one(&mut **tx)
    .await?;
    let producer_id = get::<i64>(&row, "next_producer_id")? - 1;
    sqlx::query("INSERT INTO producers (producer_id, epoch, updated_at_ms) VALUES ($1, 0, $2)")
        .bind(producer_id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(ProducerIdentity {
        producer_id,
        epoch: 0,
    })
}

/// The producer's newest batches on a partition, oldest first.
pub(super) async fn recent_batches(
    pool: &AnyPool,
    topic: TopicId,
    partition: i32,
    producer_id: i64,
) -> Result<Vec<ProducerBatch>> {
    let rows = sqlx::query(
        "SELECT epoch, first_sequence, last_sequence, base_offset FROM producer_batches \
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
        .map(|row| {
            Ok(ProducerBatch {
                producer_id,
                epoch: narrow(get(row, "epoch")?, "epoch")?,
                first_sequence: narrow(get(row, "first_sequence")?, "sequence")?,
                last_sequence: narrow(get(row, "last_sequence")?, "sequence")?,
                base_offset: get(row, "base_offset")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    batches.reverse();
    Ok(batches)
}

fn narrow<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T> {
    T::try_from(value).map_err(|_| CatalogError::Corrupt(format!("{what} {value} out of range")))
}
