//! Idempotent producers: their ids and epochs, the batches they appended, and
//! the expiry of both once idle (Kafka's `producer.id.expiration.ms`).

use async_trait::async_trait;

use crate::producers::{ExpiryCursor, ExpiryStep, ProducerBatch, ProducerIdentity};
use crate::{Result, TopicId};

#[async_trait]
pub trait ProducerCatalog: Send + Sync + 'static {
    /// Hands out a new producer id with epoch 0 (`existing` = None), or bumps the
    /// epoch of `existing` if its epoch is the current one
    /// ([`crate::CatalogError::ProducerFenced`] if not,
    /// [`crate::CatalogError::UnknownProducer`] if the id was never handed out).
    /// An `existing` id whose record has expired gets a new id, as every
    /// InitProducerId without a transactional id does in Kafka. Ids are never
    /// handed out twice.
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

    /// One step of expiring idle producers' state, by the catalog's clock: looks
    /// at up to `limit` recorded batches committed at least `expiration_ms` ago,
    /// in commit order from `from`, and removes whole the state (every batch) of
    /// each (partition, producer) among them whose newest batch is that old
    /// too. Such a producer is then one the partition has never seen: a retry
    /// of one of its earlier batches is appended again and any sequence is
    /// accepted, as in Kafka once it expired a producer. Each step is one short
    /// transaction; a pass is steps until [`ExpiryStep::next`] is `None`.
    async fn expire_producer_states(
        &self,
        expiration_ms: i64,
        from: &ExpiryCursor,
        limit: u32,
    ) -> Result<ExpiryStep>;

    /// Forgets up to `limit` producer ids handed out or bumped at least
    /// `expiration_ms` ago by the catalog's clock (their epoch, kept for
    /// InitProducerId's epoch bump; their batches expire on their own). Returns
    /// how many went.
    async fn expire_producer_ids(&self, expiration_ms: i64, limit: u32) -> Result<u64>;
}
