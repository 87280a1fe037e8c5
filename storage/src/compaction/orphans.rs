//! Orphaned objects: objects in the store that the catalog has no row for.
//!
//! An object is uploaded before its catalog commit, so an agent that died
//! between the two, a commit that failed, or a compaction whose swap failed
//! with its answer lost leaves an object nothing will ever reference. Garbage
//! collection works from the catalog's rows and cannot see it; only a listing
//! of the store can.
//!
//! A scan lists the store's object keys (`objects/`, the keys the write path
//! and compaction create, `*.sho`; nothing else in the bucket is touched) and
//! asks the catalog which it knows. An unknown key becomes a suspect, with the
//! time it was first seen unknown; a suspect still unknown `orphan_grace`
//! after that is deleted. Objects being uploaded right now are unknown for a
//! moment too: the grace must be far longer than the time from an upload's end
//! to its commit (one catalog call, bounded by `--catalog-timeout-ms`, after
//! the uploads queued before it), and is an hour by default.
//!
//! The time is this agent's own clock, measured between its own scans, never
//! the store's `last_modified` (another machine's clock). Suspects live in
//! memory: when the job moves to another agent, that agent starts its count
//! afresh, which only delays a deletion.
//!
//! One agent runs it, the one that collects garbage
//! ([`super::WorkShare::gc`]), every `orphan_scan_interval`. A scan costs one
//! LIST request per 1,000 objects and one catalog query per 1,000 keys.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path;
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use tokio::time::Instant;

use super::{delete_if_present, CompactionWorker, CONCURRENT_REQUESTS};
use crate::StorageError;

/// The folder every object key starts with (see `format::new_object_key`).
const OBJECTS_PREFIX: &str = "objects";
/// The extension of every object key.
const OBJECT_EXTENSION: &str = ".sho";
/// Keys asked of the catalog at once.
const KEYS_PER_QUERY: usize = 1000;
/// Suspects remembered at most; beyond, new ones wait for a later scan. Bounds
/// the memory of a store full of foreign or orphaned objects (about 100 bytes
/// each).
const MAX_SUSPECTS: usize = 100_000;

/// Unknown keys and when this agent first saw each unknown (its clock, ms).
#[derive(Debug, Default)]
pub struct OrphanSuspects {
    first_seen: HashMap<String, i64>,
}

impl OrphanSuspects {
    pub fn len(&self) -> usize {
        self.first_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_seen.is_empty()
    }
}

/// What one scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrphanScan {
    /// Object keys the listing returned.
    pub listed: u64,
    /// Keys the catalog does not know, deleted or not.
    pub unknown: u64,
    /// Orphans deleted: unknown for longer than the grace.
    pub deleted: u64,
    pub bytes_deleted: u64,
}

pub(super) async fn scan(
    worker: &CompactionWorker,
    suspects: &mut OrphanSuspects,
) -> Result<OrphanScan, StorageError> {
    let grace = i64::try_from(worker.config.orphan_grace.as_millis()).unwrap_or(i64::MAX);
    let now = worker.clock.now_ms();
    let mut outcome = OrphanScan::default();
    let mut still_unknown: HashSet<String> = HashSet::new();
    let mut listing = worker.store.list(Some(&Path::from(OBJECTS_PREFIX)));
    let mut page: Vec<(String, u64)> = Vec::with_capacity(KEYS_PER_QUERY);
    loop {
        let next = listing.next().await.transpose()?;
        if let Some(meta) = next.as_ref() {
            let key = meta.location.to_string();
            if key.ends_with(OBJECT_EXTENSION) {
                page.push((key, meta.size));
            }
        }
        let full = page.len() == KEYS_PER_QUERY;
        if full || (next.is_none() && !page.is_empty()) {
            outcome.listed += page.len() as u64;
            let (doomed, unknown) =
                judge_page(worker, &mut page, suspects, &mut still_unknown, now, grace).await?;
            outcome.unknown += unknown;
            let (deleted, bytes) = delete_orphans(worker, doomed).await;
            for key in &deleted {
                suspects.first_seen.remove(key);
                still_unknown.remove(key);
            }
            outcome.deleted += deleted.len() as u64;
            outcome.bytes_deleted += bytes;
        }
        if next.is_none() {
            break;
        }
    }
    // A suspect not listed or known by now is gone or was committed.
    suspects
        .first_seen
        .retain(|key, _| still_unknown.contains(key));
    let metrics = &worker.metrics.compaction;
    metrics.orphans_deleted.inc_by(outcome.deleted);
    metrics.orphan_bytes_deleted.inc_by(outcome.bytes_deleted);
    metrics.orphan_suspects.set(suspects.len() as u64);
    Ok(outcome)
}

/// Asks the catalog about one page of listed keys (and empties it): records
/// the unknown ones as suspects, and returns those past the grace with their
/// sizes, and how many were unknown.
async fn judge_page(
    worker: &CompactionWorker,
    page: &mut Vec<(String, u64)>,
    suspects: &mut OrphanSuspects,
    still_unknown: &mut HashSet<String>,
    now: i64,
    grace: i64,
) -> Result<(Vec<(String, u64)>, u64), StorageError> {
    let keys: Vec<String> = page.iter().map(|(key, _)| key.clone()).collect();
    let known = worker.catalog.known_object_keys(&keys).await?;
    let mut doomed = Vec::new();
    let mut unknown = 0;
    for (key, size) in page.drain(..) {
        if known.contains(&key) {
            continue;
        }
        unknown += 1;
        let first_seen = match suspects.first_seen.get(&key) {
            Some(&seen) => seen,
            None if suspects.len() < MAX_SUSPECTS => {
                suspects.first_seen.insert(key.clone(), now);
                now
            }
            None => continue,
        };
        still_unknown.insert(key.clone());
        if now.saturating_sub(first_seen) >= grace {
            doomed.push((key, size));
        }
    }
    Ok((doomed, unknown))
}

/// Deletes them a few at a time; returns the keys deleted and their bytes. A
/// failed delete is retried by a later scan.
async fn delete_orphans(
    worker: &CompactionWorker,
    doomed: Vec<(String, u64)>,
) -> (Vec<String>, u64) {
    let requests: Vec<_> = doomed
        .into_iter()
        .map(|(key, size)| {
            let store = Arc::clone(&worker.store);
            async move {
                match delete_if_present(&store, &Path::from(key.as_str())).await {
                    Ok(()) => {
                        tracing::info!(%key, size, "deleted an orphaned object");
                        Some((key, size))
                    }
                    Err(e) => {
                        static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                        if let Some(suppressed) = WARNINGS.allow() {
                            tracing::warn!(%key, error = %e, suppressed, "cannot delete an orphaned object; the next scan retries");
                        }
                        None
                    }
                }
            }
        })
        .collect();
    let deleted: Vec<(String, u64)> = futures::stream::iter(requests)
        .buffer_unordered(CONCURRENT_REQUESTS)
        .filter_map(|deleted| async move { deleted })
        .collect()
        .await;
    let bytes = deleted.iter().map(|(_, size)| size).sum();
    (deleted.into_iter().map(|(key, _)| key).collect(), bytes)
}

/// When the worker's loop runs the next scan, and what it remembers between
/// scans.
pub(super) struct Schedule {
    interval: Duration,
    next: Instant,
    suspects: OrphanSuspects,
}

impl Schedule {
    /// The first scan one interval after the start, as garbage collection's.
    pub(super) fn new(interval: Duration) -> Schedule {
        Schedule {
            interval,
            next: Instant::now() + interval,
            suspects: OrphanSuspects::default(),
        }
    }

    /// When the loop should wake for the next scan.
    pub(super) fn next_at(&self) -> Instant {
        self.next
    }

    /// Runs a scan if one is due and garbage collection is this agent's.
    pub(super) async fn tick(&mut self, worker: &CompactionWorker) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + self.interval;
        if !worker.share.current().gc {
            // Another agent's job now; if it comes back, the count starts afresh.
            self.suspects = OrphanSuspects::default();
            return;
        }
        if let Err(e) = scan(worker, &mut self.suspects).await {
            static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
            if let Some(suppressed) = WARNINGS.allow() {
                tracing::warn!(error = %e, suppressed, "orphaned object scan failed; retrying later");
            }
        }
    }
}
