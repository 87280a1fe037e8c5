//! A cache of topic lookups in front of any [`Catalog`].
//!
//! Every produce and fetch resolves a topic by name or id; those lookups are served
//! from memory. Only topics that exist are cached: a miss always asks the database,
//! so a topic another agent creates is visible at once. A topic another agent
//! deletes stays visible here for at most the time-to-live; this agent's own
//! creates, deletes, config changes and added partitions invalidate at once.
//! Everything else passes through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;

use crate::{
    Catalog, IndexEntry, NewTopic, ObjectCommit, PartitionOffsets, Result, RunOutcome, Topic,
    TopicId,
};

/// Bound on cached topics per index (by name, by id).
pub const DEFAULT_MAX_TOPICS: u64 = 100_000;
/// How long a cached topic may outlive its deletion by another agent.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

pub struct CachedCatalog<C> {
    inner: C,
    by_name: Cache<String, Topic>,
    by_id: Cache<TopicId, Topic>,
    /// Bumped on every invalidation. A lookup that started before one does not
    /// cache its answer, which may predate the change it was racing with.
    generation: AtomicU64,
}

impl<C: Catalog> CachedCatalog<C> {
    pub fn new(inner: C) -> Self {
        Self::with_limits(inner, DEFAULT_MAX_TOPICS, DEFAULT_TTL)
    }

    pub fn with_limits(inner: C, max_topics: u64, ttl: Duration) -> Self {
        Self {
            inner,
            by_name: Cache::builder()
                .max_capacity(max_topics)
                .time_to_live(ttl)
                .build(),
            by_id: Cache::builder()
                .max_capacity(max_topics)
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    async fn remember(&self, topic: &Topic, generation: u64) {
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        self.by_name.insert(topic.name.clone(), topic.clone()).await;
        self.by_id.insert(topic.id, topic.clone()).await;
        // An invalidation between the check above and the inserts may have run
        // before them; undo ours rather than keep a stale entry for the whole TTL.
        if self.generation.load(Ordering::Acquire) != generation {
            self.by_name.invalidate(&topic.name).await;
            self.by_id.invalidate(&topic.id).await;
        }
    }

    async fn forget_name(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(topic) = self.by_name.remove(name).await {
            self.by_id.invalidate(&topic.id).await;
        }
    }

    async fn forget_topic(&self, name: &str, changed: &Result<Topic>) {
        self.forget_name(name).await;
        if let Ok(topic) = changed {
            self.forget_id(topic.id).await;
        }
    }

    async fn forget_id(&self, id: TopicId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(topic) = self.by_id.remove(&id).await {
            self.by_name.invalidate(&topic.name).await;
        }
    }
}

#[async_trait]
impl<C: Catalog> Catalog for CachedCatalog<C> {
    async fn cluster_id(&self) -> Result<String> {
        self.inner.cluster_id().await
    }

    async fn init_producer(
        &self,
        existing: Option<crate::producers::ProducerIdentity>,
    ) -> Result<crate::producers::ProducerIdentity> {
        self.inner.init_producer(existing).await
    }

    async fn producer_batches(
        &self,
        topic: TopicId,
        partition: i32,
        producer_id: i64,
    ) -> Result<Vec<crate::producers::ProducerBatch>> {
        self.inner
            .producer_batches(topic, partition, producer_id)
            .await
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<Topic> {
        let result = self.inner.create_topic(topic).await;
        // Also on failure: TopicAlreadyExists means our entry, if any, may be a
        // since deleted and recreated namesake.
        self.forget_name(&topic.name).await;
        result
    }

    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        let result = self.inner.delete_topic(name).await;
        self.forget_name(name).await;
        if let Ok(topic) = &result {
            self.forget_id(topic.id).await;
        }
        result
    }

    async fn topic_by_name(&self, name: &str) -> Result<Option<Topic>> {
        if let Some(topic) = self.by_name.get(name).await {
            return Ok(Some(topic));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let topic = self.inner.topic_by_name(name).await?;
        if let Some(topic) = &topic {
            self.remember(topic, generation).await;
        }
        Ok(topic)
    }

    async fn topic_by_id(&self, id: TopicId) -> Result<Option<Topic>> {
        if let Some(topic) = self.by_id.get(&id).await {
            return Ok(Some(topic));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let topic = self.inner.topic_by_id(id).await?;
        if let Some(topic) = &topic {
            self.remember(topic, generation).await;
        }
        Ok(topic)
    }

    async fn list_topics(&self) -> Result<Vec<Topic>> {
        self.inner.list_topics().await
    }

    async fn partition_offsets(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<PartitionOffsets>> {
        self.inner.partition_offsets(topic, partition).await
    }

    async fn commit_objects(&self, commits: &[ObjectCommit]) -> Result<Vec<Vec<RunOutcome>>> {
        let outcomes = self.inner.commit_objects(commits).await?;
        // A run for a vanished partition means its topic was deleted (by another
        // agent, or we would have forgotten it already): stop serving it.
        let runs = commits.iter().flat_map(|commit| &commit.runs);
        for (run, outcome) in runs.zip(outcomes.iter().flatten()) {
            if *outcome == RunOutcome::UnknownPartition {
                self.forget_id(run.topic).await;
            }
        }
        Ok(outcomes)
    }

    async fn index_entries(
        &self,
        topic: TopicId,
        partition: i32,
        from_offset: i64,
        limit: u32,
    ) -> Result<Vec<IndexEntry>> {
        self.inner
            .index_entries(topic, partition, from_offset, limit)
            .await
    }

    async fn first_entry_at_or_after_timestamp(
        &self,
        topic: TopicId,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<IndexEntry>> {
        self.inner
            .first_entry_at_or_after_timestamp(topic, partition, timestamp)
            .await
    }

    // Consumer groups: nothing is cached; the coordinator holds groups in memory.
    async fn commit_offsets(
        &self,
        group_id: &str,
        commits: &[crate::groups::OffsetCommit],
    ) -> Result<()> {
        self.inner.commit_offsets(group_id, commits).await
    }

    async fn committed_offsets(
        &self,
        group_id: &str,
    ) -> Result<Vec<crate::groups::CommittedOffset>> {
        self.inner.committed_offsets(group_id).await
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        self.inner.delete_offsets(group_id, partitions).await
    }

    async fn store_group(&self, group: &crate::groups::StoredGroup) -> Result<()> {
        self.inner.store_group(group).await
    }

    async fn load_groups(&self) -> Result<Vec<crate::groups::StoredGroup>> {
        self.inner.load_groups().await
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.inner.delete_group(group_id).await
    }

    // Admin changes of a topic: forget it at once, so the next produce applies
    // the new max.message.bytes or sees the new partitions. Also on failure,
    // which may have been a commit whose answer was lost.
    async fn update_topic_configs(
        &self,
        name: &str,
        update: crate::sql::ConfigUpdate<'_>,
    ) -> Result<Topic> {
        let result = self.inner.update_topic_configs(name, update).await;
        self.forget_topic(name, &result).await;
        result
    }

    async fn add_partitions(&self, name: &str, partition_count: i32) -> Result<Topic> {
        let result = self.inner.add_partitions(name, partition_count).await;
        self.forget_topic(name, &result).await;
        result
    }

    async fn delete_records(
        &self,
        topic: TopicId,
        partition: i32,
        before_offset: i64,
    ) -> Result<Option<PartitionOffsets>> {
        self.inner
            .delete_records(topic, partition, before_offset)
            .await
    }

    async fn partition_producers(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Vec<crate::producers::ProducerBatch>> {
        self.inner.partition_producers(topic, partition).await
    }

    // Compaction and garbage collection never touch topics: pass through.
    async fn small_live_objects(
        &self,
        max_size_bytes: i64,
        limit: u32,
    ) -> Result<Vec<crate::compaction::StoredObject>> {
        self.inner.small_live_objects(max_size_bytes, limit).await
    }

    async fn object_entries(&self, objects: &[i64]) -> Result<Vec<crate::compaction::ObjectEntry>> {
        self.inner.object_entries(objects).await
    }

    async fn swap_compacted(
        &self,
        swap: &crate::compaction::CompactionSwap,
    ) -> Result<crate::compaction::SwapOutcome> {
        self.inner.swap_compacted(swap).await
    }

    async fn drop_entries_below_log_start(&self, limit: u32) -> Result<u64> {
        self.inner.drop_entries_below_log_start(limit).await
    }

    async fn mark_unreferenced_objects(
        &self,
        created_before_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<u64> {
        self.inner
            .mark_unreferenced_objects(created_before_ms, now_ms, limit)
            .await
    }

    async fn objects_to_delete(
        &self,
        deleting_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<crate::compaction::StoredObject>> {
        self.inner
            .objects_to_delete(deleting_before_ms, limit)
            .await
    }

    async fn forget_objects(&self, objects: &[i64]) -> Result<u64> {
        self.inner.forget_objects(objects).await
    }
}
