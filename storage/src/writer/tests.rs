//! The write path's sealing and commit policies, against a SQLite catalog and an
//! in-memory store whose first PUT a test can hold back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use streamhouse_metadata::{Catalog, NewTopic, TopicId};
use tokio::sync::{oneshot, Semaphore};

use super::{Append, AppendOutcome, ObjectWriter, WriterConfig};
use crate::faulty::{HookedStore, StoreHooks};
use crate::instrumented::InstrumentedStore;
use crate::{Metrics, ObjectReader, ReadCacheConfig, Watermarks};

/// The first PUT waits until the test adds a permit.
struct FirstPutGate {
    first_put: Semaphore,
    puts_started: AtomicUsize,
}

#[async_trait]
impl StoreHooks for FirstPutGate {
    async fn before_put(&self, _location: &Path) -> object_store::Result<()> {
        if self.puts_started.fetch_add(1, Ordering::SeqCst) == 0 {
            let _permit = self.first_put.acquire().await;
        }
        Ok(())
    }
}

type GatedStore = HookedStore<FirstPutGate>;

/// A record batch header of `records` offsets and a small body: the write path
/// reads only what the produce handler already validated.
fn append(topic: TopicId, records: i32) -> Append {
    let body = 16;
    let mut b = BytesMut::new();
    b.put_i64(0); // baseOffset
    b.put_i32((61 - 12 + body) as i32); // batchLength
    b.put_i32(0); // partitionLeaderEpoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc
    b.put_i16(0); // attributes
    b.put_i32(records - 1); // lastOffsetDelta
    b.put_i64(1_000); // baseTimestamp
    b.put_i64(1_000); // maxTimestamp
    b.put_i64(-1); // producerId
    b.put_i16(-1); // producerEpoch
    b.put_i32(-1); // baseSequence
    b.put_i32(records); // recordsCount
    b.put_bytes(7, body);
    Append {
        topic,
        partition: 0,
        batches: b.freeze(),
        batch_count: 1,
        offset_count: i64::from(records),
        min_timestamp: 1_000,
        max_timestamp: 1_000,
        append_time_ms: -1,
        producer: None,
        txn: None,
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    writer: ObjectWriter,
    metrics: Arc<Metrics>,
    gate: Arc<GatedStore>,
    topic: TopicId,
}

async fn setup(config: WriterConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog: Arc<dyn Catalog> = streamhouse_metadata::open(&url).await.unwrap();
    let topic = catalog
        .create_topic(&NewTopic {
            name: "t".into(),
            partition_count: 1,
            configs: Default::default(),
        })
        .await
        .unwrap()
        .id;
    let metrics = Arc::new(Metrics::default());
    let gate = Arc::new(GatedStore::with_hooks(
        Arc::new(InMemory::new()),
        FirstPutGate {
            first_put: Semaphore::new(0),
            puts_started: AtomicUsize::new(0),
        },
    ));
    let store: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::new(
        Arc::clone(&gate) as Arc<dyn ObjectStore>,
        Arc::clone(&metrics),
    ));
    let reader = Arc::new(ObjectReader::new(
        Arc::clone(&store),
        &ReadCacheConfig::default(),
    ));
    let watermarks = Arc::new(Watermarks::new(Arc::clone(&catalog)));
    let writer = ObjectWriter::start(
        store,
        catalog,
        watermarks,
        reader,
        config,
        Arc::clone(&metrics),
    );
    Setup {
        _dir: dir,
        writer,
        metrics,
        gate,
        topic,
    }
}

async fn outcome(rx: oneshot::Receiver<AppendOutcome>) -> i64 {
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("append answered within 10 s")
        .expect("writer alive")
        .expect("append committed")
        .base_offset
}

const AN_HOUR: Duration = Duration::from_secs(3600);

/// Waits until the write path has sealed `objects` objects (appends
/// submitted back to back may otherwise share one).
async fn sealed(s: &Setup, objects: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.metrics.objects_sealed.get() < objects {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("sealed within 10 s");
}

#[tokio::test]
async fn an_idle_write_path_seals_at_once_instead_of_waiting_for_the_interval() {
    let s = setup(WriterConfig {
        flush_interval: AN_HOUR,
        ..WriterConfig::default()
    })
    .await;
    s.gate.hooks.first_put.add_permits(1);
    let first = s.writer.submit(append(s.topic, 3)).await.unwrap();
    assert_eq!(outcome(first).await, 0);
    let second = s.writer.submit(append(s.topic, 2)).await.unwrap();
    assert_eq!(outcome(second).await, 3);
    s.writer.shutdown().await;
}

#[tokio::test]
async fn below_the_in_flight_limit_the_next_object_seals_while_one_uploads() {
    let s = setup(WriterConfig {
        flush_interval: AN_HOUR,
        idle_below_in_flight: 2,
        ..WriterConfig::default()
    })
    .await;
    // The first object's PUT is held; the second append still gets an
    // object of its own and starts uploading.
    let first = s.writer.submit(append(s.topic, 3)).await.unwrap();
    sealed(&s, 1).await;
    let second = s.writer.submit(append(s.topic, 2)).await.unwrap();
    sealed(&s, 2).await;
    while s.metrics.store_puts.get() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.gate.hooks.first_put.add_permits(1);
    assert_eq!(outcome(first).await, 0);
    assert_eq!(outcome(second).await, 3);
    s.writer.shutdown().await;
}

#[tokio::test]
async fn with_one_in_flight_the_next_append_waits_for_the_pipeline() {
    let s = setup(WriterConfig {
        flush_interval: AN_HOUR,
        ..WriterConfig::default()
    })
    .await;
    let first = s.writer.submit(append(s.topic, 3)).await.unwrap();
    sealed(&s, 1).await;
    let second = s.writer.submit(append(s.topic, 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.metrics.objects_sealed.get(), 1, "the second waits");
    s.gate.hooks.first_put.add_permits(1);
    assert_eq!(outcome(first).await, 0);
    assert_eq!(outcome(second).await, 3);
    assert_eq!(s.metrics.objects_sealed.get(), 2);
    s.writer.shutdown().await;
}

#[tokio::test]
async fn a_request_still_queueing_its_appends_is_not_cut_by_an_idle_seal() {
    let s = setup(WriterConfig {
        flush_interval: AN_HOUR,
        ..WriterConfig::default()
    })
    .await;
    s.gate.hooks.first_put.add_permits(1);
    let queueing = s.writer.queueing();
    let first = s.writer.submit(append(s.topic, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.metrics.objects_sealed.get(), 0, "held while queueing");
    let second = s.writer.submit(append(s.topic, 2)).await.unwrap();
    drop(queueing);
    assert_eq!(outcome(first).await, 0);
    assert_eq!(outcome(second).await, 3);
    assert_eq!(
        s.metrics.objects_sealed.get(),
        1,
        "one object for the request"
    );
    s.writer.shutdown().await;
}

#[tokio::test]
async fn without_idle_sealing_an_append_waits_for_the_interval() {
    let s = setup(WriterConfig {
        flush_interval: AN_HOUR,
        seal_when_idle: false,
        ..WriterConfig::default()
    })
    .await;
    s.gate.hooks.first_put.add_permits(1);
    let mut pending = s.writer.submit(append(s.topic, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pending.try_recv().is_err(),
        "answered before any seal rule applied"
    );
    // Shutting down seals what is buffered.
    s.writer.shutdown().await;
    assert_eq!(outcome(pending).await, 0);
}

#[tokio::test]
async fn objects_uploaded_while_an_earlier_one_uploads_commit_together_in_order() {
    // Every append its own object (flush_bytes 1), none sealed for idleness.
    let s = setup(WriterConfig {
        flush_bytes: 1,
        flush_interval: AN_HOUR,
        seal_when_idle: false,
        ..WriterConfig::default()
    })
    .await;
    let mut replies = Vec::new();
    for records in [1, 2, 3, 4] {
        replies.push(s.writer.submit(append(s.topic, records)).await.unwrap());
    }
    // The first upload is held; the three behind it finish (a PUT's latency
    // is recorded when it answers).
    while s.metrics.store_put_latency.count() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(s.metrics.catalog_commit_latency.count(), 0);
    s.gate.hooks.first_put.add_permits(1);
    let mut offsets = Vec::new();
    for reply in replies {
        offsets.push(outcome(reply).await);
    }
    assert_eq!(offsets, vec![0, 1, 3, 6], "offsets follow seal order");
    assert_eq!(s.metrics.objects_committed.get(), 4);
    assert_eq!(
        s.metrics.catalog_commit_latency.count(),
        1,
        "one transaction for the four objects"
    );
    s.writer.shutdown().await;
}
