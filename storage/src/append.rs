//! What a produce request hands the write path, and what it gets back: the
//! types the writer and the idempotence checks (`storage::producers`) share.

use std::sync::Arc;

use bytes::Bytes;
use streamhouse_metadata::TopicId;

use crate::StorageError;

/// One partition's batches from one produce request, already validated.
#[derive(Debug, Clone)]
pub struct Append {
    pub topic: TopicId,
    pub partition: i32,
    /// One or more whole record batches, as the client sent them.
    pub batches: Bytes,
    pub batch_count: u32,
    /// Offsets the batches occupy (sum of `lastOffsetDelta + 1`).
    pub offset_count: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Set when the batches come from an idempotent producer.
    pub producer: Option<ProducerAppend>,
}

/// The idempotence fields of an append (all its batches from one producer, with
/// contiguous sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerAppend {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

/// The base offset the catalog assigned to an append's first batch.
pub type AppendOutcome = Result<i64, Arc<StorageError>>;
