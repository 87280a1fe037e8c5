//! Values of retention (`retention.ms`, `retention.bytes`) and of the sizes the
//! catalog reports for partitions and topics.
//!
//! Retention moves a partition's log start past whole index entries, as
//! DeleteRecords does; garbage collection then frees what nothing points into.

use crate::TopicId;

/// What retention keeps of one topic's partitions; applied by
/// [`crate::RetentionCatalog::apply_retention`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionRule {
    pub topic: TopicId,
    /// Entries whose max timestamp is below this go (now - `retention.ms`), up
    /// to the first that is not, as Kafka's time rule deletes segments. `None`:
    /// no time limit.
    pub delete_before_timestamp: Option<i64>,
    /// `retention.bytes`: the oldest entries go while what remains after them
    /// is still at least this many bytes (Kafka's size rule). `None`: no limit.
    pub retain_bytes: Option<i64>,
}

/// A partition whose log start retention moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionMove {
    pub topic: TopicId,
    pub partition: i32,
    /// The log start before and after.
    pub from: i64,
    pub to: i64,
    /// Bytes of the index entries that fell below the new log start.
    pub bytes: i64,
}

/// The retained size of a partition: the bytes its index entries at or above
/// the log start point at (an entry the log start cuts counts whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSize {
    pub topic: TopicId,
    pub partition: i32,
    pub bytes: i64,
}

/// What a topic holds in the store: its retained bytes and the objects they
/// are in (an object shared with other topics counts for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicUsage {
    pub topic: TopicId,
    pub bytes: i64,
    pub objects: i64,
}
