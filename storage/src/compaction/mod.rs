//! Compaction of small objects and garbage collection of dead ones, run by
//! every agent in the background.
//!
//! Under moderate load the write path seals an object every flush interval, so
//! objects are a fraction of a MiB and a catch-up read costs one GET per small
//! object. A compaction pass takes a run of live objects below half the target
//! size, old enough that tailing readers are done with them (see [`plan`]),
//! rewrites their runs into ONE object (see [`rewrite`]), uploads it, and swaps
//! the index entries over in one catalog transaction that also marks the sources
//! `deleting`. If another agent's compactor, DeleteTopics or DeleteRecords' trim
//! changed a source entry meanwhile, the swap changes nothing and the new object
//! is deleted; the next pass starts afresh.
//!
//! The garbage collector ([`gc`]) retires what nothing points into and deletes
//! `deleting` objects from the store after a grace period, so a fetch that read
//! an index entry just before a swap can still GET the old object.
//!
//! The same worker expires idle producers' state in the catalog
//! ([`producer_expiry`]): catalog rows only, no objects, but the same kind of
//! periodic lifecycle job, on one agent of the cluster.
//!
//! Retention ([`retention`]) moves log starts past what `retention.ms` and
//! `retention.bytes` no longer keep; garbage collection frees the rest.
//!
//! The log cleaner of compacted topics ([`cleaner`]) runs in the same loop: it
//! keeps the latest record per key of each compacted partition placed on this
//! agent.
//!
//! In a cluster each agent compacts only the shards of objects placed on it,
//! one agent collects garbage, one applies retention and one expires producers ([`WorkShare`], asked
//! before every pass). While agents disagree about placement (a view change
//! not yet seen everywhere) two may compact the same objects; one swap wins
//! and the other's work is thrown away. That wastes PUTs but never data. Two
//! agents expiring producers at once remove the same rows, once.

pub mod cleaner;
mod gc;
mod orphans;
pub mod plan;
mod producer_expiry;
pub mod retention;
mod rewrite;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_clock::SharedClock;
use streamhouse_metadata::compaction::{CompactionSwap, Shards, StoredObject, SwapOutcome};
use streamhouse_metadata::producers::ExpiryCursor;
use streamhouse_metadata::{Catalog, NewObject};
use tokio::sync::{oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::background::BackgroundWrite;
use crate::format::new_object_key;
use crate::metrics::Metrics;
use crate::watermarks::Watermarks;
use crate::{ObjectReader, StorageError};

pub use cleaner::CleanerPass;
pub use gc::GcOutcome;
pub use orphans::{OrphanScan, OrphanSuspects};
pub use producer_expiry::ProducerExpiry;
pub use retention::{RetentionConfig, RetentionPass};

/// Store requests one pass keeps in flight (GETs of sources, DELETEs).
const CONCURRENT_REQUESTS: usize = 8;

#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// Size a compacted object aims for; 0 turns compaction off (garbage is
    /// still collected).
    pub target_bytes: u64,
    /// See [`plan::Rules::min_age`].
    pub min_age: Duration,
    /// See [`plan::Rules::max_age`].
    pub max_age: Duration,
    /// How long an object stays in the store after it became `deleting`, and how
    /// old an object without index entries must be before it is retired.
    pub gc_grace: Duration,
    /// Pause between passes that found nothing to compact.
    pub idle_interval: Duration,
    /// Pause between garbage collection sweeps.
    pub gc_interval: Duration,
    /// How long a producer's state on a partition is kept after its last
    /// append there (Kafka's `producer.id.expiration.ms`), and a producer id
    /// after it was handed out or bumped.
    pub producer_id_expiration: Duration,
    /// Pause between passes expiring producers' state (Kafka's
    /// `producer.id.expiration.check.interval.ms`).
    pub producer_expiry_interval: Duration,
    /// Retention's interval and the topics' default limits.
    pub retention: RetentionConfig,
    /// How long an object in the store must stay unknown to the catalog
    /// before it is deleted as an orphan (see [`orphans`]).
    pub orphan_grace: Duration,
    /// Pause between scans of the store for orphans.
    pub orphan_scan_interval: Duration,
    /// Pause between log cleaner passes over compacted topics (Kafka's
    /// `log.cleaner.backoff.ms`, which Kafka sets to 15 s).
    pub cleaner_interval: Duration,
    /// Most bytes of runs one cleaning of a partition reads (see
    /// [`cleaner`] for the memory it bounds); 0 turns the cleaner off.
    pub cleaner_max_pass_bytes: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            target_bytes: 4 * 1024 * 1024,
            min_age: Duration::from_secs(5),
            max_age: Duration::from_secs(60),
            gc_grace: Duration::from_secs(60),
            idle_interval: Duration::from_secs(1),
            gc_interval: Duration::from_secs(10),
            producer_id_expiration: Duration::from_secs(24 * 60 * 60),
            producer_expiry_interval: Duration::from_secs(60),
            retention: RetentionConfig::default(),
            orphan_grace: Duration::from_secs(60 * 60),
            orphan_scan_interval: Duration::from_secs(10 * 60),
            cleaner_interval: Duration::from_secs(15),
            cleaner_max_pass_bytes: 128 * 1024 * 1024,
        }
    }
}

/// The part of the background work this agent does at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkShare {
    /// The compaction shards whose objects this agent compacts.
    pub compaction: Shards,
    /// Whether this agent collects garbage.
    pub gc: bool,
    /// Whether this agent expires idle producers' state.
    pub producer_expiry: bool,
    /// Whether this agent applies retention.
    pub retention: bool,
    /// The partition shards ([`cleaner::partition_shard`]) whose compacted
    /// partitions this agent's log cleaner cleans.
    pub cleaner: Shards,
}

impl WorkShare {
    /// All of it: a lone agent's share.
    pub const ALL: WorkShare = WorkShare {
        compaction: Shards::ALL,
        gc: true,
        producer_expiry: true,
        retention: true,
        cleaner: Shards::ALL,
    };
    /// None of it: an agent that cannot be sure it is still a member.
    pub const NONE: WorkShare = WorkShare {
        compaction: Shards::NONE,
        gc: false,
        producer_expiry: false,
        retention: false,
        cleaner: Shards::NONE,
    };
}

/// Tells the worker its share before each pass; the agent's membership
/// implements it (storage knows nothing of agents).
pub trait ShareOfWork: Send + Sync + 'static {
    fn current(&self) -> WorkShare;
}

impl ShareOfWork for WorkShare {
    fn current(&self) -> WorkShare {
        *self
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassOutcome {
    /// Nothing worth compacting (or compaction is off).
    Idle,
    /// `sources` objects were replaced by one of `bytes` bytes.
    Compacted { sources: usize, bytes: u64 },
    /// Another change got to a source entry first; nothing changed.
    Conflict,
}

/// Runs compaction passes and garbage collection sweeps on demand. The
/// background task ([`Compactor`]) calls these; tests call them directly.
pub struct CompactionWorker {
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    config: CompactionConfig,
    metrics: Arc<Metrics>,
    /// Ages (`min_age`, `max_age`, the grace period) are measured on it, against
    /// the catalog's `created_at_ms`, which the catalog stamps with the same clock.
    clock: SharedClock,
    /// Asked before each pass: which shards to compact, whether to collect.
    share: Arc<dyn ShareOfWork>,
    /// The agent's heads view, told of log starts retention moves (and through
    /// it the other agents); without it they learn from the catalog.
    heads: Option<Arc<Watermarks>>,
    /// The agent's read cache: the objects this agent wrote recently are in
    /// it (they enter at commit), and the small objects compaction merges
    /// are mostly those, so reading them there saves a GET each.
    cache: Option<Arc<ObjectReader>>,
}

impl CompactionWorker {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        config: CompactionConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        CompactionWorker {
            store,
            catalog,
            config,
            metrics,
            clock: streamhouse_clock::system(),
            share: Arc::new(WorkShare::ALL),
            heads: None,
            cache: None,
        }
    }

    /// This worker reading the objects it compacts from `cache` when they are
    /// there.
    pub fn with_cache(mut self, cache: Arc<ObjectReader>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// This worker doing only the share `share` gives it at each pass.
    pub fn with_share(mut self, share: Arc<dyn ShareOfWork>) -> Self {
        self.share = share;
        self
    }

    /// This worker telling `heads` of the log starts retention moves.
    pub fn with_heads(mut self, heads: Arc<Watermarks>) -> Self {
        self.heads = Some(heads);
        self
    }

    /// This worker measuring ages on `clock` (the agent's, or a test's manual one).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// One compaction: choose sources, rewrite, upload, swap.
    pub async fn compact_once(&self) -> Result<PassOutcome, StorageError> {
        let shards = self.share.current().compaction;
        if self.config.target_bytes == 0 || shards.is_empty() {
            return Ok(PassOutcome::Idle);
        }
        let now = self.clock.now_ms();
        let small = i64::try_from(self.config.target_bytes / 2).unwrap_or(i64::MAX);
        // Twice the cap, so young objects at the front cannot hide old ones.
        let limit = u32::try_from(2 * plan::MAX_SOURCES).unwrap_or(u32::MAX);
        let candidates = self
            .catalog
            .small_live_objects(small, shards, limit)
            .await?;
        let rules = plan::Rules {
            target_bytes: self.config.target_bytes,
            min_age: self.config.min_age,
            max_age: self.config.max_age,
        };
        let sources = plan::choose(&candidates, now, &rules);
        self.metrics
            .compaction
            .pending_objects
            .set(candidates.len() as u64);
        if sources.is_empty() {
            self.metrics
                .compaction
                .last_idle_ms
                .set(u64::try_from(now).unwrap_or(0));
            return Ok(PassOutcome::Idle);
        }
        self.compact(&sources).await
    }

    /// One compaction of the live objects retention (or DeleteRecords) has
    /// left less than half full, so that what they no longer hold leaves the
    /// store: an object shared by many partitions stays until its last entry
    /// goes, and compaction only takes small objects. The rewrite keeps only
    /// the entries at or above their log start. See [`plan::choose_sparse`].
    pub async fn compact_sparse_once(&self) -> Result<PassOutcome, StorageError> {
        let shards = self.share.current().compaction;
        if self.config.target_bytes == 0 || shards.is_empty() {
            return Ok(PassOutcome::Idle);
        }
        let large = i64::try_from(self.config.target_bytes / 2).unwrap_or(i64::MAX);
        let limit = u32::try_from(plan::MAX_SOURCES).unwrap_or(u32::MAX);
        let candidates = self
            .catalog
            .sparse_live_objects(large, shards, limit)
            .await?;
        let rules = plan::Rules {
            target_bytes: self.config.target_bytes,
            min_age: self.config.min_age,
            max_age: self.config.max_age,
        };
        let sources = plan::choose_sparse(&candidates, self.clock.now_ms(), &rules);
        if sources.is_empty() {
            return Ok(PassOutcome::Idle);
        }
        self.compact(&sources).await
    }

    /// Rewrites `sources` into one object, uploads it and swaps it in.
    async fn compact(&self, sources: &[StoredObject]) -> Result<PassOutcome, StorageError> {
        let ids: Vec<i64> = sources.iter().map(|o| o.id).collect();
        let entries = self.catalog.object_entries(&ids).await?;
        // Only objects with something left to copy are read; the others are dead
        // and only need retiring.
        let live: HashSet<i64> = entries
            .iter()
            .filter(|e| e.last_offset >= e.log_start_offset)
            .map(|e| e.object_id)
            .collect();
        let needed: Vec<&StoredObject> = sources.iter().filter(|o| live.contains(&o.id)).collect();
        let objects = self.read_all(&needed).await?;
        // Copying megabytes and walking thousands of batch headers takes
        // 7-10 ms: off the runtime's workers, which serve the producers.
        let rewriting = tokio::task::spawn_blocking(move || rewrite::rewrite(&entries, &objects));
        let rewritten = rewriting.await.map_err(|e| StorageError::TaskFailed {
            task: "compaction rewrite",
            reason: e.to_string(),
        })??;
        let Some(rewritten) = rewritten else {
            // Nothing live in these objects: the collector retires them once
            // their entries are trimmed.
            return Ok(PassOutcome::Idle);
        };
        let key = new_object_key();
        let size = rewritten.bytes.len() as u64;
        let path = Path::from(key.as_str());
        self.store
            .put_opts(
                &path,
                PutPayload::from(rewritten.bytes),
                BackgroundWrite::put_options(),
            )
            .await?;
        let swap = CompactionSwap {
            object: NewObject {
                key,
                size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            },
            partitions: rewritten.partitions,
            source_objects: ids,
            now_ms: self.clock.now_ms(),
        };
        // On an error the new object stays in the store: the transaction may have
        // committed with its answer lost, and then the index points into it.
        let started = std::time::Instant::now();
        let swapped = self.catalog.swap_compacted(&swap).await?;
        self.metrics
            .compaction
            .swap_latency
            .record(started.elapsed());
        match swapped {
            SwapOutcome::Swapped => {
                self.metrics
                    .compaction
                    .objects_compacted
                    .inc_by(sources.len() as u64);
                self.metrics.compaction.objects_written.inc();
                self.metrics.compaction.bytes_rewritten.inc_by(size);
                Ok(PassOutcome::Compacted {
                    sources: sources.len(),
                    bytes: size,
                })
            }
            SwapOutcome::Conflict => {
                self.metrics.compaction.conflicts.inc();
                delete_if_present(&self.store, &path).await?;
                Ok(PassOutcome::Conflict)
            }
        }
    }

    /// One garbage collection sweep; see [`gc`].
    pub async fn collect_garbage(&self) -> Result<GcOutcome, StorageError> {
        gc::sweep(self).await
    }

    /// A pass expiring idle producers' state and ids, from `resume` (the start
    /// of a pass: `ExpiryCursor::default()`), of at most `max_steps` catalog
    /// transactions; see [`producer_expiry`].
    pub async fn expire_producers(
        &self,
        resume: ExpiryCursor,
        max_steps: usize,
    ) -> Result<ProducerExpiry, StorageError> {
        producer_expiry::pass(self, resume, max_steps).await
    }

    /// One retention pass over every topic; see [`retention`].
    pub async fn apply_retention(&self) -> Result<RetentionPass, StorageError> {
        retention::pass(self).await
    }

    /// One scan of the store for objects the catalog does not know, deleting
    /// those unknown since more than the grace before; `suspects` carries what
    /// earlier scans saw (see [`orphans`]).
    pub async fn scan_orphans(
        &self,
        suspects: &mut OrphanSuspects,
    ) -> Result<OrphanScan, StorageError> {
        orphans::scan(self, suspects).await
    }

    /// The objects by id: from the read cache when it has them, else by GETs,
    /// a few at a time.
    async fn read_all(
        &self,
        objects: &[&StoredObject],
    ) -> Result<HashMap<i64, (String, Bytes)>, StorageError> {
        // Owned requests: a stream borrowing from `objects` would make this
        // future not `Send` (a known limitation of higher-ranked closures).
        let requests: Vec<_> = objects
            .iter()
            .map(|object| {
                let store = Arc::clone(&self.store);
                let (id, key) = (object.id, object.key.clone());
                let metrics = Arc::clone(&self.metrics);
                let cache = self.cache.clone();
                async move {
                    if let Some(cache) = cache {
                        if let Some(bytes) = cache.cached(&key).await {
                            metrics.compaction.cache_reads.inc();
                            return Ok((id, (key, bytes)));
                        }
                    }
                    metrics.compaction.store_gets.inc();
                    let bytes = store.get(&Path::from(key.as_str())).await?.bytes().await?;
                    Ok::<_, StorageError>((id, (key, bytes)))
                }
            })
            .collect();
        futures::stream::iter(requests)
            .buffer_unordered(CONCURRENT_REQUESTS)
            .try_collect()
            .await
    }
}

/// Deletes an object; one already gone counts as deleted.
async fn delete_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<(), StorageError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The agent's background compactor and collector.
pub struct Compactor {
    /// Taken by `shutdown`; `None` afterwards.
    task: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Compactor {
    pub fn start(worker: CompactionWorker) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(worker, stop_rx));
        Compactor {
            task: Mutex::new(Some((stop_tx, task))),
        }
    }

    /// Stops after the pass in progress, so no upload is left half-swapped.
    pub async fn shutdown(&self) {
        let Some((stop, task)) = self.task.lock().await.take() else {
            return;
        };
        let _ = stop.send(());
        if let Err(e) = task.await {
            tracing::error!(error = %e, "compactor task failed");
        }
    }
}

async fn run(worker: CompactionWorker, mut stop: oneshot::Receiver<()>) {
    let mut next_gc = tokio::time::Instant::now() + worker.config.gc_interval;
    let mut expiry = producer_expiry::Schedule::new(worker.config.producer_expiry_interval);
    let mut retention = retention::Schedule::new(worker.config.retention.check_interval);
    // Sparse objects are looked for with a scan of the large live objects: once
    // per garbage collection interval, and again at once while it finds some.
    let mut next_sparse = tokio::time::Instant::now() + worker.config.gc_interval;
    let mut orphan_scans = orphans::Schedule::new(worker.config.orphan_scan_interval);
    let mut next_clean = tokio::time::Instant::now() + worker.config.cleaner_interval;
    loop {
        let pause = match worker.compact_once().await {
            // Catching up: go straight on.
            Ok(PassOutcome::Compacted { .. } | PassOutcome::Conflict) => Duration::ZERO,
            Ok(PassOutcome::Idle) => worker.config.idle_interval,
            Err(e) => {
                static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                if let Some(suppressed) = WARNINGS.allow() {
                    tracing::warn!(error = %e, suppressed, "compaction pass failed; retrying later");
                }
                worker.config.idle_interval
            }
        };
        if tokio::time::Instant::now() >= next_gc && worker.share.current().gc {
            if let Err(e) = worker.collect_garbage().await {
                static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                if let Some(suppressed) = WARNINGS.allow() {
                    tracing::warn!(error = %e, suppressed, "garbage collection sweep failed; retrying later");
                }
            }
            next_gc = tokio::time::Instant::now() + worker.config.gc_interval;
        }
        if tokio::time::Instant::now() >= next_sparse {
            next_sparse = tokio::time::Instant::now() + worker.config.gc_interval;
            match worker.compact_sparse_once().await {
                Ok(PassOutcome::Compacted { .. }) => next_sparse = tokio::time::Instant::now(),
                Ok(_) => {}
                Err(e) => {
                    static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                    if let Some(suppressed) = WARNINGS.allow() {
                        tracing::warn!(error = %e, suppressed, "compaction of sparse objects failed; retrying later");
                    }
                }
            }
        }
        expiry.tick(&worker).await;
        retention.tick(&worker).await;
        orphan_scans.tick(&worker).await;
        if tokio::time::Instant::now() >= next_clean {
            // Failures are counted and logged inside, partition by partition.
            let _ = worker.clean_logs().await;
            next_clean = tokio::time::Instant::now() + worker.config.cleaner_interval;
        }
        // Wake for the next expiry pass, retention pass, orphan scan or
        // cleaner pass if it comes before the next compaction pass: their
        // intervals may be shorter than the idle pause.
        let wake = (tokio::time::Instant::now() + pause)
            .min(expiry.next_at())
            .min(retention.next_at())
            .min(orphan_scans.next_at())
            .min(next_clean);
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
