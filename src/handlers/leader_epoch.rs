//! OffsetForLeaderEpoch: every partition's leader epoch is the membership
//! epoch (Metadata reports it), and no two epochs ever held diverging records:
//! every agent appends through one catalog. So every epoch up to the current
//! one ends at the log end; clients that still hold epochs (offsets committed
//! against Apache Kafka before a migration) validate their positions against
//! that and never see a truncation.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::PartitionOffsets;

use crate::acl::Access;
use crate::{errors, Broker};

/// Kafka's "no such epoch" values.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_OFFSET: i64 = -1;

pub async fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
    access: &Access,
) -> OffsetForLeaderEpochResponse {
    let mut view_epoch = broker.membership.view().leader_epoch();
    if request
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| p.current_leader_epoch > view_epoch)
    {
        // The client saw a newer view on another agent: catch up once.
        if let Ok(view) = broker.membership.refresh().await {
            view_epoch = view.leader_epoch();
        }
    }
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let allowed = access.allows_topic(AclOperation::Describe, &topic.topic.0);
        let found = if allowed {
            broker.catalog.topic_by_name(&topic.topic.0).await
        } else {
            Ok(None)
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let result = EpochEndOffset::default()
                .with_partition(partition.partition)
                .with_leader_epoch(UNDEFINED_EPOCH)
                .with_end_offset(UNDEFINED_OFFSET);
            let offsets = match &found {
                _ if !allowed => Err(ResponseError::TopicAuthorizationFailed),
                Err(e) => Err(errors::catalog(e)),
                Ok(Some(t)) if (0..t.partition_count).contains(&partition.partition) => {
                    // From the catalog, not the cache: an end offset below the
                    // client's position reads as truncation, and the client
                    // would seek back.
                    match broker
                        .catalog
                        .partition_offsets(t.id, partition.partition)
                        .await
                    {
                        Ok(Some(offsets)) => Ok(offsets),
                        Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
                        Err(e) => Err(errors::catalog(&e)),
                    }
                }
                Ok(_) => Err(ResponseError::UnknownTopicOrPartition),
            };
            let answer = offsets.and_then(|offsets| {
                end_offset(
                    partition.current_leader_epoch,
                    partition.leader_epoch,
                    view_epoch,
                    offsets,
                )
            });
            partitions.push(match answer {
                Ok((epoch, offset)) => result.with_leader_epoch(epoch).with_end_offset(offset),
                Err(error) => result.with_error_code(error.code()),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// (epoch, end offset) for `requested`, after fencing on the client's idea of
/// the current epoch (-1: no check), as Kafka's leader does.
fn end_offset(
    current: i32,
    requested: i32,
    leader_epoch: i32,
    offsets: PartitionOffsets,
) -> Result<(i32, i64), ResponseError> {
    if current > leader_epoch {
        // Retriable: the client asks again once this agent has caught up.
        return Err(ResponseError::UnknownLeaderEpoch);
    }
    if current != -1 && current < leader_epoch {
        // The client refreshes its metadata and asks with the new epoch.
        return Err(ResponseError::FencedLeaderEpoch);
    }
    Ok(if (0..=leader_epoch).contains(&requested) {
        // No epoch ever diverged: each ends at the log end.
        (requested, offsets.high_watermark)
    } else {
        // Newer than any, or no epoch at all: undefined, as in Kafka.
        (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFSETS: PartitionOffsets = PartitionOffsets {
        log_start_offset: 3,
        high_watermark: 10,
    };

    #[test]
    fn epochs_resolve_like_kafkas_leader() {
        assert_eq!(end_offset(-1, 0, 4, OFFSETS), Ok((0, 10)));
        assert_eq!(end_offset(4, 2, 4, OFFSETS), Ok((2, 10)));
        assert_eq!(end_offset(4, 4, 4, OFFSETS), Ok((4, 10)));
        assert_eq!(end_offset(-1, 5, 4, OFFSETS), Ok((-1, -1)));
        assert_eq!(end_offset(-1, -1, 4, OFFSETS), Ok((-1, -1)));
        assert_eq!(end_offset(-1, -3, 4, OFFSETS), Ok((-1, -1)));
        assert_eq!(
            end_offset(5, 0, 4, OFFSETS),
            Err(ResponseError::UnknownLeaderEpoch)
        );
        assert_eq!(
            end_offset(3, 0, 4, OFFSETS),
            Err(ResponseError::FencedLeaderEpoch)
        );
    }
}
