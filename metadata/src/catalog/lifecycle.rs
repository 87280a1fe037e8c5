//! The objects' life after their commit: compaction of small objects into large
//! ones, and the garbage collection of objects nothing points into any more (the
//! values and the states an object goes through are in [`crate::compaction`]).

use std::collections::HashSet;

use async_trait::async_trait;

use crate::compaction::{
    CleanerView, CleaningSwap, CompactionSwap, ObjectEntry, Shards, StoredObject, SwapOutcome,
};
use crate::Result;
use crate::TopicId;

#[async_trait]
pub trait LifecycleCatalog: Send + Sync + 'static {
    /// Live objects smaller than `max_size_bytes` in one of `shards`, in commit
    /// order (lowest id first), at most `limit`: the candidates for compaction.
    async fn small_live_objects(
        &self,
        max_size_bytes: i64,
        shards: Shards,
        limit: u32,
    ) -> Result<Vec<StoredObject>>;

    /// Every index entry pointing into one of `objects`, ordered by topic,
    /// partition and offset, with its partition's log start offset.
    async fn object_entries(&self, objects: &[i64]) -> Result<Vec<ObjectEntry>>;

    /// Replaces index entries by those of a compacted object, in ONE transaction:
    /// inserts the object, and for each partition still present deletes the source
    /// entries (each must still be in the index exactly as given, or nothing
    /// changes and the answer is [`SwapOutcome::Conflict`]) and inserts the new
    /// ones; partitions that no longer exist are skipped (their entries went with
    /// them). Finally marks the source objects `deleting`.
    async fn swap_compacted(&self, swap: &CompactionSwap) -> Result<SwapOutcome>;

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
    ) -> Result<Vec<StoredObject>>;

    /// Removes the rows of these objects (only those in state `deleting`), once
    /// they are gone from the store. Returns how many were removed.
    async fn forget_objects(&self, objects: &[i64]) -> Result<u64>;

    /// Which of these object keys the catalog has a row for, in any state. A
    /// key in the store but not here is an orphan: its upload's commit failed
    /// or never happened, or its swap lost.
    async fn known_object_keys(&self, keys: &[String]) -> Result<HashSet<String>>;

    /// The log cleaner's view of a partition: its offsets, its cleaned-up-to
    /// offset, and up to `limit` index entries from its log start on, in offset
    /// order. `None` if there is no such partition.
    async fn cleaner_view(
        &self,
        topic: TopicId,
        partition: i32,
        limit: u32,
    ) -> Result<Option<CleanerView>>;

    /// Replaces a partition's cleaned entries, in ONE transaction: inserts the
    /// object (if any), locks the partition row, deletes every source entry
    /// (each must still be in the index exactly as given, or nothing changes
    /// and the answer is [`SwapOutcome::Conflict`]), inserts the new entries
    /// and raises the partition's cleaned-up-to offset. A partition that no
    /// longer exists is a conflict too. The source objects stay `live`: other
    /// partitions' entries may point into them; garbage collection retires
    /// them once nothing does.
    async fn swap_cleaned(&self, swap: &CleaningSwap) -> Result<SwapOutcome>;
}
