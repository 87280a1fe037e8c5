//! The worker's producer state expiry: a pass goes through the catalog in
//! bounded steps, yields after its steps with where to resume, and the resumed
//! pass removes the rest, leaving a producer that still appends untouched.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use streamhouse_metadata::producers::{ExpiryCursor, ProducerAppend};
use streamhouse_metadata::{AppendSlice, Catalog, NewObject, NewTopic, RunAppend, TopicId};
use streamhouse_storage::{CompactionConfig, CompactionWorker, Metrics};

/// Long enough that the passes below run well within it after the active
/// producer's last commit, even on a loaded machine.
const EXPIRATION: Duration = Duration::from_millis(1500);
/// More producers than one catalog step looks at (1000 batches).
const IDLE_PRODUCERS: i64 = 1500;
const ACTIVE: i64 = 0;

fn append(producer_id: i64, sequence: i32) -> AppendSlice {
    AppendSlice {
        length: 100,
        offset_count: 1,
        max_timestamp: 1_000,
        append_time_ms: -1,
        producer: Some(ProducerAppend {
            producer_id,
            epoch: 0,
            first_sequence: sequence,
            last_sequence: sequence,
        }),
        txn: None,
    }
}

async fn commit(catalog: &dyn Catalog, topic: TopicId, appends: Vec<AppendSlice>) {
    let object = NewObject {
        key: format!("o-{}", uuid::Uuid::new_v4()),
        size_bytes: 100,
    };
    let run = RunAppend {
        topic,
        partition: 0,
        position: 0,
        appends,
    };
    catalog.commit_object(&object, &[run]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_yields_after_its_steps_and_resumes_where_it_stopped() {
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
    // One commit of one batch from each producer (ids need not come from
    // InitProducerId: Kafka accepts any).
    commit(
        &*catalog,
        topic,
        (0..=IDLE_PRODUCERS).map(|id| append(id, 0)).collect(),
    )
    .await;
    tokio::time::sleep(EXPIRATION * 2).await;
    commit(&*catalog, topic, vec![append(ACTIVE, 1)]).await;

    let metrics = Arc::new(Metrics::default());
    let worker = CompactionWorker::new(
        Arc::new(InMemory::new()),
        Arc::clone(&catalog),
        CompactionConfig {
            producer_id_expiration: EXPIRATION,
            ..CompactionConfig::default()
        },
        Arc::clone(&metrics),
    );
    // One step: the active producer's old batch and 999 idle producers'.
    let first = worker
        .expire_producers(ExpiryCursor::default(), 1)
        .await
        .unwrap();
    assert_eq!(first.states_removed, 999);
    let resume = first.resume.expect("the pass ran out of steps");
    let rest = worker.expire_producers(resume, 100).await.unwrap();
    assert_eq!((rest.states_removed, rest.resume), (501, None));
    assert_eq!(metrics.compaction.producer_states_expired.get(), 1500);

    let producers = catalog.partition_producers(topic, 0).await.unwrap();
    assert_eq!(
        producers
            .iter()
            .map(|b| (b.producer_id, b.last_sequence))
            .collect::<Vec<_>>(),
        vec![(ACTIVE, 1)]
    );
    assert_eq!(
        catalog
            .producer_batches(topic, 0, ACTIVE)
            .await
            .unwrap()
            .len(),
        2,
        "the active producer keeps its older batch too"
    );
}
