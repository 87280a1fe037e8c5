//! Micro-benchmark of a cached fetch's CPU work: reading 8 partitions' runs
//! (1 MiB of 16 KiB batches each) from an object in the read cache, and
//! encoding the Fetch response frame, as it is (records by reference, see
//! `streamhouse_protocol::response::encode_fetch`) and as it was before
//! (each run copied to patch its offsets, then copied again by the encoder).
//! The socket's own copy is the same for both and not part of either.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_metadata::IndexEntry;
use streamhouse_protocol::batches::Batches;
use streamhouse_protocol::response;
use streamhouse_storage::format::{ObjectEncoder, RunStats};
use streamhouse_storage::{ObjectReader, ReadCacheConfig};
use streamhouse_testkit::BatchBuilder;

const PARTITIONS: i32 = 8;
/// 16 records of 1000 bytes: about the Java producer's default 16 KiB batch.
const RECORDS_PER_BATCH: usize = 16;
const BATCHES_PER_PARTITION: usize = 64;
const FETCH_VERSION: i16 = 12;

/// One object holding every partition's run, cached, with its index entries.
fn cached_object(runtime: &tokio::runtime::Runtime) -> (ObjectReader, Vec<IndexEntry>) {
    let batch = BatchBuilder::new(RECORDS_PER_BATCH)
        .timestamp(1_700_000_000_000)
        .value(|_| vec![b'x'; 1000])
        .build();
    let batches: Vec<Bytes> = (0..BATCHES_PER_PARTITION).map(|_| batch.clone()).collect();
    let offsets = (RECORDS_PER_BATCH * BATCHES_PER_PARTITION) as i64;
    let mut encoder = ObjectEncoder::with_capacity(PARTITIONS as usize * batch.len() * 64);
    let mut entries = Vec::new();
    for partition in 0..PARTITIONS {
        let (position, length) =
            encoder.add_run(uuid::Uuid::nil(), partition, &batches, RunStats::default());
        entries.push(IndexEntry {
            base_offset: 0,
            last_offset: offsets - 1,
            object_key: "object".into(),
            position: position as i64,
            length: length as i64,
            max_timestamp: 0,
        });
    }
    let store = Arc::new(InMemory::new());
    let object = encoder.finish();
    let reader = ObjectReader::new(
        Arc::clone(&store) as Arc<dyn ObjectStore>,
        &ReadCacheConfig::default(),
    );
    runtime.block_on(async {
        store
            .put(&Path::from("object"), PutPayload::from(object.clone()))
            .await
            .expect("put");
        reader.cache_committed("object", &object).await;
    });
    (reader, entries)
}

fn read_all(
    runtime: &tokio::runtime::Runtime,
    reader: &ObjectReader,
    entries: &[IndexEntry],
) -> Vec<Batches> {
    runtime.block_on(async {
        let mut records = Vec::new();
        for entry in entries {
            let read = reader.read(std::slice::from_ref(entry), 0, 1 << 20);
            records.push(read.await.expect("read"));
        }
        records
    })
}

fn skeleton(records: impl Iterator<Item = Option<Bytes>>) -> FetchResponse {
    let partitions = records
        .enumerate()
        .map(|(i, records)| {
            PartitionData::default()
                .with_partition_index(i as i32)
                .with_high_watermark(1 << 20)
                .with_records(records)
        })
        .collect();
    FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default().with_partitions(partitions)
    ])
}

fn fetch_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (reader, entries) = cached_object(&runtime);
    let served = read_all(&runtime, &reader, &entries)
        .iter()
        .map(Batches::len)
        .sum::<usize>();
    let mut group = c.benchmark_group("cached fetch of 8 x 1 MiB");
    group.throughput(Throughput::Bytes(served as u64));
    group.bench_function("records by reference", |b| {
        b.iter(|| {
            let records = read_all(&runtime, &reader, &entries);
            let body = skeleton(records.iter().map(|_| None));
            response::encode_fetch(1, FETCH_VERSION, body, &records).expect("encode")
        })
    });
    group.bench_function("records copied (before)", |b| {
        b.iter(|| {
            let records = read_all(&runtime, &reader, &entries);
            let body = skeleton(records.iter().map(|r| Some(r.to_bytes())));
            response::encode(1, ApiKey::Fetch, FETCH_VERSION, &ResponseKind::Fetch(body))
                .expect("encode")
        })
    });
    group.finish();
}

criterion_group!(benches, fetch_path);
criterion_main!(benches);
