//! Fetch: whole batches from the requested offsets, with their assigned offsets;
//! long-polls up to `max_wait_ms` until `min_bytes` are available. A response
//! holds at most `--fetch-max-bytes` (Kafka's `fetch.max.bytes`) whatever the
//! request's `max_bytes`, except that a first batch larger than that is
//! returned whole. At read_committed, records stop at the last stable offset
//! and the aborted transactions among them are listed (`read_committed.rs`).

use std::time::Duration;

use futures::future::select_all;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::transactions::AbortedTxn;
use streamhouse_metadata::{PartitionOffsets, Topic};
use streamhouse_protocol::batches::Batches;
use streamhouse_storage::watermarks::Subscription;
use streamhouse_storage::{ReadBudget, ReadError, StorageError};
use tokio::time::Instant;

use crate::acl::Access;
use crate::fetch_memory::{FetchHold, FetchTicket, Held};
use crate::quotas::{throttle_ms, Mute, QuotaClient, QuotaKind, RequestMeter};
use crate::{errors, Broker};

/// Partitions of one fetch read at once. Each read may itself keep several
/// GETs in flight (see `storage::reader`), and partitions of a catch-up read
/// mostly share objects, so a handful is enough to overlap their catalog
/// queries and GETs without letting one fetch of 1000 partitions flood the
/// store.
const PARTITION_READS_IN_FLIGHT: usize = 8;

/// What a fetch's client is held to: its quotas (`meter` when it is under a
/// request-time quota) and its access to topics.
pub struct FetchLimits<'a> {
    pub client: &'a QuotaClient,
    pub mute: &'a Mute,
    pub meter: Option<&'a RequestMeter>,
    pub access: &'a Access,
}

/// A fetch's answer: the response, whose partitions' records are
/// `records` (one per partition, in the response's order; see
/// [`streamhouse_protocol::response::encode_fetch`]), and the memory they
/// hold.
pub struct Answer {
    pub response: FetchResponse,
    pub records: Vec<Batches>,
    pub hold: FetchHold,
}

/// `ticket` is the fetch's place among its connection's (see
/// `crate::fetch_memory`); it comes back with the memory the response holds.
pub async fn handle(
    broker: &Broker,
    mut request: FetchRequest,
    version: i16,
    ticket: FetchTicket,
    limits: FetchLimits<'_>,
) -> Answer {
    let FetchLimits {
        client,
        mute,
        meter,
        access,
    } = limits;
    let received = Instant::now();
    if let Some(limit) = broker.quotas.window_bytes(QuotaKind::Fetch, client) {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        request.max_bytes = request.max_bytes.min(limit);
    }
    let topics = resolve_topics(broker, std::mem::take(&mut request.topics), version, access).await;
    // Fetch v13+ names topics by id only: the names come from the catalog.
    let names: Vec<Option<String>> = topics
        .iter()
        .map(|(_, topic)| match topic {
            Ok(Some(topic)) => Some(topic.name.clone()),
            _ => None,
        })
        .collect();
    // The response goes out after the earlier fetches' anyway: waiting for
    // them costs it nothing, and keeps one response of the connection in
    // memory at a time.
    ticket.turn().await;
    let (round, mut memory) = answer(broker, &request, topics, received).await;
    let (mut response, mut records) = response(round);
    // As Kafka: the response's record bytes count against the client's
    // consumer_byte_rate, and the time spent on it against its
    // request_percentage; a client over either gets an empty response
    // telling it to wait the larger throttle (the bytes not sent are not
    // counted), and is muted.
    let bytes: usize = records.iter().map(Batches::len).sum();
    let throttle = broker.quotas.record(QuotaKind::Fetch, client, bytes as u64);
    let request_throttle = meter.map_or(Duration::ZERO, RequestMeter::settle);
    if !throttle.is_zero() || !request_throttle.is_zero() {
        broker
            .quotas
            .unrecord(QuotaKind::Fetch, client, bytes as u64);
        mute.mute_for(throttle);
        response = FetchResponse::default()
            .with_throttle_time_ms(throttle_ms(throttle.max(request_throttle)));
        records = Vec::new();
        memory = None;
    }
    let mut partitions_records = records.iter();
    for (topic, name) in response.responses.iter().zip(&names) {
        for records in partitions_records.by_ref().take(topic.partitions.len()) {
            if let Some(name) = name {
                broker.request_metrics.fetched(name, records);
            }
        }
    }
    Answer {
        response,
        records,
        hold: FetchHold { memory, ticket },
    }
}

/// The requested topics as the catalog knows them: by id from Fetch v13
/// (UNKNOWN_TOPIC_ID when no topic has the id, so a topic deleted and
/// re-created under its name is never read in the old one's place), by name
/// before it.
async fn resolve_topics(
    broker: &Broker,
    wanted: Vec<FetchTopic>,
    version: i16,
    access: &Access,
) -> Vec<(FetchTopic, Result<Option<Topic>, ResponseError>)> {
    let mut topics = Vec::with_capacity(wanted.len());
    for wanted in wanted {
        let by_id = version >= FIRST_VERSION_BY_ID;
        let topic = super::named_topic(broker, &wanted.topic, wanted.topic_id, by_id)
            .await
            .map_err(|(error, _)| error)
            .and_then(|topic| {
                // As Kafka: READ by name, also for a topic that does not
                // exist (an id must name a topic first).
                let name = topic.as_ref().map_or(wanted.topic.as_str(), |t| &t.name);
                if access.allows_topic(AclOperation::Read, name) {
                    Ok(topic)
                } else {
                    Err(ResponseError::TopicAuthorizationFailed)
                }
            });
        topics.push((wanted, topic));
    }
    topics
}

/// The first Fetch version that names topics by id.
const FIRST_VERSION_BY_ID: i16 = 13;

async fn answer(
    broker: &Broker,
    request: &FetchRequest,
    topics: Vec<(FetchTopic, Result<Option<Topic>, ResponseError>)>,
    received: Instant,
) -> (Round, Option<Held>) {
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = received + max_wait;
    // As Kafka: the broker's fetch.max.bytes caps what the client asks, and a
    // fetch never waits for more than it may return.
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(broker.config.fetch_max_bytes);
    let min_bytes = usize::try_from(request.min_bytes)
        .unwrap_or(0)
        .min(max_bytes);
    let committed = request.isolation_level == READ_COMMITTED;
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
        let Some((mut round, mut held)) =
            read_holding(broker, &topics, committed, max_bytes, deadline).await
        else {
            return offsets_only(broker, &topics, committed).await;
        };
        let now = Instant::now();
        // A round limited by the memory free waits for no more than it may
        // return either.
        if round.bytes >= min_bytes.min(round.max_bytes).max(1)
            || round.has_error
            || watches.is_empty()
        {
            return (round, Some(held));
        }
        if now >= deadline {
            // Before answering short because of the view: the catalog's heads,
            // in case an announcement was lost (its agent died between commit
            // and announcement), so a consumer is never kept waiting for ever.
            if heads_moved(broker, &topics).await {
                drop((round, held));
                (round, held) =
                    match read_holding(broker, &topics, committed, max_bytes, deadline).await {
                        Some(read) => read,
                        None => return offsets_only(broker, &topics, committed).await,
                    };
            }
            return (round, Some(held));
        }
        // Nothing is held while waiting.
        drop((round, held));
        wait_for_change(&mut watches, deadline).await;
    }
}

fn response(round: Round) -> (FetchResponse, Vec<Batches>) {
    (
        FetchResponse::default().with_responses(round.responses),
        round.records,
    )
}

/// The answer of a fetch that found no memory free before its deadline: every
/// partition's offsets without records, as when there is nothing new, so the
/// client fetches again.
async fn offsets_only(
    broker: &Broker,
    topics: &[(FetchTopic, Result<Option<Topic>, ResponseError>)],
    committed: bool,
) -> (Round, Option<Held>) {
    (read_round(broker, topics, committed, 0, 0).await, None)
}

/// One read round within the fetch memory budget (`crate::fetch_memory`): it
/// takes what is free, up to `max_bytes`, before reading, and reads no more
/// than that except a first batch larger than it, which waits for room for
/// itself. None if no memory came free before `deadline`.
async fn read_holding(
    broker: &Broker,
    topics: &[(FetchTopic, Result<Option<Topic>, ResponseError>)],
    committed: bool,
    max_bytes: usize,
    deadline: Instant,
) -> Option<(Round, Held)> {
    let mut least = 1;
    loop {
        let mut held = broker.fetch_memory.take(least, max_bytes, deadline).await?;
        let round = read_round(
            broker,
            topics,
            committed,
            max_bytes.min(held.bytes()),
            held.bytes(),
        )
        .await;
        if round.bytes <= held.bytes() || held.grow_to(round.bytes) || held.is_whole_budget() {
            held.shrink_to(round.bytes);
            return Some((round, held));
        }
        // A first batch larger than what was free: read again holding room
        // for what this round read. Each turn asks for more than the last, up
        // to the whole budget, so this ends.
        least = round.bytes;
    }
}

struct Round {
    /// The partitions' answers without their records, which are `records`
    /// (one per partition, in order).
    responses: Vec<FetchableTopicResponse>,
    records: Vec<Batches>,
    /// Record bytes of the answer, which are all the round's reads hold once
    /// settled.
    bytes: usize,
    /// The `max_bytes` the round answered within.
    max_bytes: usize,
    has_error: bool,
}

/// One partition of the request, with its topic as resolved.
struct Wanted<'a> {
    topic: &'a Result<Option<Topic>, ResponseError>,
    partition: &'a FetchPartition,
}

/// What the reads of a round may take: Kafka's limits, and the memory held,
/// of which each read in flight reserves its budget.
struct Budgets {
    max_bytes: usize,
    pool: usize,
    reserved: usize,
}

impl Budgets {
    /// The budget of a read starting now, after `settled` bytes of answer:
    /// the upper bound of what Kafka's limits will leave it. None if that
    /// does not fit in the memory neither settled nor reserved, unless the
    /// read is `next` in turn (nothing in flight before it), which always
    /// fits (`max_bytes` is at most `pool`). The read next in turn alone may
    /// return a first batch beyond its budget (Kafka's rule for the first
    /// partition with data).
    fn start(
        &mut self,
        partition: &FetchPartition,
        settled: usize,
        next: bool,
    ) -> Option<ReadBudget> {
        let exact = self
            .max_bytes
            .saturating_sub(settled)
            .min(usize::try_from(partition.partition_max_bytes).unwrap_or(0));
        let free = self.pool.saturating_sub(settled + self.reserved);
        if !next && exact > free {
            return None;
        }
        let max_bytes = exact.min(free);
        self.reserved += max_bytes;
        Some(ReadBudget {
            max_bytes,
            at_least_one_batch: next && settled == 0 && self.pool > 0,
        })
    }

    fn finished(&mut self, budget: &ReadBudget) {
        self.reserved -= budget.max_bytes;
    }
}

/// Reads every requested partition, several at once, and answers in request
/// order with Kafka's byte limits, reading at most `pool` bytes (the memory
/// the fetch holds) besides a first batch larger than that.
///
/// Kafka reads partitions one after another: the first partition with data
/// gets at least one batch even beyond the limits; every later one only the
/// whole batches that fit in its `partition_max_bytes` and in what is left of
/// the response's `max_bytes` (possibly none). Here each read starts with the
/// budget the partitions settled before it left (an upper bound of its exact
/// budget) and is trimmed to the exact one when its turn comes, which gives
/// the same answer: a read with a larger budget returns a longer prefix of the
/// same batches.
///
/// Reads start ahead of their turn only while their budgets fit in the
/// memory held, so what a round reads stays within it: with clients' usual
/// limits (1 MiB a partition, 50 MiB a response) eight are in flight, with a
/// partition limit near the response's or little memory free they go one at
/// a time. A trimmed read lets go of its excess batches at once. Only
/// the read next in turn may return a first batch beyond its budget; a
/// partition read ahead without that right that turns out to be the first
/// with data, its first batch larger than its budget, is read again with it.
async fn read_round(
    broker: &Broker,
    topics: &[(FetchTopic, Result<Option<Topic>, ResponseError>)],
    committed: bool,
    max_bytes: usize,
    pool: usize,
) -> Round {
    let mut round = Round {
        responses: Vec::with_capacity(topics.len()),
        records: Vec::new(),
        bytes: 0,
        max_bytes,
        has_error: false,
    };
    let mut budgets = Budgets {
        max_bytes,
        pool,
        reserved: 0,
    };
    // Collected rather than chained: a closure-built iterator held across the
    // awaits below makes the handler's future not provably `Send`.
    let mut wanted = Vec::new();
    for (fetch_topic, topic) in topics {
        for partition in &fetch_topic.partitions {
            wanted.push(Wanted { topic, partition });
        }
    }
    let mut wanted = wanted.into_iter().peekable();
    let mut reads = FuturesOrdered::new();
    for (fetch_topic, topic) in topics {
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for partition in &fetch_topic.partitions {
            while reads.len() < PARTITION_READS_IN_FLIGHT {
                let Some(next) = wanted.peek() else {
                    break;
                };
                let Some(budget) = budgets.start(next.partition, round.bytes, reads.is_empty())
                else {
                    break;
                };
                let Some(next) = wanted.next() else {
                    break;
                };
                reads.push_back(read_wanted(broker, next, committed, budget));
            }
            let Some((index, budget, mut read)) = reads.next().await else {
                break;
            };
            budgets.finished(&budget);
            // (Not in a round without memory: it reads no records at all.)
            if pool > 0
                && round.bytes == 0
                && first_batch_missed(&budget, &read, partition.fetch_offset)
            {
                let again = ReadBudget {
                    at_least_one_batch: true,
                    ..budget
                };
                read = read_wanted(broker, Wanted { topic, partition }, committed, again)
                    .await
                    .2;
            }
            let partition_max = usize::try_from(partition.partition_max_bytes).unwrap_or(0);
            let data = match settle(read, max_bytes, round.bytes, partition_max) {
                Ok((heads, records)) => {
                    round.bytes += records.len();
                    round.records.push(records);
                    let aborted = heads.aborted.iter().map(|txn| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(txn.producer_id))
                            .with_first_offset(txn.first_offset)
                    });
                    PartitionData::default()
                        .with_high_watermark(heads.offsets.high_watermark)
                        .with_last_stable_offset(heads.last_stable_offset)
                        .with_log_start_offset(heads.offsets.log_start_offset)
                        .with_aborted_transactions(Some(aborted.collect()))
                }
                Err(error) => {
                    round.has_error = true;
                    round.records.push(Batches::default());
                    PartitionData::default()
                        .with_error_code(error.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_aborted_transactions(Some(Vec::new()))
                }
            };
            partitions.push(
                data.with_partition_index(index)
                    .with_preferred_read_replica(BrokerId(-1)),
            );
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

/// Whether a partition read without the first batch right came back empty
/// although it has records from the fetch offset: its first batch did not fit
/// its budget.
fn first_batch_missed(budget: &ReadBudget, read: &Read, fetch_offset: i64) -> bool {
    match read {
        Ok((heads, Ok(records))) => {
            !budget.at_least_one_batch
                && records.is_empty()
                && fetch_offset < heads.last_stable_offset
        }
        _ => false,
    }
}

/// A partition read with `budget`; see [`read_round`].
async fn read_wanted(
    broker: &Broker,
    wanted: Wanted<'_>,
    committed: bool,
    budget: ReadBudget,
) -> (i32, ReadBudget, Read) {
    let index = wanted.partition.partition;
    let read = match wanted.topic {
        Err(error) => Err(*error),
        Ok(Some(topic)) if (0..topic.partition_count).contains(&index) => {
            let fetch_offset = wanted.partition.fetch_offset;
            let read = read_partition(broker, topic, index, fetch_offset, budget).await;
            if committed {
                super::read_committed::limit(broker, topic.id, index, fetch_offset, read).await
            } else {
                read
            }
        }
        Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
    };
    (index, budget, read)
}

/// A partition's offsets and the outcome of reading its records.
pub(super) type Read = Result<(Heads, Result<Batches, ResponseError>), ResponseError>;

/// A partition's offsets as a fetch answers them.
pub(super) struct Heads {
    pub offsets: PartitionOffsets,
    /// The high watermark at read_uncommitted.
    pub last_stable_offset: i64,
    /// At read_committed, the aborted transactions among the records read.
    pub aborted: Vec<AbortedTxn>,
}

impl Heads {
    fn uncommitted(offsets: PartitionOffsets) -> Heads {
        Heads {
            offsets,
            last_stable_offset: offsets.high_watermark,
            aborted: Vec::new(),
        }
    }
}

/// Kafka's isolation_level for read_committed.
const READ_COMMITTED: i8 = 1;

/// A partition's answer once the `before` bytes of the partitions ahead of it
/// in the response are known: Kafka's limits applied exactly.
fn settle(
    read: Read,
    max_bytes: usize,
    before: usize,
    partition_max_bytes: usize,
) -> Result<(Heads, Batches), ResponseError> {
    let (offsets, records) = read?;
    if before == 0 {
        // Nothing settled before it, so it was read with its exact budget and
        // the first batch rule applies.
        return Ok((offsets, records?));
    }
    let left = max_bytes.saturating_sub(before);
    if left == 0 {
        // Kafka does not read it at all; neither does its failure count.
        return Ok((offsets, Batches::default()));
    }
    let mut records = records?;
    records.truncate_to_bytes(left.min(partition_max_bytes));
    Ok((offsets, records))
}

/// Reads one partition (see [`streamhouse_storage::Log::read`]).
async fn read_partition(
    broker: &Broker,
    topic: &Topic,
    partition: i32,
    fetch_offset: i64,
    budget: ReadBudget,
) -> Read {
    match broker
        .log
        .read(topic.id, partition, fetch_offset, budget)
        .await
    {
        Ok(read) => Ok((Heads::uncommitted(read.offsets), Ok(read.records))),
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
