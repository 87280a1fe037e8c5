//! Values of compaction and garbage collection: which objects exist, which index
//! entries point into them, and the swap that replaces many small objects' entries
//! with one new object's.
//!
//! An object's life: `live` from the transaction that commits it with its index
//! entries, `deleting` once no entry points into it (its entries were moved by a
//! compaction, or its topic was deleted), then removed from the store and from the
//! catalog after a grace period, so that a fetch that read an entry just before
//! the swap can still read the old object.

use crate::{NewObject, TopicId};

/// An object row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub id: i64,
    pub key: String,
    pub size_bytes: i64,
    /// Wall-clock milliseconds of its commit.
    pub created_at_ms: i64,
}

/// An index entry as compaction sees it: where it points and the log start of its
/// partition (entries wholly below it are dropped, not copied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    pub topic: TopicId,
    pub partition: i32,
    pub base_offset: i64,
    /// Inclusive.
    pub last_offset: i64,
    pub object_id: i64,
    pub position: i64,
    pub length: i64,
    pub max_timestamp: i64,
    pub running_max_timestamp: i64,
    pub log_start_offset: i64,
}

/// An entry of the new object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactedEntry {
    pub base_offset: i64,
    /// Inclusive.
    pub last_offset: i64,
    pub position: i64,
    pub length: i64,
    pub max_timestamp: i64,
    /// The last merged part's: it is already the running maximum of everything
    /// before it, so the column stays non-decreasing with the offset.
    pub running_max_timestamp: i64,
}

/// What a swap does to one partition: remove its entries in the source
/// objects, insert `entries`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSwap {
    pub topic: TopicId,
    pub partition: i32,
    /// How many of the partition's entries pointed into the source objects
    /// when they were read. The swap goes through only if the sources still
    /// hold that many: an object's entries are only ever removed after its
    /// commit, never added, so an equal count means the same entries.
    pub source_entries: usize,
    pub entries: Vec<CompactedEntry>,
}

/// One compaction, applied by [`crate::LifecycleCatalog::swap_compacted`] in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionSwap {
    /// The uploaded object holding the new entries' bytes.
    pub object: NewObject,
    /// In (topic, partition) order, the order committers lock partitions in.
    pub partitions: Vec<PartitionSwap>,
    /// Marked `deleting` by the swap: every entry pointing into them is a source.
    pub source_objects: Vec<i64>,
    /// Wall-clock milliseconds, recorded as the sources' `deleting_since_ms`.
    pub now_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The new object is live with its entries; the sources are `deleting`.
    Swapped,
    /// A source entry was no longer in the index as read (another agent compacted
    /// or trimmed it first). Nothing changed; the caller deletes its new object.
    Conflict,
}
