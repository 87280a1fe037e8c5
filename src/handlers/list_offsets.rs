//! ListOffsets: earliest (log start), latest (high watermark), and the first
//! offset whose timestamp is at or after a given time.
//!
//! A timestamp search may decompress a batch, which is CPU work bounded only
//! by [`MAX_DECOMPRESSED_BYTES`]; so it runs on the blocking pool, at most
//! [`CONCURRENT_TIMESTAMP_SEARCHES`] at once per agent, and a partition named
//! several times in one request is looked up once.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::{Topic, TopicId};
use streamhouse_protocol::{batch, records as batch_records};
use streamhouse_storage::Freshness;

use tokio::sync::Semaphore;

use crate::acl::Access;
use crate::quotas::request_time;
use crate::{errors, Broker};

/// Most bytes one batch may decompress to during a timestamp search: far above
/// what a batch within max.message.bytes holds, far below a decompression bomb.
/// A batch beyond it is answered with its first offset.
const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Timestamp searches running at once on this agent: each may take a core
/// for as long as decompressing [`MAX_DECOMPRESSED_BYTES`] takes, so a flood
/// of them costs at most this many cores while other clients' requests go
/// on. Records are read as a stream (a small buffer; a snappy batch's block
/// whole, within the cap), so memory is no lever.
const CONCURRENT_TIMESTAMP_SEARCHES: usize = 2;
static TIMESTAMP_SEARCHES: Semaphore = Semaphore::const_new(CONCURRENT_TIMESTAMP_SEARCHES);

/// One partition's (offset, timestamp), or why there is none.
type Answer = Result<(i64, i64), ResponseError>;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const READ_COMMITTED: i8 = 1;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // No epoch (-1), as for the records' partitionLeaderEpoch (see
    // `clear_partition_leader_epoch`): a consumer's position then carries none.
    let leader_epoch = -1;
    let mut topics = Vec::with_capacity(request.topics.len());
    // Answers already worked out in this request, by (topic, partition, time).
    let mut answered: HashMap<(TopicId, i32, i64), Answer> = HashMap::new();
    // As Kafka: at read_committed, latest is the last stable offset.
    let committed = request.isolation_level == READ_COMMITTED;
    for wanted in request.topics {
        let authorized = access.allows_topic(AclOperation::Describe, &wanted.name.0);
        let topic = if authorized {
            broker.catalog.topic_by_name(&wanted.name.0).await
        } else {
            Ok(None)
        };
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for partition in &wanted.partitions {
            let index = partition.partition_index;
            let found = match &topic {
                _ if !authorized => Err(ResponseError::TopicAuthorizationFailed),
                Err(e) => Err(errors::catalog(e)),
                Ok(Some(topic)) if (0..topic.partition_count).contains(&index) => {
                    let key = (topic.id, index, partition.timestamp);
                    match answered.get(&key) {
                        Some(answer) => *answer,
                        None => {
                            let answer =
                                lookup(broker, topic, index, partition.timestamp, committed).await;
                            answered.insert(key, answer);
                            answer
                        }
                    }
                }
                Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
            };
            let response = ListOffsetsPartitionResponse::default().with_partition_index(index);
            partitions.push(match found {
                Ok((offset, timestamp)) => response
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(leader_epoch),
                Err(error) => response
                    .with_error_code(error.code())
                    .with_offset(-1)
                    .with_timestamp(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The (offset, timestamp) answer for one partition. Timestamps of earliest and
/// latest are -1, as in Kafka; a time after every record gives offset -1.
///
/// The head is read from the catalog, not the agent's view, which may lag
/// other agents' commits: as a Kafka leader's, the answer includes every
/// acknowledged write, wherever it was produced.
async fn lookup(
    broker: &Broker,
    topic: &Topic,
    partition: i32,
    timestamp: i64,
    committed: bool,
) -> Answer {
    let offsets = match broker
        .log
        .offsets(topic.id, partition, Freshness::Authoritative)
        .await
    {
        Ok(Some(offsets)) => offsets,
        Ok(None) => return Err(ResponseError::UnknownTopicOrPartition),
        Err(e) => return Err(errors::storage(&e)),
    };
    match timestamp {
        EARLIEST => return Ok((offsets.log_start_offset, -1)),
        LATEST if committed => {
            let stable =
                crate::stable_read::last_stable_offset(broker, topic.id, partition, offsets)
                    .await?;
            return Ok((stable, -1));
        }
        LATEST => return Ok((offsets.high_watermark, -1)),
        t if t < 0 => return Err(ResponseError::UnsupportedVersion),
        _ => {}
    }
    let found = broker
        .log
        .entry_at_or_after_timestamp(topic.id, partition, timestamp, offsets.log_start_offset)
        .await
        .map_err(|e| errors::storage(&e))?;
    let Some((entry, from, fetched)) = found else {
        return Ok((-1, -1));
    };
    let _permit = TIMESTAMP_SEARCHES
        .acquire()
        .await
        .map_err(|_| ResponseError::UnknownServerError)?;
    let last_offset = entry.last_offset;
    request_time::spawn_blocking(move || search(&fetched, from, timestamp, last_offset))
        .await
        .map_err(|_| ResponseError::UnknownServerError)?
}

/// The first record at or after `timestamp` among `records` (an index entry's
/// batches, from `from`), record by record.
fn search(
    records: &Bytes,
    from: i64,
    timestamp: i64,
    last_offset: i64,
) -> Result<(i64, i64), ResponseError> {
    let ranges = batch::split(records).map_err(|_| ResponseError::CorruptMessage)?;
    for range in ranges {
        let bytes = &records[range];
        let header = batch::BatchHeader::parse(bytes).map_err(|_| ResponseError::CorruptMessage)?;
        if header.max_timestamp < timestamp {
            continue;
        }
        // The batch is searched record by record as it is decompressed, up
        // to a cap; a batch whose record is not found within the cap is
        // answered with its first offset. A LogAppendTime batch gives every
        // record its max timestamp: the first record is the answer.
        let log_append_time =
            header.attributes & streamhouse_protocol::append_time::LOG_APPEND_TIME_BIT != 0;
        let exact = (!log_append_time)
            .then(|| batch_records::first_at_or_after(bytes, timestamp, MAX_DECOMPRESSED_BYTES))
            .and_then(Result::ok)
            .flatten()
            .map(|(delta, ts)| (header.base_offset + i64::from(delta), ts));
        let (offset, ts) = exact.unwrap_or((header.base_offset, header.max_timestamp));
        if offset >= from {
            return Ok((offset, ts));
        }
    }
    // The index said this entry reaches the time, but its batches start below the
    // log start offset: the answer is the first readable offset after them.
    Ok((last_offset + 1, -1))
}
