//! The catalog's counters and the poll that watches them.
//!
//! Every change of a kind bumps its counter in the change's own transaction:
//! `membership` (the agents' row set), `catalog` (topics, partition counts,
//! configs), `heads` (SQLite's head change sequence). One agent's poll reads
//! all of them every [`POLL_INTERVAL`] and publishes them in a `watch`: when
//! `catalog` moved it first drops the cached topics, so a topic deleted or
//! reconfigured through another agent is seen here within one interval (plus
//! a query); other parts of the agent subscribe and react to the counter they
//! care about (the heads view forgets deleted topics; membership reloads its
//! view).

use std::sync::Arc;
use std::time::Duration;

use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Catalog;

/// How often the counters are read: four one-row-per-counter reads a second
/// per agent, and a change through another agent seen within a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The counters' values at one read. Each only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub membership: i64,
    pub catalog: i64,
    pub heads: i64,
}

/// The task reading the counters, and what it read last. Dropping it stops
/// the task.
pub struct CounterPoll {
    counters: watch::Receiver<Counters>,
    task: JoinHandle<()>,
}

impl CounterPoll {
    /// Reads the counters now and then every `interval`.
    pub async fn start(catalog: Arc<dyn Catalog>, interval: Duration) -> Self {
        // Start from what the catalog says now, so the first round does not
        // count every past change as new; if it cannot be read, the first read
        // that succeeds counts as a change.
        let first = catalog.counters().await.ok();
        let (tx, counters) = watch::channel(first.unwrap_or_default());
        let task = tokio::spawn(poll(catalog, tx, first, interval));
        Self { counters, task }
    }

    /// A receiver of every change of any counter.
    pub fn subscribe(&self) -> watch::Receiver<Counters> {
        self.counters.clone()
    }

    /// The values last read.
    pub fn current(&self) -> Counters {
        *self.counters.borrow()
    }
}

impl Drop for CounterPoll {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll(
    catalog: Arc<dyn Catalog>,
    tx: watch::Sender<Counters>,
    mut last: Option<Counters>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = match catalog.counters().await {
            Ok(now) => now,
            Err(e) => {
                static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                if let Some(suppressed) = WARNINGS.allow() {
                    tracing::warn!(error = %e, suppressed, "cannot read the catalog counters; other agents' changes are seen late");
                }
                continue;
            }
        };
        if last.is_none_or(|last| last.catalog != now.catalog) {
            // Before publishing: a subscriber reacting to the change must not
            // read the old topics back from the cache.
            catalog.forget_cached_topics().await;
        }
        last = Some(now);
        tx.send_if_modified(|published| {
            let changed = *published != now;
            *published = now;
            changed
        });
    }
}
