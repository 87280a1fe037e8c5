//! A latency histogram with fixed buckets, lock-free to record, exposed as
//! three untyped families: `NAME_count`, `NAME_sum_micros` and
//! `NAME_micros{quantile="0.5"|"0.99"|"0.999"}` (the bucket bound at or below
//! which that share of the samples fell).
//!
//! Why not the crate's `Histogram`: these families predate it and the
//! benchmark harness reads them, and a Prometheus histogram exposes neither
//! integer microsecond sums nor quantiles. New latency metrics (per-API
//! request times) should use `prometheus_client`'s `Histogram` instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

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

/// The quantiles exposed, with their label values.
const QUANTILES: [(f64, &str); 3] = [(0.5, "0.5"), (0.99, "0.99"), (0.999, "0.999")];

/// A handle to one latency histogram; clones share it.
#[derive(Clone, Default, Debug)]
pub struct Latency(Arc<Buckets>);

#[derive(Default, Debug)]
struct Buckets {
    /// One per bound, and one past the last.
    counts: [AtomicU64; 22],
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
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    pub fn sum_micros(&self) -> u64 {
        self.0.sum_micros.load(Ordering::Relaxed)
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
        for (i, bucket) in self.0.counts.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= wanted {
                return BUCKET_BOUNDS_MICROS.get(i).copied().unwrap_or(u64::MAX);
            }
        }
        u64::MAX
    }

    /// Adds the histogram's three families, named after `name`, to `registry`.
    pub fn register(&self, registry: &mut Registry, name: &'static str, help: &'static str) {
        registry.register_collector(Box::new(LatencyFamilies {
            count: format!("{name}_count"),
            sum: format!("{name}_sum_micros"),
            quantiles: format!("{name}_micros"),
            help,
            latency: self.clone(),
        }));
    }
}

/// Encodes one [`Latency`] on each scrape.
#[derive(Debug)]
struct LatencyFamilies {
    count: String,
    sum: String,
    quantiles: String,
    help: &'static str,
    latency: Latency,
}

impl Collector for LatencyFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let help = format!("{}: samples.", self.help);
        encoder
            .encode_descriptor(&self.count, &help, None, MetricType::Unknown)?
            .encode_gauge(&self.latency.count())?;
        let help = format!("{}: sum of the samples in microseconds.", self.help);
        encoder
            .encode_descriptor(&self.sum, &help, None, MetricType::Unknown)?
            .encode_gauge(&self.latency.sum_micros())?;
        let help = format!(
            "{}: upper bucket bound in microseconds of the quantile.",
            self.help
        );
        let mut family =
            encoder.encode_descriptor(&self.quantiles, &help, None, MetricType::Unknown)?;
        for (quantile, label) in QUANTILES {
            family
                .encode_family(&[("quantile", label)])?
                .encode_gauge(&self.latency.quantile_micros(quantile))?;
        }
        Ok(())
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
    fn families_are_untyped_with_the_sum_in_microseconds() {
        let latency = Latency::default();
        latency.record(Duration::from_micros(100));
        latency.record(Duration::from_micros(300));
        let mut registry = Registry::default();
        latency.register(&mut registry, "x_latency", "X's latency");
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert_eq!(
            text,
            "# HELP x_latency_count X's latency: samples.\n\
             # TYPE x_latency_count untyped\n\
             x_latency_count 2\n\
             # HELP x_latency_sum_micros X's latency: sum of the samples in microseconds.\n\
             # TYPE x_latency_sum_micros untyped\n\
             x_latency_sum_micros 400\n\
             # HELP x_latency_micros X's latency: upper bucket bound in microseconds of the quantile.\n\
             # TYPE x_latency_micros untyped\n\
             x_latency_micros{quantile=\"0.5\"} 128\n\
             x_latency_micros{quantile=\"0.99\"} 512\n\
             x_latency_micros{quantile=\"0.999\"} 512\n"
        );
    }
}
