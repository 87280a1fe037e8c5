//! OffsetForLeaderEpoch: every partition has had one leader epoch, 0, since it
//! was created (Metadata reports leader epoch 0), so the answers follow Kafka's
//! leader-epoch cache holding the single entry (epoch 0, log start offset).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use streamhouse_metadata::PartitionOffsets;

use crate::{errors, Broker};

/// The only leader epoch there is.
const LEADER_EPOCH: i32 = 0;
/// Kafka's "no such epoch" values.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_OFFSET: i64 = -1;

pub async fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let found = broker.catalog.topic_by_name(&topic.topic.0).await;
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let result = EpochEndOffset::default()
                .with_partition(partition.partition)
                .with_leader_epoch(UNDEFINED_EPOCH)
                .with_end_offset(UNDEFINED_OFFSET);
            let offsets = match &found {
                Err(e) => Err(errors::catalog(e)),
                Ok(Some(t)) if (0..t.partition_count).contains(&partition.partition) => {
                    match broker.watermarks.get(t.id, partition.partition).await {
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
    offsets: PartitionOffsets,
) -> Result<(i32, i64), ResponseError> {
    if current > LEADER_EPOCH {
        return Err(ResponseError::UnknownLeaderEpoch);
    }
    if current != -1 && current < LEADER_EPOCH {
        return Err(ResponseError::FencedLeaderEpoch);
    }
    Ok(match requested {
        UNDEFINED_EPOCH => (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
        // The current epoch ends at the log end.
        LEADER_EPOCH => (LEADER_EPOCH, offsets.high_watermark),
        // An epoch this partition never had, newer than any: undefined.
        e if e > LEADER_EPOCH => (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
        // Older than the first epoch: it ends where epoch 0 starts.
        e => (e, offsets.log_start_offset),
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
        assert_eq!(end_offset(-1, 0, OFFSETS), Ok((0, 10)));
        assert_eq!(end_offset(0, 0, OFFSETS), Ok((0, 10)));
        assert_eq!(end_offset(-1, 5, OFFSETS), Ok((-1, -1)));
        assert_eq!(end_offset(-1, -1, OFFSETS), Ok((-1, -1)));
        assert_eq!(end_offset(-1, -3, OFFSETS), Ok((-3, 3)));
        assert_eq!(
            end_offset(1, 0, OFFSETS),
            Err(ResponseError::UnknownLeaderEpoch)
        );
        assert_eq!(
            end_offset(-2, 0, OFFSETS),
            Err(ResponseError::FencedLeaderEpoch)
        );
    }
}
