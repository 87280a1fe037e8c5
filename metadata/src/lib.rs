//! The StreamHouse catalog: everything an agent must agree on with every other
//! agent, kept in a SQL database (SQLite for the embedded default, PostgreSQL in
//! production).
//!
//! It owns topics and their configs, partitions with their offsets, the objects
//! in the store and the offset index that maps offset ranges to byte ranges of
//! those objects, consumer groups, idempotent producers, client quotas, SCRAM credentials,
//! ACLs and transactions. It knows nothing of
//! sockets or Kafka requests: callers speak in topics, partitions, offsets and
//! object keys.
//!
//! The surface is one trait per concern (`catalog/`), gathered by [`Catalog`];
//! the one implementation is [`SqlCatalog`] (`sql/`), one file per concern.
//! The invariants of the log are named in [`LogCatalog`]'s module.

pub mod acls;
pub mod agents;
pub mod cache;
mod catalog;
pub mod compaction;
pub mod credentials;
mod error;
pub mod groups;
pub mod heads;
mod model;
pub mod producers;
pub mod quotas;
pub mod retention;
pub mod sql;
pub mod transactions;

pub use catalog::{
    AclCatalog, AgentCatalog, Catalog, ChangeCatalog, ConfigUpdate, CredentialCatalog,
    GroupCatalog, HeadListener, LifecycleCatalog, LogCatalog, ProducerCatalog, QuotaCatalog,
    RetentionCatalog, TopicCatalog, TransactionCatalog,
};
pub use error::{CatalogError, Result};
pub use model::{
    AppendOutcome, AppendSlice, IndexEntry, NewObject, NewTopic, ObjectCommit, PartitionOffsets,
    RunAppend, RunOutcome, Topic, TopicId,
};
pub use sql::{redact_url, Backend, SqlCatalog, DEFAULT_TIMEOUT};

use std::sync::Arc;
use std::time::Duration;

use streamhouse_clock::SharedClock;

/// The catalog traits, so that their operations can be called on a concrete
/// catalog with one import: `use streamhouse_metadata::prelude::*;`. (On
/// `dyn Catalog` they resolve without it.)
pub mod prelude {
    pub use crate::catalog::{
        AclCatalog, AgentCatalog, Catalog, ChangeCatalog, CredentialCatalog, GroupCatalog,
        LifecycleCatalog, LogCatalog, ProducerCatalog, QuotaCatalog, RetentionCatalog,
        ShareCatalog, TopicCatalog, TransactionCatalog,
    };
}

/// Opens the catalog at `url` the way the broker uses it: the SQL catalog (migrated to
/// the current schema) with its topic-lookup cache.
///
/// Accepted URLs: `sqlite://path/to/file.db` (file and parent directory created if
/// missing), `sqlite::memory:` (private to this process, for tests) and
/// `postgres://user[:password]@host[:port]/database`. Anything else is
/// [`CatalogError::InvalidUrl`].
pub async fn open(url: &str) -> Result<Arc<dyn Catalog>> {
    Ok(Arc::new(SqlCatalog::connect(url).await?))
}

/// [`open`], with the catalog stamping rows with the time `clock` reads.
pub async fn open_with_clock(url: &str, clock: SharedClock) -> Result<Arc<dyn Catalog>> {
    Ok(Arc::new(SqlCatalog::connect(url).await?.with_clock(clock)))
}

/// [`open_with_clock`] with catalog operations failing with
/// [`CatalogError::Timeout`] after `timeout` instead of [`DEFAULT_TIMEOUT`].
pub async fn open_with_timeout(
    url: &str,
    clock: SharedClock,
    timeout: Duration,
) -> Result<Arc<dyn Catalog>> {
    Ok(Arc::new(
        SqlCatalog::connect_with_timeout(url, timeout)
            .await?
            .with_clock(clock),
    ))
}
