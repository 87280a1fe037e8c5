//! Values of idempotent producers: identities from InitProducerId and the batches
//! each producer appended to each partition.

/// A producer id and its current epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
}

/// The newest batches the catalog keeps per producer and partition: Kafka
/// recognises a retry of any of the last five.
pub const RECENT_BATCHES_KEPT: usize = 5;

/// An idempotent batch already committed to a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// Offset the batch's first record got.
    pub base_offset: i64,
}

/// An idempotent batch inside a run being committed; its base offset is the
/// run's base offset plus `offset_in_run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub offset_in_run: i64,
}
