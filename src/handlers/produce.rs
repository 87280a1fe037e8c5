//! Produce: validate each partition's batches, queue them on the write path in
//! arrival order, and answer once they are durable and committed.
//!
//! Validation is Kafka's: headers (size, magic, CRC) first, then every record
//! (`streamhouse_protocol::validate`). Records of small uncompressed batches are
//! walked inline; compressed or large ones on the blocking pool, at most one
//! per core at a time, so decompression never holds an async worker.

use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use streamhouse_protocol::validate::{self, InvalidBatch, TimestampBounds, ValidBatch};
use streamhouse_protocol::{append_time, batch};
use streamhouse_storage::{Append, AppendOutcome, Freshness, ProducerAppend, TxnAppend};
use tokio::sync::{oneshot, Semaphore};

use super::implicit_add;
use crate::acl::Access;
use crate::config::topic::{
    compacted, is_reserved_topic_name, log_append_time, max_message_bytes, timestamp_window,
};
use crate::quotas::{request_time, throttle_ms, Mute, QuotaClient, QuotaKind};
use crate::{errors, Broker};

/// The state of one partition of the request once its batches are queued.
enum Queued {
    Waiting {
        topic: uuid::Uuid,
        outcome: oneshot::Receiver<AppendOutcome>,
        /// Bytes and records of the batches, counted once they are appended.
        bytes: usize,
        records: u64,
    },
    Failed(ResponseError, Option<String>),
    /// Refused by record validation: the error names the records.
    Invalid(InvalidBatch),
}

/// A partition's uncompressed records up to this size are validated on the
/// async worker: the walk costs per record, not per byte, so a batch of this
/// size costs at worst (records of a few bytes) about one hop to the blocking
/// pool and typically (records of hundreds of bytes) a small fraction of it.
/// Beyond it (a 1 MiB batch of tiny records is about 100,000 records), and for
/// every compressed batch, validation moves off. It holds the Java producer's
/// default 16 KiB batch.
const INLINE_VALIDATION_BYTES: usize = 32 * 1024;

/// Record validations running on the blocking pool at once: one per core, so
/// a client sending compression bombs costs CPU the other clients' requests
/// queue behind fairly, not threads or memory without bound (each
/// validation holds at most a codec's buffers and one snappy block).
static OFF_WORKER_VALIDATIONS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Queues the request's batches (in order, now) and returns the future that
/// builds the response once they are committed.
pub async fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
    client: &QuotaClient,
    mute: &Mute,
    access: &Access,
) -> impl Future<Output = ProduceResponse> + Send + 'static {
    // As Kafka: the request's record bytes count against the client's
    // producer_byte_rate, and a client over it is told to wait and muted.
    let bytes: usize = request
        .topic_data
        .iter()
        .flat_map(|topic| &topic.partition_data)
        .filter_map(|partition| partition.records.as_ref().map(|r| r.len()))
        .sum();
    let throttle = broker
        .quotas
        .record(QuotaKind::Produce, client, bytes as u64);
    mute.mute_for(throttle);
    let acks_valid = matches!(request.acks, -1..=1);
    // As Kafka: a transactional producer needs WRITE on its transactional id.
    let transaction_refused = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !access.allows(AclOperation::Write, ResourceType::TransactionalId, id));
    let not_added = if acks_valid && !transaction_refused {
        implicit_add::add_partitions(broker, &request, version).await
    } else {
        implicit_add::NotAdded::default()
    };
    // All of the request's partitions go into one object when they can: its
    // answer then waits for one PUT, not the slowest of several.
    let queueing = broker.log.queueing();
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let topic = if acks_valid {
            let by_id = version >= FIRST_VERSION_BY_ID;
            super::named_topic(broker, &topic_data.name, topic_data.topic_id, by_id)
                .await
                .map_err(|(error, message)| (error, Some(message)))
        } else {
            Ok(None)
        };
        let topic_name = match &topic {
            Ok(Some(topic)) => topic.name.clone(),
            _ => topic_data.name.0.to_string(),
        };
        // As Kafka: authorized by name, once an id is known to name a topic.
        let authorized = topic.is_err() || access.allows_topic(AclOperation::Write, &topic_name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for partition in topic_data.partition_data {
            let queued = if !acks_valid {
                Queued::Failed(ResponseError::InvalidRequiredAcks, None)
            } else if transaction_refused {
                Queued::Failed(ResponseError::TransactionalIdAuthorizationFailed, None)
            } else if let Some(error) = not_added.error(&topic, partition.index) {
                Queued::Failed(error, None)
            } else if !authorized {
                Queued::Failed(ResponseError::TopicAuthorizationFailed, None)
            } else if is_reserved_topic_name(&topic_name) {
                Queued::Failed(
                    ResponseError::InvalidTopicException,
                    Some(format!("Cannot append to internal topic {topic_name}")),
                )
            } else {
                match &topic {
                    Err((error, message)) => Queued::Failed(*error, message.clone()),
                    Ok(Some(topic)) if (0..topic.partition_count).contains(&partition.index) => {
                        queue(
                            broker,
                            version,
                            (topic.id, &topic.name),
                            partition.index,
                            partition.records,
                            &topic.configs,
                        )
                        .await
                    }
                    Ok(_) => Queued::Failed(ResponseError::UnknownTopicOrPartition, None),
                }
            };
            partitions.push((partition.index, queued));
        }
        topics.push((topic_data.name, topic_data.topic_id, topic_name, partitions));
    }
    drop(queueing);
    let broker = Arc::clone(broker);
    async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, topic_id, topic_name, partitions) in topics {
            let mut partition_responses = Vec::with_capacity(partitions.len());
            for (index, queued) in partitions {
                partition_responses.push(answer(&broker, &topic_name, index, queued).await);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(partition_responses),
            );
        }
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms(throttle))
    }
}

/// The first Produce version that names topics by id.
pub(super) const FIRST_VERSION_BY_ID: i16 = 13;

async fn queue(
    broker: &Broker,
    version: i16,
    (topic, name): (uuid::Uuid, &str),
    partition: i32,
    records: Option<bytes::Bytes>,
    configs: &std::collections::BTreeMap<String, String>,
) -> Queued {
    // Kafka names the partition as its `TopicPartition` prints.
    let keys_required = compacted(configs).then(|| format!("{name}-{partition}"));
    let max_batch_bytes = max_message_bytes(configs);
    let stamp_append_time = log_append_time(configs);
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Queued::Failed(
            ResponseError::InvalidRecord,
            Some("Produce request carries no record batch".into()),
        );
    };
    let ranges = match batch::split(&records) {
        Ok(ranges) => ranges,
        Err(e) => return Queued::Failed(errors::batch(&e), Some(e.to_string())),
    };
    let mut append = Append {
        topic,
        partition,
        batches: bytes::Bytes::new(),
        batch_count: 0,
        offset_count: 0,
        min_timestamp: i64::MAX,
        max_timestamp: i64::MIN,
        append_time_ms: -1,
        producer: None,
        txn: None,
    };
    // As Kafka's ProduceRequest.validateRecords: one batch per partition, and
    // zstd only from v7, which is what told the broker that the client knows
    // brokers can read it.
    if ranges.len() > 1 {
        return Queued::Failed(
            ResponseError::InvalidRecord,
            Some(format!(
                "Produce requests with version {version} are only allowed to contain exactly one record batch per partition"
            )),
        );
    }
    let mut producer = Producer::default();
    let mut headers = Vec::with_capacity(ranges.len());
    for range in ranges.iter().cloned() {
        let size = range.len();
        let header = match batch::validate(&records[range]) {
            Ok(header) => header,
            Err(e) => return Queued::Failed(errors::batch(&e), Some(e.to_string())),
        };
        if version < 7 && header.compression_codec() == batch::codec::ZSTD {
            return Queued::Failed(
                ResponseError::UnsupportedCompressionType,
                Some(format!(
                    "Produce requests with version {version} are not allowed to use ZStandard compression"
                )),
            );
        }
        if size > max_batch_bytes {
            return Queued::Failed(
                ResponseError::MessageTooLarge,
                Some(format!(
                    "The record batch of {size} bytes exceeds the topic's max.message.bytes of {max_batch_bytes}"
                )),
            );
        }
        if let Err(message) = producer.add(&header) {
            return Queued::Failed(ResponseError::InvalidRecord, Some(message));
        }
        headers.push(header);
    }
    let timestamps = (!stamp_append_time).then(|| {
        let (before_max_ms, after_max_ms) = timestamp_window(configs);
        TimestampBounds {
            now_ms: broker.clock.now_ms(),
            before_max_ms,
            after_max_ms,
        }
    });
    let valid = match validate_records(&records, &ranges, headers, timestamps, keys_required).await
    {
        Ok(valid) => valid,
        Err(queued) => return queued,
    };
    let mut record_count = 0u64;
    for batch in valid {
        record_count += u64::try_from(batch.header.records_count).unwrap_or(0);
        append.batch_count += 1;
        append.offset_count += batch.header.offset_count();
        append.min_timestamp = append.min_timestamp.min(batch.header.base_timestamp);
        // The records' own largest timestamp, which Kafka writes into the
        // header; the client's `maxTimestamp` is not trusted for the index.
        append.max_timestamp = append.max_timestamp.max(batch.max_timestamp);
    }
    append.batches = if stamp_append_time {
        // The topic's timestamps are the broker's: stamp a copy of the
        // validated batches (the CRC is recomputed), and index them by it.
        let append_time = broker.clock.now_ms();
        append.append_time_ms = append_time;
        let mut stamped = bytes::BytesMut::from(&records[..]);
        for range in ranges {
            if let Some(bytes) = stamped.get_mut(range) {
                append_time::stamp(bytes, append_time);
            }
        }
        append.max_timestamp = append_time;
        stamped.freeze()
    } else {
        records
    };
    append.producer = producer.append;
    if producer.transactional {
        append.txn = Some(TxnAppend::Data);
    }
    let bytes = append.batches.len();
    match broker.log.append(append).await {
        Ok(outcome) => Queued::Waiting {
            topic,
            outcome,
            bytes,
            records: record_count,
        },
        Err(e) => Queued::Failed(errors::storage(&e), Some(e.to_string())),
    }
}

/// Validates the records of a partition's batches (headers already checked),
/// inline or on the blocking pool (see [`INLINE_VALIDATION_BYTES`]).
async fn validate_records(
    records: &bytes::Bytes,
    ranges: &[Range<usize>],
    headers: Vec<batch::BatchHeader>,
    timestamps: Option<TimestampBounds>,
    keys_required: Option<String>,
) -> Result<Vec<ValidBatch>, Queued> {
    let all = move |records: &[u8], ranges: &[Range<usize>], headers: &[batch::BatchHeader]| {
        ranges
            .iter()
            .zip(headers)
            .map(|(range, header)| {
                let batch = &records[range.clone()];
                match &keys_required {
                    Some(partition) => {
                        validate::records_of_compacted(batch, header, timestamps, partition)
                    }
                    None => validate::records(batch, header, timestamps),
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let off_worker = records.len() > INLINE_VALIDATION_BYTES
        || headers
            .iter()
            .any(|h| h.compression_codec() != validate::NONE);
    if !off_worker {
        return all(records, ranges, &headers).map_err(Queued::Invalid);
    }
    // The semaphore is never closed; `acquire` cannot fail.
    let _permit = OFF_WORKER_VALIDATIONS.acquire().await;
    let records = records.clone();
    let ranges = ranges.to_vec();
    match request_time::spawn_blocking(move || all(&records, &ranges, &headers)).await {
        Ok(result) => result.map_err(Queued::Invalid),
        Err(e) => Err(Queued::Failed(
            ResponseError::UnknownServerError,
            Some(format!("Record validation failed: {e}")),
        )),
    }
}

async fn answer(
    broker: &Broker,
    topic_name: &str,
    index: i32,
    queued: Queued,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    let (topic, outcome, bytes, records) = match queued {
        Queued::Waiting {
            topic,
            outcome,
            bytes,
            records,
        } => (topic, outcome, bytes, records),
        Queued::Failed(error, message) => {
            return response
                .with_error_code(error.code())
                .with_error_message(message.map(StrBytes::from_string));
        }
        Queued::Invalid(invalid) => {
            let record_errors = match &invalid {
                InvalidBatch::Records(errors) => errors
                    .iter()
                    .map(|(index, problem)| {
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(*index)
                            .with_batch_index_error_message(Some(StrBytes::from_string(
                                problem.to_string(),
                            )))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            return response
                .with_error_code(errors::invalid_batch(&invalid).code())
                .with_error_message(Some(StrBytes::from_string(invalid.to_string())))
                .with_record_errors(record_errors);
        }
    };
    match outcome.await {
        // A retry of an idempotent batch is answered as its original was.
        Ok(Ok(appended)) => {
            broker.request_metrics.produced(topic_name, bytes, records);
            let log_start = match broker.log.offsets(topic, index, Freshness::Cached).await {
                Ok(Some(offsets)) => offsets.log_start_offset,
                _ => -1,
            };
            response
                .with_base_offset(appended.base_offset)
                .with_log_append_time_ms(appended.append_time_ms)
                .with_log_start_offset(log_start)
        }
        Ok(Err(e)) => response
            .with_error_code(errors::storage(&e).code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        Err(_) => response.with_error_code(ResponseError::NotLeaderOrFollower.code()),
    }
}

/// The idempotence fields of a partition's batches: all from one producer with
/// contiguous sequences (clients send one batch per partition per request), or
/// all without a producer.
#[derive(Default)]
struct Producer {
    seen_plain: bool,
    append: Option<ProducerAppend>,
    /// The batches belong to a transaction.
    transactional: bool,
}

impl Producer {
    fn add(&mut self, header: &batch::BatchHeader) -> Result<(), String> {
        // As Kafka's validator: markers are the coordinator's to write.
        if header.is_control() {
            return Err("Control batches are written by the transaction coordinator only".into());
        }
        if header.is_transactional() && header.producer_id < 0 {
            return Err("A transactional batch needs a producer id".into());
        }
        if self.append.is_some() && header.is_transactional() != self.transactional {
            return Err("Transactional and other batches in one partition".into());
        }
        self.transactional = header.is_transactional();
        if header.producer_id < 0 {
            self.seen_plain = true;
            return match self.append {
                None => Ok(()),
                Some(_) => Err("Batches with and without a producer id in one partition".into()),
            };
        }
        let last = increment_sequence(header.base_sequence, header.last_offset_delta);
        match &mut self.append {
            None if !self.seen_plain => {
                self.append = Some(ProducerAppend {
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                    first_sequence: header.base_sequence,
                    last_sequence: last,
                });
                Ok(())
            }
            Some(append)
                if append.producer_id == header.producer_id
                    && append.epoch == header.producer_epoch
                    && increment_sequence(append.last_sequence, 1) == header.base_sequence =>
            {
                append.last_sequence = last;
                Ok(())
            }
            _ => Err(
                "Batches of one partition must come from one producer with consecutive sequences"
                    .into(),
            ),
        }
    }
}

/// Sequence arithmetic as Kafka does it: after i32::MAX comes 0.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

#[cfg(test)]
mod tests {
    use super::increment_sequence;

    #[test]
    fn sequences_wrap_to_zero_after_the_maximum() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }
}
