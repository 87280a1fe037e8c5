//! Read-ahead for sequential (catch-up) readers.
//!
//! A read that missed the cache, or used an object read ahead for it, is
//! taken as a sequential reader that will soon ask for what follows. The
//! objects of the next entries the same budget would cover (at most
//! [`OBJECTS`] by default) are then fetched in the background into the cache, so the
//! reader's next fetch finds them there, and its GETs overlap the time the
//! client spends receiving and handling the previous response. Tailing
//! readers hit objects cached at commit and never trigger it.
//!
//! Bounds: at most [`IN_FLIGHT`] read-ahead GETs run at once across the agent
//! (when none is free, read-ahead is skipped, never queued), and what they
//! fetch lives in the read cache under its byte capacity like any object.
//! A failed read-ahead is dropped; the reader's own GET reports the error.

use std::sync::Arc;

use streamhouse_metadata::IndexEntry;

use super::{get_object, run_length, ObjectReader};

/// Objects warmed after one read. Sized for the catch-up pattern of small
/// objects: a 1 MiB partition budget spans about 16 objects of 0.5 MiB holding
/// 8 partitions, so eight cover half the next fetch and its own GETs (also
/// eight in flight) the rest.
pub(super) const OBJECTS: usize = 8;

/// Read-ahead GETs in flight across the agent.
pub(super) const IN_FLIGHT: usize = 8;

impl ObjectReader {
    /// Warms the objects of `following` (the entries after the last one a read
    /// used) that a read of `max_bytes` would need.
    pub(super) fn read_ahead(&self, following: &[IndexEntry], max_bytes: usize) {
        let mut bytes = 0usize;
        for entry in following.iter().take(self.read_ahead_objects) {
            if bytes >= max_bytes {
                break;
            }
            bytes = bytes.saturating_add(run_length(entry));
            if self.cache.contains_key(&entry.object_key) {
                continue;
            }
            let Ok(permit) = Arc::clone(&self.read_ahead_permits).try_acquire_owned() else {
                break;
            };
            let cache = self.cache.clone();
            let store = Arc::clone(&self.store);
            let key = entry.object_key.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let warmed = cache
                    .entry_by_ref(&key)
                    .or_try_insert_with(get_object(store, &key, true))
                    .await;
                if let Err(e) = warmed {
                    tracing::debug!(key, error = %e, "read-ahead GET failed");
                }
            });
        }
    }
}
