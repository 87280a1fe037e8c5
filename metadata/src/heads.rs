//! Partition heads as agents tell each other about them, and the text form of
//! PostgreSQL's head notifications.
//!
//! A head update carries what one change of a partition's head is known to have
//! set. Heads only move forward, so a field the update does not know is -1 and
//! leaves the receiver's value alone (it applies the maximum).
//!
//! Notification payloads (`pg_notify` text, at most [`MAX_PAYLOAD_BYTES`]):
//!
//! ```text
//! h1 <node_id> <topic uuid> <p>:<high watermark>,<p>:<hw>,...;<topic uuid> <p>:<hw>,...
//! l1 <node_id> <topic uuid> <p>:<log start>,...;...
//! ```
//!
//! `h1` carries high watermarks (commits), `l1` log start offsets
//! (DeleteRecords). Updates that do not fit one payload are spread over
//! several, a topic's partitions too. A payload of another version prefix is
//! ignored, so a newer agent may add one.

use std::fmt::Write;

use crate::{PartitionOffsets, TopicId};

/// PostgreSQL refuses payloads of 8000 bytes or more; this leaves room.
pub const MAX_PAYLOAD_BYTES: usize = 7900;

/// The notification channel of head changes.
pub const CHANNEL: &str = "streamhouse_heads";

/// What a change set a partition's head to. A field of -1 is not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadUpdate {
    pub topic: TopicId,
    pub partition: i32,
    pub offsets: PartitionOffsets,
}

impl HeadUpdate {
    /// A commit that moved the high watermark.
    pub fn high_watermark(topic: TopicId, partition: i32, high_watermark: i64) -> Self {
        Self {
            topic,
            partition,
            offsets: PartitionOffsets {
                log_start_offset: -1,
                high_watermark,
            },
        }
    }

    /// A DeleteRecords that moved the log start.
    pub fn log_start(topic: TopicId, partition: i32, log_start_offset: i64) -> Self {
        Self {
            topic,
            partition,
            offsets: PartitionOffsets {
                log_start_offset,
                high_watermark: -1,
            },
        }
    }
}

/// How a catalog lets agents learn of the heads other agents change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadFeed {
    /// Agents send notifications after their changes and listen for others'
    /// (PostgreSQL).
    Notify,
    /// Every change stamps the heads it touches with a sequence number; agents
    /// poll for numbers above the last they saw (SQLite).
    Poll,
}

/// Where a poll of head changes resumes: after a (sequence, topic, partition)
/// position, in the order the catalog returns changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadCursor {
    pub(crate) seq: i64,
    pub(crate) topic: String,
    pub(crate) partition: i64,
}

impl HeadCursor {
    /// Every change whose sequence number is above `seq`.
    pub fn after(seq: i64) -> Self {
        Self {
            seq: seq.saturating_add(1),
            topic: String::new(),
            partition: -1,
        }
    }
}

/// The payloads announcing `updates` from agent `node_id`, each within
/// [`MAX_PAYLOAD_BYTES`]. High watermarks go in `h1` payloads, log starts in
/// `l1` payloads; unknown (-1) fields are left out.
pub fn encode(node_id: i32, updates: &[HeadUpdate]) -> Vec<String> {
    let mut updates = updates.to_vec();
    updates.sort_unstable_by_key(|u| (u.topic, u.partition));
    let mut payloads = Vec::new();
    for (kind, value) in [
        (
            "h1",
            (|o: &PartitionOffsets| o.high_watermark) as fn(&PartitionOffsets) -> i64,
        ),
        ("l1", |o: &PartitionOffsets| o.log_start_offset),
    ] {
        let mut payload = Payload::new(kind, node_id);
        for update in &updates {
            let value = value(&update.offsets);
            if value < 0 {
                continue;
            }
            if !payload.push(update.topic, update.partition, value) {
                payloads.push(payload.finish());
                payload = Payload::new(kind, node_id);
                // A fresh payload always has room for one partition.
                payload.push(update.topic, update.partition, value);
            }
        }
        if !payload.is_empty() {
            payloads.push(payload.finish());
        }
    }
    payloads
}

/// The updates a payload announces; `None` for a payload this version does
/// not understand (another prefix, or malformed).
pub fn decode(payload: &str) -> Option<Vec<HeadUpdate>> {
    let mut words = payload.splitn(3, ' ');
    let kind = words.next()?;
    let _node_id: i32 = words.next()?.parse().ok()?;
    let body = words.next().unwrap_or("");
    let make: fn(TopicId, i32, i64) -> HeadUpdate = match kind {
        "h1" => HeadUpdate::high_watermark,
        "l1" => HeadUpdate::log_start,
        _ => return None,
    };
    let mut updates = Vec::new();
    for group in body.split(';').filter(|g| !g.is_empty()) {
        let (topic, partitions) = group.split_once(' ')?;
        let topic = TopicId::parse_str(topic).ok()?;
        for partition in partitions.split(',') {
            let (partition, value) = partition.split_once(':')?;
            let value: i64 = value.parse().ok()?;
            if value < 0 {
                return None;
            }
            updates.push(make(topic, partition.parse().ok()?, value));
        }
    }
    Some(updates)
}

/// One payload being filled.
struct Payload {
    text: String,
    header_len: usize,
    topic: Option<TopicId>,
}

impl Payload {
    fn new(kind: &str, node_id: i32) -> Self {
        let text = format!("{kind} {node_id} ");
        Self {
            header_len: text.len(),
            text,
            topic: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.text.len() == self.header_len
    }

    /// Adds one partition's value; false (and nothing added) if it would not fit.
    fn push(&mut self, topic: TopicId, partition: i32, value: i64) -> bool {
        let mut piece = String::with_capacity(64);
        if self.topic == Some(topic) {
            piece.push(',');
        } else {
            if !self.is_empty() {
                piece.push(';');
            }
            let _ = write!(piece, "{topic} ");
        }
        let _ = write!(piece, "{partition}:{value}");
        if self.text.len() + piece.len() > MAX_PAYLOAD_BYTES {
            return false;
        }
        self.text.push_str(&piece);
        self.topic = Some(topic);
        true
    }

    fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> TopicId {
        TopicId::from_u128(n)
    }

    #[test]
    fn payloads_group_partitions_by_topic() {
        let updates = [
            HeadUpdate::high_watermark(topic(2), 0, 7),
            HeadUpdate::high_watermark(topic(1), 3, 10),
            HeadUpdate::high_watermark(topic(1), 1, 5),
            HeadUpdate::log_start(topic(1), 1, 4),
        ];
        let payloads = encode(9, &updates);
        assert_eq!(
            payloads,
            [
                format!("h1 9 {} 1:5,3:10;{} 0:7", topic(1), topic(2)),
                format!("l1 9 {} 1:4", topic(1)),
            ]
        );
        let mut decoded: Vec<HeadUpdate> =
            payloads.iter().flat_map(|p| decode(p).unwrap()).collect();
        let mut expected = updates.to_vec();
        decoded.sort_by_key(|u| (u.topic, u.partition, u.offsets.high_watermark));
        expected.sort_by_key(|u| (u.topic, u.partition, u.offsets.high_watermark));
        assert_eq!(decoded, expected);
    }

    #[test]
    fn large_updates_are_split_below_the_limit_and_lose_nothing() {
        let updates: Vec<HeadUpdate> = (0..3)
            .flat_map(|t| {
                (0..1000).map(move |p| {
                    HeadUpdate::high_watermark(topic(t), p, 1_000_000_000 + i64::from(p))
                })
            })
            .collect();
        let payloads = encode(0, &updates);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD_BYTES));
        let decoded: Vec<HeadUpdate> = payloads.iter().flat_map(|p| decode(p).unwrap()).collect();
        assert_eq!(decoded, updates);
    }

    #[test]
    fn unknown_or_malformed_payloads_are_ignored() {
        let t = topic(1);
        assert_eq!(decode(&format!("h2 0 {t} 0:1")), None);
        assert_eq!(decode(&format!("h1 x {t} 0:1")), None);
        assert_eq!(decode("h1 0 not-a-uuid 0:1"), None);
        assert_eq!(decode(&format!("h1 0 {t} 0:-5")), None);
        assert_eq!(decode(&format!("h1 0 {t} 0")), None);
        assert_eq!(decode("h1 0 "), Some(vec![]));
    }
}
