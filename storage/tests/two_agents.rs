//! Two agents (two write paths, each with its own catalog handle, watermarks
//! and read cache) on one catalog and one store: an idempotent producer's
//! batches are judged by the commit, so a retry that reaches both agents is
//! stored once and a producer may move between agents freely.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use common::append;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use streamhouse_metadata::producers::ProducerError;
use streamhouse_metadata::{Catalog, NewTopic, TopicId};
use streamhouse_storage::{
    Append, Appended, Metrics, ObjectReader, ObjectWriter, ProducerAppend, ReadCacheConfig,
    StorageError, Watermarks, WriterConfig,
};

struct Agent {
    catalog: Arc<dyn Catalog>,
    writer: ObjectWriter,
}

struct Cluster {
    _dir: tempfile::TempDir,
    agents: [Agent; 2],
    reader: ObjectReader,
    topic: TopicId,
    producer_id: i64,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut agents = Vec::new();
    for _ in 0..2 {
        let catalog = streamhouse_metadata::open(&url).await.unwrap();
        let writer = ObjectWriter::start(
            Arc::clone(&store),
            Arc::clone(&catalog),
            Arc::new(Watermarks::new(Arc::clone(&catalog))),
            Arc::new(ObjectReader::new(
                Arc::clone(&store),
                &ReadCacheConfig::default(),
            )),
            WriterConfig::default(),
            Arc::new(Metrics::default()),
        );
        agents.push(Agent { catalog, writer });
    }
    let Ok(agents) = <[Agent; 2]>::try_from(agents) else {
        unreachable!("two agents were started");
    };
    let topic = agents[0]
        .catalog
        .create_topic(&NewTopic {
            name: "t".into(),
            partition_count: 1,
            configs: Default::default(),
        })
        .await
        .unwrap()
        .id;
    let producer_id = agents[1]
        .catalog
        .init_producer(None)
        .await
        .unwrap()
        .producer_id;
    let reader = ObjectReader::new(store, &ReadCacheConfig::default());
    Cluster {
        _dir: dir,
        agents,
        reader,
        topic,
        producer_id,
    }
}

impl Cluster {
    /// One batch of `records` offsets with sequences from `first_sequence`,
    /// stamped with `append_time_ms`.
    fn batch(&self, first_sequence: i32, records: i32, append_time_ms: i64) -> Append {
        let producer = ProducerAppend {
            producer_id: self.producer_id,
            epoch: 0,
            first_sequence,
            last_sequence: first_sequence + records - 1,
        };
        Append {
            append_time_ms,
            ..append(self.topic, records, Some(producer))
        }
    }

    async fn send(&self, agent: usize, append: Append) -> Result<Appended, Arc<StorageError>> {
        let rx = self.agents[agent].writer.submit(append).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("answered within 10 s")
            .expect("writer alive")
    }

    async fn base_offset(&self, agent: usize, first_sequence: i32, records: i32) -> i64 {
        let batch = self.batch(first_sequence, records, -1);
        self.send(agent, batch).await.unwrap().base_offset
    }

    /// (base offset, records) of every batch the partition holds, read
    /// through the index as a consumer would.
    async fn stored_batches(&self) -> Vec<(i64, i32)> {
        let catalog = &self.agents[0].catalog;
        let entries = catalog.index_entries(self.topic, 0, 0, 100).await.unwrap();
        let mut read = self
            .reader
            .read(&entries, 0, usize::MAX)
            .await
            .unwrap()
            .to_bytes();
        let mut batches = Vec::new();
        while read.has_remaining() {
            let base_offset = read.get_i64();
            let length = read.get_i32() as usize;
            let batch: Bytes = read.split_to(length);
            let last_offset_delta = i32::from_be_bytes(batch[11..15].try_into().unwrap());
            batches.push((base_offset, last_offset_delta + 1));
        }
        batches
    }
}

#[tokio::test]
async fn a_retry_sent_to_both_agents_is_stored_once_and_both_answers_agree() {
    let c = cluster().await;
    // The retry reaches the other agent after the original committed; it was
    // stamped later there, and is answered with the original's append time.
    let original = c.send(0, c.batch(0, 4, 111)).await.unwrap();
    let retry = c.send(1, c.batch(0, 4, 222)).await.unwrap();
    let expected = Appended {
        base_offset: 0,
        append_time_ms: 111,
    };
    assert_eq!((original, retry), (expected, expected));

    // Both at once: whichever commits first appends it, the other is the retry.
    let (first, second) = tokio::join!(c.send(0, c.batch(4, 2, -1)), c.send(1, c.batch(4, 2, -1)));
    assert_eq!(first.unwrap().base_offset, 4);
    assert_eq!(second.unwrap().base_offset, 4);

    assert_eq!(c.stored_batches().await, vec![(0, 4), (4, 2)]);
}

#[tokio::test]
async fn a_producer_alternating_agents_keeps_its_sequence() {
    let c = cluster().await;
    let mut offsets = Vec::new();
    for i in 0..6 {
        offsets.push(c.base_offset(i % 2, i as i32 * 3, 3).await);
    }
    assert_eq!(offsets, vec![0, 3, 6, 9, 12, 15]);

    // A gap is refused by either agent, whatever it saw before.
    let gap = c.send(1, c.batch(40, 1, -1)).await.unwrap_err();
    assert!(
        matches!(
            *gap,
            StorageError::Producer(ProducerError::OutOfOrderSequence {
                expected: 18,
                received: 40,
                ..
            })
        ),
        "{gap}"
    );
    assert_eq!(c.base_offset(0, 18, 1).await, 18);
    assert_eq!(c.stored_batches().await.len(), 7);
}
