//! The topic-lookup cache of the SQL catalog.
//!
//! Every produce and fetch resolves a topic by name or id; those lookups are served
//! from memory. Only topics that exist are cached: a miss always asks the database,
//! so a topic another agent creates is visible at once. This agent's own
//! creates, deletes, config changes and added partitions invalidate at once (the
//! SQL catalog calls the `forget_*` methods after each); another agent's are
//! seen when the agent's counter poll finds the `catalog` counter moved and
//! drops everything ([`TopicCache::forget_all`]), within a second. The
//! time-to-live bounds staleness should that poll fail.
//!
//! A lookup that races an invalidation must not cache its answer, which may
//! predate the change: every invalidation bumps a generation, and a lookup only
//! remembers what it read if the generation it started under is still current.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;

use crate::{Result, Topic, TopicId};

/// Bound on cached topics per index (by name, by id).
pub const DEFAULT_MAX_TOPICS: u64 = 100_000;
/// How long a cached topic may outlive its deletion by another agent.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

pub(crate) struct TopicCache {
    /// `None`: caching is off, every lookup asks the database.
    indexes: Option<Indexes>,
    /// Bumped on every invalidation. A lookup that started before one does not
    /// cache its answer, which may predate the change it was racing with.
    generation: AtomicU64,
}

struct Indexes {
    by_name: Cache<String, Topic>,
    by_id: Cache<TopicId, Topic>,
}

impl TopicCache {
    pub(crate) fn new(max_topics: u64, ttl: Duration) -> Self {
        Self {
            indexes: Some(Indexes {
                by_name: index(max_topics, ttl),
                by_id: index(max_topics, ttl),
            }),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn off() -> Self {
        Self {
            indexes: None,
            generation: AtomicU64::new(0),
        }
    }

    /// The topic called `name`: from the cache, or `load`ed (and cached if it
    /// exists).
    pub(crate) async fn by_name<F, Fut>(&self, name: &str, load: F) -> Result<Option<Topic>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Topic>>>,
    {
        let Some(indexes) = &self.indexes else {
            return load().await;
        };
        if let Some(topic) = indexes.by_name.get(name).await {
            return Ok(Some(topic));
        }
        self.load_and_remember(indexes, load).await
    }

    /// The topic with this id: from the cache, or `load`ed (and cached if it
    /// exists).
    pub(crate) async fn by_id<F, Fut>(&self, id: TopicId, load: F) -> Result<Option<Topic>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Topic>>>,
    {
        let Some(indexes) = &self.indexes else {
            return load().await;
        };
        if let Some(topic) = indexes.by_id.get(&id).await {
            return Ok(Some(topic));
        }
        self.load_and_remember(indexes, load).await
    }

    async fn load_and_remember<F, Fut>(&self, indexes: &Indexes, load: F) -> Result<Option<Topic>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Topic>>>,
    {
        let generation = self.generation.load(Ordering::Acquire);
        let topic = load().await?;
        if let Some(topic) = &topic {
            self.remember(indexes, topic, generation).await;
        }
        Ok(topic)
    }

    async fn remember(&self, indexes: &Indexes, topic: &Topic, generation: u64) {
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        indexes
            .by_name
            .insert(topic.name.clone(), topic.clone())
            .await;
        indexes.by_id.insert(topic.id, topic.clone()).await;
        // An invalidation between the check above and the inserts may have run
        // before them; undo ours rather than keep a stale entry for the whole TTL.
        if self.generation.load(Ordering::Acquire) != generation {
            indexes.by_name.invalidate(&topic.name).await;
            indexes.by_id.invalidate(&topic.id).await;
        }
    }

    /// Forgets the topic called `name`, if cached.
    pub(crate) async fn forget_name(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let Some(indexes) = &self.indexes else {
            return;
        };
        if let Some(topic) = indexes.by_name.remove(name).await {
            indexes.by_id.invalidate(&topic.id).await;
        }
    }

    /// Forgets the topic with this id, if cached.
    pub(crate) async fn forget_id(&self, id: TopicId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let Some(indexes) = &self.indexes else {
            return;
        };
        if let Some(topic) = indexes.by_id.remove(&id).await {
            indexes.by_name.invalidate(&topic.name).await;
        }
    }

    /// Forgets every topic: another agent changed some.
    pub(crate) fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(indexes) = &self.indexes {
            indexes.by_name.invalidate_all();
            indexes.by_id.invalidate_all();
        }
    }

    /// Forgets the topic an admin change was made to, by name and, if the change
    /// went through, by id.
    pub(crate) async fn forget_changed(&self, name: &str, changed: &Result<Topic>) {
        self.forget_name(name).await;
        if let Ok(topic) = changed {
            self.forget_id(topic.id).await;
        }
    }
}

fn index<K>(max_topics: u64, ttl: Duration) -> Cache<K, Topic>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(max_topics)
        .time_to_live(ttl)
        .build()
}

impl fmt::Debug for TopicCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.indexes {
            Some(indexes) => f
                .debug_struct("TopicCache")
                .field("by_name", &indexes.by_name.entry_count())
                .field("by_id", &indexes.by_id.entry_count())
                .finish(),
            None => f.write_str("TopicCache(off)"),
        }
    }
}
