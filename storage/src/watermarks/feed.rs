//! The tasks that keep the heads view fresh across agents.
//!
//! - SQLite ([`HeadFeed::Poll`]): every head change in the catalog carries a
//!   sequence number; one task reads the changes after the last it saw, every
//!   [`POLL_WAITING`] while a fetch waits and every [`POLL_IDLE`] otherwise.
//! - PostgreSQL ([`HeadFeed::Notify`]): this agent's changes are announced
//!   after their transactions (the announcer coalesces what piles up while a
//!   notification is being sent, and retries what failed); a listener applies
//!   the other agents' announcements. While the listener is down, and for one
//!   round after it is back (announcements sent meanwhile are lost), the heads
//!   worth keeping are re-read every [`POLL_WAITING`] and the rest dropped.
//! - Both: when the catalog counter moves (a topic created, deleted or
//!   changed somewhere), the held heads of deleted topics are forgotten, which
//!   wakes their waiting fetches.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::agents::Counters;
use streamhouse_metadata::heads::{HeadCursor, HeadFeed, HeadUpdate};
use streamhouse_metadata::{CatalogError, HeadListener};
use tokio::sync::watch;

use super::Watermarks;

/// Poll period while a fetch waits: the cross-agent part of a long poll's
/// latency on SQLite.
pub const POLL_WAITING: Duration = Duration::from_millis(10);
/// Poll period while no fetch waits: keeps the view close for the next one.
pub const POLL_IDLE: Duration = Duration::from_millis(100);
/// Changes read per statement; a burst beyond it takes several.
const CHANGES_PER_POLL: u32 = 5000;
/// Between attempts to re-establish the notification listener.
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// Between attempts to announce changes after a failure.
const ANNOUNCE_RETRY: Duration = Duration::from_millis(100);

impl Watermarks {
    /// Starts keeping this view fresh with the changes other agents make:
    /// the head feed of the catalog's kind, announcements of this agent's
    /// changes as agent `node_id`, and forgetting deleted topics when
    /// `counters` shows the catalog counter moved. The tasks end with the view.
    pub fn start_feed(self: &Arc<Self>, node_id: i32, counters: watch::Receiver<Counters>) {
        let mut tasks = vec![spawn(self, |view| forget_deleted_topics(view, counters))];
        match self.catalog.head_feed() {
            HeadFeed::Poll => tasks.push(spawn(self, poll_changes)),
            HeadFeed::Notify => {
                self.announcing.store(true, Ordering::Release);
                let listening = Arc::new(AtomicBool::new(false));
                let catch_up = Arc::new(AtomicBool::new(false));
                let (l, c) = (Arc::clone(&listening), Arc::clone(&catch_up));
                tasks.push(spawn(self, move |view| listen(view, l, c)));
                tasks.push(spawn(self, move |view| {
                    poll_while_deaf(view, listening, catch_up)
                }));
                tasks.push(spawn(self, move |view| announce(view, node_id)));
            }
        }
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tasks);
    }
}

/// Spawns a task that holds the view only weakly, so that dropping the view
/// stops it (the view also aborts it).
fn spawn<F, Fut>(view: &Arc<Watermarks>, task: F) -> tokio::task::JoinHandle<()>
where
    F: FnOnce(Weak<Watermarks>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(task(Arc::downgrade(view)))
}

fn warn(what: &'static str, error: &CatalogError) {
    static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
    if let Some(suppressed) = WARNINGS.allow() {
        tracing::warn!(%error, suppressed, "{what}; other agents' changes are seen late");
    }
}

async fn forget_deleted_topics(view: Weak<Watermarks>, mut counters: watch::Receiver<Counters>) {
    let mut seen = counters.borrow_and_update().catalog;
    while counters.changed().await.is_ok() {
        let now = counters.borrow_and_update().catalog;
        if now == seen {
            continue;
        }
        let Some(view) = view.upgrade() else { return };
        let held = view.held_topics();
        match view.catalog.existing_topics(&held).await {
            Ok(existing) => {
                seen = now;
                for topic in held.into_iter().filter(|t| !existing.contains(t)) {
                    view.forget_topic(topic);
                }
            }
            // Tried again at the counters' next change, or next poll.
            Err(e) => warn("cannot check the held topics", &e),
        }
    }
}

/// SQLite: reads the heads changed since the last round.
async fn poll_changes(view: Weak<Watermarks>) {
    let mut cursor = None;
    loop {
        let Some(strong) = view.upgrade() else { return };
        let period = if strong.waiting.load(Ordering::Acquire) > 0 {
            POLL_WAITING
        } else {
            POLL_IDLE
        };
        let first_waiter = Arc::clone(&strong.first_waiter);
        let after = match cursor.take() {
            Some(after) => Ok(after),
            // Heads are loaded after this read, so they include every change
            // up to it.
            None => strong
                .catalog
                .counters()
                .await
                .map(|c| HeadCursor::after(c.heads)),
        };
        cursor = match after {
            Ok(after) => Some(read_changes(&strong, after).await),
            Err(e) => {
                warn("cannot read the head change sequence", &e);
                None
            }
        };
        drop(strong);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = first_waiter.notified() => {}
        }
    }
}

/// Applies every change after `after`; returns where the next round resumes.
async fn read_changes(view: &Watermarks, mut after: HeadCursor) -> HeadCursor {
    loop {
        match view.catalog.head_changes(&after, CHANGES_PER_POLL).await {
            Ok((changes, next)) => {
                for change in &changes {
                    view.apply(change);
                }
                after = next;
                if changes.len() < CHANGES_PER_POLL as usize {
                    return after;
                }
            }
            Err(e) => {
                warn("cannot read head changes", &e);
                return after;
            }
        }
    }
}

/// PostgreSQL: applies other agents' announcements, re-listening after a loss.
async fn listen(view: Weak<Watermarks>, listening: Arc<AtomicBool>, catch_up: Arc<AtomicBool>) {
    let mut listener: Option<Box<dyn HeadListener>> = None;
    loop {
        let Some(strong) = view.upgrade() else { return };
        let catalog = Arc::clone(&strong.catalog);
        drop(strong);
        match listener.as_mut() {
            None => match catalog.listen_heads().await {
                Ok(Some(l)) => {
                    listener = Some(l);
                    listening.store(true, Ordering::Release);
                    // What was announced before the listener was up is lost.
                    catch_up.store(true, Ordering::Release);
                }
                Ok(None) => return,
                Err(e) => {
                    warn("cannot listen for head notifications", &e);
                    tokio::time::sleep(LISTEN_RETRY).await;
                }
            },
            Some(l) => match l.next().await {
                Ok(updates) => {
                    let Some(strong) = view.upgrade() else { return };
                    for update in &updates {
                        strong.apply(update);
                    }
                }
                Err(e) => {
                    warn("head notifications lost", &e);
                    listening.store(false, Ordering::Release);
                    listener = None;
                }
            },
        }
    }
}

/// PostgreSQL: re-reads the heads worth keeping while the listener is down,
/// and once after it is back.
async fn poll_while_deaf(
    view: Weak<Watermarks>,
    listening: Arc<AtomicBool>,
    catch_up: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(POLL_WAITING).await;
        let deaf = !listening.load(Ordering::Acquire);
        if !deaf && !catch_up.swap(false, Ordering::AcqRel) {
            continue;
        }
        let Some(view) = view.upgrade() else { return };
        let keys = view.keep_active();
        match view.catalog.heads(&keys).await {
            Ok(heads) => {
                for head in &heads {
                    view.apply(head);
                }
            }
            Err(e) => {
                warn("cannot re-read heads", &e);
                if !deaf {
                    catch_up.store(true, Ordering::Release);
                }
            }
        }
    }
}

/// PostgreSQL: announces this agent's changes, all that piled up at once.
async fn announce(view: Weak<Watermarks>, node_id: i32) {
    let Some(ready) = view.upgrade().map(|v| Arc::clone(&v.outbox_ready)) else {
        return;
    };
    loop {
        ready.notified().await;
        let Some(strong) = view.upgrade() else { return };
        let pending: HashMap<_, _> =
            std::mem::take(&mut *strong.outbox.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            continue;
        }
        let updates: Vec<HeadUpdate> = pending
            .iter()
            .map(|(&(topic, partition), &offsets)| HeadUpdate {
                topic,
                partition,
                offsets,
            })
            .collect();
        if let Err(e) = strong.catalog.notify_heads(node_id, &updates).await {
            warn("cannot announce head changes", &e);
            strong.requeue(pending);
            drop(strong);
            tokio::time::sleep(ANNOUNCE_RETRY).await;
        }
    }
}
