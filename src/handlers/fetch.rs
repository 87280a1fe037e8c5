//! Fetch: whole batches from the requested offsets, with their assigned offsets;
//! long-polls up to `max_wait_ms` until `min_bytes` are available. A response
//! holds at most `--fetch-max-bytes` (Kafka's `fetch.max.bytes`) whatever the
//! request's `max_bytes`, except that a first batch larger than that is
//! returned whole.

use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::{PartitionOffsets, Topic};
use streamhouse_protocol::batch;
use streamhouse_storage::watermarks::Subscription;
use streamhouse_storage::{ReadBudget, ReadError, StorageError};
use tokio::time::Instant;

use crate::{errors, Broker};

/// Partitions of one fetch read at once. Each read may itself keep several
/// GETs in flight (see `storage::reader`), and partitions of a catch-up read
/// mostly share objects, so a handful is enough to overlap their catalog
/// queries and GETs without letting one fetch of 1000 partitions flood the
/// store.
const PARTITION_READS_IN_FLIGHT: usize = 8;

pub async fn handle(broker: &Broker, request: FetchRequest, _version: i16) -> FetchResponse {
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + max_wait;
    // As Kafka: the broker's fetch.max.bytes caps what the client asks, and a
    // fetch never waits for more than it may return.
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(broker.config.fetch_max_bytes);
    let min_bytes = usize::try_from(request.min_bytes)
        .unwrap_or(0)
        .min(max_bytes);
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let topic = match broker.catalog.topic_by_name(&wanted.topic.0).await {
            Ok(topic) => Ok(topic),
            Err(e) => Err(errors::catalog(&e)),
        };
        topics.push((wanted, topic));
    }
    loop {
        // Subscribe before reading, so a commit landing between the read and the
        // wait still wakes us.
        let mut watches = Vec::new();
        for (wanted, topic) in &topics {
            if let Ok(Some(topic)) = topic {
                for partition in &wanted.partitions {
                    if let Ok(Some(mut rx)) =
                        broker.log.subscribe(topic.id, partition.partition).await
                    {
                        rx.borrow_and_update();
                        watches.push(rx);
                    }
                }
            }
        }
        let mut round = read_round(broker, &topics, max_bytes).await;
        let now = Instant::now();
        if round.bytes >= min_bytes.max(1) || round.has_error || watches.is_empty() {
            return FetchResponse::default().with_responses(round.responses);
        }
        if now >= deadline {
            // Before answering short because of the view: the catalog's heads,
            // in case an announcement was lost (its agent died between commit
            // and announcement), so a consumer is never kept waiting for ever.
            if heads_moved(broker, &topics).await {
                round = read_round(broker, &topics, max_bytes).await;
            }
            return FetchResponse::default().with_responses(round.responses);
        }
        wait_for_change(&mut watches, deadline).await;
    }
}

struct Round {
    responses: Vec<FetchableTopicResponse>,
    bytes: usize,
    has_error: bool,
}

/// One partition of the request, with its topic as resolved.
struct Wanted<'a> {
    topic: &'a Result<Option<Topic>, ResponseError>,
    partition: &'a FetchPartition,
}

/// Reads every requested partition, several at once, and answers in request
/// order with Kafka's byte limits.
///
/// Kafka reads partitions one after another: the first partition with data
/// gets at least one batch even beyond the limits; every later one only the
/// whole batches that fit in its `partition_max_bytes` and in what is left of
/// the response's `max_bytes` (possibly none). Here each read starts with the
/// budget the partitions settled before it left (an upper bound of its exact
/// budget) and is trimmed to the exact one when its turn comes, which gives
/// the same answer: a read with a larger budget returns a longer prefix of the
/// same batches.
async fn read_round(
    broker: &Broker,
    topics: &[(FetchTopic, Result<Option<Topic>, ResponseError>)],
    max_bytes: usize,
) -> Round {
    let mut round = Round {
        responses: Vec::with_capacity(topics.len()),
        bytes: 0,
        has_error: false,
    };
    // Collected rather than chained: a closure-built iterator held across the
    // awaits below makes the handler's future not provably `Send`.
    let mut wanted = Vec::new();
    for (fetch_topic, topic) in topics {
        for partition in &fetch_topic.partitions {
            wanted.push(Wanted { topic, partition });
        }
    }
    let mut wanted = wanted.into_iter();
    let mut reads = FuturesOrdered::new();
    for next in wanted.by_ref().take(PARTITION_READS_IN_FLIGHT) {
        reads.push_back(read_wanted(broker, next, max_bytes, 0));
    }
    for (fetch_topic, _) in topics {
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for partition in &fetch_topic.partitions {
            let Some((index, read)) = reads.next().await else {
                break;
            };
            let partition_max = usize::try_from(partition.partition_max_bytes).unwrap_or(0);
            let data = match settle(read, max_bytes, round.bytes, partition_max) {
                Ok((offsets, records)) => {
                    round.bytes += records.len();
                    PartitionData::default()
                        .with_high_watermark(offsets.high_watermark)
                        .with_last_stable_offset(offsets.high_watermark)
                        .with_log_start_offset(offsets.log_start_offset)
                        .with_records(Some(records))
                }
                Err(error) => {
                    round.has_error = true;
                    PartitionData::default()
                        .with_error_code(error.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Bytes::new()))
                }
            };
            partitions.push(
                data.with_partition_index(index)
                    .with_aborted_transactions(Some(Vec::new()))
                    .with_preferred_read_replica(BrokerId(-1)),
            );
            if let Some(next) = wanted.next() {
                reads.push_back(read_wanted(broker, next, max_bytes, round.bytes));
            }
        }
        round.responses.push(
            FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_topic_id(fetch_topic.topic_id)
                .with_partitions(partitions),
        );
    }
    round
}

/// A partition read with the budget left by `settled` bytes of the partitions
/// before it whose reads are done; see [`read_round`].
async fn read_wanted(
    broker: &Broker,
    wanted: Wanted<'_>,
    max_bytes: usize,
    settled: usize,
) -> (i32, Read) {
    let index = wanted.partition.partition;
    let read = match wanted.topic {
        Err(error) => Err(*error),
        Ok(Some(topic)) if (0..topic.partition_count).contains(&index) => {
            let budget = max_bytes
                .saturating_sub(settled)
                .min(usize::try_from(wanted.partition.partition_max_bytes).unwrap_or(0));
            let skip = settled > 0 && budget == 0;
            read_partition(
                broker,
                topic,
                index,
                wanted.partition.fetch_offset,
                budget,
                skip,
            )
            .await
        }
        Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
    };
    (index, read)
}

/// A partition's offsets and the outcome of reading its records.
type Read = Result<(PartitionOffsets, Result<Bytes, ResponseError>), ResponseError>;

/// A partition's answer once the `before` bytes of the partitions ahead of it
/// in the response are known: Kafka's limits applied exactly.
fn settle(
    read: Read,
    max_bytes: usize,
    before: usize,
    partition_max_bytes: usize,
) -> Result<(PartitionOffsets, Bytes), ResponseError> {
    let (offsets, records) = read?;
    if before == 0 {
        // Nothing settled before it, so it was read with its exact budget and
        // the first batch rule applies.
        return Ok((offsets, records?));
    }
    let left = max_bytes.saturating_sub(before);
    if left == 0 {
        // Kafka does not read it at all; neither does its failure count.
        return Ok((offsets, Bytes::new()));
    }
    Ok((
        offsets,
        whole_batches_within(records?, left.min(partition_max_bytes)),
    ))
}

/// The longest run of whole batches at the start of `records` that fits in
/// `budget` bytes.
fn whole_batches_within(records: Bytes, budget: usize) -> Bytes {
    if records.len() <= budget {
        return records;
    }
    // The reader returns whole batches it has split already; a failure here
    // cannot happen, and answering nothing is the safe reading of one.
    let Ok(ranges) = batch::split(&records) else {
        return Bytes::new();
    };
    let end = ranges
        .iter()
        .map(|range| range.end)
        .take_while(|end| *end <= budget)
        .last()
        .unwrap_or(0);
    records.slice(..end)
}

/// Reads one partition (see [`streamhouse_storage::Log::read`]).
async fn read_partition(
    broker: &Broker,
    topic: &Topic,
    partition: i32,
    fetch_offset: i64,
    budget: usize,
    skip: bool,
) -> Read {
    let budget = ReadBudget {
        max_bytes: budget,
        at_least_one_batch: !skip,
    };
    match broker
        .log
        .read(topic.id, partition, fetch_offset, budget)
        .await
    {
        Ok(read) => Ok((read.offsets, Ok(read.records))),
        Err(e) => {
            if let ReadError::Failed(failure) = &e {
                if !matches!(failure, StorageError::UnknownPartition) {
                    static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                    if let Some(suppressed) = WARNINGS.allow() {
                        tracing::error!(topic = %topic.name, partition, fetch_offset, error = %e, suppressed, "fetch read failed");
                    }
                }
            }
            Err(errors::read(&e))
        }
    }
}

/// Re-reads the requested partitions' heads from the catalog; true if the
/// view had missed a change.
async fn heads_moved(
    broker: &Broker,
    topics: &[(FetchTopic, Result<Option<Topic>, ResponseError>)],
) -> bool {
    let mut partitions = Vec::new();
    for (wanted, topic) in topics {
        if let Ok(Some(topic)) = topic {
            partitions.extend(wanted.partitions.iter().map(|p| (topic.id, p.partition)));
        }
    }
    // A failure leaves the answer as the view made it.
    broker.log.refresh(&partitions).await.unwrap_or(false)
}

async fn wait_for_change(watches: &mut [Subscription], deadline: Instant) {
    let changes = watches.iter_mut().map(|rx| rx.changed().boxed());
    tokio::select! {
        _ = select_all(changes) => {}
        _ = tokio::time::sleep_until(deadline) => {}
    }
}
