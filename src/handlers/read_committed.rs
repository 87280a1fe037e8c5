//! Fetch at read_committed: a partition's records end at its last stable
//! offset (the first offset of its oldest open transaction, else the high
//! watermark), and the answer lists the aborted transactions among the records
//! returned, so the client drops their batches (it stops at each abort marker).
//!
//! Both come from the catalog (`open_transactions`, `aborted_transactions`),
//! which every agent's commits write: one indexed read each per partition
//! fetched at read_committed.

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::{PartitionOffsets, TopicId};
use streamhouse_protocol::batches::Batches;

use super::fetch::{Heads, Read};
use crate::{errors, Broker};

/// `read` (at read_uncommitted) limited to what read_committed may see.
pub(super) async fn limit(
    broker: &Broker,
    topic: TopicId,
    partition: i32,
    fetch_offset: i64,
    read: Read,
) -> Read {
    let (heads, records) = read?;
    let last_stable = last_stable_offset(broker, topic, partition, heads.offsets).await?;
    let records = match records {
        Ok(records) => records,
        Err(e) => {
            return Ok((
                Heads {
                    last_stable_offset: last_stable,
                    ..heads
                },
                Err(e),
            ))
        }
    };
    let (records, last_offset) = below(records, last_stable);
    let aborted = match last_offset {
        Some(last) => broker
            .catalog
            .aborted_transactions(topic, partition, fetch_offset, last)
            .await
            .map_err(|e| errors::catalog(&e))?,
        None => Vec::new(),
    };
    Ok((
        Heads {
            offsets: heads.offsets,
            last_stable_offset: last_stable,
            aborted,
        },
        Ok(records),
    ))
}

/// The partition's last stable offset: the first offset of its oldest open
/// transaction, else (and at most) the high watermark of `offsets`.
pub(super) async fn last_stable_offset(
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
fn below(mut records: Batches, last_stable: i64) -> (Batches, Option<i64>) {
    let stable = records
        .iter()
        .take_while(|batch| batch.last_offset() < last_stable)
        .count();
    records.truncate(stable);
    let last_offset = records.iter().last().map(|batch| batch.last_offset());
    (records, last_offset)
}
