//! Errors of the catalog. The broker maps them to Kafka error codes in one place.

use std::time::Duration;

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("invalid catalog URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The operation did not finish within the catalog timeout (a lock held
    /// elsewhere, a stalled database). Whether a write took effect is unknown.
    #[error("catalog operation {operation} did not finish within {after:?}")]
    Timeout {
        operation: &'static str,
        after: Duration,
    },
    #[error("catalog database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("catalog migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("catalog holds data it cannot read: {0}")]
    Corrupt(String),
    /// The caller broke a documented precondition (a bug in the caller, not a
    /// condition of the data), e.g. a run of zero offsets.
    #[error("invalid catalog request: {0}")]
    InvalidArgument(String),
    #[error("producer id {0} was never handed out")]
    UnknownProducer(i64),
    #[error("producer id {producer_id} with epoch {epoch} has been fenced by a newer epoch")]
    ProducerFenced { producer_id: i64, epoch: i16 },
    /// A config update was refused by the caller's validation (the message says why).
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic '{topic}' has {current} partitions; cannot change to {requested}")]
    PartitionCountNotIncreased {
        topic: String,
        current: i32,
        requested: i32,
    },
    #[error("offset {requested} is not between 0 and the high watermark {high_watermark}")]
    OffsetBeyondHighWatermark { requested: i64, high_watermark: i64 },
    /// Another live agent holds the node id asked for.
    #[error("node id {node_id} is held by a live agent at {host}:{port}; stop it or choose another --node-id")]
    NodeIdInUse {
        node_id: i32,
        host: String,
        port: i32,
    },
    /// The address this agent advertises is registered with another node id.
    #[error("{host}:{port} is registered as node {registered}, not node {requested}; keep the node id or advertise another address")]
    AddressHasOtherNodeId {
        host: String,
        port: i32,
        registered: i32,
        requested: i32,
    },
    /// A group write made under a lease epoch that is no longer the group's:
    /// another agent has taken the group over (or the lease row is missing).
    #[error(
        "group '{group_id}' is no longer coordinated under lease epoch {epoch} (now {current:?})"
    )]
    NotCoordinator {
        group_id: String,
        epoch: i64,
        current: Option<i64>,
    },
    /// The transaction coordinator refused a request (Kafka's reasons).
    #[error(transparent)]
    Transaction(#[from] crate::transactions::TxnError),
}
