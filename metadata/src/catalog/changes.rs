//! What lets an agent see other agents' changes: the heads changed since a
//! point (SQLite), head notifications (PostgreSQL), which topics still exist,
//! and the topic cache's invalidation. (The counters that say what kind of
//! change happened are read through `AgentCatalog::counters`.)

use async_trait::async_trait;

use crate::heads::{HeadCursor, HeadFeed, HeadUpdate};
use crate::{Result, TopicId};

#[async_trait]
pub trait ChangeCatalog: Send + Sync + 'static {
    /// How this catalog carries head changes between agents.
    fn head_feed(&self) -> HeadFeed;

    /// Heads changed after `after`, in change order, at most `limit`, and where
    /// the next call resumes. Only [`HeadFeed::Poll`] catalogs stamp changes;
    /// on others this finds nothing.
    async fn head_changes(
        &self,
        after: &HeadCursor,
        limit: u32,
    ) -> Result<(Vec<HeadUpdate>, HeadCursor)>;

    /// The current heads of these partitions (those that exist), both fields
    /// known.
    async fn heads(&self, partitions: &[(TopicId, i32)]) -> Result<Vec<HeadUpdate>>;

    /// Those of `topics` that still exist.
    async fn existing_topics(&self, topics: &[TopicId]) -> Result<Vec<TopicId>>;

    /// Tells the other agents of these head changes, made by agent `node_id`.
    /// Outside any data transaction; does nothing on a [`HeadFeed::Poll`]
    /// catalog, whose changes stamp themselves.
    async fn notify_heads(&self, node_id: i32, updates: &[HeadUpdate]) -> Result<()>;

    /// A listener of other agents' head notifications; `None` on a
    /// [`HeadFeed::Poll`] catalog.
    async fn listen_heads(&self) -> Result<Option<Box<dyn HeadListener>>>;

    /// Drops every cached topic: another agent changed topics or configs.
    async fn forget_cached_topics(&self);
}

/// Head notifications as they arrive.
#[async_trait]
pub trait HeadListener: Send {
    /// The next notification's updates. An error means the connection was
    /// lost and notifications may have been missed: drop this listener and
    /// listen anew.
    async fn next(&mut self) -> Result<Vec<HeadUpdate>>;
}
