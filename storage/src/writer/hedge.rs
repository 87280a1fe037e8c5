//! Hedged PUTs: an object's upload that has not answered by the time most
//! recent uploads had is sent a second time, and whichever answers first wins.
//!
//! Why: objects commit in seal order, so one slow PUT holds back every
//! acknowledgement behind it, and a Kafka producer's few requests in flight
//! all wait on it. On S3 the slow PUTs are a tail of independent stragglers
//! (a median of tens of milliseconds, a 99th percentile several times that);
//! a second request of the same object usually answers in a median time,
//! which cuts the tail for more PUTs, bounded by a budget. Both requests
//! write the same bytes under the same fresh key, so whichever lands last
//! changes nothing. AWS's own guidance for latency-sensitive applications is the same
//! ("retry" slow requests, in the S3 performance guidelines).
//!
//! The delay is a quantile of recent first-attempt latencies (with a floor),
//! and a budget bounds the extra PUTs whatever happens: when the store slows
//! down as a whole, every PUT is late and hedging would only add load.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// When to hedge an upload.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgeConfig {
    /// Hedge after this quantile (0 < q < 1) of recent upload latencies.
    pub quantile: f64,
    /// Never sooner than this.
    pub floor: Duration,
    /// At most this fraction of PUTs are hedges (over the agent's life, plus
    /// a few to start with). Half by default, because the tail is what a
    /// producer waits for: at the 70th percentile on S3-like latency about a
    /// third of uploads are hedged, which bought Java's default producer
    /// about 15% more throughput (docs/benchmarks.md, "On S3-like latency").
    pub budget: f64,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            quantile: 0.7,
            floor: Duration::from_millis(10),
            budget: 0.5,
        }
    }
}

/// Latencies kept to estimate the quantile.
const WINDOW: usize = 128;
/// No hedging before this many uploads have been timed.
const MIN_SAMPLES: usize = 16;
/// Hedges allowed beyond the budget's fraction, so that a young agent can.
const BUDGET_BURST: u64 = 8;

/// The hedging state shared by an agent's uploads.
pub(super) struct Hedger {
    config: HedgeConfig,
    recent: Mutex<VecDeque<Duration>>,
    puts: AtomicU64,
    hedges: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Hedger {
    pub(super) fn new(config: HedgeConfig, metrics: Arc<Metrics>) -> Self {
        Hedger {
            config,
            recent: Mutex::new(VecDeque::with_capacity(WINDOW)),
            puts: AtomicU64::new(0),
            hedges: AtomicU64::new(0),
            metrics,
        }
    }

    /// How long to wait before hedging the next upload; `None` while too few
    /// uploads have been timed to tell.
    fn delay(&self) -> Option<Duration> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted: Vec<Duration> = recent.iter().copied().collect();
        drop(recent);
        sorted.sort_unstable();
        let rank = ((sorted.len() as f64 * self.config.quantile) as usize).min(sorted.len() - 1);
        Some(sorted[rank].max(self.config.floor))
    }

    fn record(&self, latency: Duration) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == WINDOW {
            recent.pop_front();
        }
        recent.push_back(latency);
    }

    /// Takes one hedge from the budget, if there is one left.
    fn take_hedge(&self) -> bool {
        let allowed =
            (self.puts.load(Ordering::Relaxed) as f64 * self.config.budget) as u64 + BUDGET_BURST;
        self.hedges
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |hedges| {
                (hedges < allowed).then_some(hedges + 1)
            })
            .is_ok()
    }

    /// PUTs `payload` at `key`, a second time if the first is late; the
    /// first success wins, and an error only once both have failed.
    pub(super) async fn put(
        &self,
        store: &dyn ObjectStore,
        key: &Path,
        payload: PutPayload,
    ) -> Result<(), object_store::Error> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let first = store.put(key, payload.clone());
        tokio::pin!(first);
        let Some(delay) = self.delay() else {
            let result = first.await.map(|_| ());
            if result.is_ok() {
                self.record(started.elapsed());
            }
            return result;
        };
        tokio::select! {
            result = &mut first => {
                if result.is_ok() {
                    self.record(started.elapsed());
                }
                return result.map(|_| ());
            }
            _ = tokio::time::sleep(delay) => {}
        }
        if !self.take_hedge() {
            let result = first.await.map(|_| ());
            self.record(started.elapsed());
            return result;
        }
        self.metrics.store_put_hedges.inc();
        let second = store.put(key, payload);
        tokio::pin!(second);
        // The first attempt's latency is at least the time it has taken so
        // far; a censored sample still lies above the quantile, which is what
        // the estimate needs.
        tokio::select! {
            result = &mut first => {
                self.record(started.elapsed());
                match result {
                    Ok(_) => Ok(()),
                    Err(_) => second.await.map(|_| ()),
                }
            }
            result = &mut second => {
                self.record(started.elapsed());
                match result {
                    Ok(_) => Ok(()),
                    Err(_) => first.await.map(|_| ()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faulty::{HookedStore, StoreHooks};
    use async_trait::async_trait;
    use object_store::memory::InMemory;
    use std::sync::atomic::AtomicU32;

    fn hedger(config: HedgeConfig) -> Hedger {
        Hedger::new(config, Arc::new(Metrics::default()))
    }

    /// The next PUTs each take the first delay left in `delays` and then
    /// fail if `fail` is still above zero.
    #[derive(Default)]
    struct Scripted {
        delays: Mutex<VecDeque<Duration>>,
        fail: AtomicU32,
    }

    #[async_trait]
    impl StoreHooks for Scripted {
        async fn before_put(&self, location: &Path) -> object_store::Result<()> {
            let delay = self.delays.lock().unwrap().pop_front();
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let failing = self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(object_store::Error::Generic {
                    store: "Scripted",
                    source: format!("failed PUT of {location}").into(),
                });
            }
            Ok(())
        }
    }

    fn scripted() -> (Arc<InMemory>, HookedStore<Arc<Scripted>>, Arc<Scripted>) {
        let inner = Arc::new(InMemory::new());
        let script = Arc::new(Scripted::default());
        let store = HookedStore::with_hooks(inner.clone(), Arc::clone(&script));
        (inner, store, script)
    }

    fn warmed(metrics: &Arc<Metrics>) -> Hedger {
        let h = Hedger::new(HedgeConfig::default(), Arc::clone(metrics));
        for _ in 0..MIN_SAMPLES {
            h.record(Duration::from_millis(20));
        }
        h
    }

    #[test]
    fn the_delay_is_the_quantile_of_recent_latencies_with_a_floor() {
        let h = hedger(HedgeConfig::default());
        for ms in 1..MIN_SAMPLES as u64 {
            h.record(Duration::from_millis(ms * 10));
        }
        assert_eq!(h.delay(), None, "too few samples");
        for ms in 0..100 {
            h.record(Duration::from_millis(ms));
        }
        // 115 samples: 0..99 ms and 10..150 ms by tens; about the 70th percentile.
        let delay = h.delay().unwrap();
        assert!(
            delay >= Duration::from_millis(60) && delay <= Duration::from_millis(90),
            "{delay:?}"
        );
        let h = hedger(HedgeConfig::default());
        for _ in 0..WINDOW {
            h.record(Duration::from_millis(1));
        }
        assert_eq!(h.delay(), Some(HedgeConfig::default().floor));
    }

    #[test]
    fn the_budget_bounds_hedges() {
        let h = hedger(HedgeConfig::default());
        let taken = (0..100).filter(|_| h.take_hedge()).count() as u64;
        assert_eq!(taken, BUDGET_BURST, "only the burst before any PUT");
        h.puts.store(1000, Ordering::Relaxed);
        let more = (0..1000).filter(|_| h.take_hedge()).count() as u64;
        assert_eq!(more, 500, "half of 1000 PUTs, the burst already spent");
    }

    #[tokio::test]
    async fn a_late_put_is_hedged_and_the_first_answer_wins() {
        let (inner, store, script) = scripted();
        let metrics = Arc::new(Metrics::default());
        let h = warmed(&metrics);
        // The first attempt hangs for an hour; the hedge after 20 ms answers.
        script
            .delays
            .lock()
            .unwrap()
            .push_back(Duration::from_secs(3600));
        let key = Path::from("a");
        let started = Instant::now();
        h.put(&store, &key, PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(metrics.store_put_hedges.get(), 1);
        let stored = inner.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.as_ref(), b"x");
        // A prompt PUT is not hedged.
        h.put(&store, &Path::from("b"), PutPayload::from_static(b"y"))
            .await
            .unwrap();
        assert_eq!(metrics.store_put_hedges.get(), 1);
    }

    #[tokio::test]
    async fn an_error_waits_for_the_other_attempt() {
        let (_inner, store, script) = scripted();
        let metrics = Arc::new(Metrics::default());
        let h = warmed(&metrics);
        // The first attempt is late and then fails; the hedge succeeds.
        script
            .delays
            .lock()
            .unwrap()
            .push_back(Duration::from_millis(50));
        script.fail.store(1, Ordering::SeqCst);
        h.put(&store, &Path::from("c"), PutPayload::from_static(b"z"))
            .await
            .unwrap();
        assert_eq!(metrics.store_put_hedges.get(), 1);
        // Both attempts fail: the error comes back.
        script
            .delays
            .lock()
            .unwrap()
            .push_back(Duration::from_millis(50));
        script.fail.store(2, Ordering::SeqCst);
        let result = h
            .put(&store, &Path::from("d"), PutPayload::from_static(b"z"))
            .await;
        assert!(result.is_err());
        assert_eq!(metrics.store_put_hedges.get(), 2);
    }
}
