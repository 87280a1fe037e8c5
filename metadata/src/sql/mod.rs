//! The one implementation of [`Catalog`] for both SQLite and PostgreSQL, through
//! sqlx's `Any` driver.
//!
//! The queries are shared: `$n` placeholders (SQLite accepts them), every integer a
//! BIGINT read as `i64`, topic ids as UUID text. What differs per database lives in
//! `connect.rs` (URL, pools, per-connection settings, which migrations run) and in
//! two small decisions here: how a write transaction begins and which errors are
//! worth retrying.

mod admin;
mod cluster;
mod commit;
mod compaction;
mod connect;
mod groups;
mod log;
mod producers;
mod retry;
mod rows;
mod topics;

use std::future::Future;

use async_trait::async_trait;
use sqlx::{Any, AnyPool, Transaction};

pub use admin::ConfigUpdate;

use crate::{
    Catalog, IndexEntry, NewTopic, ObjectCommit, PartitionOffsets, Result, RunOutcome, Topic,
    TopicId,
};

/// Which database a [`SqlCatalog`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The catalog in a SQL database. Cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct SqlCatalog {
    backend: Backend,
    /// Single-statement reads.
    reads: AnyPool,
    /// Write transactions. On a SQLite file a pool of one connection, so this
    /// process's writers queue here instead of in SQLite's busy handler; otherwise
    /// the same pool as `reads`.
    writes: AnyPool,
}

impl SqlCatalog {
    /// Connects to the database at `url` (see [`crate::open`] for the accepted forms)
    /// and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        connect::connect(url).await
    }

    fn new(backend: Backend, reads: AnyPool, writes: AnyPool) -> Self {
        Self {
            backend,
            reads,
            writes,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.writes.close().await;
        self.reads.close().await;
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
    /// contention) have gone on too long. Every attempt must be a whole transaction
    /// or a single statement, so that a failed one left nothing behind.
    async fn retrying<T, F, Fut>(&self, operation: &'static str, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        retry::retrying(self.backend, operation, attempt).await
    }
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn cluster_id(&self) -> Result<String> {
        self.retrying("cluster_id", || cluster::cluster_id(self))
            .await
    }

    async fn init_producer(
        &self,
        existing: Option<crate::producers::ProducerIdentity>,
    ) -> Result<crate::producers::ProducerIdentity> {
        self.retrying("init_producer", || producers::init_producer(self, existing))
            .await
    }

    async fn producer_batches(
        &self,
        topic: TopicId,
        partition: i32,
        producer_id: i64,
    ) -> Result<Vec<crate::producers::ProducerBatch>> {
        self.retrying("producer_batches", || {
            producers::recent_batches(&self.reads, topic, partition, producer_id)
        })
        .await
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<Topic> {
        self.retrying("create_topic", || topics::create(self, topic))
            .await
    }

    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        self.retrying("delete_topic", || topics::delete(self, name))
            .await
    }

    async fn topic_by_name(&self, name: &str) -> Result<Option<Topic>> {
        self.retrying("topic_by_name", || topics::by_name(&self.reads, name))
            .await
    }

    async fn topic_by_id(&self, id: TopicId) -> Result<Option<Topic>> {
        self.retrying("topic_by_id", || topics::by_id(&self.reads, id))
            .await
    }

    async fn list_topics(&self) -> Result<Vec<Topic>> {
        self.retrying("list_topics", || topics::list(&self.reads))
            .await
    }

    async fn partition_offsets(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<PartitionOffsets>> {
        self.retrying("partition_offsets", || {
            log::partition_offsets(&self.reads, topic, partition)
        })
        .await
    }

    async fn commit_objects(&self, commits: &[ObjectCommit]) -> Result<Vec<Vec<RunOutcome>>> {
        for commit in commits {
            log::check_runs(&commit.runs)?;
        }
        self.retrying("commit_objects", || commit::commit_objects(self, commits))
            .await
    }

    async fn index_entries(
        &self,
        topic: TopicId,
        partition: i32,
        from_offset: i64,
        limit: u32,
    ) -> Result<Vec<IndexEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.retrying("index_entries", || {
            log::index_entries(&self.reads, topic, partition, from_offset, limit)
        })
        .await
    }

    async fn first_entry_at_or_after_timestamp(
        &self,
        topic: TopicId,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<IndexEntry>> {
        self.retrying("first_entry_at_or_after_timestamp", || {
            log::first_entry_at_or_after_timestamp(&self.reads, topic, partition, timestamp)
        })
        .await
    }

    async fn commit_offsets(
        &self,
        group_id: &str,
        commits: &[crate::groups::OffsetCommit],
    ) -> Result<()> {
        self.retrying("commit_offsets", || {
            groups::commit_offsets(self, group_id, commits)
        })
        .await
    }

    async fn committed_offsets(
        &self,
        group_id: &str,
    ) -> Result<Vec<crate::groups::CommittedOffset>> {
        self.retrying("committed_offsets", || {
            groups::committed_offsets(&self.reads, group_id)
        })
        .await
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        self.retrying("delete_offsets", || {
            groups::delete_offsets(self, group_id, partitions)
        })
        .await
    }

    async fn store_group(&self, group: &crate::groups::StoredGroup) -> Result<()> {
        self.retrying("store_group", || groups::store_group(self, group))
            .await
    }

    async fn load_groups(&self) -> Result<Vec<crate::groups::StoredGroup>> {
        self.retrying("load_groups", || groups::load_groups(&self.reads))
            .await
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.retrying("delete_group", || groups::delete_group(self, group_id))
            .await
    }

    async fn update_topic_configs(&self, name: &str, update: ConfigUpdate<'_>) -> Result<Topic> {
        self.retrying("update_topic_configs", || {
            admin::update_configs(self, name, update)
        })
        .await
    }

    async fn add_partitions(&self, name: &str, partition_count: i32) -> Result<Topic> {
        self.retrying("add_partitions", || {
            admin::add_partitions(self, name, partition_count)
        })
        .await
    }

    async fn delete_records(
        &self,
        topic: TopicId,
        partition: i32,
        before_offset: i64,
    ) -> Result<Option<PartitionOffsets>> {
        self.retrying("delete_records", || {
            admin::delete_records(self, topic, partition, before_offset)
        })
        .await
    }

    async fn partition_producers(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Vec<crate::producers::ProducerBatch>> {
        self.retrying("partition_producers", || {
            admin::partition_producers(&self.reads, topic, partition)
        })
        .await
    }

    async fn small_live_objects(
        &self,
        max_size_bytes: i64,
        limit: u32,
    ) -> Result<Vec<crate::compaction::StoredObject>> {
        self.retrying("small_live_objects", || {
            compaction::small_live_objects(&self.reads, max_size_bytes, limit)
        })
        .await
    }

    async fn object_entries(&self, objects: &[i64]) -> Result<Vec<crate::compaction::ObjectEntry>> {
        self.retrying("object_entries", || {
            compaction::object_entries(&self.reads, objects)
        })
        .await
    }

    async fn swap_compacted(
        &self,
        swap: &crate::compaction::CompactionSwap,
    ) -> Result<crate::compaction::SwapOutcome> {
        self.retrying("swap_compacted", || compaction::swap(self, swap))
            .await
    }

    async fn drop_entries_below_log_start(&self, limit: u32) -> Result<u64> {
        self.retrying("drop_entries_below_log_start", || {
            compaction::drop_entries_below_log_start(self, limit)
        })
        .await
    }

    async fn mark_unreferenced_objects(
        &self,
        created_before_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<u64> {
        self.retrying("mark_unreferenced_objects", || {
            compaction::mark_unreferenced(self, created_before_ms, now_ms, limit)
        })
        .await
    }

    async fn objects_to_delete(
        &self,
        deleting_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<crate::compaction::StoredObject>> {
        self.retrying("objects_to_delete", || {
            compaction::objects_to_delete(&self.reads, deleting_before_ms, limit)
        })
        .await
    }

    async fn forget_objects(&self, objects: &[i64]) -> Result<u64> {
        self.retrying("forget_objects", || compaction::forget(self, objects))
            .await
    }
}
