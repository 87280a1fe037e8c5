//! The write path against a store that fails, loses answers and hangs: an
//! append is acknowledged only when its object is stored and committed, a
//! failed one leaves no offsets behind, an idempotent retry is appended once,
//! and the writer keeps serving without a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use streamhouse_metadata::{Catalog, NewTopic, TopicId};
use streamhouse_storage::faulty::{Faults, FaultyStore};
use streamhouse_storage::{
    Append, AppendOutcome, Metrics, ObjectReader, ObjectWriter, ProducerAppend, ReadCacheConfig,
    StorageError, Watermarks, WriterConfig,
};
use tokio::sync::oneshot;

use common::append;

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Arc<dyn Catalog>,
    /// The store under the faults, to count what really landed.
    stored: Arc<InMemory>,
    faults: Arc<Faults>,
    writer: ObjectWriter,
    topic: TopicId,
}

async fn setup() -> Setup {
    setup_with(WriterConfig::default()).await
}

async fn setup_with(config: WriterConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = streamhouse_metadata::open(&url).await.unwrap();
    let topic = catalog
        .create_topic(&NewTopic {
            name: "t".into(),
            partition_count: 1,
            configs: Default::default(),
        })
        .await
        .unwrap()
        .id;
    let stored = Arc::new(InMemory::new());
    let (faulty, faults) = FaultyStore::new(Arc::clone(&stored) as Arc<dyn ObjectStore>);
    let store: Arc<dyn ObjectStore> = Arc::new(faulty);
    let reader = Arc::new(ObjectReader::new(
        Arc::clone(&store),
        &ReadCacheConfig::default(),
    ));
    let writer = ObjectWriter::start(
        store,
        Arc::clone(&catalog),
        Arc::new(Watermarks::new(Arc::clone(&catalog))),
        reader,
        config,
        Arc::new(Metrics::default()),
    );
    Setup {
        _dir: dir,
        catalog,
        stored,
        faults,
        writer,
        topic,
    }
}

/// The append's base offset, or its error.
async fn answer(rx: oneshot::Receiver<AppendOutcome>) -> Result<i64, Arc<StorageError>> {
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("answered within 10 s")
        .expect("writer alive")
        .map(|appended| appended.base_offset)
}

impl Setup {
    async fn submit(&self, append: Append) -> oneshot::Receiver<AppendOutcome> {
        self.writer.submit(append).await.unwrap()
    }

    async fn high_watermark(&self) -> i64 {
        let offsets = self.catalog.partition_offsets(self.topic, 0).await.unwrap();
        offsets.expect("partition exists").high_watermark
    }

    async fn stored_objects(&self) -> usize {
        let listed: Vec<_> = self.stored.list(None).try_collect().await.unwrap();
        listed.len()
    }

    async fn indexed_objects(&self) -> Vec<String> {
        let entries = self
            .catalog
            .index_entries(self.topic, 0, 0, 100)
            .await
            .unwrap();
        entries.into_iter().map(|e| e.object_key).collect()
    }
}

#[tokio::test]
async fn a_failed_put_fails_its_appends_commits_nothing_and_the_next_append_succeeds() {
    let s = setup().await;
    s.faults.fail_puts(1);
    let failed = answer(s.submit(append(s.topic, 5, None)).await).await;
    assert!(failed.is_err(), "acknowledged without a stored object");
    assert_eq!(s.faults.injected(), 1);
    assert_eq!((s.high_watermark().await, s.stored_objects().await), (0, 0));

    let next = answer(s.submit(append(s.topic, 3, None)).await).await;
    assert_eq!(next.unwrap(), 0, "the failed append took no offsets");
    assert_eq!(s.high_watermark().await, 3);
    assert_eq!(s.indexed_objects().await.len(), 1);
}

#[tokio::test]
async fn a_lost_put_answer_leaves_an_unreferenced_object_and_no_offsets() {
    let s = setup().await;
    s.faults.lose_put_answers(1);
    let failed = answer(s.submit(append(s.topic, 5, None)).await).await;
    assert!(failed.is_err());
    // The object reached the store, but the catalog never heard of it.
    assert_eq!((s.high_watermark().await, s.stored_objects().await), (0, 1));

    let next = answer(s.submit(append(s.topic, 2, None)).await).await;
    assert_eq!(next.unwrap(), 0);
    assert_eq!(s.stored_objects().await, 2);
    assert_eq!(
        s.indexed_objects().await.len(),
        1,
        "only the committed object is in the index"
    );
}

#[tokio::test]
async fn an_idempotent_retry_after_a_lost_answer_is_appended_once() {
    let s = setup().await;
    let identity = s.catalog.init_producer(None).await.unwrap();
    let batch = |first_sequence, records| {
        let producer = ProducerAppend {
            producer_id: identity.producer_id,
            epoch: identity.epoch,
            first_sequence,
            last_sequence: first_sequence + records - 1,
        };
        append(s.topic, records, Some(producer))
    };

    s.faults.lose_put_answers(1);
    assert!(answer(s.submit(batch(0, 4)).await).await.is_err());
    // The client retries the same sequence, then goes on.
    assert_eq!(answer(s.submit(batch(0, 4)).await).await.unwrap(), 0);
    assert_eq!(answer(s.submit(batch(4, 2)).await).await.unwrap(), 4);
    assert_eq!(s.high_watermark().await, 6, "no offset taken twice");
}

#[tokio::test]
async fn a_hung_store_delays_an_append_until_it_answers_and_loses_nothing() {
    let s = setup().await;
    s.faults.set_hung(true);
    let mut pending = s.submit(append(s.topic, 5, None)).await;
    let early = tokio::time::timeout(Duration::from_millis(200), &mut pending).await;
    assert!(early.is_err(), "answered while the store was hung");
    assert_eq!(s.high_watermark().await, 0);

    s.faults.set_hung(false);
    assert_eq!(answer(pending).await.unwrap(), 0);
    assert_eq!(s.high_watermark().await, 5);
}

#[tokio::test]
async fn injected_latency_slows_appends_without_failing_them() {
    let s = setup().await;
    s.faults.set_latency(Duration::from_millis(50));
    let started = tokio::time::Instant::now();
    let outcomes: Vec<i64> = futures::future::join_all(
        [
            s.submit(append(s.topic, 1, None)).await,
            s.submit(append(s.topic, 1, None)).await,
        ]
        .map(answer),
    )
    .await
    .into_iter()
    .map(|outcome| outcome.unwrap())
    .collect();
    assert!(started.elapsed() >= Duration::from_millis(50));
    let mut sorted = outcomes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1]);
}

#[tokio::test]
async fn submissions_beyond_the_byte_budget_wait_until_earlier_appends_are_answered() {
    let batch_bytes = append(TopicId::nil(), 1, None).batches.len();
    let s = setup_with(WriterConfig {
        max_buffered_bytes: 3 * batch_bytes,
        ..WriterConfig::default()
    })
    .await;
    s.faults.set_hung(true);
    let mut admitted = Vec::new();
    for _ in 0..3 {
        admitted.push(s.submit(append(s.topic, 1, None)).await);
    }
    // The budget is spent on appends the hung store holds: the next waits.
    let fourth = s.writer.submit(append(s.topic, 1, None));
    tokio::pin!(fourth);
    let early = tokio::time::timeout(Duration::from_millis(200), &mut fourth).await;
    assert!(early.is_err(), "admitted beyond the byte budget");

    s.faults.set_hung(false);
    let fourth = fourth.await.unwrap();
    let mut offsets = Vec::new();
    for pending in admitted {
        offsets.push(answer(pending).await.unwrap());
    }
    offsets.push(answer(fourth).await.unwrap());
    offsets.sort_unstable();
    assert_eq!(offsets, vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn an_append_larger_than_the_whole_budget_still_passes_alone() {
    let s = setup_with(WriterConfig {
        max_buffered_bytes: 10,
        ..WriterConfig::default()
    })
    .await;
    assert_eq!(
        answer(s.submit(append(s.topic, 2, None)).await)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        answer(s.submit(append(s.topic, 2, None)).await)
            .await
            .unwrap(),
        2
    );
}
