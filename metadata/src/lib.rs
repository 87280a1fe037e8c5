//! The StreamHouse catalog: everything an agent must agree on with every other
//! agent, kept in a SQL database (SQLite for the embedded default, PostgreSQL in
//! production).
//!
//! It owns topics and their configs, partitions with their offsets, the objects
//! in the store and the offset index that maps offset ranges to byte ranges of
//! those objects. It knows nothing of sockets or Kafka requests: callers speak in
//! topics, partitions, offsets and object keys.
//!
//! Invariants worth naming:
//! - `high_watermark` of a partition only grows, and only inside
//!   [`Catalog::commit_objects`], in the same transaction that inserts the index
//!   rows covering the new offsets. A reader never sees offsets without data.
//! - Index entries of one partition never overlap and leave no gaps between
//!   `log_start_offset` and `high_watermark`.

pub mod cache;
pub mod compaction;
mod error;
pub mod groups;
mod model;
pub mod producers;
pub mod sql;

pub use cache::CachedCatalog;
pub use error::{CatalogError, Result};
pub use model::{
    IndexEntry, NewObject, NewTopic, ObjectCommit, PartitionOffsets, RunAppend, RunOutcome, Topic,
    TopicId,
};
pub use sql::{Backend, SqlCatalog};

use std::sync::Arc;

use async_trait::async_trait;

/// Opens the catalog at `url` the way the broker uses it: the SQL catalog (migrated to
/// the current schema) behind the topic-lookup cache.
///
/// Accepted URLs: `sqlite://path/to/file.db` (file and parent directory created if
/// missing), `sqlite::memory:` (private to this process, for tests) and
/// `postgres://user[:password]@host[:port]/database`. Anything else is
/// [`CatalogError::InvalidUrl`].
pub async fn open(url: &str) -> Result<Arc<dyn Catalog>> {
    let catalog = SqlCatalog::connect(url).await?;
    Ok(Arc::new(CachedCatalog::new(catalog)))
}

/// The catalog as the broker and the storage layer use it.
///
/// One implementation serves both databases (see the `sql` module); the moka
/// layer in the `cache` module sits in front of the lookups the hot paths make.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// The cluster's id, created by the first agent to ask and the same for every
    /// agent and every restart after that.
    async fn cluster_id(&self) -> Result<String>;

    /// Creates a topic with `partition_count` partitions, each starting at offset 0.
    /// Fails with [`CatalogError::TopicAlreadyExists`] if the name is taken.
    async fn create_topic(&self, topic: &NewTopic) -> Result<Topic>;

    /// Deletes a topic, its partitions and its index entries. Objects shared with
    /// other topics stay; unreferenced ones are left for garbage collection.
    /// Fails with [`CatalogError::UnknownTopic`] if there is no such topic.
    async fn delete_topic(&self, name: &str) -> Result<Topic>;

    async fn topic_by_name(&self, name: &str) -> Result<Option<Topic>>;

    async fn topic_by_id(&self, id: TopicId) -> Result<Option<Topic>>;

    /// All topics, ordered by name.
    async fn list_topics(&self) -> Result<Vec<Topic>>;

    /// `None` when the topic or the partition does not exist.
    async fn partition_offsets(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<PartitionOffsets>>;

    /// Records uploaded objects and appends their runs to their partitions, in ONE
    /// transaction: either every run of every object is in the index with its
    /// offsets assigned, or none is. Objects are applied in the order given and
    /// each object's runs in their order, so a partition's runs get ascending
    /// offsets in that order (callers sort each object's runs by topic and
    /// partition). The outcome at `[i][j]` belongs to `commits[i].runs[j]`.
    ///
    /// Several objects in one call is the write path's group commit: one
    /// transaction's fixed cost shared by every object uploaded meanwhile.
    async fn commit_objects(&self, commits: &[ObjectCommit]) -> Result<Vec<Vec<RunOutcome>>>;

    /// [`Catalog::commit_objects`] of a single object.
    async fn commit_object(
        &self,
        object: &NewObject,
        runs: &[RunAppend],
    ) -> Result<Vec<RunOutcome>> {
        let commit = ObjectCommit {
            object: object.clone(),
            runs: runs.to_vec(),
        };
        let mut outcomes = self.commit_objects(&[commit]).await?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    /// Index entries of a partition whose `last_offset >= from_offset`, in offset
    /// order, at most `limit` of them. One indexed query; never a scan of history.
    async fn index_entries(
        &self,
        topic: TopicId,
        partition: i32,
        from_offset: i64,
        limit: u32,
    ) -> Result<Vec<IndexEntry>>;

    /// Hands out a new producer id with epoch 0 (`existing` = None), or bumps the
    /// epoch of `existing` if its epoch is the current one
    /// ([`CatalogError::ProducerFenced`] if not, [`CatalogError::UnknownProducer`]
    /// if the id was never handed out).
    async fn init_producer(
        &self,
        existing: Option<producers::ProducerIdentity>,
    ) -> Result<producers::ProducerIdentity>;

    /// The newest (at most [`producers::RECENT_BATCHES_KEPT`]) batches a producer
    /// appended to a partition, oldest first.
    async fn producer_batches(
        &self,
        topic: TopicId,
        partition: i32,
        producer_id: i64,
    ) -> Result<Vec<producers::ProducerBatch>>;

    /// The first index entry (lowest offsets) at or above the log start offset
    /// whose `max_timestamp >= timestamp`, if any.
    async fn first_entry_at_or_after_timestamp(
        &self,
        topic: TopicId,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<IndexEntry>>;

    /// Stores committed offsets of a group, overwriting earlier ones of the same
    /// partitions, in one transaction. Callers check that the partitions exist.
    async fn commit_offsets(&self, group_id: &str, commits: &[groups::OffsetCommit]) -> Result<()>;

    /// Every committed offset of a group, ordered by topic and partition.
    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<groups::CommittedOffset>>;

    /// Forgets the committed offsets of these (topic, partition) pairs.
    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()>;

    /// Replaces the stored state of a group (its row and all its members).
    async fn store_group(&self, group: &groups::StoredGroup) -> Result<()>;

    /// Every stored group, ordered by id, members ordered by member id.
    async fn load_groups(&self) -> Result<Vec<groups::StoredGroup>>;

    /// Deletes a group's stored state and all its committed offsets.
    async fn delete_group(&self, group_id: &str) -> Result<()>;

    /// Replaces a topic's configs with what `update` makes of the current ones, in
    /// one transaction (concurrent updates of the topic take turns). `update`
    /// refusing is [`CatalogError::InvalidConfig`]; no topic, [`CatalogError::UnknownTopic`].
    async fn update_topic_configs(
        &self,
        name: &str,
        update: sql::ConfigUpdate<'_>,
    ) -> Result<Topic>;

    /// Grows a topic to `partition_count` partitions, the new ones empty.
    /// [`CatalogError::PartitionCountNotIncreased`] unless it is an increase.
    async fn add_partitions(&self, name: &str, partition_count: i32) -> Result<Topic>;

    /// Advances the partition's log start offset to `before_offset` (-1: the high
    /// watermark); never moves it back. `None` if there is no such partition;
    /// [`CatalogError::OffsetBeyondHighWatermark`] if the offset is negative or
    /// beyond the high watermark. Returns the offsets after the change.
    async fn delete_records(
        &self,
        topic: TopicId,
        partition: i32,
        before_offset: i64,
    ) -> Result<Option<PartitionOffsets>>;

    /// The newest recorded batch of each idempotent producer of the partition,
    /// ordered by producer id.
    async fn partition_producers(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Vec<producers::ProducerBatch>>;

    /// Live objects smaller than `max_size_bytes`, in commit order (lowest id
    /// first), at most `limit`: the candidates for compaction.
    async fn small_live_objects(
        &self,
        max_size_bytes: i64,
        limit: u32,
    ) -> Result<Vec<compaction::StoredObject>>;

    /// Every index entry pointing into one of `objects`, ordered by topic,
    /// partition and offset, with its partition's log start offset.
    async fn object_entries(&self, objects: &[i64]) -> Result<Vec<compaction::ObjectEntry>>;

    /// Replaces index entries by those of a compacted object, in ONE transaction:
    /// inserts the object, and for each partition still present deletes the source
    /// entries (each must still be in the index exactly as given, or nothing
    /// changes and the answer is [`compaction::SwapOutcome::Conflict`]) and inserts
    /// the new ones; partitions that no longer exist are skipped (their entries went
    /// with them). Finally marks the source objects `deleting`.
    async fn swap_compacted(
        &self,
        swap: &compaction::CompactionSwap,
    ) -> Result<compaction::SwapOutcome>;

    /// Deletes up to `limit` index entries that lie wholly below their partition's
    /// log start offset (after DeleteRecords). Returns how many went.
    async fn drop_entries_below_log_start(&self, limit: u32) -> Result<u64>;

    /// Marks `deleting` (since `now_ms`) up to `limit` live objects created before
    /// `created_before_ms` that no index entry points into. An object is committed
    /// in the same transaction as its entries, so such an object is dead: its topic
    /// was deleted or its entries trimmed. Returns how many were marked.
    async fn mark_unreferenced_objects(
        &self,
        created_before_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<u64>;

    /// Objects `deleting` since before `deleting_before_ms`, oldest first, at most
    /// `limit`: ready to be removed from the store.
    async fn objects_to_delete(
        &self,
        deleting_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<compaction::StoredObject>>;

    /// Removes the rows of these objects (only those in state `deleting`), once
    /// they are gone from the store. Returns how many were removed.
    async fn forget_objects(&self, objects: &[i64]) -> Result<u64>;
}
