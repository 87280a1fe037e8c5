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

/// A run of one partition's appends, stored back to back in one object from
/// `position`. The commit judges each append (idempotent ones against their
/// producer's window) and gives the appends it keeps consecutive offsets from
/// the partition's high watermark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAppend {
    pub topic: TopicId,
    pub partition: i32,
    /// Byte position of the run's first batch in the object.
    pub position: i64,
    /// The run's appends in the order they were received; at least one.
    pub appends: Vec<AppendSlice>,
}

/// One append inside a run: whole record batches, as one produce request
/// carried them for one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendSlice {
    /// Length in bytes; the append starts where the previous one ends.
    pub length: i64,
    /// Offsets it occupies: the sum of `lastOffsetDelta + 1` over its batches.
    pub offset_count: i64,
    /// Largest batch max-timestamp (milliseconds).
    pub max_timestamp: i64,
    /// The LogAppendTime its batches were stamped with; -1 on CreateTime topics.
    pub append_time_ms: i64,
    /// Set when its batches come from an idempotent producer.
    pub producer: Option<crate::producers::ProducerAppend>,
    /// Set for a transaction's data (with `producer`) and for markers.
    pub txn: Option<crate::transactions::TxnAppend>,
}

impl RunAppend {
    /// A run of one append from a producer that is not idempotent.
    pub fn single(
        topic: TopicId,
        partition: i32,
        position: i64,
        length: i64,
        offset_count: i64,
        max_timestamp: i64,
    ) -> RunAppend {
        RunAppend {
            topic,
            partition,
            position,
            appends: vec![AppendSlice {
                length,
                offset_count,
                max_timestamp,
                append_time_ms: -1,
                producer: None,
                txn: None,
            }],
        }
    }
}

/// An uploaded object and the runs it holds, as committed by
/// [`crate::LogCatalog::commit_objects`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectCommit {
    pub object: NewObject,
    pub runs: Vec<RunAppend>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// One outcome per append of the run, in the run's order. Each maximal
    /// span of consecutive appended appends is one index entry; the bytes of
    /// the others stay in the object, unreferenced.
    Committed(Vec<AppendOutcome>),
    /// The topic or partition no longer exists (deleted while the object was in
    /// flight); nothing was appended for this run.
    UnknownPartition,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The append holds offsets `base_offset .. base_offset + offset_count`.
    Appended {
        base_offset: i64,
        append_time_ms: i64,
    },
    /// A retry of an idempotent batch committed before (or earlier in the same
    /// commit): nothing was appended; the original's offset and append time.
    Duplicate {
        base_offset: i64,
        append_time_ms: i64,
    },
    /// Refused by the sequence rules; nothing was appended.
    Refused(crate::producers::ProducerError),
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
