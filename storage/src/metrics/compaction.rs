//! What compaction, garbage collection and producer state expiry count (see
//! `storage::compaction`).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Latency;

#[derive(Default, Debug)]
pub struct CompactionMetrics {
    /// Small objects whose entries compaction moved into bigger ones.
    pub objects_compacted: Counter,
    pub objects_written: Counter,
    pub bytes_rewritten: Counter,
    /// GETs of compaction and the log cleaner (the objects and runs they
    /// read to rewrite): the store's GETs less these are the readers'.
    pub store_gets: Counter,
    /// Objects compaction read from the agent's read cache instead of the
    /// store (a GET saved each).
    pub cache_reads: Counter,
    /// Swaps refused because a source entry changed meanwhile.
    pub conflicts: Counter,
    /// Live objects below half the target at the last pass, young ones
    /// included (at most twice `compaction::plan::MAX_SOURCES`).
    pub pending_objects: Gauge<u64, AtomicU64>,
    /// Wall-clock milliseconds of the last pass that found nothing worth
    /// compacting. A benchmark that wants to read compacted objects waits until
    /// this passes the end of its produce phase plus the minimum age.
    pub last_idle_ms: Gauge<u64, AtomicU64>,
    pub objects_deleted: Counter,
    pub bytes_deleted: Counter,
    /// (partition, producer) states removed after `producer.id.expiration.ms`
    /// without an append.
    pub producer_states_expired: Counter,
    /// Producer ids forgotten after `producer.id.expiration.ms`.
    pub producer_ids_expired: Counter,
    /// Log cleaner (compacted topics): passes over this agent's partitions,
    /// passes or partitions that failed, partitions cleaned, cleanings whose
    /// swap lost to another change, and the bytes of runs removed (read minus
    /// written back).
    pub cleaner_passes: Counter,
    pub cleaner_errors: Counter,
    pub cleaner_partitions_cleaned: Counter,
    pub cleaner_conflicts: Counter,
    pub cleaner_bytes_removed: Counter,
    /// How long each catalog swap took: it holds the partitions' locks (all
    /// of SQLite's write lock), so producers' commits wait for it.
    pub swap_latency: Latency,
    /// Objects the catalog never knew (an upload whose commit failed or never
    /// came), deleted after the orphan grace.
    pub orphans_deleted: Counter,
    pub orphan_bytes_deleted: Counter,
    /// Objects unknown to the catalog at the last scan, waiting out the grace.
    pub orphan_suspects: Gauge<u64, AtomicU64>,
}

impl CompactionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "streamhouse_compaction_objects_compacted",
                "Small objects whose entries compaction moved into bigger ones",
                &self.objects_compacted,
            ),
            (
                "streamhouse_compaction_objects_written",
                "Objects compaction wrote and swapped in",
                &self.objects_written,
            ),
            (
                "streamhouse_compaction_bytes_rewritten",
                "Bytes of the objects compaction swapped in",
                &self.bytes_rewritten,
            ),
            (
                "streamhouse_compaction_store_gets",
                "Store GETs of compaction and the log cleaner (objects and runs read to rewrite)",
                &self.store_gets,
            ),
            (
                "streamhouse_compaction_cache_reads",
                "Objects compaction read from the agent's read cache instead of the store",
                &self.cache_reads,
            ),
            (
                "streamhouse_compaction_conflicts",
                "Compaction swaps refused because a source entry changed meanwhile",
                &self.conflicts,
            ),
            (
                "streamhouse_gc_objects_deleted",
                "Objects the garbage collector deleted from the store",
                &self.objects_deleted,
            ),
            (
                "streamhouse_gc_bytes_deleted",
                "Bytes of the objects the garbage collector deleted",
                &self.bytes_deleted,
            ),
            (
                "streamhouse_producer_states_expired",
                "Idempotent producers' states on partitions removed after producer.id.expiration.ms without an append",
                &self.producer_states_expired,
            ),
            (
                "streamhouse_producer_ids_expired",
                "Producer ids forgotten after producer.id.expiration.ms",
                &self.producer_ids_expired,
            ),
            (
                "streamhouse_gc_orphans_deleted",
                "Objects unknown to the catalog (uploads whose commit failed) deleted after the orphan grace",
                &self.orphans_deleted,
            ),
            (
                "streamhouse_gc_orphan_bytes_deleted",
                "Bytes of the orphaned objects deleted",
                &self.orphan_bytes_deleted,
            ),
            (
                "streamhouse_cleaner_passes",
                "Log cleaner passes over the compacted partitions placed on this agent",
                &self.cleaner_passes,
            ),
            (
                "streamhouse_cleaner_errors",
                "Log cleaner passes or partition cleanings that failed",
                &self.cleaner_errors,
            ),
            (
                "streamhouse_cleaner_partitions_cleaned",
                "Partitions of compacted topics cleaned",
                &self.cleaner_partitions_cleaned,
            ),
            (
                "streamhouse_cleaner_conflicts",
                "Cleanings whose catalog swap found a source entry changed",
                &self.cleaner_conflicts,
            ),
            (
                "streamhouse_cleaner_bytes_removed",
                "Bytes removed from compacted partitions by the log cleaner",
                &self.cleaner_bytes_removed,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "streamhouse_compaction_pending_objects",
            "Live objects below half the compaction target at the last pass",
            self.pending_objects.clone(),
        );
        registry.register(
            "streamhouse_compaction_last_idle_ms",
            "Wall-clock time in Unix milliseconds of the last compaction pass that found nothing to do",
            self.last_idle_ms.clone(),
        );
        registry.register(
            "streamhouse_gc_orphan_suspects",
            "Objects unknown to the catalog at the last orphan scan, waiting out the grace",
            self.orphan_suspects.clone(),
        );
        self.swap_latency.register(
            registry,
            "streamhouse_compaction_swap_latency",
            "Latency of compaction's catalog swaps",
        );
    }
}
