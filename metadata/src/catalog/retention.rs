//! Retention by time and size, and the retained sizes of partitions and topics
//! (the values are in [`crate::retention`]).

use async_trait::async_trait;

use crate::compaction::{Shards, StoredObject};
use crate::retention::{PartitionSize, RetentionMove, RetentionRule, TopicUsage};
use crate::{Result, TopicId};

#[async_trait]
pub trait RetentionCatalog: Send + Sync + 'static {
    /// Applies `rule` to every partition of its topic in ONE transaction, the
    /// partition rows locked first (as committers and DeleteRecords lock
    /// them): each log start moves to the first index entry the rule keeps, or
    /// to the high watermark when it keeps none; never backwards, never past
    /// the high watermark. Returns the partitions whose log start moved.
    async fn apply_retention(&self, rule: &RetentionRule) -> Result<Vec<RetentionMove>>;

    /// The retained size of every partition of `topic`, or of every topic when
    /// `None`, ordered by topic and partition.
    async fn partition_sizes(&self, topic: Option<TopicId>) -> Result<Vec<PartitionSize>>;

    /// Retained bytes and the objects holding them, per topic with any.
    async fn topic_usage(&self) -> Result<Vec<TopicUsage>>;

    /// Live objects of at least `min_size_bytes` in one of `shards` that still
    /// hold retained entries, but fewer than half their size in bytes: what
    /// retention (or DeleteRecords) left of an object shared with partitions
    /// that keep theirs. Compaction rewrites them to free the rest. In commit
    /// order, at most `limit`.
    async fn sparse_live_objects(
        &self,
        min_size_bytes: i64,
        shards: Shards,
        limit: u32,
    ) -> Result<Vec<StoredObject>>;
}
