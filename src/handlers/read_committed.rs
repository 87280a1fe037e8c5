//! Fetch at read_committed: a partition's records end at its last stable
//! offset (the first offset of its oldest open transaction, else the high
//! watermark), and the answer lists the aborted transactions among the records
//! returned, so the client drops their batches (it stops at each abort marker).
//!
//! Both come from the catalog (`open_transactions`, `aborted_transactions`),
//! which every agent's commits write: one indexed read each per partition
//! fetched at read_committed.

use streamhouse_metadata::TopicId;

use super::fetch::{Heads, Read};
use crate::stable_read::{below, last_stable_offset};
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
