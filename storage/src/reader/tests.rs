//! The read path against an in-memory store whose GETs take time and are
//! counted, so concurrency, read-ahead and sharing are observable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_metadata::IndexEntry;
use streamhouse_protocol::batch::{self, BatchHeader};
use streamhouse_protocol::batches::Batches;
use uuid::Uuid;

use super::{ObjectReader, ReadCacheConfig};
use crate::faulty::{HookedStore, StoreHooks};
use crate::format::{ObjectEncoder, RunStats};

/// Batches per object, offsets per batch and bytes per batch of the fixture.
const BATCHES: i64 = 2;
const OFFSETS: i64 = 10;
const BATCH_BYTES: usize = 1000;
const OBJECT_RUN_BYTES: usize = BATCHES as usize * BATCH_BYTES;

/// GETs that wait `delay`, counted, with the most that were in flight at once.
struct SlowGets {
    delay: Duration,
    gets: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

#[async_trait]
impl StoreHooks for SlowGets {
    async fn before_get(&self, _location: &Path) -> object_store::Result<()> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

type SlowStore = HookedStore<SlowGets>;

impl SlowStore {
    fn gets(&self) -> usize {
        self.hooks.gets.load(Ordering::SeqCst)
    }
}

/// A record batch header good enough for the reader: `OFFSETS` offsets in
/// `BATCH_BYTES` bytes, with the client's base offset 0.
fn fake_batch() -> Bytes {
    let mut b = BytesMut::with_capacity(BATCH_BYTES);
    b.put_i64(0);
    b.put_i32((BATCH_BYTES - batch::LOG_OVERHEAD) as i32);
    b.put_i32(0);
    b.put_i8(2);
    b.put_bytes(0, 6); // crc, attributes
    b.put_i32(OFFSETS as i32 - 1);
    b.put_bytes(0, BATCH_BYTES - b.len());
    b.freeze()
}

/// `objects` objects, each holding one run of `BATCHES` batches of partition
/// 0, stored behind a store whose GETs take `delay`; with their index entries.
async fn fixture(objects: i64, delay: Duration) -> (Arc<SlowStore>, Vec<IndexEntry>) {
    let store = Arc::new(SlowStore::with_hooks(
        Arc::new(InMemory::new()),
        SlowGets {
            delay,
            gets: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        },
    ));
    let batches: Vec<Bytes> = (0..BATCHES).map(|_| fake_batch()).collect();
    let mut entries = Vec::new();
    for i in 0..objects {
        let mut encoder = ObjectEncoder::with_capacity(OBJECT_RUN_BYTES);
        let (position, length) = encoder.add_run(Uuid::nil(), 0, &batches, RunStats::default());
        let key = format!("objects/{i:04}.sho");
        store
            .put(
                &Path::from(key.as_str()),
                PutPayload::from(encoder.finish()),
            )
            .await
            .unwrap();
        entries.push(IndexEntry {
            base_offset: i * BATCHES * OFFSETS,
            last_offset: (i + 1) * BATCHES * OFFSETS - 1,
            object_key: key,
            position: position as i64,
            length: length as i64,
            max_timestamp: 0,
        });
    }
    (store, entries)
}

fn reader(store: &Arc<SlowStore>) -> ObjectReader {
    ObjectReader::new(
        Arc::clone(store) as Arc<dyn ObjectStore>,
        &ReadCacheConfig::default(),
    )
}

/// The base offsets of the batches in a read's output.
fn base_offsets(records: &Batches) -> Vec<i64> {
    let bytes = records.to_bytes();
    let from_bytes: Vec<i64> = batch::split(&bytes)
        .unwrap()
        .into_iter()
        .map(|range| BatchHeader::parse(&bytes[range]).unwrap().base_offset)
        .collect();
    let from_headers: Vec<i64> = records.iter().map(|b| b.header().base_offset).collect();
    assert_eq!(from_bytes, from_headers);
    from_bytes
}

/// An object as stored, read past the counting hooks (as the write path
/// has it at commit).
async fn stored(store: &SlowStore, key: &str) -> Bytes {
    store
        .inner
        .get(&Path::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

/// Waits until the store has seen `gets` GETs, for at most a few seconds.
async fn until_gets(store: &SlowStore, gets: usize) {
    for _ in 0..500 {
        if store.gets() >= gets {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_read_returns_whole_batches_from_the_offset_with_assigned_offsets_up_to_the_budget() {
    let (store, entries) = fixture(6, Duration::ZERO).await;
    let reader = reader(&store).with_read_ahead(0);
    let out = reader
        .read(&entries, 25, 3 * BATCH_BYTES + 500)
        .await
        .unwrap();
    assert_eq!(base_offsets(&out), vec![20, 30, 40]);
    let out = reader.read(&entries[2..], 45, usize::MAX).await.unwrap();
    assert_eq!(
        base_offsets(&out),
        vec![40, 50, 60, 70, 80, 90, 100, 110],
        "everything from the batch holding the offset"
    );
}

#[tokio::test]
async fn the_first_batch_is_returned_even_if_larger_than_the_budget() {
    let (store, entries) = fixture(3, Duration::ZERO).await;
    let out = reader(&store).read(&entries, 0, 1).await.unwrap();
    assert_eq!(base_offsets(&out), vec![0]);
}

#[tokio::test]
async fn the_objects_a_read_needs_are_fetched_concurrently() {
    let (store, entries) = fixture(8, Duration::from_millis(50)).await;
    let reader = reader(&store).with_read_ahead(0);
    let out = reader
        .read(&entries, 0, 8 * OBJECT_RUN_BYTES)
        .await
        .unwrap();
    assert_eq!(base_offsets(&out).len(), 16);
    assert_eq!(store.gets(), 8, "one GET per object");
    assert_eq!(store.hooks.max_in_flight.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn a_read_fetches_only_the_objects_its_budget_needs() {
    let (store, entries) = fixture(8, Duration::from_millis(5)).await;
    let reader = reader(&store).with_read_ahead(0);
    let out = reader
        .read(&entries, 0, 2 * OBJECT_RUN_BYTES + BATCH_BYTES)
        .await
        .unwrap();
    assert_eq!(base_offsets(&out), vec![0, 10, 20, 30, 40]);
    assert_eq!(store.gets(), 3);
}

#[tokio::test]
async fn concurrent_misses_of_one_object_share_one_get() {
    let (store, entries) = fixture(1, Duration::from_millis(50)).await;
    let reader = reader(&store).with_read_ahead(0);
    let (a, b) = tokio::join!(
        reader.read(&entries, 0, usize::MAX),
        reader.read(&entries, 10, usize::MAX)
    );
    assert_eq!(base_offsets(&a.unwrap()), vec![0, 10]);
    assert_eq!(base_offsets(&b.unwrap()), vec![10]);
    assert_eq!(store.gets(), 1);
}

#[tokio::test]
async fn a_read_that_missed_warms_the_next_objects_for_the_next_read() {
    let (store, entries) = fixture(8, Duration::from_millis(5)).await;
    let reader = reader(&store);
    let budget = 2 * OBJECT_RUN_BYTES;
    let first = reader.read(&entries, 0, budget).await.unwrap();
    assert_eq!(base_offsets(&first), vec![0, 10, 20, 30]);
    until_gets(&store, 4).await;
    assert_eq!(store.gets(), 4, "two objects read, the next two warmed");
    let second = reader.read(&entries[2..], 40, budget).await.unwrap();
    assert_eq!(base_offsets(&second), vec![40, 50, 60, 70]);
    // The second read used warmed objects, so it warms the two after them.
    until_gets(&store, 6).await;
    assert_eq!(store.gets(), 6);
    let third = reader.read(&entries[4..], 80, budget).await.unwrap();
    assert_eq!(base_offsets(&third), vec![80, 90, 100, 110]);
}

#[tokio::test]
async fn a_read_of_cached_objects_does_not_read_ahead() {
    let (store, entries) = fixture(4, Duration::ZERO).await;
    let reader = reader(&store);
    for entry in &entries[..2] {
        let object = stored(&store, &entry.object_key).await;
        reader.cache_committed(&entry.object_key, &object).await;
    }
    let out = reader
        .read(&entries, 0, 2 * OBJECT_RUN_BYTES)
        .await
        .unwrap();
    assert_eq!(base_offsets(&out).len(), 4);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.gets(), 0, "a tailing reader never touches the store");
}

#[tokio::test]
async fn read_ahead_does_not_change_what_is_read() {
    let (store, entries) = fixture(12, Duration::ZERO).await;
    let plain = reader(&store).with_read_ahead(0);
    let ahead = reader(&store);
    let mut from = 5;
    while from < 12 * BATCHES * OFFSETS {
        let at = entries.iter().position(|e| e.last_offset >= from).unwrap();
        let a = plain.read(&entries[at..], from, 2500).await.unwrap();
        let b = ahead.read(&entries[at..], from, 2500).await.unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes(), "from offset {from}");
        from = a.iter().last().unwrap().header().base_offset + OFFSETS;
    }
}

/// A full cache takes the newest object in, whatever the popularity of the
/// ones it holds: a log's next reads are of its newest objects.
#[tokio::test]
async fn a_full_cache_takes_in_a_new_object_over_popular_old_ones() {
    let (store, entries) = fixture(6, Duration::ZERO).await;
    let object_bytes = stored(&store, &entries[0].object_key).await.len() as u64;
    let reader = ObjectReader::new(
        Arc::clone(&store) as Arc<dyn ObjectStore>,
        &ReadCacheConfig {
            capacity_bytes: 3 * object_bytes,
        },
    )
    .with_read_ahead(0);
    // Three objects, each read by many partitions.
    for _ in 0..8 {
        for entry in &entries[..3] {
            reader
                .read(std::slice::from_ref(entry), entry.base_offset, usize::MAX)
                .await
                .unwrap();
        }
    }
    reader.cache.run_pending_tasks().await;
    for entry in &entries[3..] {
        let bytes = stored(&store, &entry.object_key).await;
        reader.cache_committed(&entry.object_key, &bytes).await;
        reader.cache.run_pending_tasks().await;
        assert!(
            reader.cached(&entry.object_key).await.is_some(),
            "a newly committed object is cached"
        );
    }
    let gets = store.gets();
    for entry in &entries[3..] {
        reader
            .read(std::slice::from_ref(entry), entry.base_offset, usize::MAX)
            .await
            .unwrap();
    }
    assert_eq!(
        store.gets(),
        gets,
        "the newest objects are read from the cache"
    );
}
