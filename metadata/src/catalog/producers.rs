//! Idempotent producers: their ids and epochs, and the batches they appended.

use async_trait::async_trait;

use crate::producers::{ProducerBatch, ProducerIdentity};
use crate::{Result, TopicId};

#[async_trait]
pub trait ProducerCatalog: Send + Sync + 'static {
    /// Hands out a new producer id with epoch 0 (`existing` = None), or bumps the
    /// epoch of `existing` if its epoch is the current one
    /// ([`crate::CatalogError::ProducerFenced`] if not,
    /// [`crate::CatalogError::UnknownProducer`] if the id was never handed out).
    async fn init_producer(&self, existing: Option<ProducerIdentity>) -> Result<ProducerIdentity>;

    /// The newest (at most [`crate::producers::RECENT_BATCHES_KEPT`]) batches a producer appended to
    /// a partition, oldest first.
    async fn producer_batches(
        &self,
        topic: TopicId,
        partition: i32,
        producer_id: i64,
    ) -> Result<Vec<ProducerBatch>>;

    /// The newest recorded batch of each idempotent producer of the partition,
    /// ordered by producer id.
    async fn partition_producers(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Vec<ProducerBatch>>;
}
