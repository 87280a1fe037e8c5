//! `message.timestamp.type=LogAppendTime`: the broker stamps each v2 batch with
//! the time it appends it, in place, as Kafka does: the timestamp-type bit (3)
//! of the attributes is set, `maxTimestamp` becomes the append time, and the
//! CRC-32C over bytes 21..end is recomputed (both fields lie inside it). Records
//! keep their timestamp deltas; clients read every record's timestamp as the
//! batch's `maxTimestamp` when the bit is set.

use crate::batch::HEADER_BYTES;

const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const MAX_TIMESTAMP: usize = 35;
/// Attributes bit 3: the batch's timestamps are LogAppendTime.
pub const LOG_APPEND_TIME_BIT: i16 = 0x08;

/// Stamps one validated batch with `append_time` (milliseconds). False, and
/// nothing changed, if the bytes are too short to be a batch.
pub fn stamp(batch: &mut [u8], append_time: i64) -> bool {
    if batch.len() < HEADER_BYTES {
        return false;
    }
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES], batch[ATTRIBUTES + 1]]);
    batch[ATTRIBUTES..ATTRIBUTES + 2]
        .copy_from_slice(&(attributes | LOG_APPEND_TIME_BIT).to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&append_time.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{validate, BatchHeader};
    use bytes::BytesMut;
    use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
    use streamhouse_testkit::BatchBuilder;

    fn batch() -> BytesMut {
        BatchBuilder::new(3)
            .timestamps(1_000, 1)
            .value(|_| &b"v"[..])
            .build_mut()
    }

    #[test]
    fn a_stamped_batch_is_valid_and_decodes_with_the_append_time() {
        let mut bytes = batch();
        assert!(stamp(&mut bytes, 5_000));
        let header = validate(&bytes).expect("CRC recomputed");
        assert_eq!(header.max_timestamp, 5_000);
        assert_eq!(header.attributes & LOG_APPEND_TIME_BIT, LOG_APPEND_TIME_BIT);
        assert_eq!(header.base_timestamp, 1_000, "records keep their deltas");
        let mut frozen = bytes.freeze();
        let sets = RecordBatchDecoder::decode_all(&mut frozen).expect("decode");
        let records = &sets[0].records;
        // This decoder reports the type; the Java client and librdkafka then
        // take every record's timestamp from maxTimestamp.
        assert_eq!(records.len(), 3);
        assert!(records
            .iter()
            .all(|r| r.timestamp_type == TimestampType::LogAppend));
    }

    #[test]
    fn too_short_bytes_are_left_alone() {
        let mut short = [0u8; 10];
        assert!(!stamp(&mut short, 1));
        assert_eq!(short, [0u8; 10]);
        assert!(BatchHeader::parse(&short).is_err());
    }
}
