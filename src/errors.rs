//! The one place internal errors become Kafka error codes. The matches are
//! exhaustive on purpose: a new internal error must be given its Kafka meaning.

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::producers::ProducerError;
use streamhouse_metadata::transactions::TxnError;
use streamhouse_metadata::CatalogError;
use streamhouse_protocol::batch::BatchError;
use streamhouse_protocol::validate::InvalidBatch;
use streamhouse_storage::{ReadError, StorageError};

pub fn catalog(error: &CatalogError) -> ResponseError {
    match error {
        CatalogError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        CatalogError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        CatalogError::UnknownProducer(_) => ResponseError::InvalidProducerIdMapping,
        CatalogError::ProducerFenced { .. } => ResponseError::ProducerFenced,
        CatalogError::InvalidConfig(_) => ResponseError::InvalidConfig,
        CatalogError::PartitionCountNotIncreased { .. } => ResponseError::InvalidPartitions,
        CatalogError::OffsetBeyondHighWatermark { .. } => ResponseError::OffsetOutOfRange,
        // Another agent took the group over: the client finds its coordinator again.
        CatalogError::NotCoordinator { .. } => ResponseError::NotCoordinator,
        CatalogError::Transaction(e) => transaction(e),
        // Database unreachable or failing: retriable for the client.
        CatalogError::Database(_) => ResponseError::KafkaStorageError,
        // Not KAFKA_STORAGE_ERROR, which tells the client nothing was written:
        // a write that timed out may still have committed. REQUEST_TIMED_OUT is
        // what Kafka answers when it cannot tell, and is retriable; an
        // idempotent producer's retry is then deduplicated.
        CatalogError::Timeout { .. } => ResponseError::RequestTimedOut,
        CatalogError::InvalidUrl { .. }
        | CatalogError::Migration(_)
        | CatalogError::Corrupt(_)
        | CatalogError::InvalidArgument(_)
        // Only membership at start-up meets these; no request does.
        | CatalogError::NodeIdInUse { .. }
        | CatalogError::AddressHasOtherNodeId { .. } => ResponseError::UnknownServerError,
    }
}

pub fn transaction(error: &TxnError) -> ResponseError {
    match error {
        TxnError::InvalidProducerIdMapping(_) => ResponseError::InvalidProducerIdMapping,
        TxnError::ProducerFenced { .. } => ResponseError::ProducerFenced,
        TxnError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        TxnError::ConcurrentTransactions(_) => ResponseError::ConcurrentTransactions,
    }
}

pub fn read(error: &ReadError) -> ResponseError {
    match error {
        ReadError::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
        ReadError::Failed(e) => storage(e),
    }
}

pub fn storage(error: &StorageError) -> ResponseError {
    match error {
        StorageError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        StorageError::Catalog(e) => catalog(e),
        // The object store failed or is unreachable: the client may retry.
        StorageError::Store(_) | StorageError::ObjectRead { .. } => {
            ResponseError::KafkaStorageError
        }
        StorageError::ShuttingDown => ResponseError::NotLeaderOrFollower,
        StorageError::Producer(ProducerError::OutOfOrderSequence { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        StorageError::Producer(ProducerError::InvalidProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        // Kafka's answer when its verification (KIP-890) finds the partition
        // outside the producer's transaction.
        StorageError::Producer(ProducerError::NotInTransaction { .. }) => {
            ResponseError::InvalidTxnState
        }
        // Retriable: the producer sends the batch again, in order.
        StorageError::EarlierWriteFailed => ResponseError::KafkaStorageError,
        StorageError::InvalidStoreUrl { .. }
        | StorageError::CorruptObject { .. }
        | StorageError::TaskFailed { .. } => ResponseError::UnknownServerError,
    }
}

pub fn batch(error: &BatchError) -> ResponseError {
    if error.is_corruption() {
        ResponseError::CorruptMessage
    } else {
        ResponseError::InvalidRecord
    }
}

/// A batch refused by record validation, as Kafka's log validator answers.
pub fn invalid_batch(error: &InvalidBatch) -> ResponseError {
    match error {
        InvalidBatch::Header(e) => batch(e),
        // Any record with a timestamp out of range makes the whole batch
        // INVALID_TIMESTAMP in Kafka, whatever else is wrong.
        InvalidBatch::Records(_) if error.has_bad_timestamp() => ResponseError::InvalidTimestamp,
        // The CRC matched, so the producer wrote these bytes: retrying them
        // cannot help (INVALID_RECORD is not retriable; CORRUPT_MESSAGE is).
        InvalidBatch::Records(_)
        | InvalidBatch::InvalidCount(_)
        | InvalidBatch::InvalidSequence { .. }
        | InvalidBatch::UnknownCodec(_)
        | InvalidBatch::Decompression(_)
        | InvalidBatch::TooFewRecords { .. }
        | InvalidBatch::TrailingBytes { .. } => ResponseError::InvalidRecord,
        // The Java producer splits a batch refused as too large and retries.
        InvalidBatch::TooLarge(_) => ResponseError::MessageTooLarge,
    }
}

/// Error code of an optional error: 0 for none.
pub fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_catalog_timeout_is_request_timed_out() {
        let timeout = CatalogError::Timeout {
            operation: "commit_objects",
            after: Duration::from_secs(1),
        };
        assert_eq!(catalog(&timeout), ResponseError::RequestTimedOut);
    }
}
