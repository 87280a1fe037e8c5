//! What compaction and garbage collection count, rendered with the storage
//! metrics (see [`crate::metrics::Metrics`]).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Latency;

#[derive(Default)]
pub struct CompactionMetrics {
    /// Small objects whose entries compaction moved into bigger ones.
    pub objects_compacted: AtomicU64,
    pub objects_written: AtomicU64,
    pub bytes_rewritten: AtomicU64,
    /// Swaps refused because a source entry changed meanwhile.
    pub conflicts: AtomicU64,
    /// Gauge: live objects below half the target at the last pass, young ones
    /// included (at most twice [`super::plan::MAX_SOURCES`]).
    pub pending_objects: AtomicU64,
    /// Gauge: wall-clock milliseconds of the last pass that found nothing worth
    /// compacting. A benchmark that wants to read compacted objects waits until
    /// this passes the end of its produce phase plus the minimum age.
    pub last_idle_ms: AtomicU64,
    pub objects_deleted: AtomicU64,
    pub bytes_deleted: AtomicU64,
    /// How long each catalog swap took: it holds the partitions' locks (all
    /// of SQLite's write lock), so producers' commits wait for it.
    pub swap_latency: Latency,
}

impl CompactionMetrics {
    pub fn render(&self, out: &mut String) {
        let values = [
            (
                "streamhouse_compaction_objects_compacted_total",
                &self.objects_compacted,
            ),
            (
                "streamhouse_compaction_objects_written_total",
                &self.objects_written,
            ),
            (
                "streamhouse_compaction_bytes_rewritten_total",
                &self.bytes_rewritten,
            ),
            ("streamhouse_compaction_conflicts_total", &self.conflicts),
            (
                "streamhouse_compaction_pending_objects",
                &self.pending_objects,
            ),
            ("streamhouse_compaction_last_idle_ms", &self.last_idle_ms),
            (
                "streamhouse_gc_objects_deleted_total",
                &self.objects_deleted,
            ),
            ("streamhouse_gc_bytes_deleted_total", &self.bytes_deleted),
        ];
        for (name, value) in values {
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        self.swap_latency
            .render("streamhouse_compaction_swap_latency", out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_names_every_value() {
        let metrics = CompactionMetrics::default();
        metrics.objects_compacted.fetch_add(7, Ordering::Relaxed);
        let mut text = String::new();
        metrics.render(&mut text);
        assert!(text.contains("streamhouse_compaction_objects_compacted_total 7\n"));
        assert_eq!(text.lines().count(), 8 + 5);
        assert!(text.contains("streamhouse_compaction_swap_latency_count 0\n"));
    }
}
