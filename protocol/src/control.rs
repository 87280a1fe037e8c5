//! Transaction markers: the control batches (magic 2, transactional and
//! control attributes set) that end a producer's transaction on a partition.
//!
//! A marker is one record whose key is `[version: i16 = 0, type: i16]` (type 0
//! abort, 1 commit) and whose value is `[version: i16 = 0, coordinator epoch:
//! i32]`, as Kafka's `EndTransactionMarker` writes it. Clients reading at
//! read_committed use commit and abort markers to know where a producer's
//! transaction ends; readers of every kind skip control batches.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::HEADER_BYTES;

/// Attributes of a marker: transactional (0x10) and control (0x20), no
/// compression, CreateTime.
const MARKER_ATTRIBUTES: i16 = 0x30;

/// The marker's one record, framed: attributes, timestamp delta 0, offset
/// delta 0, key of 4 bytes, value of 6 bytes, no headers.
fn marker_record(commit: bool, coordinator_epoch: i32) -> BytesMut {
    let mut body = BytesMut::with_capacity(16);
    body.put_i8(0); // attributes
    body.put_u8(0); // timestamp delta, varint 0
    body.put_u8(0); // offset delta, varint 0
    body.put_u8(4 << 1); // key length 4, zigzag varint
    body.put_i16(0); // key version
    body.put_i16(i16::from(commit)); // 0 abort, 1 commit
    body.put_u8(6 << 1); // value length 6
    body.put_i16(0); // value version
    body.put_i32(coordinator_epoch);
    body.put_u8(0); // no headers
    let mut record = BytesMut::with_capacity(17);
    // The body is 16 bytes: its zigzag varint length fits one byte.
    record.put_u8((body.len() as u8) << 1);
    record.put_slice(&body);
    record
}

/// A commit (`commit`) or abort marker of producer `producer_id` at `epoch`,
/// timestamped `timestamp_ms`, with base offset 0 (the log patches it).
pub fn end_transaction_marker(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Bytes {
    let record = marker_record(commit, coordinator_epoch);
    let total = HEADER_BYTES + record.len();
    let mut batch = BytesMut::with_capacity(total);
    batch.put_i64(0); // base offset
    batch.put_i32((total - 12) as i32); // batch length: after itself
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // CRC, below
    batch.put_i16(MARKER_ATTRIBUTES);
    batch.put_i32(0); // last offset delta
    batch.put_i64(timestamp_ms);
    batch.put_i64(timestamp_ms);
    batch.put_i64(producer_id);
    batch.put_i16(epoch);
    batch.put_i32(-1); // base sequence: markers have none
    batch.put_i32(1); // records
    batch.put_slice(&record);
    // The CRC covers everything from the attributes on.
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

/// What a marker's key says: `Some(true)` commit, `Some(false)` abort, `None`
/// when `batch` is not a well-formed marker.
pub fn marker_type(batch: &[u8]) -> Option<bool> {
    let header = crate::batch::BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.records_count != 1 {
        return None;
    }
    // length, attributes, timestamp delta, offset delta, key length, key.
    let key = batch.get(HEADER_BYTES + 5..HEADER_BYTES + 9)?;
    match (i16::from_be_bytes([key[0], key[1]]), key[2], key[3]) {
        (0, 0, 0) => Some(false),
        (0, 0, 1) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;
    use crate::batch;

    #[test]
    fn a_marker_is_a_valid_control_batch_kafka_can_decode() {
        for commit in [true, false] {
            let bytes = end_transaction_marker(42, 7, commit, 0, 1_700_000_000_000);
            let header = batch::validate(&bytes).expect("valid batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 7));
            assert_eq!(header.offset_count(), 1);
            assert_eq!(marker_type(&bytes), Some(commit));
            let mut buf = bytes.clone();
            let set = RecordBatchDecoder::decode(&mut buf).expect("decodes");
            let record = &set.records[0];
            assert!(record.control && record.transactional);
            let key = record.key.as_deref().expect("a marker has a key");
            assert_eq!(key, [0, 0, 0, u8::from(commit)]);
            assert_eq!(record.value.as_deref().map(<[u8]>::len), Some(6));
        }
    }

    #[test]
    fn a_data_batch_is_not_a_marker() {
        let data = streamhouse_testkit::BatchBuilder::keyed(1, 0).build();
        assert_eq!(marker_type(&data), None);
    }
}
