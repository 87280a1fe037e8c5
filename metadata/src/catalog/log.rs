//! The partitions' logs: their offsets, the objects committed to them and the
//! offset index that maps offset ranges to byte ranges of those objects.
//!
//! Invariants worth naming:
//! - `high_watermark` of a partition only grows, and only inside
//!   [`LogCatalog::commit_objects`], in the same transaction that inserts the
//!   index rows covering the new offsets. A reader never sees offsets without data.
//! - Index entries of one partition never overlap and leave no gaps between
//!   `log_start_offset` and `high_watermark`, except on compacted topics,
//!   where the log cleaner removes entries whose batches all went
//!   (`LifecycleCatalog::swap_cleaned`); a read then starts at the next entry.

use async_trait::async_trait;

use crate::{
    IndexEntry, NewObject, ObjectCommit, PartitionOffsets, Result, RunAppend, RunOutcome, TopicId,
};

#[async_trait]
pub trait LogCatalog: Send + Sync + 'static {
    /// `None` when the topic or the partition does not exist.
    async fn partition_offsets(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<PartitionOffsets>>;

    /// Records uploaded objects and appends their runs to their partitions, in ONE
    /// transaction: either every kept append of every run is in the index with
    /// its offsets assigned, or nothing is. Objects are applied in the order
    /// given, each object's runs in their order and each run's appends in
    /// theirs, so a partition's appends get ascending offsets in that order
    /// (callers sort each object's runs by topic and partition). The outcome at
    /// `[i][j]` belongs to `commits[i].runs[j]`.
    ///
    /// Idempotent appends are judged here, against their producers' windows as
    /// committed by any agent and as updated by the appends before them in the
    /// same call ([`crate::producers::check`]): a retry is answered as a
    /// [`crate::AppendOutcome::Duplicate`] of the original, an append out of
    /// sequence or of a fenced epoch is refused, and neither takes offsets.
    ///
    /// Several objects in one call is the write path's group commit: one
    /// transaction's fixed cost shared by every object uploaded meanwhile.
    async fn commit_objects(&self, commits: &[ObjectCommit]) -> Result<Vec<Vec<RunOutcome>>>;

    /// [`LogCatalog::commit_objects`] of a single object.
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

    /// The first index entry (lowest offsets) at or above the log start offset
    /// whose `max_timestamp >= timestamp`, if any.
    async fn first_entry_at_or_after_timestamp(
        &self,
        topic: TopicId,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<IndexEntry>>;

    /// Advances the partition's log start offset to `before_offset` (-1: the high
    /// watermark); never moves it back. `None` if there is no such partition;
    /// [`crate::CatalogError::OffsetBeyondHighWatermark`] if the offset is negative
    /// or beyond the high watermark. Returns the offsets after the change.
    async fn delete_records(
        &self,
        topic: TopicId,
        partition: i32,
        before_offset: i64,
    ) -> Result<Option<PartitionOffsets>>;
}
