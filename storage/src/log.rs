//! The partitions' logs as the agent serves them: one type owning the write
//! path, the read path, the heads view and the index queries, so that the
//! handlers keep only Kafka's translation, errors and byte budgets.
//!
//! Decisions a stale heads view must not make are made here, on the
//! catalog's word: an offset beyond the view's high watermark is out of range
//! only once the catalog says so, and so is one whose entries the index no
//! longer has (another agent moved the log start).

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};
use streamhouse_metadata::{Catalog, IndexEntry, PartitionOffsets, TopicId};
use streamhouse_protocol::batches::Batches;
use tokio::sync::{oneshot, watch};

use crate::metrics::Metrics;
use crate::watermarks::Subscription;
use crate::writer::{Append, AppendOutcome, ObjectWriter, WriterConfig};
use crate::{ObjectReader, ReadCacheConfig, StorageError, Watermarks};

/// Index entries read per partition per read; a partition with more data
/// simply returns less and the client reads again.
const INDEX_ENTRIES_PER_READ: u32 = 64;

/// How much one read may return.
#[derive(Clone, Copy, Debug)]
pub struct ReadBudget {
    pub max_bytes: usize,
    /// Return the first batch even beyond `max_bytes` (Kafka's rule for the
    /// first partition of a response with data). Without it, a budget of zero
    /// reads nothing.
    pub at_least_one_batch: bool,
}

/// What a read found.
#[derive(Clone, Debug)]
pub struct ReadResult {
    /// The partition's offsets as decided (from the catalog when it mattered).
    pub offsets: PartitionOffsets,
    /// Whole batches from the read offset, their base offsets patched.
    pub records: Batches,
}

/// Whether the heads view may answer or the catalog must.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// The view: may lag other agents' changes by the feed's delay.
    Cached,
    /// The catalog now: includes every acknowledged change.
    Authoritative,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Below the log start or beyond the high watermark, as the catalog says.
    #[error("offset out of range")]
    OffsetOutOfRange,
    #[error(transparent)]
    Failed(#[from] StorageError),
}

impl From<streamhouse_metadata::CatalogError> for ReadError {
    fn from(error: streamhouse_metadata::CatalogError) -> Self {
        ReadError::Failed(StorageError::Catalog(error))
    }
}

/// The configuration of the log's write and read paths.
#[derive(Clone, Debug, Default)]
pub struct LogConfig {
    pub writer: WriterConfig,
    pub read_cache: ReadCacheConfig,
}

pub struct Log {
    catalog: Arc<dyn Catalog>,
    /// Kept for [`Log::probe_store`]; the paths hold their own handles.
    store: Arc<dyn ObjectStore>,
    writer: ObjectWriter,
    reader: Arc<ObjectReader>,
    heads: Arc<Watermarks>,
}

impl Log {
    /// Starts the write path on `store` and `catalog`. The heads view is fed
    /// by this agent's commits; [`Log::follow`] adds other agents' changes.
    pub fn open(
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        config: LogConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let heads = Arc::new(Watermarks::new(Arc::clone(&catalog)));
        let reader = Arc::new(ObjectReader::new(Arc::clone(&store), &config.read_cache));
        let writer = ObjectWriter::start(
            Arc::clone(&store),
            Arc::clone(&catalog),
            Arc::clone(&heads),
            Arc::clone(&reader),
            config.writer,
            metrics,
        );
        Self {
            catalog,
            store,
            writer,
            reader,
            heads,
        }
    }

    /// Whether the store answers: a HEAD of a key no object has (an object
    /// key never looks like it), which a reachable store answers with "not
    /// found". One request, no bytes, whatever the bucket holds.
    pub async fn probe_store(&self) -> Result<(), StorageError> {
        let probe = object_store::path::Path::from("readiness-probe");
        match self.store.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps the heads view fresh with other agents' changes (see
    /// `watermarks::feed`), announcing this agent's as agent `node_id`.
    pub fn follow(
        &self,
        node_id: i32,
        counters: watch::Receiver<streamhouse_metadata::agents::Counters>,
    ) {
        self.heads.start_feed(node_id, counters);
    }

    /// Holds idle seals while a request queues its appends (see
    /// [`ObjectWriter::queueing`]).
    pub fn queueing(&self) -> crate::writer::Queueing {
        self.writer.queueing()
    }

    /// Queues an append (see [`ObjectWriter::submit`]).
    pub async fn append(
        &self,
        append: Append,
    ) -> Result<oneshot::Receiver<AppendOutcome>, StorageError> {
        self.writer.submit(append).await
    }

    /// The partition's offsets; `None` if it does not exist.
    pub async fn offsets(
        &self,
        topic: TopicId,
        partition: i32,
        freshness: Freshness,
    ) -> Result<Option<PartitionOffsets>, StorageError> {
        Ok(match freshness {
            Freshness::Cached => self.heads.get(topic, partition).await?,
            Freshness::Authoritative => self.heads.refresh(topic, partition).await?,
        })
    }

    /// Whole batches from offset `from`. At the high watermark there is
    /// nothing yet; outside `log start ..= high watermark` is
    /// [`ReadError::OffsetOutOfRange`], decided on the catalog's heads.
    pub async fn read(
        &self,
        topic: TopicId,
        partition: i32,
        from: i64,
        budget: ReadBudget,
    ) -> Result<ReadResult, ReadError> {
        let mut offsets = self.head(topic, partition, Freshness::Cached).await?;
        // The view may lag other agents' commits: an offset beyond its high
        // watermark may be one another agent handed out. (Below the log start
        // needs no check: the view's log start is never ahead of the catalog's.)
        if from > offsets.high_watermark {
            offsets = self
                .head(topic, partition, Freshness::Authoritative)
                .await?;
        }
        if from < offsets.log_start_offset || from > offsets.high_watermark {
            return Err(ReadError::OffsetOutOfRange);
        }
        let empty = |offsets| {
            Ok(ReadResult {
                offsets,
                records: Batches::default(),
            })
        };
        if from == offsets.high_watermark || (budget.max_bytes == 0 && !budget.at_least_one_batch) {
            return empty(offsets);
        }
        let entries = self
            .catalog
            .index_entries(topic, partition, from, INDEX_ENTRIES_PER_READ)
            .await?;
        if entries.is_empty() {
            // The view says there are offsets from here; the index, which
            // hides what lies below the log start, has none: another agent
            // moved the log start past them.
            offsets = self
                .head(topic, partition, Freshness::Authoritative)
                .await?;
            if from < offsets.log_start_offset {
                return Err(ReadError::OffsetOutOfRange);
            }
            return empty(offsets);
        }
        let records = self.reader.read(&entries, from, budget.max_bytes).await?;
        Ok(ReadResult { offsets, records })
    }

    async fn head(
        &self,
        topic: TopicId,
        partition: i32,
        freshness: Freshness,
    ) -> Result<PartitionOffsets, StorageError> {
        self.offsets(topic, partition, freshness)
            .await?
            .ok_or(StorageError::UnknownPartition)
    }

    /// The first index entry at or above the log start reaching `timestamp`,
    /// and its batches from the first offset readable (the log start, if it
    /// falls inside the entry).
    pub async fn entry_at_or_after_timestamp(
        &self,
        topic: TopicId,
        partition: i32,
        timestamp: i64,
        log_start_offset: i64,
    ) -> Result<Option<(IndexEntry, i64, Bytes)>, StorageError> {
        let Some(entry) = self
            .catalog
            .first_entry_at_or_after_timestamp(topic, partition, timestamp)
            .await?
        else {
            return Ok(None);
        };
        let from = entry.base_offset.max(log_start_offset);
        let records = self
            .reader
            .read(std::slice::from_ref(&entry), from, usize::MAX)
            .await?;
        // A search record by record wants them in one buffer; a rare request.
        Ok(Some((entry, from, records.to_bytes())))
    }

    /// A receiver of the partition's offsets, counted as a waiting fetch
    /// while it lives; `None` if the partition does not exist.
    pub async fn subscribe(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<Subscription>, StorageError> {
        Ok(self.heads.subscribe(topic, partition).await?)
    }

    /// Re-reads these heads from the catalog; true if the view had missed a
    /// change (see [`Watermarks::refresh_many`]).
    pub async fn refresh(&self, partitions: &[(TopicId, i32)]) -> Result<bool, StorageError> {
        Ok(self.heads.refresh_many(partitions).await?)
    }

    /// Advances the partition's log start to `before` (-1: the high
    /// watermark), in the catalog, the view and for other agents. `None` if
    /// there is no such partition.
    pub async fn delete_records(
        &self,
        topic: TopicId,
        partition: i32,
        before: i64,
    ) -> Result<Option<PartitionOffsets>, StorageError> {
        let offsets = self
            .catalog
            .delete_records(topic, partition, before)
            .await?;
        if let Some(offsets) = offsets {
            self.heads
                .set_log_start(topic, partition, offsets.log_start_offset)
                .await;
        }
        Ok(offsets)
    }

    /// The read path's object cache, which compaction reads before the store.
    pub fn reader(&self) -> Arc<ObjectReader> {
        Arc::clone(&self.reader)
    }

    /// The heads view, for the background work that moves log starts
    /// (retention).
    pub fn heads(&self) -> Arc<Watermarks> {
        Arc::clone(&self.heads)
    }

    /// Forgets a deleted topic's heads; its waiting fetches answer at once.
    pub fn forget_topic(&self, topic: TopicId) {
        self.heads.forget_topic(topic);
    }

    /// Commits and answers every queued append, then stops the write path.
    pub async fn shutdown(&self) {
        self.writer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use streamhouse_metadata::prelude::*;
    use streamhouse_metadata::{NewObject, NewTopic, RunAppend, SqlCatalog, Topic};

    use super::*;

    const BUDGET: ReadBudget = ReadBudget {
        max_bytes: 1 << 20,
        at_least_one_batch: true,
    };

    /// A log whose heads view hears of nothing but its own changes (no feed),
    /// so every change made through the catalog directly is one it has missed.
    async fn log_and_topic() -> (Log, Arc<dyn Catalog>, Topic) {
        let catalog: Arc<dyn Catalog> =
            Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
        let topic = catalog
            .create_topic(&NewTopic {
                name: "t".into(),
                partition_count: 1,
                configs: Default::default(),
            })
            .await
            .unwrap();
        let log = Log::open(
            Arc::new(InMemory::new()),
            Arc::clone(&catalog),
            LogConfig::default(),
            Arc::new(Metrics::default()),
        );
        (log, catalog, topic)
    }

    /// Another agent's commit of `count` offsets (the object itself is never
    /// read by these cases).
    async fn commit_elsewhere(catalog: &dyn Catalog, topic: &Topic, count: i64) {
        let object = NewObject {
            key: "elsewhere".into(),
            size_bytes: 10,
        };
        let run = RunAppend::single(topic.id, 0, 0, 10, count, 0);
        catalog.commit_object(&object, &[run]).await.unwrap();
    }

    #[tokio::test]
    async fn an_offset_beyond_the_views_end_is_out_of_range_only_if_the_catalog_says_so() {
        let (log, catalog, topic) = log_and_topic().await;
        assert_eq!(
            log.read(topic.id, 0, 0, BUDGET)
                .await
                .unwrap()
                .offsets
                .high_watermark,
            0
        );
        commit_elsewhere(&*catalog, &topic, 3).await;
        let at_end = log.read(topic.id, 0, 3, BUDGET).await.unwrap();
        assert_eq!(at_end.offsets.high_watermark, 3);
        assert!(at_end.records.is_empty());
        assert!(matches!(
            log.read(topic.id, 0, 4, BUDGET).await,
            Err(ReadError::OffsetOutOfRange)
        ));
        log.shutdown().await;
    }

    #[tokio::test]
    async fn offsets_another_agent_deleted_are_out_of_range() {
        let (log, catalog, topic) = log_and_topic().await;
        commit_elsewhere(&*catalog, &topic, 3).await;
        let offsets = log.offsets(topic.id, 0, Freshness::Cached).await.unwrap();
        assert_eq!(offsets.map(|o| o.log_start_offset), Some(0));
        catalog.delete_records(topic.id, 0, -1).await.unwrap();
        // The view still says 0..3; the index has nothing left there.
        assert!(matches!(
            log.read(topic.id, 0, 1, BUDGET).await,
            Err(ReadError::OffsetOutOfRange)
        ));
        let at_end = log.read(topic.id, 0, 3, BUDGET).await.unwrap();
        assert_eq!(at_end.offsets.log_start_offset, 3);
        log.shutdown().await;
    }
}
