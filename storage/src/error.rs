//! Errors of the storage layer, mapped to Kafka error codes by the broker.

use streamhouse_metadata::producers::ProducerError;
use streamhouse_metadata::CatalogError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid object store URL '{url}': {reason}")]
    InvalidStoreUrl { url: String, reason: String },
    #[error("object store request failed: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("object '{key}' is corrupt: {reason}")]
    CorruptObject { key: String, reason: String },
    #[error("the partition no longer exists")]
    UnknownPartition,
    /// Refused by the idempotent producer's sequence rules, in the commit.
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("an earlier object failed; batches packed after it are refused so that they are retried in order")]
    EarlierWriteFailed,
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("reading object '{key}' failed: {reason}")]
    ObjectRead { key: String, reason: String },
    /// Work moved off the runtime's threads panicked or was cancelled.
    #[error("{task} failed: {reason}")]
    TaskFailed { task: &'static str, reason: String },
}
