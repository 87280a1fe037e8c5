//! Micro-benchmarks of the produce path's CPU work: frame check and request
//! decode, batch validation (CRC-32C), object encoding, and response encoding.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use streamhouse_protocol::test_util::BatchBuilder;
use streamhouse_protocol::{batch, frame, request, response};
use streamhouse_storage::format::{ObjectEncoder, RunStats};

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

criterion_group!(benches, produce_path);
criterion_main!(benches);
