//! Compaction end to end on the storage layer: many small objects committed to a
//! SQLite catalog and an in-memory store, compacted, read back as a catch-up
//! consumer would, and collected.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_clock::ManualClock;
use streamhouse_metadata::compaction::Shards;
use streamhouse_metadata::{Catalog, NewObject, NewTopic, RunAppend, RunOutcome, TopicId};
use streamhouse_storage::compaction::PassOutcome;
use streamhouse_storage::format::{new_object_key, ObjectEncoder, RunStats};
use streamhouse_storage::instrumented::InstrumentedStore;
use streamhouse_storage::{
    CompactionConfig, CompactionWorker, Metrics, ObjectReader, ReadCacheConfig, ShareOfWork,
    WorkShare,
};

const PARTITIONS: i32 = 3;
const OBJECTS: usize = 60;

/// A magic-2 record batch of `records` offsets whose body is `fill` repeated:
/// enough for the storage layer, which reads only headers.
fn batch(records: i32, timestamp: i64, fill: u8, body: usize) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0); // baseOffset, set on read
    b.put_i32((61 - 12 + body) as i32); // batchLength
    b.put_i32(0); // partitionLeaderEpoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, not checked past the produce path
    b.put_i16(0); // attributes
    b.put_i32(records - 1); // lastOffsetDelta
    b.put_i64(timestamp); // baseTimestamp
    b.put_i64(timestamp + 1); // maxTimestamp
    b.put_i64(-1); // producerId
    b.put_i16(-1); // producerEpoch
    b.put_i32(-1); // baseSequence
    b.put_i32(records); // recordsCount
    b.put_bytes(fill, body);
    b.freeze()
}

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
    topic: TopicId,
    /// The catalog stamps objects with it and workers measure ages on it.
    clock: Arc<ManualClock>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let clock = ManualClock::new();
    let catalog = streamhouse_metadata::open_with_clock(&url, clock.clone())
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let store: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::new(
        Arc::new(InMemory::new()),
        Arc::clone(&metrics),
    ));
    let topic = catalog
        .create_topic(&NewTopic {
            name: "t".into(),
            partition_count: PARTITIONS,
            configs: Default::default(),
        })
        .await
        .unwrap()
        .id;
    Setup {
        _dir: dir,
        catalog,
        store,
        metrics,
        topic,
        clock,
    }
}

/// Commits `OBJECTS` small objects, each with one to three batches for every
/// partition, as the write path would.
async fn write_small_objects(s: &Setup) {
    for object in 0..OBJECTS {
        let mut encoder = ObjectEncoder::with_capacity(64 * 1024);
        let mut runs = Vec::new();
        for partition in 0..PARTITIONS {
            let batches: Vec<Bytes> = (0..1 + (object + partition as usize) % 3)
                .map(|i| {
                    let fill = (object * 7 + i * 3 + partition as usize) as u8;
                    let timestamp = 1_000 * object as i64 + i64::from(partition);
                    batch(1 + (i as i32 % 2) * 4, timestamp, fill, 500 + 100 * i)
                })
                .collect();
            let stats = RunStats {
                batch_count: batches.len() as u32,
                offset_count: batches.iter().map(|b| i64::from(b[26]) + 1).sum(),
                min_timestamp: 1_000 * object as i64,
                max_timestamp: 1_000 * object as i64 + 10,
            };
            let (position, length) = encoder.add_run(s.topic, partition, &batches, stats);
            runs.push(RunAppend::single(
                s.topic,
                partition,
                position as i64,
                length as i64,
                stats.offset_count,
                stats.max_timestamp,
            ));
        }
        let bytes = encoder.finish();
        let key = new_object_key();
        s.store
            .put(&Path::from(key.as_str()), PutPayload::from(bytes.clone()))
            .await
            .unwrap();
        let object = NewObject {
            key,
            size_bytes: bytes.len() as i64,
        };
        let outcomes = s.catalog.commit_object(&object, &runs).await.unwrap();
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, RunOutcome::Committed(_))));
    }
}

/// Reads every partition from offset 0 with an empty cache, as a catch-up
/// consumer on another agent would; returns the bytes and the GETs it cost.
async fn catch_up(s: &Setup) -> (Vec<Bytes>, u64, usize) {
    let reader = ObjectReader::new(Arc::clone(&s.store), &ReadCacheConfig::default());
    let gets_before = s.metrics.store_gets.get();
    let mut partitions = Vec::new();
    let mut entries_seen = 0;
    for partition in 0..PARTITIONS {
        let high = s
            .catalog
            .partition_offsets(s.topic, partition)
            .await
            .unwrap()
            .unwrap()
            .high_watermark;
        let mut out = BytesMut::new();
        let mut offset = 0;
        while offset < high {
            let entries = s
                .catalog
                .index_entries(s.topic, partition, offset, 64)
                .await
                .unwrap();
            entries_seen += entries.len();
            let read = reader
                .read(&entries, offset, 1 << 20)
                .await
                .unwrap()
                .to_bytes();
            assert!(!read.is_empty());
            // Next offset: past the last batch read.
            let mut at = 0;
            while at < read.len() {
                let len = i32::from_be_bytes(read[at + 8..at + 12].try_into().unwrap()) as usize;
                let base = i64::from_be_bytes(read[at..at + 8].try_into().unwrap());
                let delta = i32::from_be_bytes(read[at + 23..at + 27].try_into().unwrap());
                offset = base + i64::from(delta) + 1;
                at += len + 12;
            }
            out.extend_from_slice(&read);
        }
        partitions.push(out.freeze());
    }
    // Let read-ahead, if the reader does any, finish before counting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gets = s.metrics.store_gets.get() - gets_before;
    (partitions, gets, entries_seen)
}

async fn store_keys(store: &Arc<dyn ObjectStore>) -> usize {
    store
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len()
}

fn worker(s: &Setup, target_bytes: u64) -> CompactionWorker {
    CompactionWorker::new(
        Arc::clone(&s.store),
        Arc::clone(&s.catalog),
        CompactionConfig {
            target_bytes,
            min_age: Duration::ZERO,
            gc_grace: Duration::ZERO,
            ..CompactionConfig::default()
        },
        Arc::clone(&s.metrics),
    )
    .with_clock(s.clock.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_batch_and_cuts_catch_up_gets() {
    let s = setup().await;
    write_small_objects(&s).await;
    let (before, gets_before, entries_before) = catch_up(&s).await;
    assert_eq!(gets_before, OBJECTS as u64, "one GET per small object");
    assert_eq!(entries_before, OBJECTS * PARTITIONS as usize);

    // Objects are 2-6 KiB: a 64 KiB target packs about 16 of them.
    let worker = worker(&s, 64 * 1024);
    let mut written = 0;
    loop {
        match worker.compact_once().await.unwrap() {
            PassOutcome::Compacted { sources, bytes } => {
                written += 1;
                assert!(sources > 1, "{sources}");
                // Sources add up to the target; merged runs need fewer descriptors.
                assert!((60 * 1024..96 * 1024).contains(&bytes), "{bytes}");
            }
            PassOutcome::Idle => break,
            PassOutcome::Conflict => panic!("no one else compacts"),
        }
    }
    assert!(written >= 3, "{written}");

    let (after, gets_after, entries_after) = catch_up(&s).await;
    assert_eq!(
        after, before,
        "every batch reads back byte for byte at its offset"
    );
    // The tail below the target stays small until the max age.
    let compacted = s.metrics.compaction.objects_compacted.get();
    let left_small = OBJECTS as u64 - compacted;
    // One GET per object: 3 compacted ones and the 9 small ones after them,
    // left for the max age (60 GETs before).
    assert_eq!((written, left_small), (3, 9));
    assert_eq!(
        gets_after,
        written + left_small,
        "{gets_before} GETs before"
    );
    // Each object holds one entry per partition: its runs were merged.
    assert_eq!(
        entries_after,
        (written + left_small) as usize * PARTITIONS as usize
    );

    // The sources are gone from the store after the (here zero) grace period,
    // and reading still gives the same bytes.
    assert_eq!(store_keys(&s.store).await, OBJECTS + written as usize);
    s.clock.advance(Duration::from_millis(1));
    let swept = worker.collect_garbage().await.unwrap();
    assert_eq!(swept.objects_deleted, compacted);
    assert_eq!(store_keys(&s.store).await, (written + left_small) as usize);
    assert_eq!(catch_up(&s).await.0, before);
}

/// An agent compacts the objects its read cache holds (those it wrote
/// lately: the write path caches each at commit) without GETting them, and
/// the result is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_objects_are_compacted_without_gets() {
    let s = setup().await;
    write_small_objects(&s).await;
    let (before, _, _) = catch_up(&s).await;
    let cache = Arc::new(ObjectReader::new(
        Arc::clone(&s.store),
        &ReadCacheConfig::default(),
    ));
    let listed: Vec<_> = s.store.list(None).try_collect().await.unwrap();
    for object in &listed {
        let bytes = s.store.get(&object.location).await.unwrap();
        cache
            .cache_committed(object.location.as_ref(), &bytes.bytes().await.unwrap())
            .await;
    }
    let gets = s.metrics.store_gets.get();
    let worker = worker(&s, 64 * 1024).with_cache(cache);
    while let PassOutcome::Compacted { .. } = worker.compact_once().await.unwrap() {}
    let compaction = &s.metrics.compaction;
    assert!(compaction.objects_compacted.get() > 0);
    assert_eq!(
        compaction.cache_reads.get(),
        compaction.objects_compacted.get()
    );
    assert_eq!(compaction.store_gets.get(), 0);
    assert_eq!(s.metrics.store_gets.get(), gets, "no GETs");
    assert_eq!(catch_up(&s).await.0, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_small_objects_are_compacted_below_the_target() {
    let s = setup().await;
    write_small_objects(&s).await;
    let worker = CompactionWorker::new(
        Arc::clone(&s.store),
        Arc::clone(&s.catalog),
        CompactionConfig {
            target_bytes: 64 << 20,
            min_age: Duration::ZERO,
            max_age: Duration::from_secs(3600),
            ..CompactionConfig::default()
        },
        Arc::clone(&s.metrics),
    );
    assert_eq!(worker.compact_once().await.unwrap(), PassOutcome::Idle);
    let worker = CompactionWorker::new(
        Arc::clone(&s.store),
        Arc::clone(&s.catalog),
        CompactionConfig {
            target_bytes: 64 << 20,
            min_age: Duration::ZERO,
            max_age: Duration::ZERO,
            ..CompactionConfig::default()
        },
        Arc::clone(&s.metrics),
    );
    let (before, _, _) = catch_up(&s).await;
    assert!(matches!(
        worker.compact_once().await.unwrap(),
        PassOutcome::Compacted {
            sources: OBJECTS,
            ..
        }
    ));
    let (after, gets, entries) = catch_up(&s).await;
    assert_eq!(after, before);
    assert_eq!(gets, 1);
    assert_eq!(entries, PARTITIONS as usize, "one entry per partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topics_objects_are_collected() {
    let s = setup().await;
    write_small_objects(&s).await;
    let worker = worker(&s, 0);
    assert_eq!(
        worker.compact_once().await.unwrap(),
        PassOutcome::Idle,
        "off"
    );
    s.catalog.delete_topic("t").await.unwrap();
    s.clock.advance(Duration::from_millis(1));
    // First sweep marks them, the next (after the zero grace) deletes them.
    let first = worker.collect_garbage().await.unwrap();
    assert_eq!(first.objects_marked, OBJECTS as u64);
    s.clock.advance(Duration::from_millis(1));
    let second = worker.collect_garbage().await.unwrap();
    assert_eq!(
        first.objects_deleted + second.objects_deleted,
        OBJECTS as u64
    );
    assert_eq!(store_keys(&s.store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_objects_wait_out_the_grace_period_on_the_clock() {
    const GRACE: Duration = Duration::from_secs(60);
    let s = setup().await;
    write_small_objects(&s).await;
    let worker = CompactionWorker::new(
        Arc::clone(&s.store),
        Arc::clone(&s.catalog),
        CompactionConfig {
            target_bytes: 0,
            gc_grace: GRACE,
            ..CompactionConfig::default()
        },
        Arc::clone(&s.metrics),
    )
    .with_clock(s.clock.clone());
    s.catalog.delete_topic("t").await.unwrap();

    // Unreferenced, but created less than the grace period ago: left alone.
    let sweep = worker.collect_garbage().await.unwrap();
    assert_eq!((sweep.objects_marked, sweep.objects_deleted), (0, 0));

    // Past the grace period since creation: marked, and kept a grace period more
    // for fetches that read their index entries before the topic went.
    s.clock.advance(GRACE + Duration::from_millis(1));
    let sweep = worker.collect_garbage().await.unwrap();
    assert_eq!(
        (sweep.objects_marked, sweep.objects_deleted),
        (OBJECTS as u64, 0)
    );
    s.clock.advance(GRACE - Duration::from_millis(1));
    let sweep = worker.collect_garbage().await.unwrap();
    assert_eq!((sweep.objects_marked, sweep.objects_deleted), (0, 0));
    assert_eq!(store_keys(&s.store).await, OBJECTS);

    s.clock.advance(Duration::from_millis(2));
    let sweep = worker.collect_garbage().await.unwrap();
    assert_eq!(sweep.objects_deleted, OBJECTS as u64);
    assert_eq!(store_keys(&s.store).await, 0);
}

/// A store that, on its first PUT, lets another agent's compactor run a whole
/// pass first: the race a swap must lose cleanly.
struct RacingStore {
    inner: Arc<dyn ObjectStore>,
    rival: tokio::sync::Mutex<Option<CompactionWorker>>,
    rival_outcome: tokio::sync::Mutex<Option<PassOutcome>>,
}

impl std::fmt::Debug for RacingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RacingStore({:?})", self.inner)
    }
}

impl std::fmt::Display for RacingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RacingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for RacingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        if let Some(rival) = self.rival.lock().await.take() {
            let outcome = rival.compact_once().await.unwrap();
            *self.rival_outcome.lock().await = Some(outcome);
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_that_loses_a_race_changes_nothing_and_deletes_its_object() {
    let s = setup().await;
    write_small_objects(&s).await;
    let (before, _, _) = catch_up(&s).await;
    let rival = worker(&s, 64 * 1024);
    let racing = Arc::new(RacingStore {
        inner: Arc::clone(&s.store),
        rival: tokio::sync::Mutex::new(Some(rival)),
        rival_outcome: tokio::sync::Mutex::new(None),
    });
    let loser = CompactionWorker::new(
        Arc::clone(&racing) as Arc<dyn ObjectStore>,
        Arc::clone(&s.catalog),
        CompactionConfig {
            target_bytes: 64 * 1024,
            min_age: Duration::ZERO,
            ..CompactionConfig::default()
        },
        Arc::clone(&s.metrics),
    );
    // Both chose the same oldest objects; the rival swapped first.
    assert_eq!(loser.compact_once().await.unwrap(), PassOutcome::Conflict);
    assert!(matches!(
        *racing.rival_outcome.lock().await,
        Some(PassOutcome::Compacted { .. })
    ));
    assert_eq!(s.metrics.compaction.conflicts.get(), 1);
    assert_eq!(s.metrics.compaction.objects_written.get(), 1);
    // The loser's upload is gone: the sources and the rival's object remain.
    assert_eq!(store_keys(&s.store).await, OBJECTS + 1);
    assert_eq!(catch_up(&s).await.0, before);
}

/// An agent compacts only the shards placed on it, and nothing while it
/// cannot be sure of its membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_compacts_only_the_shards_of_its_share() {
    let s = setup().await;
    write_small_objects(&s).await;
    // The test's objects have ids below 1024: all in shard 0.
    let share = |compaction| {
        Arc::new(WorkShare {
            compaction,
            gc: false,
            producer_expiry: false,
            retention: false,
            cleaner: Shards::NONE,
        }) as Arc<dyn ShareOfWork>
    };
    for excluded in [Shards::NONE, Shards::from_fn(|shard| shard != 0)] {
        let idle = worker(&s, 64 * 1024).with_share(share(excluded));
        assert_eq!(idle.compact_once().await.unwrap(), PassOutcome::Idle);
    }
    assert_eq!(s.metrics.compaction.objects_compacted.get(), 0);
    let owner = worker(&s, 64 * 1024).with_share(share(Shards::from_fn(|shard| shard == 0)));
    assert!(matches!(
        owner.compact_once().await.unwrap(),
        PassOutcome::Compacted { .. }
    ));
}

async fn store_bytes(store: &Arc<dyn ObjectStore>) -> u64 {
    store
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|o| o.size)
        .sum()
}

/// Objects hold runs of every partition, so an object stays while any of its
/// entries is retained. Once the log starts of two partitions out of three
/// have passed the compacted objects (as retention moves them), those objects
/// are rewritten with the third partition's entries alone, and the store's
/// bytes fall to about a third; what is retained reads back the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_a_log_start_left_sparse_are_rewritten_and_the_store_shrinks() {
    let s = setup().await;
    write_small_objects(&s).await;
    let worker = worker(&s, 64 * 1024);
    while let PassOutcome::Compacted { .. } = worker.compact_once().await.unwrap() {}
    s.clock.advance(Duration::from_millis(1));
    worker.collect_garbage().await.unwrap();
    let (before, _, _) = catch_up(&s).await;
    let full = store_bytes(&s.store).await;
    assert_eq!(
        worker.compact_sparse_once().await.unwrap(),
        PassOutcome::Idle,
        "nothing is sparse while every entry is retained"
    );

    for partition in [0, 1] {
        s.catalog
            .delete_records(s.topic, partition, -1)
            .await
            .unwrap();
    }
    let mut rewritten = 0;
    while let PassOutcome::Compacted { sources, .. } = worker.compact_sparse_once().await.unwrap() {
        rewritten += sources;
    }
    assert_eq!(
        rewritten, 3,
        "the three compacted objects, none of the small ones"
    );
    // The small ones are compacted as always, once overdue, keeping only
    // partition 2's entries too.
    s.clock.advance(Duration::from_secs(61));
    assert!(matches!(
        worker.compact_once().await.unwrap(),
        PassOutcome::Compacted { .. }
    ));
    // The collector drops the trimmed entries and then the sources.
    s.clock.advance(Duration::from_millis(1));
    worker.collect_garbage().await.unwrap();
    s.clock.advance(Duration::from_millis(1));
    worker.collect_garbage().await.unwrap();
    let left = store_bytes(&s.store).await;
    assert!(
        left * 5 < full * 2,
        "{left} bytes left of {full}: the other partitions' bytes are gone"
    );

    // Partition 2 reads back byte for byte.
    let reader = ObjectReader::new(Arc::clone(&s.store), &ReadCacheConfig::default());
    let entries = s.catalog.index_entries(s.topic, 2, 0, 1000).await.unwrap();
    let mut read = BytesMut::new();
    for entry in &entries {
        read.extend_from_slice(
            &reader
                .read(std::slice::from_ref(entry), entry.base_offset, 1 << 30)
                .await
                .unwrap()
                .to_bytes(),
        );
    }
    assert_eq!(read.freeze(), before[2]);
}
