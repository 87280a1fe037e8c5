//! Plain values that cross the catalog boundary.

use std::collections::BTreeMap;

/// Stable identity of a topic; Kafka clients see it as the topic id (Metadata v10+,
/// Fetch v13+). Never reused, even after a topic of the same name is recreated.
pub type TopicId = uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partition_count: i32,
    /// Configs exactly as the client gave them (only the keys it set).
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub id: TopicId,
    pub name: String,
    pub partition_count: i32,
    pub configs: BTreeMap<String, String>,
    pub created_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// First offset a consumer may read.
    pub log_start_offset: i64,
    /// Offset the next appended record gets; also the first offset not yet readable.
    pub high_watermark: i64,
}

/// An object that has been uploaded and is about to be committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewObject {
    /// Key in the object store; unique, never reused.
    pub key: String,
    pub size_bytes: i64,
}

/// A run of consecutive record batches of one partition, stored contiguously in
/// one object. The catalog assigns its offsets: `record_offsets` offsets starting
/// at the partition's high watermark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAppend {
    pub topic: TopicId,
    pub partition: i32,
    /// Byte position of the run's first batch in the object.
    pub position: i64,
    /// Length of the run in bytes.
    pub length: i64,
    /// Offsets the run occupies: the sum of `lastOffsetDelta + 1` over its batches.
    pub record_offsets: i64,
    /// Largest batch max-timestamp in the run (milliseconds).
    pub max_timestamp: i64,
    /// The run's batches from idempotent producers, recorded with their offsets
    /// in the same transaction.
    pub producer_batches: Vec<crate::producers::NewProducerBatch>,
}

/// An uploaded object and the runs it holds, as committed by
/// [`crate::LogCatalog::commit_objects`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectCommit {
    pub object: NewObject,
    pub runs: Vec<RunAppend>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run now holds offsets `base_offset ..= base_offset + record_offsets - 1`.
    Appended { base_offset: i64 },
    /// The topic or partition no longer exists (deleted while the object was in
    /// flight); nothing was appended for this run.
    UnknownPartition,
}

/// Where a range of offsets of one partition lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub base_offset: i64,
    /// Inclusive.
    pub last_offset: i64,
    pub object_key: String,
    pub position: i64,
    pub length: i64,
    pub max_timestamp: i64,
}
