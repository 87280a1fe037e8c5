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

/// An index entry of one partition as the log cleaner reads it: where it
/// points (object id and key) and what it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionEntry {
    pub base_offset: i64,
    /// Inclusive.
    pub last_offset: i64,
    pub object_id: i64,
    pub object_key: String,
    pub position: i64,
    pub length: i64,
    pub max_timestamp: i64,
    pub running_max_timestamp: i64,
}

/// A partition's log as the cleaner starts from: its offsets, how far it was
/// cleaned, and its index entries from the log start on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanerView {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Offsets below it have been cleaned (the clean section); 0 before the
    /// first cleaning.
    pub cleaned_offset: i64,
    /// Bytes of runs the last cleaning left in the clean section (0 before
    /// the first); the small-object compactor copies runs unchanged, so it
    /// holds until the next cleaning or a trim.
    pub cleaned_bytes: i64,
    /// The end of the range the last cleaning looked at (0 before the first):
    /// at or beyond `cleaned_offset`, the gap being the batch holding the
    /// last record then, left as it was.
    pub cleaner_limit: i64,
    /// When the earliest tombstone the last cleaning kept is older than
    /// `delete.retention.ms` (ms since the epoch); [`NO_TOMBSTONES`] if it
    /// kept none.
    pub tombstones_expire_at_ms: i64,
    /// In offset order, at most the limit asked for.
    pub entries: Vec<PartitionEntry>,
}

/// One cleaning of one partition, applied by
/// [`crate::LifecycleCatalog::swap_cleaned`] in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleaningSwap {
    pub topic: TopicId,
    pub partition: i32,
    /// The uploaded object holding the new entries' bytes; `None` when no
    /// record of the cleaned entries is kept.
    pub object: Option<NewObject>,
    /// Every entry of the cleaned range, exactly as read: the swap goes
    /// through only if all are still in the index as they were.
    pub sources: Vec<PartitionEntry>,
    /// The entries replacing them, positions in `object`; fewer and smaller,
    /// with gaps where whole batches went.
    pub entries: Vec<CompactedEntry>,
    /// The partition's new cleaned-up-to offset (it never moves back), and
    /// the bytes of the clean section below it after this cleaning.
    pub cleaned_offset: i64,
    pub cleaned_bytes: i64,
    /// The end of the range this cleaning looked at, and when the earliest
    /// tombstone it kept expires ([`NO_TOMBSTONES`] if none).
    pub cleaner_limit: i64,
    pub tombstones_expire_at_ms: i64,
}

/// `tombstones_expire_at_ms` of a clean section holding no tombstone.
pub const NO_TOMBSTONES: i64 = i64::MAX;

/// A set of compaction shards. Objects are split into [`Shards::COUNT`] shards
/// by id, 1024 consecutive ids to a shard in turn, so that objects compacted
/// together hold records of similar age; with several agents each compacts the
/// shards placed on it, and none compacts the same objects as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shards(u16);

impl Shards {
    pub const COUNT: u32 = 16;
    /// Consecutive object ids kept in one shard.
    pub const RUN: i64 = 1024;
    pub const ALL: Shards = Shards(u16::MAX);
    pub const NONE: Shards = Shards(0);

    /// The shards `owned` says are in the set.
    pub fn from_fn(owned: impl Fn(u32) -> bool) -> Shards {
        Shards(
            (0..Self::COUNT)
                .filter(|&s| owned(s))
                .fold(0, |set, s| set | (1 << s)),
        )
    }

    pub fn contains(self, shard: u32) -> bool {
        shard < Self::COUNT && self.0 & (1 << shard) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    /// The members, ascending.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..Self::COUNT).filter(move |&s| self.contains(s))
    }

    /// The shard object `id` belongs to.
    pub fn of(id: i64) -> u32 {
        // rem_euclid: ids are positive, but a negative one must not panic.
        (id / Self::RUN).rem_euclid(i64::from(Self::COUNT)) as u32
    }
}

#[cfg(test)]
mod shard_tests {
    use super::Shards;

    #[test]
    fn ids_fall_into_shards_in_runs_of_1024() {
        assert_eq!(Shards::of(0), 0);
        assert_eq!(Shards::of(1023), 0);
        assert_eq!(Shards::of(1024), 1);
        assert_eq!(Shards::of(16 * 1024), 0);
        let odd = Shards::from_fn(|s| s % 2 == 1);
        assert_eq!(
            odd.iter().collect::<Vec<_>>(),
            vec![1, 3, 5, 7, 9, 11, 13, 15]
        );
        assert!(odd.contains(Shards::of(1024)) && !odd.contains(Shards::of(0)));
        assert!(Shards::from_fn(|_| true).is_all());
        assert!(Shards::from_fn(|_| false).is_empty());
    }
}
