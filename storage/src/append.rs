//! What a produce request hands the write path, and what it gets back.

use std::sync::Arc;

use bytes::Bytes;
use streamhouse_metadata::TopicId;

pub use streamhouse_metadata::producers::ProducerAppend;
pub use streamhouse_metadata::transactions::TxnAppend;

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
    /// The LogAppendTime the batches were stamped with; -1 on CreateTime topics.
    pub append_time_ms: i64,
    /// Set when the batches come from an idempotent producer; the catalog's
    /// commit checks their sequences.
    pub producer: Option<ProducerAppend>,
    /// Set for a transaction's data batches (with `producer`) and for a
    /// transaction marker; the commit checks them against the open transactions.
    pub txn: Option<TxnAppend>,
}

/// Where an acknowledged append is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The offset of the append's first batch. For a retry of an idempotent
    /// batch committed before, the original's.
    pub base_offset: i64,
    /// The LogAppendTime to answer (the original's for a retry); -1 on
    /// CreateTime topics.
    pub append_time_ms: i64,
}

pub type AppendOutcome = Result<Appended, Arc<StorageError>>;
