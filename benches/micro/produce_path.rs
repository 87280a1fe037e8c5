//! Micro-benchmarks of the produce path's CPU work: frame check and request
//! decode, batch validation (CRC-32C, then every record, decompressing
//! compressed batches), object encoding, and response encoding.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use streamhouse_protocol::validate::{self, TimestampBounds};
use streamhouse_protocol::{batch, frame, request, response};
use streamhouse_storage::format::{ObjectEncoder, RunStats};
use streamhouse_testkit::BatchBuilder;

/// A batch of `count` records of `value_bytes` each, as a producer sends it.
fn client_batch(count: usize, value_bytes: usize) -> Bytes {
    BatchBuilder::new(count)
        .timestamp(1_700_000_000_000)
        .key(|i| format!("key-{i}"))
        .value(move |_| vec![b'x'; value_bytes])
        .build()
}

/// A Produce v9 frame with 8 partitions of one 16 KiB batch each (the Java
/// producer's default batch size), as it arrives on the socket.
fn produce_frame(batch: &Bytes) -> Bytes {
    let partitions = (0..8)
        .map(|i| {
            PartitionProduceData::default()
                .with_index(i)
                .with_records(Some(batch.clone()))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(partitions)]);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(1)
        .encode(&mut buf, ApiKey::Produce.request_header_version(9))
        .expect("header");
    request.encode(&mut buf, 9).expect("body");
    let length = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&length.to_be_bytes());
    buf.freeze()
}

fn produce_path(c: &mut Criterion) {
    let batch = client_batch(16, 1000);
    let frame_bytes = produce_frame(&batch);
    let mut group = c.benchmark_group("produce");
    group.throughput(Throughput::Bytes(frame_bytes.len() as u64));
    group.bench_function("frame_check_and_decode_8x16KiB", |b| {
        b.iter(|| {
            let length = frame::check(&frame_bytes, frame::DEFAULT_MAX_FRAME_BYTES)
                .expect("valid frame")
                .expect("whole frame");
            request::decode(frame_bytes.slice(4..4 + length)).expect("decodes")
        })
    });
    group.bench_function("validate_8_batches_crc32c", |b| {
        b.iter(|| {
            for _ in 0..8 {
                batch::validate(&batch).expect("valid batch");
            }
        })
    });
    group.bench_function("encode_object_8_runs", |b| {
        let topic = uuid::Uuid::new_v4();
        b.iter(|| {
            let mut encoder = ObjectEncoder::with_capacity(batch.len() * 8);
            for partition in 0..8 {
                encoder.add_run(topic, partition, [&batch], RunStats::default());
            }
            encoder.finish()
        })
    });
    group.finish();
    c.bench_function("produce/encode_response_8_partitions", |b| {
        let body = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("bench")))
                .with_partition_responses(
                    (0..8)
                        .map(|i| PartitionProduceResponse::default().with_index(i))
                        .collect(),
                ),
        ]));
        b.iter(|| response::encode(1, ApiKey::Produce, 9, &body).expect("encodes"))
    });
}

/// 16 records of 1000 bytes (16 KiB, the Java producer's default batch) of
/// lowercase letters from a fixed pseudo-random sequence: compressible about
/// as well as text, not as well as a repeated byte.
fn text_batch(compression: Compression) -> Bytes {
    BatchBuilder::new(16)
        .timestamp(1_700_000_000_000)
        .key(|i| format!("key-{i}"))
        .value(|i| {
            let mut state = 0x9e37_79b9_u32.wrapping_mul(i as u32 + 1);
            (0..1000)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    b'a' + (state >> 24) as u8 % 26
                })
                .collect::<Vec<u8>>()
        })
        .header("trace", Some(Bytes::from_static(b"00-0af7651916cd43dd-01")))
        .compression(compression)
        .build()
}

/// Record validation of one 16 KiB batch per codec, against the header-only
/// check (CRC-32C) it adds to, and the hop to the blocking pool that
/// compressed batches pay.
fn validation(c: &mut Criterion) {
    let bounds = Some(TimestampBounds {
        now_ms: 1_700_000_000_000,
        before_max_ms: i64::MAX,
        after_max_ms: 3_600_000,
    });
    let mut group = c.benchmark_group("validate");
    let plain = text_batch(Compression::None);
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("header_crc_only_uncompressed_16KiB", |b| {
        b.iter(|| batch::validate(&plain).expect("valid batch"))
    });
    for (name, codec) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let bytes = text_batch(codec);
        group.bench_function(format!("records_{name}_16KiB"), |b| {
            b.iter(|| validate::validate(&bytes, bounds).expect("valid batch"))
        });
    }
    group.finish();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    c.bench_function("validate/spawn_blocking_round_trip", |b| {
        b.iter(|| {
            runtime.block_on(async { tokio::task::spawn_blocking(|| 1).await.expect("joins") })
        })
    });
}

criterion_group!(benches, produce_path, validation);
criterion_main!(benches);
