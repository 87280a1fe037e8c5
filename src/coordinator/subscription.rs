//! The embedded "consumer" protocol of classic groups: a member's
//! subscription, read from its JoinGroup metadata (Kafka's
//! ConsumerProtocolSubscription), and its assignment (ConsumerProtocolAssignment),
//! read from and written for SyncGroup when a consumer group of the new
//! protocol serves classic members. Every length is checked against the bytes
//! present: the metadata is client data.

use bytes::{BufMut, Bytes, BytesMut};

/// The newest ConsumerProtocolSubscription and ConsumerProtocolAssignment
/// version; a newer one is read as this (later versions only append fields,
/// as Java's `ConsumerProtocol` reads them).
const NEWEST_VERSION: i16 = 3;

/// Partitions by topic name, as the embedded protocol carries them.
pub type NamedPartitions = Vec<(String, Vec<i32>)>;

/// A member's ConsumerProtocolSubscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    /// What it owns as it joins (v1+; empty before).
    pub owned: NamedPartitions,
    /// v3+.
    pub rack_id: Option<String>,
}

/// The whole subscription, or `None` if the metadata does not parse.
pub fn subscription(metadata: &[u8]) -> Option<Subscription> {
    let mut reader = Reader(metadata);
    let version = reader.i16()?;
    if version < 0 {
        return None;
    }
    let version = version.min(NEWEST_VERSION);
    let topics = reader.strings()?;
    reader.nullable_bytes()?;
    let owned = if version >= 1 {
        reader.named_partitions()?
    } else {
        Vec::new()
    };
    if version >= 2 {
        reader.i32()?;
    }
    let rack_id = if version >= 3 {
        reader.nullable_string()?
    } else {
        None
    };
    Some(Subscription {
        version,
        topics,
        owned,
        rack_id,
    })
}

/// The partitions of a ConsumerProtocolAssignment, or `None` if it does not
/// parse. An empty assignment (a member given nothing yet) is no partitions.
pub fn assigned_partitions(assignment: &[u8]) -> Option<NamedPartitions> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut reader = Reader(assignment);
    if reader.i16()? < 0 {
        return None;
    }
    reader.named_partitions()
}

/// A ConsumerProtocolAssignment of `version` (the member's subscription
/// version, as Kafka answers it) with no user data.
pub fn encode_assignment(version: i16, partitions: &NamedPartitions) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(version.clamp(0, NEWEST_VERSION));
    put_named_partitions(&mut out, partitions);
    out.put_i32(-1);
    out.freeze()
}

fn put_named_partitions(out: &mut BytesMut, partitions: &NamedPartitions) {
    out.put_i32(partitions.len() as i32);
    for (topic, ps) in partitions {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
        out.put_i32(ps.len() as i32);
        for p in ps {
            out.put_i32(*p);
        }
    }
}

/// The subscribed topics, or `None` if the metadata does not parse.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut reader = Reader(metadata);
    let _version = reader.i16()?;
    let count = reader.i32()?;
    if count < 0 {
        return Some(Vec::new());
    }
    let mut topics = Vec::new();
    for _ in 0..count {
        let length = usize::try_from(reader.i16()?).ok()?;
        let bytes = reader.take(length)?;
        topics.push(String::from_utf8(bytes.to_vec()).ok()?);
    }
    Some(topics)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A count of items each at least `min_size` bytes long: a count the
    /// bytes left cannot hold is a lie, refused before anything is allocated.
    fn count(&mut self, min_size: usize) -> Option<usize> {
        let count = usize::try_from(self.i32()?).ok()?;
        (count.checked_mul(min_size)? <= self.0.len()).then_some(count)
    }

    fn string(&mut self) -> Option<String> {
        let length = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }

    fn nullable_string(&mut self) -> Option<Option<String>> {
        let length = self.i16()?;
        if length < 0 {
            return Some(None);
        }
        let bytes = self.take(length as usize)?;
        Some(Some(String::from_utf8(bytes.to_vec()).ok()?))
    }

    fn nullable_bytes(&mut self) -> Option<()> {
        let length = self.i32()?;
        if length >= 0 {
            self.take(length as usize)?;
        }
        Some(())
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let count = self.count(2)?;
        (0..count).map(|_| self.string()).collect()
    }

    fn named_partitions(&mut self) -> Option<NamedPartitions> {
        let count = self.count(6)?;
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            let topic = self.string()?;
            let partitions = self.count(4)?;
            let partitions = (0..partitions)
                .map(|_| self.i32())
                .collect::<Option<Vec<i32>>>()?;
            topics.push((topic, partitions));
        }
        Some(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription_v0(topics: &[&str]) -> Vec<u8> {
        let mut bytes = vec![0, 0];
        bytes.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for topic in topics {
            bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            bytes.extend_from_slice(topic.as_bytes());
        }
        bytes.extend_from_slice(&[0, 0, 0, 0]); // user data and more: ignored
        bytes
    }

    #[test]
    fn topics_are_read() {
        assert_eq!(
            subscribed_topics(&subscription_v0(&["a", "orders"])),
            Some(vec!["a".to_owned(), "orders".to_owned()])
        );
    }

    #[test]
    fn truncated_or_lying_metadata_is_refused() {
        let full = subscription_v0(&["orders"]);
        for cut in 0..8 {
            assert_eq!(subscribed_topics(&full[..cut]), None, "cut at {cut}");
        }
        // Claims two billion topics in a few bytes.
        assert_eq!(
            subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]),
            None
        );
        // A negative string length.
        assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 1, 0xff, 0xff]), None);
    }

    /// A v1 subscription as the Java client writes it: topics, no user
    /// data, owned partitions.
    fn subscription_v1(topics: &[&str], owned: &[(&str, &[i32])]) -> Vec<u8> {
        let mut bytes = BytesMut::new();
        bytes.put_i16(1);
        bytes.put_i32(topics.len() as i32);
        for topic in topics {
            bytes.put_i16(topic.len() as i16);
            bytes.put_slice(topic.as_bytes());
        }
        bytes.put_i32(-1);
        let owned: NamedPartitions = owned
            .iter()
            .map(|(t, ps)| (t.to_string(), ps.to_vec()))
            .collect();
        put_named_partitions(&mut bytes, &owned);
        bytes.to_vec()
    }

    #[test]
    fn a_subscription_carries_what_the_member_owns() {
        let parsed = subscription(&subscription_v1(&["orders"], &[("orders", &[0, 2])])).unwrap();
        assert_eq!(parsed.version, 1);
        assert_eq!(parsed.topics, vec!["orders".to_owned()]);
        assert_eq!(parsed.owned, vec![("orders".to_owned(), vec![0, 2])]);
        assert_eq!(parsed.rack_id, None);
        // Version 0 owns nothing it can say.
        let v0 = subscription(&subscription_v0(&["a"])).unwrap();
        assert_eq!((v0.version, v0.owned.len()), (0, 0));
    }

    #[test]
    fn a_cut_or_lying_subscription_or_assignment_is_refused() {
        let full = subscription_v1(&["orders"], &[("orders", &[0, 2])]);
        for cut in 0..full.len() {
            assert_eq!(subscription(&full[..cut]), None, "cut at {cut}");
        }
        let assignment = encode_assignment(1, &vec![("orders".to_owned(), vec![1])]);
        for cut in 1..assignment.len() - 4 {
            assert_eq!(
                assigned_partitions(&assignment[..cut]),
                None,
                "cut at {cut}"
            );
        }
        // Two billion partitions claimed in a few bytes.
        assert_eq!(
            assigned_partitions(&[0, 1, 0, 0, 0, 1, 0, 1, b'a', 0x7f, 0xff, 0xff, 0xff]),
            None
        );
    }

    #[test]
    fn an_assignment_reads_back_as_written() {
        let partitions = vec![("a".to_owned(), vec![0, 3]), ("b".to_owned(), vec![])];
        let bytes = encode_assignment(3, &partitions);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(assigned_partitions(&bytes), Some(partitions));
        assert_eq!(assigned_partitions(&[]), Some(Vec::new()));
    }
}
