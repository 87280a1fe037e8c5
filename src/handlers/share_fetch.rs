//! ShareFetch and ShareAcknowledge (KIP-932): records of a share group's
//! partitions acquired for one member at a time, acknowledged (accepted,
//! released, rejected) by it, inside a share session (`crate::share`).
//! Kafka's checks: READ on the group, READ on each topic.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::{select_all, FutureExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData as AckPartition, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
};
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::TopicId;
use tokio::time::Instant;

use crate::acl::Access;
use crate::share::sessions::{ConnectionId, SessionPartitions, CLOSE_EPOCH, OPEN_EPOCH};
use crate::share::{self, Delivery};
use crate::Broker;

/// Records per ShareFetch when the client names no limit (Kafka's
/// max.poll.records default).
const DEFAULT_MAX_RECORDS: i64 = 500;
/// How often a waiting fetch looks again without new records: a lock that
/// lapsed makes records deliverable without any produce.
const RECHECK: Duration = Duration::from_millis(500);

/// A partition's acknowledgement batches: (first, last, types).
type AckBatches = Vec<(i64, i64, Vec<i8>)>;

/// A request's partitions after the checks: each allowed one with its
/// acknowledgements, and the refusals.
struct Checked {
    allowed: BTreeMap<(TopicId, i32), AckBatches>,
    refused: BTreeMap<(TopicId, i32), ResponseError>,
}

/// Each topic of a ShareFetch or ShareAcknowledge (whose types differ only
/// in name) with its partitions' acknowledgement batches.
macro_rules! named_acks {
    ($topics:expr) => {
        $topics.iter().map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let acks = p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                        .collect();
                    (p.partition_index, acks)
                })
                .collect();
            (t.topic_id, partitions)
        })
    };
}

/// Resolves the named topics: unknown ids and topics the client may not
/// READ are refused per partition.
async fn check(
    broker: &Broker,
    access: &Access,
    topics: impl Iterator<Item = (TopicId, Vec<(i32, AckBatches)>)>,
) -> Checked {
    let mut checked = Checked {
        allowed: BTreeMap::new(),
        refused: BTreeMap::new(),
    };
    for (id, partitions) in topics {
        let error = match broker.catalog.topic_by_id(id).await {
            Ok(Some(topic)) if access.allows_topic(AclOperation::Read, &topic.name) => {
                let count = topic.partition_count;
                for (p, acks) in partitions {
                    if (0..count).contains(&p) {
                        checked.allowed.insert((id, p), acks);
                    } else {
                        checked
                            .refused
                            .insert((id, p), ResponseError::UnknownTopicOrPartition);
                    }
                }
                continue;
            }
            Ok(Some(_)) => ResponseError::TopicAuthorizationFailed,
            Ok(None) => ResponseError::UnknownTopicId,
            Err(e) => crate::errors::catalog(&e),
        };
        for (p, _) in partitions {
            checked.refused.insert((id, p), error);
        }
    }
    checked
}

/// The group and member a share request names, or the error to answer.
fn identity(
    access: &Access,
    group_id: Option<&str>,
    member_id: Option<&str>,
) -> Result<(String, String), ResponseError> {
    let (Some(group), Some(member)) = (group_id, member_id) else {
        return Err(ResponseError::InvalidRequest);
    };
    if group.is_empty() || member.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    if !access.allows_group(AclOperation::Read, group) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    Ok((group.to_owned(), member.to_owned()))
}

/// Applies each partition's acknowledgements; the error of each that failed.
async fn acknowledge_all(
    broker: &Broker,
    group: &str,
    member: &str,
    acks: &BTreeMap<(TopicId, i32), AckBatches>,
) -> BTreeMap<(TopicId, i32), Option<ResponseError>> {
    let mut results = BTreeMap::new();
    for (&(topic, partition), batches) in acks.iter().filter(|(_, b)| !b.is_empty()) {
        let outcome = share::acknowledge(broker, group, topic, partition, member, batches).await;
        results.insert((topic, partition), outcome.err());
    }
    results
}

pub async fn fetch(
    broker: &Broker,
    request: ShareFetchRequest,
    access: &Access,
    connection: ConnectionId,
) -> ShareFetchResponse {
    // The group's own lock duration once the group is known.
    let mut lock_ms = broker.config.group_rules.share_record_lock_ms;
    let answer = |error: ResponseError| {
        ShareFetchResponse::default()
            .with_error_code(error.code())
            .with_acquisition_lock_timeout_ms(lock_ms)
    };
    let (group, member) = match identity(
        access,
        request.group_id.as_ref().map(|g| g.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
    ) {
        Ok(who) => who,
        Err(error) => return answer(error),
    };
    let named = named_acks!(request.topics);
    let checked = check(broker, access, named).await;
    let epoch = request.share_session_epoch;
    if epoch == OPEN_EPOCH && checked.allowed.values().any(|acks| !acks.is_empty()) {
        // Nothing can be acknowledged in a session that is only opening.
        return answer(ResponseError::InvalidRequest);
    }
    let added: Vec<(TopicId, i32)> = checked.allowed.keys().copied().collect();
    let forgotten: Vec<(TopicId, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let session = match broker.share_sessions.advance(
        connection,
        &group,
        &member,
        epoch,
        &added,
        &forgotten,
        std::time::Instant::now(),
    ) {
        Ok(session) => session,
        Err(error) => return answer(error),
    };
    if let Ok(rules) = share::rules(broker, &group).await {
        lock_ms = i32::try_from(rules.lock_ms).unwrap_or(lock_ms);
    }
    let acked = acknowledge_all(broker, &group, &member, &checked.allowed).await;
    let mut delivered: BTreeMap<(TopicId, i32), Result<Delivery, ResponseError>> = BTreeMap::new();
    if epoch == CLOSE_EPOCH {
        share::release_session(broker, &group, &member, &session).await;
    } else {
        let max_records = if request.max_records > 0 {
            i64::from(request.max_records)
        } else {
            DEFAULT_MAX_RECORDS
        };
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
        let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
        loop {
            delivered =
                acquire_round(broker, &group, &member, &session, max_records, max_bytes).await;
            let any = delivered
                .values()
                .any(|d| d.as_ref().map_or(true, |d| !d.acquired.is_empty()));
            if any || !acked.is_empty() || Instant::now() >= deadline {
                break;
            }
            wait_for_records(broker, &session, deadline).await;
        }
    }
    let mut partitions: BTreeMap<(TopicId, i32), PartitionData> = BTreeMap::new();
    for (key, error) in &checked.refused {
        partitions.insert(
            *key,
            PartitionData::default()
                .with_partition_index(key.1)
                .with_error_code(error.code()),
        );
    }
    for (key, error) in acked {
        partitions
            .entry(key)
            .or_insert_with(|| PartitionData::default().with_partition_index(key.1))
            .acknowledge_error_code = crate::errors::code(error);
    }
    for (key, delivery) in delivered {
        let entry = partitions
            .entry(key)
            .or_insert_with(|| PartitionData::default().with_partition_index(key.1));
        match delivery {
            Ok(d) if d.acquired.is_empty() => {}
            Ok(d) => {
                entry.records = Some(d.records);
                entry.acquired_records = d
                    .acquired
                    .iter()
                    .map(|a| {
                        AcquiredRecords::default()
                            .with_first_offset(a.first)
                            .with_last_offset(a.last)
                            .with_delivery_count(a.deliveries)
                    })
                    .collect();
            }
            Err(error) => entry.error_code = error.code(),
        }
    }
    let mut topics: BTreeMap<TopicId, Vec<PartitionData>> = BTreeMap::new();
    for ((topic, _), data) in partitions {
        topics.entry(topic).or_default().push(data);
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms)
        .with_responses(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(topic)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// One pass over the session's partitions, acquiring until the record and
/// byte budgets are spent.
async fn acquire_round(
    broker: &Broker,
    group: &str,
    member: &str,
    session: &SessionPartitions,
    max_records: i64,
    max_bytes: usize,
) -> BTreeMap<(TopicId, i32), Result<Delivery, ResponseError>> {
    let mut delivered = BTreeMap::new();
    let (mut records_left, mut bytes_left) = (max_records, max_bytes);
    for &(topic, partition) in session {
        if records_left <= 0 || bytes_left == 0 {
            break;
        }
        let delivery = share::acquire(
            broker,
            group,
            topic,
            partition,
            member,
            records_left,
            bytes_left,
        )
        .await;
        if let Ok(d) = &delivery {
            records_left -= d.acquired.iter().map(|a| a.last - a.first + 1).sum::<i64>();
            bytes_left = bytes_left.saturating_sub(d.records.len());
        }
        delivered.insert((topic, partition), delivery);
    }
    delivered
}

/// Waits until a session partition's head moves, or a recheck is due.
async fn wait_for_records(broker: &Broker, session: &SessionPartitions, deadline: Instant) {
    let mut watches = Vec::new();
    for &(topic, partition) in session {
        if let Ok(Some(watch)) = broker.log.subscribe(topic, partition).await {
            watches.push(watch);
        }
    }
    let until = deadline.min(Instant::now() + RECHECK);
    if watches.is_empty() {
        tokio::time::sleep_until(until).await;
        return;
    }
    let changes = watches.iter_mut().map(|rx| rx.changed().boxed());
    tokio::select! {
        _ = select_all(changes) => {}
        _ = tokio::time::sleep_until(until) => {}
    }
}

pub async fn acknowledge(
    broker: &Broker,
    request: ShareAcknowledgeRequest,
    access: &Access,
    connection: ConnectionId,
) -> ShareAcknowledgeResponse {
    let answer =
        |error: ResponseError| ShareAcknowledgeResponse::default().with_error_code(error.code());
    let (group, member) = match identity(
        access,
        request.group_id.as_ref().map(|g| g.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
    ) {
        Ok(who) => who,
        Err(error) => return answer(error),
    };
    let epoch = request.share_session_epoch;
    if epoch == OPEN_EPOCH {
        return answer(ResponseError::InvalidShareSessionEpoch);
    }
    let named = named_acks!(request.topics);
    let checked = check(broker, access, named).await;
    let session = match broker.share_sessions.advance(
        connection,
        &group,
        &member,
        epoch,
        &[],
        &[],
        std::time::Instant::now(),
    ) {
        Ok(session) => session,
        Err(error) => return answer(error),
    };
    let acked = acknowledge_all(broker, &group, &member, &checked.allowed).await;
    if epoch == CLOSE_EPOCH {
        share::release_session(broker, &group, &member, &session).await;
    }
    let mut partitions: BTreeMap<(TopicId, i32), i16> = BTreeMap::new();
    for (key, error) in &checked.refused {
        partitions.insert(*key, error.code());
    }
    for (key, error) in acked {
        partitions.insert(key, crate::errors::code(error));
    }
    let mut topics: BTreeMap<TopicId, Vec<AckPartition>> = BTreeMap::new();
    for ((topic, partition), code) in partitions {
        topics.entry(topic).or_default().push(
            AckPartition::default()
                .with_partition_index(partition)
                .with_error_code(code),
        );
    }
    ShareAcknowledgeResponse::default().with_responses(
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(topic)
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
