//! Garbage collection: index entries below a partition's log start are dropped,
//! live objects that nothing points into (their topic was deleted, their entries
//! trimmed) are marked `deleting`, and objects `deleting` for longer than the
//! grace period are deleted from the store and then from the catalog.
//!
//! Deleting from the store first means a crash in between leaves a catalog row
//! whose object is gone, which the next sweep deletes again (a missing object
//! counts as deleted); the reverse order would leak the object forever.

use futures::StreamExt;
use object_store::path::Path;
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};

use super::{delete_if_present, CompactionWorker, CONCURRENT_REQUESTS};
use crate::StorageError;

/// Rows one sweep handles per step, so a sweep's transactions stay short; the
/// next sweep takes the rest.
const SWEEP_LIMIT: u32 = 1000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcOutcome {
    pub entries_trimmed: u64,
    pub objects_marked: u64,
    pub objects_deleted: u64,
}

pub(super) async fn sweep(worker: &CompactionWorker) -> Result<GcOutcome, StorageError> {
    let catalog = &worker.catalog;
    let grace = i64::try_from(worker.config.gc_grace.as_millis()).unwrap_or(i64::MAX);
    let entries_trimmed = catalog.drop_entries_below_log_start(SWEEP_LIMIT).await?;
    let now = worker.clock.now_ms();
    let objects_marked = catalog
        .mark_unreferenced_objects(now.saturating_sub(grace), now, SWEEP_LIMIT)
        .await?;
    let doomed = catalog
        .objects_to_delete(now.saturating_sub(grace), SWEEP_LIMIT)
        .await?;
    // Owned requests, so the sweep's future stays `Send`.
    let requests: Vec<_> = doomed
        .into_iter()
        .map(|object| {
            let store = std::sync::Arc::clone(&worker.store);
            async move {
                match delete_if_present(&store, &Path::from(object.key.as_str())).await {
                    Ok(()) => Some((object.id, object.size_bytes)),
                    Err(e) => {
                        static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                        if let Some(suppressed) = WARNINGS.allow() {
                            tracing::warn!(key = %object.key, error = %e, suppressed, "cannot delete object; the next sweep retries");
                        }
                        None
                    }
                }
            }
        })
        .collect();
    let deleted: Vec<(i64, i64)> = futures::stream::iter(requests)
        .buffer_unordered(CONCURRENT_REQUESTS)
        .filter_map(|deleted| async move { deleted })
        .collect()
        .await;
    let ids: Vec<i64> = deleted.iter().map(|(id, _)| *id).collect();
    let objects_deleted = if ids.is_empty() {
        0
    } else {
        catalog.forget_objects(&ids).await?
    };
    let bytes: i64 = deleted.iter().map(|(_, size)| *size).sum();
    let metrics = &worker.metrics;
    metrics.compaction.objects_deleted.inc_by(objects_deleted);
    metrics
        .compaction
        .bytes_deleted
        .inc_by(u64::try_from(bytes).unwrap_or(0));
    Ok(GcOutcome {
        entries_trimmed,
        objects_marked,
        objects_deleted,
    })
}
