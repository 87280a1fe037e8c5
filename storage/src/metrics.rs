//! Counters and latency histograms of the write and read paths, read by the
//! broker's metrics endpoint and the end-to-end benchmark harness.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds: powers of two from
/// 64 µs to about 67 s, enough to tell a local disk from a remote store.
const BUCKET_BOUNDS_MICROS: [u64; 21] = {
    let mut bounds = [0u64; 21];
    let mut i = 0;
    while i < 21 {
        bounds[i] = 64 << i;
        i += 1;
    }
    bounds
};

/// A latency histogram with fixed buckets; lock-free to record.
#[derive(Default)]
pub struct Latency {
    buckets: [AtomicU64; 22],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Latency {
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BUCKET_BOUNDS_MICROS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The bucket bound at or below which `quantile` of the samples fall, in
    /// microseconds (an upper estimate); 0 without samples.
    pub fn quantile_micros(&self, quantile: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let wanted = ((count as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= wanted {
                return BUCKET_BOUNDS_MICROS.get(i).copied().unwrap_or(u64::MAX);
            }
        }
        u64::MAX
    }

    pub(crate) fn render(&self, name: &str, out: &mut String) {
        let _ = writeln!(out, "{name}_count {}", self.count());
        let _ = writeln!(
            out,
            "{name}_sum_micros {}",
            self.sum_micros.load(Ordering::Relaxed)
        );
        for q in [0.5, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "{name}_micros{{quantile=\"{q}\"}} {}",
                self.quantile_micros(q)
            );
        }
    }
}

/// Everything the storage layer counts.
#[derive(Default)]
pub struct Metrics {
    pub store_puts: AtomicU64,
    pub store_put_bytes: AtomicU64,
    pub store_put_latency: Latency,
    pub store_gets: AtomicU64,
    pub store_get_bytes: AtomicU64,
    pub store_get_latency: Latency,
    pub store_other_requests: AtomicU64,
    pub catalog_commit_latency: Latency,
    pub objects_sealed: AtomicU64,
    pub objects_committed: AtomicU64,
    pub batches_appended: AtomicU64,
    /// Compaction and garbage collection.
    pub compaction: crate::compaction::CompactionMetrics,
}

impl Metrics {
    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            ("streamhouse_store_puts_total", &self.store_puts),
            ("streamhouse_store_put_bytes_total", &self.store_put_bytes),
            ("streamhouse_store_gets_total", &self.store_gets),
            ("streamhouse_store_get_bytes_total", &self.store_get_bytes),
            (
                "streamhouse_store_other_requests_total",
                &self.store_other_requests,
            ),
            ("streamhouse_objects_sealed_total", &self.objects_sealed),
            // Divided by the commit latency's count: objects per group commit.
            (
                "streamhouse_objects_committed_total",
                &self.objects_committed,
            ),
            ("streamhouse_batches_appended_total", &self.batches_appended),
        ];
        for (name, counter) in counters {
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        self.store_put_latency
            .render("streamhouse_store_put_latency", &mut out);
        self.store_get_latency
            .render("streamhouse_store_get_latency", &mut out);
        self.catalog_commit_latency
            .render("streamhouse_catalog_commit_latency", &mut out);
        self.compaction.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let latency = Latency::default();
        for _ in 0..99 {
            latency.record(Duration::from_micros(50));
        }
        latency.record(Duration::from_millis(10));
        assert_eq!(latency.quantile_micros(0.5), 64);
        assert_eq!(latency.quantile_micros(0.99), 64);
        assert_eq!(latency.quantile_micros(1.0), 16_384);
    }

    #[test]
    fn rendering_names_every_counter() {
        let metrics = Metrics::default();
        metrics.store_puts.fetch_add(3, Ordering::Relaxed);
        let text = metrics.render();
        assert!(text.contains("streamhouse_store_puts_total 3\n"), "{text}");
        assert!(text.contains("streamhouse_catalog_commit_latency_count 0\n"));
    }
}
