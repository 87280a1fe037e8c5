//! Two agents compacting and collecting garbage side by side while producers
//! write through both and a reader re-reads every partition from the start
//! through both: no fetch may fail, nothing acknowledged may go missing, and
//! no object an index entry names may be deleted.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    create_topic, decode_records, fetch, fetch_request, on_both_backends, produce, record_batch,
    unique_topic, Backend, TestBroker,
};
use kafka_protocol::records::Compression;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use streamhouse::Settings;

on_both_backends!(compaction_and_collection_on_two_agents_lose_nothing_under_load);

const PARTITIONS: i32 = 3;
/// Long enough for several compaction passes and one garbage collection sweep
/// (every 10 s) with a grace period shorter than the run; a longer soak with
/// `STREAMHOUSE_LIFECYCLE_LOAD_SECS`.
fn load() -> Duration {
    let secs = std::env::var("STREAMHOUSE_LIFECYCLE_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    Duration::from_secs(secs)
}

fn eager_lifecycle(settings: &mut Settings) {
    settings.agent_lease_ms = 1000;
    settings.compaction_target_bytes = Some(64 * 1024);
    settings.compaction_min_age_ms = 100;
    settings.compaction_max_age_ms = 1000;
    settings.gc_grace_ms = 1000;
}

async fn compaction_and_collection_on_two_agents_lose_nothing_under_load(backend: Backend) {
    let a = TestBroker::start_with(backend, eager_lifecycle).await;
    let b = a.another_agent(eager_lifecycle).await;
    let topic = unique_topic("lifecycle");
    create_topic(&mut a.client().await, &topic, PARTITIONS).await;
    let stop = Arc::new(AtomicBool::new(false));

    let mut producers = Vec::new();
    for (n, agent) in [&a, &b].into_iter().enumerate() {
        let mut client = agent.client().await;
        let topic = topic.clone();
        let stop = Arc::clone(&stop);
        producers.push(tokio::spawn(async move {
            let mut acked = 0usize;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let partition = (i + n as i32) % PARTITIONS;
                let batch = record_batch(20, i as usize * 20, 1_700_000_000_000, Compression::None);
                let (error, _) = produce(&mut client, &topic, partition, batch).await;
                assert_eq!(error, 0, "produce through agent {n}");
                acked += 20;
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        }));
    }

    let mut readers = Vec::new();
    for (n, agent) in [&a, &b].into_iter().enumerate() {
        let mut client = agent.client().await;
        let topic = topic.clone();
        let stop = Arc::clone(&stop);
        readers.push(tokio::spawn(async move {
            let mut passes = 0;
            while !stop.load(Ordering::Relaxed) {
                for partition in 0..PARTITIONS {
                    let mut offset = 0;
                    loop {
                        let data =
                            fetch(&mut client, &fetch_request(&topic, partition, offset, 0)).await;
                        assert_eq!(data.error_code, 0, "fetch through agent {n} at {offset}");
                        let records = data.records.map(decode_records).unwrap_or_default();
                        let Some(last) = records.last() else { break };
                        assert_eq!(records[0].0, offset, "contiguous from the start");
                        offset = last.0 + 1;
                    }
                }
                passes += 1;
            }
            passes
        }));
    }

    tokio::time::sleep(load()).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for producer in producers {
        acked += producer.await.expect("producer");
    }
    for reader in readers {
        assert!(reader.await.expect("reader") > 0);
    }

    // Everything acknowledged reads back, through either agent, and every
    // object the index names is still in the store.
    let catalog = streamhouse_metadata::open(&a.catalog_url).await.unwrap();
    let store = streamhouse_storage::open_store(&a.store_url).unwrap();
    let id = catalog.topic_by_name(&topic).await.unwrap().unwrap().id;
    let mut total = 0;
    let mut objects = BTreeSet::new();
    for partition in 0..PARTITIONS {
        let entries = catalog
            .index_entries(id, partition, 0, 100_000)
            .await
            .unwrap();
        for entry in &entries {
            objects.insert(entry.object_key.clone());
        }
        total += entries.last().map_or(0, |e| e.last_offset + 1);
    }
    assert_eq!(
        total as usize, acked,
        "every acknowledged record is in the index"
    );
    for key in &objects {
        store
            .head(&Path::from(key.as_str()))
            .await
            .unwrap_or_else(|e| panic!("object {key} named by the index is gone: {e}"));
    }
    let produce_requests = acked / 20;
    assert!(
        objects.len() < produce_requests / 2,
        "compaction ran: {} objects hold {produce_requests} requests' records",
        objects.len()
    );
    for agent in [&a, &b] {
        let mut client = agent.client().await;
        let mut read = 0;
        for partition in 0..PARTITIONS {
            let mut offset = 0;
            loop {
                let data = fetch(&mut client, &fetch_request(&topic, partition, offset, 0)).await;
                assert_eq!(data.error_code, 0);
                let records = data.records.map(decode_records).unwrap_or_default();
                let Some(last) = records.last() else { break };
                read += records.len();
                offset = last.0 + 1;
            }
        }
        assert_eq!(read, acked, "all read back through {}", agent.addr);
    }
}
