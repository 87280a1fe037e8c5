//! The one implementation of the catalog for both SQLite and PostgreSQL, through
//! sqlx's `Any` driver.
//!
//! Each catalog trait is implemented in the file of its concern (`topics.rs`,
//! `log.rs`, `groups.rs`, `producers.rs`, `lifecycle.rs`, `changes.rs`); `commit.rs` (with
//! `producer_windows.rs`), `producer_expiry.rs`, `group_leases.rs` and `cluster.rs` hold the larger
//! bodies those call, `rows.rs` the row decoding. This file holds the catalog
//! itself and the two ways an operation reaches the database,
//! [`SqlCatalog::read`] and [`SqlCatalog::write`], which apply the retry of
//! transient failures (`retry.rs`) so that no operation does.
//!
//! The queries are shared: `$n` placeholders (SQLite accepts them), every integer a
//! BIGINT read as `i64`, topic ids as UUID text. What differs per database lives in
//! `connect.rs` (URL, pools, per-connection settings, which migrations run) and in
//! two small decisions: how a write transaction begins (here) and which errors are
//! worth retrying (`retry.rs`).

mod acls;
mod agents;
mod changes;
mod cleaner;
mod cluster;
mod commit;
mod connect;
mod credentials;
pub use connect::redact as redact_url;
mod group_leases;
mod groups;
mod lifecycle;
mod log;
mod open_txns;
mod producer_expiry;
mod producer_windows;
mod producers;
mod quotas;
mod retention;
mod retry;
mod rows;
mod shares;
mod topics;
mod transactions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, AnyPool, Transaction};
use streamhouse_clock::SharedClock;

use crate::cache::{TopicCache, DEFAULT_MAX_TOPICS, DEFAULT_TTL};
use crate::Result;

/// How long one catalog operation may take, retries included, unless the
/// catalog is opened with another limit.
///
/// Clients give up on a request after their `request.timeout.ms`, 30 s by
/// default; a catalog call must end before that so the broker can still answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

/// Which database a [`SqlCatalog`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The catalog in a SQL database. Cheap to clone (the pools and the topic cache
/// are shared).
#[derive(Clone, Debug)]
pub struct SqlCatalog {
    backend: Backend,
    /// Single-statement reads.
    reads: AnyPool,
    /// Write transactions. On a SQLite file a pool of one connection, so this
    /// process's writers queue here instead of in SQLite's busy handler; otherwise
    /// the same pool as `reads`.
    writes: AnyPool,
    /// Serves `topic_by_name` and `topic_by_id`, the lookups of every produce and
    /// fetch (see the `cache` module for what it may serve stale, and for how long).
    topic_cache: Arc<TopicCache>,
    /// Stamps the rows' wall-clock times (`created_at_ms` and the like), which
    /// compaction and garbage collection compare ages against.
    clock: SharedClock,
    /// The most one operation may take, retries included (see `retry.rs`); on
    /// PostgreSQL also each statement's `statement_timeout`.
    timeout: Duration,
    /// PostgreSQL: the connections of head notifications (see `changes.rs`).
    notifications: Option<Arc<changes::Notifications>>,
}

impl SqlCatalog {
    /// Connects to the database at `url` (see [`crate::open`] for the accepted forms)
    /// and brings its schema up to date. Topic lookups are cached
    /// ([`DEFAULT_MAX_TOPICS`], [`DEFAULT_TTL`]); operations time out after
    /// [`DEFAULT_TIMEOUT`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_timeout(url, DEFAULT_TIMEOUT).await
    }

    /// [`SqlCatalog::connect`] with operations failing with
    /// [`crate::CatalogError::Timeout`] after `timeout`.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        connect::connect(url, timeout).await
    }

    fn new(backend: Backend, reads: AnyPool, writes: AnyPool, timeout: Duration) -> Self {
        Self {
            backend,
            reads,
            writes,
            topic_cache: Arc::new(TopicCache::new(DEFAULT_MAX_TOPICS, DEFAULT_TTL)),
            clock: streamhouse_clock::system(),
            timeout,
            notifications: None,
        }
    }

    /// This catalog stamping rows with the time `clock` reads.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// This catalog with a topic cache of its own, of at most `max_topics` topics
    /// per index, each kept at most `ttl`.
    pub fn with_topic_cache(mut self, max_topics: u64, ttl: Duration) -> Self {
        self.topic_cache = Arc::new(TopicCache::new(max_topics, ttl));
        self
    }

    /// This catalog asking the database for every topic lookup.
    pub fn without_topic_cache(mut self) -> Self {
        self.topic_cache = Arc::new(TopicCache::off());
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        if let Some(notifications) = &self.notifications {
            notifications.close().await;
        }
        self.writes.close().await;
        self.reads.close().await;
    }

    /// Runs a read on the read pool, again on transient failures: statements
    /// outside any transaction, so a failed attempt left nothing behind.
    async fn read<'a, T, F, Fut>(&'a self, operation: &'static str, mut statement: F) -> Result<T>
    where
        F: FnMut(&'a AnyPool) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retrying(operation, || statement(&self.reads)).await
    }

    /// Runs `transaction` on a write transaction begun for it, whole again on
    /// transient failures. It commits the transaction itself; returning without
    /// committing (an error, or an answer that must leave nothing behind) rolls
    /// it back.
    async fn write<T, F, Fut>(&self, operation: &'static str, transaction: F) -> Result<T>
    where
        F: Fn(Transaction<'static, Any>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let transaction = &transaction;
        self.retrying(operation, || async move {
            transaction(self.begin_write().await?).await
        })
        .await
    }

    /// Begins a transaction that will write.
    ///
    /// SQLite: `BEGIN IMMEDIATE` takes the write lock now. A deferred transaction
    /// that reads first and upgrades later can fail with SQLITE_BUSY without waiting
    /// (a deadlock SQLite breaks by refusing the upgrade); one that holds the lock
    /// from the start only ever waits for it. PostgreSQL: a plain READ COMMITTED
    /// transaction; the row locks taken by the statements serialise what must be.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writes.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writes.begin().await?,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or transient failures (lock
    /// contention) have gone on too long; fails with a timeout when all that
    /// takes longer than the catalog timeout. Every attempt must be a whole transaction
    /// or a single statement, so that a failed one left nothing behind. Operations
    /// go through [`SqlCatalog::read`] or [`SqlCatalog::write`], which make sure of
    /// that; only one that is neither calls this directly.
    async fn retrying<T, F, Fut>(&self, operation: &'static str, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        retry::retrying(self.backend, operation, self.timeout, attempt).await
    }
}

#[cfg(test)]
mod tests;
