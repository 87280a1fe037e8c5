//! Fetch: whole batches from the requested offsets, with their assigned offsets;
//! long-polls up to `max_wait_ms` until `min_bytes` are available.

use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use streamhouse_metadata::{PartitionOffsets, Topic};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{errors, Broker};

/// Index entries read per partition per round; a partition with more data
/// simply returns less and the client fetches again.
const INDEX_ENTRIES_PER_READ: u32 = 64;

pub async fn handle(broker: &Broker, request: FetchRequest, _version: i16) -> FetchResponse {
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
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
                    if let Ok(Some(mut rx)) = broker
                        .watermarks
                        .subscribe(topic.id, partition.partition)
                        .await
                    {
                        rx.borrow_and_update();
                        watches.push(rx);
                    }
                }
            }
        }
        let round = read_round(broker, &topics, max_bytes).await;
        let now = Instant::now();
        if round.bytes >= min_bytes.max(1)
            || round.has_error
            || now >= deadline
            || watches.is_empty()
        {
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
    for (wanted, topic) in topics {
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for partition in &wanted.partitions {
            let index = partition.partition;
            let data = match topic {
                Err(error) => Err(*error),
                Ok(Some(topic)) if (0..topic.partition_count).contains(&index) => {
                    let budget = max_bytes
                        .saturating_sub(round.bytes)
                        .min(usize::try_from(partition.partition_max_bytes).unwrap_or(0));
                    let skip = round.bytes > 0 && budget == 0;
                    read_partition(broker, topic, index, partition.fetch_offset, budget, skip).await
                }
                Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
            };
            let data = match data {
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
        }
        round.responses.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_topic_id(wanted.topic_id)
                .with_partitions(partitions),
        );
    }
    round
}

/// Reads one partition. Offsets outside `log start ..= high watermark` are out
/// of range; at the high watermark there is nothing yet.
async fn read_partition(
    broker: &Broker,
    topic: &Topic,
    partition: i32,
    fetch_offset: i64,
    budget: usize,
    skip: bool,
) -> Result<(PartitionOffsets, Bytes), ResponseError> {
    let offsets = match broker.watermarks.get(topic.id, partition).await {
        Ok(Some(offsets)) => offsets,
        Ok(None) => return Err(ResponseError::UnknownTopicOrPartition),
        Err(e) => return Err(errors::catalog(&e)),
    };
    if fetch_offset < offsets.log_start_offset || fetch_offset > offsets.high_watermark {
        return Err(ResponseError::OffsetOutOfRange);
    }
    if fetch_offset == offsets.high_watermark || skip {
        return Ok((offsets, Bytes::new()));
    }
    let entries = broker
        .catalog
        .index_entries(topic.id, partition, fetch_offset, INDEX_ENTRIES_PER_READ)
        .await
        .map_err(|e| errors::catalog(&e))?;
    let records = broker
        .reader
        .read(&entries, fetch_offset, budget)
        .await
        .map_err(|e| {
            tracing::error!(topic = %topic.name, partition, fetch_offset, error = %e, "fetch read failed");
            errors::storage(&e)
        })?;
    Ok((offsets, records))
}

async fn wait_for_change(watches: &mut [watch::Receiver<PartitionOffsets>], deadline: Instant) {
    let changes = watches.iter_mut().map(|rx| rx.changed().boxed());
    tokio::select! {
        _ = select_all(changes) => {}
        _ = tokio::time::sleep_until(deadline) => {}
    }
}
