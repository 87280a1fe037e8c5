//! `streamctl produce` and `streamctl consume`: records to and from a topic
//! over Produce (acks=all) and Fetch, each partition through its leader.

use std::collections::BTreeMap;
use std::io::BufRead;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchRequest, ProduceRequest, ResponseKind};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;

use crate::client::{check, name, partitions_of, ClientError, Cluster, EARLIEST, LATEST};
use crate::output::{self, Format};
use crate::topic::list_offset;

/// Records sent in one Produce request.
const RECORDS_PER_REQUEST: usize = 1000;
const FETCH_MAX_BYTES: i32 = 8 << 20;
const PARTITION_MAX_BYTES: i32 = 1 << 20;

/// Where `produce` puts each record.
pub struct Target {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<String>,
}

/// Produces `value`, or each line of stdin when it is `None`.
pub async fn produce(
    cluster: &mut Cluster,
    format: Format,
    target: &Target,
    value: Option<String>,
) -> Result<(), ClientError> {
    let metadata = cluster.topic(&target.topic).await?;
    let partitions = i32::try_from(metadata.partitions.len()).unwrap_or(i32::MAX);
    if let Some(p) = target.partition {
        if !(0..partitions).contains(&p) {
            return Err(ClientError::Usage(format!(
                "topic {} has no partition {p} (it has {partitions})",
                target.topic
            )));
        }
    }
    let mut next_keyless = 0i32;
    let mut choose = |key: Option<&str>| -> i32 {
        match (target.partition, key) {
            (Some(p), _) => p,
            // The Java client's default partitioner, so a key lands where a
            // Java producer would put it.
            (None, Some(key)) => (murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions.max(1),
            (None, None) => {
                let partition = next_keyless;
                next_keyless = (next_keyless + 1) % partitions.max(1);
                partition
            }
        }
    };
    let mut produced = Vec::new();
    match value {
        Some(value) => {
            let partition = choose(target.key.as_deref());
            let offset = send(cluster, &metadata, target, partition, &[value]).await?;
            produced.push((partition, offset, 1usize));
        }
        None => {
            let mut pending: BTreeMap<i32, Vec<String>> = BTreeMap::new();
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let line = line.map_err(|e| ClientError::Usage(format!("reading stdin: {e}")))?;
                let partition = choose(target.key.as_deref());
                let batch = pending.entry(partition).or_default();
                batch.push(line);
                if batch.len() >= RECORDS_PER_REQUEST {
                    let values = std::mem::take(batch);
                    let offset = send(cluster, &metadata, target, partition, &values).await?;
                    produced.push((partition, offset, values.len()));
                }
            }
            for (partition, values) in pending {
                if !values.is_empty() {
                    let offset = send(cluster, &metadata, target, partition, &values).await?;
                    produced.push((partition, offset, values.len()));
                }
            }
        }
    }
    let total: usize = produced.iter().map(|p| p.2).sum();
    let message = match produced.as_slice() {
        [(partition, offset, 1)] => {
            format!(
                "produced 1 record to {}[{partition}] at offset {offset}",
                target.topic
            )
        }
        _ => format!("produced {total} records to {}", target.topic),
    };
    let batches: Vec<_> = produced
        .iter()
        .map(|(p, o, n)| json!({ "partition": p, "base_offset": o, "records": n }))
        .collect();
    output::done(
        format,
        &message,
        json!({ "topic": target.topic, "records": total, "batches": batches }),
    );
    Ok(())
}

/// Produces one batch of `values` to `partition`; its base offset.
async fn send(
    cluster: &mut Cluster,
    metadata: &MetadataResponseTopic,
    target: &Target,
    partition: i32,
    values: &[String],
) -> Result<i64, ClientError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder puts records whose offset - sequence is constant in
            // one batch; the batch's base sequence is the first's: -1, as a
            // producer without an id sends.
            sequence: i as i32 - 1,
            timestamp: now,
            key: target.key.as_ref().map(|k| Bytes::from(k.clone())),
            value: Some(Bytes::from(value.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ClientError::Usage(format!("encoding the records: {e}")))?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(&target.topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(buf.freeze()))])]);
    let leader = cluster.leader(metadata, partition).await?;
    let ResponseKind::Produce(response) = leader.call(ApiKey::Produce, 9, &request).await? else {
        return Err(ClientError::Usage(
            "the agent's answer is not a Produce response".into(),
        ));
    };
    let answer = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or_else(|| ClientError::Usage("the agent's Produce response is empty".into()))?;
    check(
        || format!("producing to {}[{partition}]", target.topic),
        answer.error_code,
        answer.error_message.as_ref(),
    )?;
    Ok(answer.base_offset)
}

/// What `consume` reads and how it stops.
pub struct Reading {
    pub topic: String,
    pub partition: Option<i32>,
    /// `None`: from each partition's earliest offset.
    pub offset: Option<i64>,
    pub max_records: Option<u64>,
    pub follow: bool,
}

/// Prints the records of the partitions asked for, from the offset asked for,
/// until each partition's end as it was at the start (or `max_records`, or
/// forever with `follow`).
pub async fn consume(
    cluster: &mut Cluster,
    format: Format,
    reading: &Reading,
) -> Result<(), ClientError> {
    let metadata = cluster.topic(&reading.topic).await?;
    let partitions = partitions_of(&metadata, reading.partition);
    // (partition, next offset, end offset at the start)
    let mut positions = Vec::new();
    for &partition in &partitions {
        let start = match reading.offset {
            Some(offset) => offset,
            None => list_offset(cluster, &metadata, &reading.topic, partition, EARLIEST).await?,
        };
        let end = list_offset(cluster, &metadata, &reading.topic, partition, LATEST).await?;
        positions.push((partition, start, end));
    }
    let mut printed = 0u64;
    loop {
        let mut progressed = false;
        for (partition, position, end) in positions.iter_mut() {
            if !reading.follow && *position >= *end {
                continue;
            }
            let wait_ms = if reading.follow { 500 } else { 100 };
            let (records, next) = fetch(
                cluster,
                &metadata,
                &reading.topic,
                *partition,
                *position,
                wait_ms,
            )
            .await?;
            for (offset, record) in records {
                if let Some(max) = reading.max_records {
                    if printed >= max {
                        return Ok(());
                    }
                }
                print_record(format, &reading.topic, *partition, offset, &record);
                printed += 1;
            }
            if next > *position {
                *position = next;
                progressed = true;
            }
        }
        if reading.max_records.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        let done = positions.iter().all(|(_, position, end)| position >= end);
        if done && !reading.follow {
            return Ok(());
        }
        if !progressed && !reading.follow {
            // Below the end with nothing returned: wait a little for it.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The records at and after `position` of one fetch, and the offset after
/// the last batch it returned (batches left by the log cleaner have gaps).
async fn fetch(
    cluster: &mut Cluster,
    metadata: &MetadataResponseTopic,
    topic: &str,
    partition: i32,
    position: i64,
    wait_ms: i32,
) -> Result<(Vec<(i64, Record)>, i64), ClientError> {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(position)
                .with_partition_max_bytes(PARTITION_MAX_BYTES)])]);
    let leader = cluster.leader(metadata, partition).await?;
    let ResponseKind::Fetch(response) = leader.call(ApiKey::Fetch, 12, &request).await? else {
        return Err(ClientError::Usage(
            "the agent's answer is not a Fetch response".into(),
        ));
    };
    check(
        || format!("fetching {topic}[{partition}]"),
        response.error_code,
        None,
    )?;
    let data = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| ClientError::Usage("the agent's Fetch response is empty".into()))?;
    check(
        || format!("fetching {topic}[{partition}] at offset {position}"),
        data.error_code,
        None,
    )?;
    let mut next = position;
    let mut out = Vec::new();
    let Some(records) = data.records.clone() else {
        return Ok((out, next));
    };
    for batch in whole_batches(&records) {
        // The base offset and last offset delta of the batch header.
        let base = i64::from_be_bytes(batch[0..8].try_into().expect("8 bytes"));
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes"));
        next = next.max(base + i64::from(last_delta) + 1);
        let mut bytes = batch;
        let set = RecordBatchDecoder::decode(&mut bytes).map_err(|e| {
            ClientError::Usage(format!("{topic}[{partition}]: a batch cannot be read: {e}"))
        })?;
        out.extend(
            set.records
                .into_iter()
                .filter(|r| !r.control && r.offset >= position)
                .map(|r| (r.offset, r)),
        );
    }
    Ok((out, next))
}

/// The complete batches of a fetch's records (a fetch may end with part of
/// one, as Kafka's may).
fn whole_batches(records: &Bytes) -> Vec<Bytes> {
    /// Base offset and batch length: the length counts from after them.
    const LOG_OVERHEAD: usize = 12;
    /// Up to the last offset delta.
    const MIN_HEADER: usize = 27;
    let mut out = Vec::new();
    let mut at = 0usize;
    while records.len() - at >= LOG_OVERHEAD {
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let Some(total) = usize::try_from(length).ok().map(|l| l + LOG_OVERHEAD) else {
            break;
        };
        if total < MIN_HEADER || records.len() - at < total {
            break;
        }
        out.push(records.slice(at..at + total));
        at += total;
    }
    out
}

fn print_record(format: Format, topic: &str, partition: i32, offset: i64, record: &Record) {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let key = text(&record.key);
    let value = text(&record.value);
    match format {
        Format::Table => {
            let value = value.unwrap_or_else(|| "(null)".into());
            match key {
                Some(key) => println!("{topic}[{partition}]@{offset} {key}: {value}"),
                None => println!("{topic}[{partition}]@{offset} {value}"),
            }
        }
        Format::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = record
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), text(v).into()))
                .collect();
            println!(
                "{}",
                json!({
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "timestamp": record.timestamp,
                    "key": key,
                    "value": value,
                    "headers": headers,
                })
            );
        }
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), seed 0x9747b28c.
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn a_partial_batch_at_the_end_is_left_out() {
        let mut one = vec![0u8; 61];
        one[8..12].copy_from_slice(&49i32.to_be_bytes());
        let mut records = one.clone();
        records.extend_from_slice(&one[..30]);
        let batches = whole_batches(&Bytes::from(records));
        assert_eq!(batches.len(), 1);
        let mut bad = one.clone();
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(whole_batches(&Bytes::from(bad)).is_empty());
    }
}
