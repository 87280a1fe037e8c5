//! Fetch response frames with the records spliced in by reference.
//!
//! kafka-protocol's encoder copies each partition's records into the frame.
//! Here the message is encoded without them, and the frame is a list of
//! segments: the encoded message cut at each partition's records, and the
//! records' own segments ([`Batches`]) between the cuts, which the socket
//! writes in one vectored write.
//!
//! The cuts are found without knowing the message's layout: the message is
//! encoded twice, every partition's records empty the first time and one
//! marker byte the second. The encodings differ only at the records (nothing
//! in a Fetch response encodes their sizes elsewhere), so walking both side by
//! side finds each partition's records length in order.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse};

use crate::batches::Batches;
use crate::frame::LENGTH_PREFIX_BYTES;

/// The first Fetch version that encodes records as compact bytes (an unsigned
/// varint of the length plus one) rather than with an INT32 length.
const FIRST_FLEXIBLE_VERSION: i16 = 12;

/// The records of the second encoding.
const MARKER: u8 = 0xA5;

/// A response frame as byte segments, in order: what goes on the wire is
/// their concatenation.
#[derive(Debug, Default)]
pub struct Frame {
    segments: Vec<Bytes>,
    len: usize,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    pub fn into_segments(self) -> Vec<Bytes> {
        self.segments
    }

    fn push(&mut self, segment: &Bytes) {
        if !segment.is_empty() {
            self.len += segment.len();
            self.segments.push(segment.clone());
        }
    }

    /// The frame in one buffer of its own (a copy).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for segment in &self.segments {
            out.extend_from_slice(segment);
        }
        out.freeze()
    }
}

impl FromIterator<Bytes> for Frame {
    fn from_iter<I: IntoIterator<Item = Bytes>>(segments: I) -> Self {
        let mut frame = Frame::default();
        for segment in segments {
            frame.push(&segment);
        }
        frame
    }
}

impl From<BytesMut> for Frame {
    fn from(bytes: BytesMut) -> Self {
        let mut frame = Frame::default();
        frame.push(&bytes.freeze());
        frame
    }
}

/// Encodes `body` as the response to a Fetch of `version`, length prefix
/// included, with `records[i]` as the records of the response's i-th
/// partition (topics in order, each topic's partitions in order). The records
/// `body` holds are ignored.
pub fn encode_fetch(
    correlation_id: i32,
    version: i16,
    mut body: FetchResponse,
    records: &[Batches],
) -> anyhow::Result<Frame> {
    let partitions = body
        .responses
        .iter()
        .map(|topic| topic.partitions.len())
        .sum::<usize>();
    anyhow::ensure!(
        partitions == records.len(),
        "{} partitions in the response, records for {}",
        partitions,
        records.len()
    );
    let mut encode_with = |placeholder: Bytes| {
        for topic in &mut body.responses {
            for partition in &mut topic.partitions {
                partition.records = Some(placeholder.clone());
            }
        }
        super::encode_message(correlation_id, ApiKey::Fetch, version, 256, |buf| {
            kafka_protocol::protocol::Encodable::encode(&body, buf, version)
        })
    };
    let empty = encode_with(Bytes::new())?.freeze();
    let marked = encode_with(Bytes::from_static(&[MARKER]))?;
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let empty_prefix: &[u8] = if flexible { &[1] } else { &[0, 0, 0, 0] };
    let marked_prefix: &[u8] = if flexible { &[2] } else { &[0, 0, 0, 1] };

    let mut length = empty.len() - LENGTH_PREFIX_BYTES;
    for batches in records {
        length = length - empty_prefix.len() + prefix_len(batches.len(), flexible) + batches.len();
    }
    let length = i32::try_from(length)?;

    let mut skeleton = BytesMut::with_capacity(empty.len() + 4 * records.len());
    skeleton.put_i32(length);
    let mut frame = Frame::default();
    // Where the walk is in `empty` and in `marked`; before the first
    // partition, and between partitions, the two are the same.
    let (mut at, mut at_marked) = (LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES);
    for batches in records {
        let same = empty[at..]
            .iter()
            .zip(&marked[at_marked..])
            .take_while(|(a, b)| a == b)
            .count();
        // The first difference is the last byte of the length.
        let prefix_end = at + same + 1;
        let marked_end = at_marked + same + 1;
        let prefix_start = prefix_end
            .checked_sub(empty_prefix.len())
            .filter(|start| *start >= at)
            .ok_or_else(|| anyhow::anyhow!("records not found in the fetch response"))?;
        anyhow::ensure!(
            empty.get(prefix_start..prefix_end) == Some(empty_prefix)
                && marked.get(marked_end - marked_prefix.len()..marked_end) == Some(marked_prefix)
                && marked.get(marked_end) == Some(&MARKER),
            "records not found in the fetch response"
        );
        skeleton.extend_from_slice(&empty[at..prefix_start]);
        put_length(&mut skeleton, batches.len(), flexible)?;
        // A partition without records needs no cut.
        if !batches.is_empty() {
            frame.push(&skeleton.split().freeze());
            for segment in batches.segments() {
                frame.push(segment);
            }
        }
        at = prefix_end;
        at_marked = marked_end + 1;
    }
    anyhow::ensure!(
        empty[at..] == marked[at_marked..],
        "the fetch response has more records than partitions"
    );
    skeleton.extend_from_slice(&empty[at..]);
    frame.push(&skeleton.freeze());
    anyhow::ensure!(
        frame.len() == LENGTH_PREFIX_BYTES + length as usize,
        "fetch frame of {} bytes, {} expected",
        frame.len(),
        LENGTH_PREFIX_BYTES + length as usize
    );
    Ok(frame)
}

fn prefix_len(records: usize, flexible: bool) -> usize {
    if flexible {
        let mut value = records as u64 + 1;
        let mut bytes = 1;
        while value >= 0x80 {
            value >>= 7;
            bytes += 1;
        }
        bytes
    } else {
        4
    }
}

fn put_length(buf: &mut BytesMut, records: usize, flexible: bool) -> anyhow::Result<()> {
    if flexible {
        let mut value = u32::try_from(records)
            .ok()
            .and_then(|len| len.checked_add(1))
            .ok_or_else(|| anyhow::anyhow!("{records} bytes of records are too many"))?;
        // Unsigned varint: seven bits a byte, low first, high bit = more.
        while value >= 0x80 {
            buf.put_u8((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        buf.put_u8(value as u8);
    } else {
        buf.put_i32(i32::try_from(records)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
        PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::versions::ADVERTISED;

    fn batch(base_offset: i64, len: usize) -> Bytes {
        let mut out = vec![0u8; len];
        out[8..12].copy_from_slice(&((len - crate::batch::LOG_OVERHEAD) as i32).to_be_bytes());
        out[16] = 2;
        for (i, byte) in out[crate::batch::HEADER_BYTES..].iter_mut().enumerate() {
            *byte = (i * 7) as u8;
        }
        let mut batches = Batches::default();
        batches
            .push_patched(&Bytes::from(out), base_offset)
            .unwrap();
        batches.to_bytes()
    }

    /// Records of every size class: none, one small batch, large batches
    /// (segments shared with their source), and a length whose compact
    /// varint takes three bytes.
    fn partitions_records() -> Vec<Batches> {
        let mut records = Vec::new();
        for lens in [vec![], vec![100], vec![20_000, 70], vec![40_000, 90_000]] {
            let mut batches = Batches::default();
            for (i, len) in lens.into_iter().enumerate() {
                batches.push_patched(&batch(0, len), i as i64 * 10).unwrap();
            }
            records.push(batches);
        }
        records
    }

    fn response(version: i16, records: &[Batches]) -> FetchResponse {
        let mut records = records.iter();
        let mut partition = |index: i32, extra: bool| {
            let mut data = PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(1234)
                .with_last_stable_offset(1200)
                .with_log_start_offset(3)
                .with_aborted_transactions(Some(vec![AbortedTransaction::default()
                    .with_producer_id(ProducerId(0x0102_0304_0506))
                    .with_first_offset(1)]))
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(records.next().map(Batches::to_bytes));
            if extra && version >= FIRST_FLEXIBLE_VERSION {
                // Tagged fields after the records.
                data = data
                    .with_diverging_epoch(EpochEndOffset::default().with_epoch(4))
                    .with_current_leader(LeaderIdAndEpoch::default().with_leader_id(BrokerId(2)));
            }
            data
        };
        let topics = vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_topic_id(uuid::Uuid::from_u128(7))
                .with_partitions(vec![partition(0, false), partition(1, true)]),
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("payments")))
                .with_topic_id(uuid::Uuid::from_u128(9))
                .with_partitions(vec![partition(0, true), partition(5, false)]),
        ];
        let mut body = FetchResponse::default()
            .with_throttle_time_ms(12)
            .with_responses(topics);
        if version >= 16 {
            body = body.with_node_endpoints(vec![NodeEndpoint::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("agent-2"))
                .with_port(9092)]);
        }
        body
    }

    #[test]
    fn the_spliced_frame_is_the_encoders_frame_at_every_advertised_version() {
        let fetch = ADVERTISED
            .iter()
            .find(|api| api.key == ApiKey::Fetch)
            .unwrap();
        let records = partitions_records();
        for version in fetch.min..=fetch.max {
            let body = response(version, &records);
            let expected = super::super::encode(
                41,
                ApiKey::Fetch,
                version,
                &ResponseKind::Fetch(body.clone()),
            )
            .unwrap();
            let mut without_records = body;
            for topic in &mut without_records.responses {
                for partition in &mut topic.partitions {
                    partition.records = None;
                }
            }
            let frame = encode_fetch(41, version, without_records, &records).unwrap();
            assert_eq!(frame.to_bytes(), expected, "Fetch v{version}");
            assert_eq!(frame.len(), expected.len());
        }
    }

    #[test]
    fn large_records_are_not_copied_into_the_frame() {
        let records = partitions_records();
        let frame = encode_fetch(1, 12, response(12, &records), &records).unwrap();
        let shared: Vec<*const u8> = records
            .iter()
            .flat_map(Batches::segments)
            .filter(|segment| segment.len() > 1000)
            .map(|segment| segment.as_ptr())
            .collect();
        assert_eq!(shared.len(), 3);
        for pointer in shared {
            assert!(
                frame.segments().iter().any(|s| s.as_ptr() == pointer),
                "a large segment was copied"
            );
        }
    }

    #[test]
    fn records_for_the_wrong_number_of_partitions_are_refused() {
        let records = partitions_records();
        let body = response(12, &records);
        assert!(encode_fetch(1, 12, body.clone(), &records[..3]).is_err());
        assert!(encode_fetch(1, 12, FetchResponse::default(), &records[..1]).is_err());
        let empty = encode_fetch(1, 12, FetchResponse::default(), &[]).unwrap();
        let expected = super::super::encode(
            1,
            ApiKey::Fetch,
            12,
            &ResponseKind::Fetch(FetchResponse::default()),
        )
        .unwrap();
        assert_eq!(empty.to_bytes(), expected);
    }
}
