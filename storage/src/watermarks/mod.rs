//! The agent's view of each partition's head (log start, high watermark), and
//! the notifications that wake fetches waiting for new data.
//!
//! A head is loaded from the catalog on first use and then moved by three
//! sources: this agent's commits and DeleteRecords, other agents' changes as
//! the feed (`feed.rs`) brings them, and authoritative re-reads
//! ([`Watermarks::refresh`]). Every source applies the maximum, field by
//! field, so values only move forward whatever order they arrive in. A head
//! being loaded is marked: values arriving during the load are kept and
//! merged into what it read, so a load that read the catalog just before
//! another agent's commit cannot hide that commit.
//!
//! The view may lag the catalog by the feed's delay; callers about to answer an
//! error because of it re-read the head first ([`Watermarks::refresh`]).

mod feed;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamhouse_metadata::heads::HeadUpdate;
use streamhouse_metadata::{Catalog, PartitionOffsets, TopicId};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

type Key = (TopicId, i32);

/// Heads read this recently are kept fresh by the fallback poll while
/// notifications are down; older ones are dropped then and loaded again when
/// next needed.
const RECENTLY_READ: Duration = Duration::from_secs(30);

pub struct Watermarks {
    catalog: Arc<dyn Catalog>,
    /// A std Mutex: it is never held across an await.
    state: Mutex<State>,
    /// Subscriptions alive: fetches waiting for a head to move. The SQLite
    /// poll runs faster while there are any.
    waiting: Arc<AtomicUsize>,
    /// Signalled when the first subscription of a quiet spell starts.
    first_waiter: Arc<Notify>,
    /// This agent's changes not yet announced to other agents; only filled
    /// once the feed runs on a catalog that notifies.
    outbox: Mutex<HashMap<Key, PartitionOffsets>>,
    announcing: AtomicBool,
    outbox_ready: Arc<Notify>,
    /// The feed's tasks, stopped with the view.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    heads: HashMap<Key, Head>,
    /// Heads being read from the catalog, with the most any source set while
    /// the read was under way.
    loading: HashMap<Key, Loading>,
}

struct Head {
    tx: watch::Sender<PartitionOffsets>,
    last_read: Instant,
}

struct Loading {
    loaders: usize,
    seen: PartitionOffsets,
}

/// A receiver of one head's changes, counted as a waiting fetch while it
/// lives.
pub struct Subscription {
    rx: watch::Receiver<PartitionOffsets>,
    waiting: Arc<AtomicUsize>,
}

impl Deref for Subscription {
    type Target = watch::Receiver<PartitionOffsets>;
    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl DerefMut for Subscription {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rx
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `current` moved forward by `update`, field by field. The high watermark is
/// never below the log start (a log start learnt before the commits below it).
fn merged(current: PartitionOffsets, update: PartitionOffsets) -> PartitionOffsets {
    let log_start_offset = current.log_start_offset.max(update.log_start_offset);
    PartitionOffsets {
        log_start_offset,
        high_watermark: current
            .high_watermark
            .max(update.high_watermark)
            .max(log_start_offset),
    }
}

const UNKNOWN: PartitionOffsets = PartitionOffsets {
    log_start_offset: -1,
    high_watermark: -1,
};

impl Watermarks {
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Watermarks {
            catalog,
            state: Mutex::new(State::default()),
            waiting: Arc::new(AtomicUsize::new(0)),
            first_waiter: Arc::new(Notify::new()),
            outbox: Mutex::new(HashMap::new()),
            announcing: AtomicBool::new(false),
            outbox_ready: Arc::new(Notify::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every operation under this lock leaves the maps consistent before
        // it could panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, key: &Key) -> Option<PartitionOffsets> {
        let mut state = self.lock();
        let head = state.heads.get_mut(key)?;
        head.last_read = Instant::now();
        let offsets = *head.tx.borrow();
        Some(offsets)
    }

    /// The partition's offsets as this agent knows them; `None` if the
    /// partition does not exist.
    pub async fn get(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> streamhouse_metadata::Result<Option<PartitionOffsets>> {
        let key = (topic, partition);
        if let Some(offsets) = self.cached(&key) {
            return Ok(Some(offsets));
        }
        self.load(key).await
    }

    /// The partition's offsets read from the catalog now (merged with anything
    /// newer the view learnt meanwhile): for decisions a stale view must not
    /// make, such as answering OFFSET_OUT_OF_RANGE.
    pub async fn refresh(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> streamhouse_metadata::Result<Option<PartitionOffsets>> {
        self.load((topic, partition)).await
    }

    async fn load(&self, key: Key) -> streamhouse_metadata::Result<Option<PartitionOffsets>> {
        self.begin_load(key);
        let read = self.catalog.partition_offsets(key.0, key.1).await;
        self.finish_load(key, read)
    }

    fn begin_load(&self, key: Key) {
        let mut state = self.lock();
        state
            .loading
            .entry(key)
            .or_insert(Loading {
                loaders: 0,
                seen: UNKNOWN,
            })
            .loaders += 1;
    }

    fn finish_load(
        &self,
        key: Key,
        read: streamhouse_metadata::Result<Option<PartitionOffsets>>,
    ) -> streamhouse_metadata::Result<Option<PartitionOffsets>> {
        let mut state = self.lock();
        let seen = match state.loading.get_mut(&key) {
            Some(loading) => {
                loading.loaders -= 1;
                let seen = loading.seen;
                if loading.loaders == 0 {
                    state.loading.remove(&key);
                }
                seen
            }
            // Forgotten meanwhile (its topic was deleted).
            None => UNKNOWN,
        };
        let Some(read) = read? else {
            // The partition is gone: waiting fetches see their channel close.
            state.heads.remove(&key);
            return Ok(None);
        };
        let offsets = merged(read, seen);
        Ok(Some(match state.heads.get_mut(&key) {
            Some(head) => {
                head.last_read = Instant::now();
                advance(&head.tx, offsets)
            }
            None => {
                state.heads.insert(
                    key,
                    Head {
                        tx: watch::channel(offsets).0,
                        last_read: Instant::now(),
                    },
                );
                offsets
            }
        }))
    }

    /// Re-reads these partitions' heads from the catalog in one query and
    /// applies them; true if any held head moved. For answers a lost
    /// announcement must not keep empty for ever (another agent that crashed
    /// between its commit and its announcement).
    pub async fn refresh_many(
        &self,
        partitions: &[(TopicId, i32)],
    ) -> streamhouse_metadata::Result<bool> {
        let heads = self.catalog.heads(partitions).await?;
        let mut moved = false;
        for head in &heads {
            moved |= self.apply(head);
        }
        Ok(moved)
    }

    /// Moves a head forward if this agent holds it (or is loading it); a head
    /// it does not hold is loaded fresh when needed. True if a held head moved.
    fn apply(&self, update: &HeadUpdate) -> bool {
        let key = (update.topic, update.partition);
        let mut state = self.lock();
        if let Some(head) = state.heads.get(&key) {
            let before = *head.tx.borrow();
            return advance(&head.tx, update.offsets) != before;
        }
        if let Some(loading) = state.loading.get_mut(&key) {
            loading.seen = merged(loading.seen, update.offsets);
        }
        false
    }

    /// A receiver that changes whenever the partition's offsets change. Loads the
    /// partition first if needed; `None` if it does not exist.
    pub async fn subscribe(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> streamhouse_metadata::Result<Option<Subscription>> {
        if self.get(topic, partition).await?.is_none() {
            return Ok(None);
        }
        let Some(rx) = self
            .lock()
            .heads
            .get(&(topic, partition))
            .map(|head| head.tx.subscribe())
        else {
            return Ok(None);
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            self.first_waiter.notify_one();
        }
        Ok(Some(Subscription {
            rx,
            waiting: Arc::clone(&self.waiting),
        }))
    }

    /// Records a commit of this agent that moved the high watermark to
    /// `high_watermark`.
    pub async fn advance(&self, topic: TopicId, partition: i32, high_watermark: i64) {
        self.local(HeadUpdate::high_watermark(topic, partition, high_watermark));
    }

    /// Records a new log start offset set by this agent (retention,
    /// DeleteRecords).
    pub async fn set_log_start(&self, topic: TopicId, partition: i32, log_start_offset: i64) {
        self.local(HeadUpdate::log_start(topic, partition, log_start_offset));
    }

    /// A change made here: applied, and queued for the other agents when the
    /// catalog needs telling.
    fn local(&self, update: HeadUpdate) {
        self.apply(&update);
        if self.announcing.load(Ordering::Acquire) {
            let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
            let queued = outbox
                .entry((update.topic, update.partition))
                .or_insert(UNKNOWN);
            *queued = merged_unclamped(*queued, update.offsets);
            drop(outbox);
            self.outbox_ready.notify_one();
        }
    }

    /// Puts back announcements that could not be sent, merged with any queued
    /// since.
    fn requeue(&self, pending: HashMap<Key, PartitionOffsets>) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        for (key, offsets) in pending {
            let queued = outbox.entry(key).or_insert(offsets);
            *queued = merged_unclamped(*queued, offsets);
        }
        drop(outbox);
        self.outbox_ready.notify_one();
    }

    /// Drops every partition of a deleted topic; waiting fetches see their
    /// channel close and answer at once.
    pub fn forget_topic(&self, topic: TopicId) {
        let mut state = self.lock();
        state.heads.retain(|(t, _), _| *t != topic);
        state.loading.retain(|(t, _), _| *t != topic);
    }

    /// The topics of the heads held.
    fn held_topics(&self) -> Vec<TopicId> {
        let mut topics: Vec<TopicId> = self.lock().heads.keys().map(|(t, _)| *t).collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// The heads worth keeping fresh by polling (a fetch waits on them or they
    /// were read recently); the others are dropped, to be loaded again when
    /// next needed.
    fn keep_active(&self) -> Vec<Key> {
        let now = Instant::now();
        let mut state = self.lock();
        state.heads.retain(|_, head| {
            head.tx.receiver_count() > 0 || now.duration_since(head.last_read) < RECENTLY_READ
        });
        state.heads.keys().copied().collect()
    }
}

/// Moves a head's channel forward; returns the value after.
fn advance(tx: &watch::Sender<PartitionOffsets>, update: PartitionOffsets) -> PartitionOffsets {
    tx.send_if_modified(|offsets| {
        let next = merged(*offsets, update);
        let moved = next != *offsets;
        *offsets = next;
        moved
    });
    *tx.borrow()
}

/// The field-wise maximum, keeping unknown (-1) fields unknown: what the outbox
/// announces must be what a change set, not a guess.
fn merged_unclamped(a: PartitionOffsets, b: PartitionOffsets) -> PartitionOffsets {
    PartitionOffsets {
        log_start_offset: a.log_start_offset.max(b.log_start_offset),
        high_watermark: a.high_watermark.max(b.high_watermark),
    }
}

impl Drop for Watermarks {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}
