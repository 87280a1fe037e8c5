//! Every metric of the storage layer — the object store's requests, the write
//! path's objects and commits, compaction and garbage collection — as
//! `prometheus_client` metrics. [`Metrics::register`] adds them to the
//! registry the broker serves; the benchmark harness reads them by name.
//!
//! Counters are registered without their `_total` suffix, which the encoder
//! adds, so the exposed names end in `_total`.

mod compaction;
mod latency;
mod retention;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

pub use compaction::CompactionMetrics;
pub use latency::Latency;
pub use retention::{RetentionMetrics, TopicLabels};

/// Everything the storage layer counts. Each field is a handle to a metric
/// that [`Metrics::register`] exposes.
#[derive(Default, Debug)]
pub struct Metrics {
    pub store_puts: Counter,
    pub store_put_bytes: Counter,
    pub store_put_latency: Latency,
    /// Second PUTs of late uploads (each also counts in `store_puts`).
    pub store_put_hedges: Counter,
    pub store_gets: Counter,
    pub store_get_bytes: Counter,
    pub store_get_latency: Latency,
    pub store_other_requests: Counter,
    pub catalog_commit_latency: Latency,
    pub objects_sealed: Counter,
    pub objects_committed: Counter,
    pub batches_appended: Counter,
    /// Compaction and garbage collection.
    pub compaction: CompactionMetrics,
    /// Retention and the retained sizes of topics.
    pub retention: RetentionMetrics,
}

impl Metrics {
    /// Adds every storage metric to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "streamhouse_store_puts",
                "Object store PUTs",
                &self.store_puts,
            ),
            (
                "streamhouse_store_put_bytes",
                "Bytes put to the object store",
                &self.store_put_bytes,
            ),
            (
                "streamhouse_store_put_hedges",
                "Second PUTs of uploads that were late (also counted in store_puts)",
                &self.store_put_hedges,
            ),
            (
                "streamhouse_store_gets",
                "Object store GETs, one per range of a multi-range read",
                &self.store_gets,
            ),
            (
                "streamhouse_store_get_bytes",
                "Bytes got from the object store by whole-object and single-range GETs",
                &self.store_get_bytes,
            ),
            (
                "streamhouse_store_other_requests",
                "Object store requests other than PUT and GET (list, delete, copy, multipart)",
                &self.store_other_requests,
            ),
            (
                "streamhouse_objects_sealed",
                "Objects the write path sealed",
                &self.objects_sealed,
            ),
            // Divided by the commit latency's count: objects per group commit.
            (
                "streamhouse_objects_committed",
                "Objects the write path committed to the catalog",
                &self.objects_committed,
            ),
            (
                "streamhouse_batches_appended",
                "Record batches added to open objects",
                &self.batches_appended,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        self.store_put_latency.register(
            registry,
            "streamhouse_store_put_latency",
            "Object store PUT latency",
        );
        self.store_get_latency.register(
            registry,
            "streamhouse_store_get_latency",
            "Object store GET latency, to the response's headers",
        );
        self.catalog_commit_latency.register(
            registry,
            "streamhouse_catalog_commit_latency",
            "Latency of the write path's catalog commits, one per group of objects",
        );
        self.compaction.register(registry);
        self.retention.register(registry);
    }

    /// The storage metrics alone, in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample names the benchmark harness and dashboards know.
    const SAMPLES: [&str; 51] = [
        "streamhouse_store_puts_total",
        "streamhouse_store_put_hedges_total",
        "streamhouse_store_put_bytes_total",
        "streamhouse_store_gets_total",
        "streamhouse_store_get_bytes_total",
        "streamhouse_store_other_requests_total",
        "streamhouse_objects_sealed_total",
        "streamhouse_objects_committed_total",
        "streamhouse_batches_appended_total",
        "streamhouse_store_put_latency_count",
        "streamhouse_store_put_latency_sum_micros",
        "streamhouse_store_put_latency_micros{quantile=\"0.5\"}",
        "streamhouse_store_put_latency_micros{quantile=\"0.99\"}",
        "streamhouse_store_put_latency_micros{quantile=\"0.999\"}",
        "streamhouse_store_get_latency_count",
        "streamhouse_store_get_latency_sum_micros",
        "streamhouse_store_get_latency_micros{quantile=\"0.5\"}",
        "streamhouse_store_get_latency_micros{quantile=\"0.99\"}",
        "streamhouse_store_get_latency_micros{quantile=\"0.999\"}",
        "streamhouse_catalog_commit_latency_count",
        "streamhouse_catalog_commit_latency_sum_micros",
        "streamhouse_catalog_commit_latency_micros{quantile=\"0.5\"}",
        "streamhouse_catalog_commit_latency_micros{quantile=\"0.99\"}",
        "streamhouse_catalog_commit_latency_micros{quantile=\"0.999\"}",
        "streamhouse_compaction_objects_compacted_total",
        "streamhouse_compaction_objects_written_total",
        "streamhouse_compaction_bytes_rewritten_total",
        "streamhouse_compaction_store_gets_total",
        "streamhouse_compaction_cache_reads_total",
        "streamhouse_compaction_conflicts_total",
        "streamhouse_compaction_pending_objects",
        "streamhouse_compaction_last_idle_ms",
        "streamhouse_compaction_swap_latency_count",
        "streamhouse_compaction_swap_latency_sum_micros",
        "streamhouse_compaction_swap_latency_micros{quantile=\"0.5\"}",
        "streamhouse_compaction_swap_latency_micros{quantile=\"0.99\"}",
        "streamhouse_compaction_swap_latency_micros{quantile=\"0.999\"}",
        "streamhouse_gc_objects_deleted_total",
        "streamhouse_gc_bytes_deleted_total",
        "streamhouse_gc_orphans_deleted_total",
        "streamhouse_gc_orphan_bytes_deleted_total",
        "streamhouse_gc_orphan_suspects",
        "streamhouse_producer_states_expired_total",
        "streamhouse_producer_ids_expired_total",
        "streamhouse_retention_bytes_deleted_total",
        "streamhouse_retention_log_starts_moved_total",
        "streamhouse_cleaner_passes_total",
        "streamhouse_cleaner_errors_total",
        "streamhouse_cleaner_partitions_cleaned_total",
        "streamhouse_cleaner_conflicts_total",
        "streamhouse_cleaner_bytes_removed_total",
    ];

    /// The sample lines of a text exposition: name (with labels) to value.
    fn samples(text: &str) -> Vec<(String, u64)> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').expect("a sample line");
                (name.to_string(), value.parse().expect("an integer value"))
            })
            .collect()
    }

    #[test]
    fn every_known_sample_is_exposed_and_nothing_else() {
        let mut expected: Vec<&str> = SAMPLES.to_vec();
        expected.sort_unstable();
        let samples = samples(&Metrics::default().render());
        let mut exposed: Vec<&str> = samples.iter().map(|(name, _)| name.as_str()).collect();
        exposed.sort_unstable();
        assert_eq!(exposed, expected);
    }

    #[test]
    fn values_are_exposed_under_their_names() {
        let metrics = Metrics::default();
        metrics.store_puts.inc_by(3);
        metrics
            .catalog_commit_latency
            .record(std::time::Duration::from_micros(1_000));
        metrics.compaction.last_idle_ms.set(1_700_000_000_000);
        let text = metrics.render();
        let value = |wanted: &str| {
            samples(&text)
                .into_iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| value)
        };
        assert_eq!(value("streamhouse_store_puts_total"), Some(3));
        assert_eq!(value("streamhouse_store_gets_total"), Some(0));
        assert_eq!(value("streamhouse_catalog_commit_latency_count"), Some(1));
        assert_eq!(
            value("streamhouse_catalog_commit_latency_sum_micros"),
            Some(1_000)
        );
        assert_eq!(
            value("streamhouse_catalog_commit_latency_micros{quantile=\"0.99\"}"),
            Some(1_024)
        );
        assert_eq!(
            value("streamhouse_compaction_last_idle_ms"),
            Some(1_700_000_000_000)
        );
    }

    #[test]
    fn counters_and_gauges_are_typed() {
        let text = Metrics::default().render();
        assert!(text.contains("# TYPE streamhouse_store_puts_total counter\n"));
        assert!(text.contains("# TYPE streamhouse_compaction_pending_objects gauge\n"));
        assert!(text.contains("# TYPE streamhouse_store_put_latency_count untyped\n"));
    }
}
