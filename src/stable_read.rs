//! What a read_committed reader may see of a partition, shared by Fetch and
//! ListOffsets at read_committed and by share groups at
//! `share.isolation.level=read_committed`: the last stable offset, and the
//! whole batches of a read that end below it.

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::{PartitionOffsets, TopicId};
use streamhouse_protocol::batches::Batches;

use crate::{errors, Broker};

/// The partition's last stable offset: the first offset of its oldest open
/// transaction, else (and at most) the high watermark of `offsets`.
pub async fn last_stable_offset(
    broker: &Broker,
    topic: TopicId,
    partition: i32,
    offsets: PartitionOffsets,
) -> Result<i64, ResponseError> {
    let first_unstable = broker
        .catalog
        .first_unstable_offset(topic, partition)
        .await
        .map_err(|e| errors::catalog(&e))?;
    Ok(first_unstable.map_or(offsets.high_watermark, |first| {
        first.min(offsets.high_watermark)
    }))
}

/// The whole batches of `records` that end below `last_stable`, and the last
/// offset they hold (None when none does). A transaction's batches and every
/// batch after it start at or beyond its first offset, so cutting at a batch
/// boundary cuts exactly there.
pub fn below(mut records: Batches, last_stable: i64) -> (Batches, Option<i64>) {
    let stable = records
        .iter()
        .take_while(|batch| batch.last_offset() < last_stable)
        .count();
    records.truncate(stable);
    let last_offset = records.iter().last().map(|batch| batch.last_offset());
    (records, last_offset)
}
