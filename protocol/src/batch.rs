//! A view of Kafka RecordBatch (magic 2) headers, read and patched in place.
//!
//! On the produce path the broker validates each batch's header and CRC here,
//! then its records ([`crate::validate`]), stores the client's bytes unchanged,
//! and writes the offset the catalog assigned into `baseOffset` on the way out.
//!
//! | offset | field                | bytes | note                                 |
//! |-------:|----------------------|------:|--------------------------------------|
//! |      0 | baseOffset           |     8 | set by the broker; outside the CRC   |
//! |      8 | batchLength          |     4 | bytes after this field               |
//! |     12 | partitionLeaderEpoch |     4 | outside the CRC                      |
//! |     16 | magic                |     1 | 2                                    |
//! |     17 | crc                  |     4 | CRC-32C of bytes 21..end             |
//! |     21 | attributes           |     2 | codec bits 0-2, timestamp type bit 3, transactional bit 4, control bit 5 |
//! |     23 | lastOffsetDelta      |     4 |                                      |
//! |     27 | baseTimestamp        |     8 |                                      |
//! |     35 | maxTimestamp         |     8 |                                      |
//! |     43 | producerId           |     8 |                                      |
//! |     51 | producerEpoch        |     2 |                                      |
//! |     53 | baseSequence         |     4 |                                      |
//! |     57 | recordsCount         |     4 |                                      |
//! |     61 | records              |     … |                                      |

/// Bytes before the records.
pub const HEADER_BYTES: usize = 61;
/// Bytes covered by `baseOffset` and `batchLength`, which `batchLength` excludes.
pub const LOG_OVERHEAD: usize = 12;

const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const CRC_COVERS_FROM: usize = 21;

/// The header fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch of {0} bytes is shorter than its {HEADER_BYTES}-byte header")]
    Truncated(usize),
    #[error("record batch declares {declared} bytes but {available} are present")]
    LengthMismatch { declared: i64, available: usize },
    #[error("record batch has magic {0}; only magic 2 is supported")]
    UnsupportedMagic(i8),
    #[error(
        "record batch CRC mismatch: header says {stored:#010x}, content gives {computed:#010x}"
    )]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch counts {records_count} records but its last offset delta is {last_offset_delta}")]
    InconsistentCount {
        records_count: i32,
        last_offset_delta: i32,
    },
}

impl BatchError {
    /// Whether the bytes are damaged (Kafka's CORRUPT_MESSAGE) rather than a
    /// well-formed batch that breaks a rule (INVALID_RECORD).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            BatchError::Truncated(_)
                | BatchError::LengthMismatch { .. }
                | BatchError::CrcMismatch { .. }
        )
    }
}

fn i16_at(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}

impl BatchHeader {
    /// Reads the header at the start of `buf` without validating the batch.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::Truncated(buf.len()));
        }
        Ok(BatchHeader {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, BATCH_LENGTH_AT),
            partition_leader_epoch: i32_at(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes([
                buf[CRC_AT],
                buf[CRC_AT + 1],
                buf[CRC_AT + 2],
                buf[CRC_AT + 3],
            ]),
            attributes: i16_at(buf, 21),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, 35),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16_at(buf, 51),
            base_sequence: i32_at(buf, 53),
            records_count: i32_at(buf, 57),
        })
    }

    /// Whole size of the batch on the wire, prefix fields included.
    pub fn total_size(&self) -> i64 {
        i64::from(self.batch_length) + LOG_OVERHEAD as i64
    }

    /// Offsets the batch occupies.
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes & 0x07
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Validates one complete batch (exactly the bytes of one batch): size, magic,
/// CRC-32C and record count.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_stored(batch)?;
    if header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::InconsistentCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Validates one complete batch as the log may hold it: [`validate`], except
/// that the log cleaner leaves batches with fewer records than offsets (gaps),
/// so the count may be below the offset span (never above it, nor under one).
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_size() != batch.len() as i64 {
        return Err(BatchError::LengthMismatch {
            declared: header.total_size(),
            available: batch.len(),
        });
    }
    if header.magic != 2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let computed = crc32c::crc32c(&batch[CRC_COVERS_FROM..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    if header.records_count < 1 || header.last_offset_delta < header.records_count - 1 {
        return Err(BatchError::InconsistentCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Splits a buffer holding consecutive batches (a Produce partition's `records`,
/// or a run read back from an object) into the byte ranges of its batches.
///
/// Every declared length is checked against the bytes present before it is used.
pub fn split(buf: &[u8]) -> Result<Vec<std::ops::Range<usize>>, BatchError> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated(rest.len()));
        }
        let declared = i64::from(i32_at(rest, BATCH_LENGTH_AT)) + LOG_OVERHEAD as i64;
        if declared < HEADER_BYTES as i64 || declared > rest.len() as i64 {
            return Err(BatchError::LengthMismatch {
                declared,
                available: rest.len(),
            });
        }
        let end = at + declared as usize;
        ranges.push(at..end);
        at = end;
    }
    Ok(ranges)
}

/// Writes the offset the catalog assigned into a batch's `baseOffset` field.
/// The field lies outside the CRC, so the client's checksum stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// The `partitionLeaderEpoch` a broker that tracks no epoch writes: -1.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Writes [`NO_PARTITION_LEADER_EPOCH`] into a v2 batch's
/// `partitionLeaderEpoch` field, which like `baseOffset` lies outside the CRC.
///
/// Producers fill the field freely; handed back to consumers it would become
/// their last-seen leader epoch, and the Java consumer ignores metadata with an
/// older epoch than that. With -1 positions carry no epoch, and consumers
/// follow the cluster's epochs from metadata alone.
pub fn clear_partition_leader_epoch(batch: &mut [u8]) {
    batch[12..16].copy_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
}

/// Kafka's codec ids (attributes bits 0-2, [`BatchHeader::compression_codec`])
/// and the framing the Java client puts around snappy blocks.
pub mod codec {
    pub const NONE: i16 = 0;
    pub const GZIP: i16 = 1;
    pub const SNAPPY: i16 = 2;
    pub const LZ4: i16 = 3;
    pub const ZSTD: i16 = 4;

    /// The xerial framing's magic, at the start of a snappy batch body that
    /// uses it (librdkafka sends one raw block instead).
    pub const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
    /// The xerial header: magic, version and compatible version.
    pub const XERIAL_HEADER_BYTES: usize = 16;
    /// The most a snappy block decompresses to per byte of it: a copy of 64
    /// bytes takes 3 (other elements expand less), so a block whose header
    /// claims more than this many times its size is not a snappy block, and
    /// no room is made for the claim.
    pub const SNAPPY_MAX_EXPANSION: usize = 22;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use streamhouse_testkit::BatchBuilder;

    fn encoded_batch(count: usize) -> BytesMut {
        BatchBuilder::new(count)
            .timestamps(1_700_000_000_000, 1)
            .key(|i| format!("k{i}"))
            .value(|i| format!("v{i}"))
            .header("h", None)
            .build_mut()
    }

    #[test]
    fn a_client_batch_validates() {
        let batch = encoded_batch(3);
        let header = validate(&batch).unwrap();
        assert_eq!(header.records_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 1_700_000_000_002);
        assert_eq!(header.offset_count(), 3);
    }

    #[test]
    fn a_cleaned_batch_with_gaps_is_a_valid_stored_batch_not_a_client_one() {
        // Three offsets, two records left (the cleaner's header, CRC again).
        let mut batch = encoded_batch(3);
        batch[57..61].copy_from_slice(&2i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_COVERS_FROM..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate_stored(&batch).unwrap().offset_count(), 3);
        assert!(matches!(
            validate(&batch),
            Err(BatchError::InconsistentCount { .. })
        ));
        // More records than offsets is never valid.
        batch[57..61].copy_from_slice(&4i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_COVERS_FROM..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_stored(&batch),
            Err(BatchError::InconsistentCount { .. })
        ));
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut batch = encoded_batch(2);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(
            validate(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn patching_the_base_offset_keeps_the_crc_valid() {
        let mut batch = encoded_batch(2);
        set_base_offset(&mut batch, 1234);
        let header = validate(&batch).unwrap();
        assert_eq!(header.base_offset, 1234);
    }

    #[test]
    fn a_length_beyond_the_buffer_is_rejected() {
        let batch = encoded_batch(2);
        let cut = &batch[..batch.len() - 1];
        assert!(matches!(
            validate(cut),
            Err(BatchError::LengthMismatch { .. })
        ));
        assert!(matches!(split(cut), Err(BatchError::LengthMismatch { .. })));
    }

    #[test]
    fn split_finds_each_batch() {
        let mut both = encoded_batch(2);
        let first_len = both.len();
        both.extend_from_slice(&encoded_batch(5));
        let ranges = split(&both).unwrap();
        assert_eq!(ranges, vec![0..first_len, first_len..both.len()]);
    }

    #[test]
    fn a_negative_length_is_rejected() {
        let mut batch = encoded_batch(1);
        batch[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split(&batch).is_err());
        assert!(validate(&batch).is_err());
    }

    #[test]
    fn magic_1_is_unsupported() {
        let mut batch = encoded_batch(1);
        batch[MAGIC_AT] = 1;
        assert_eq!(validate(&batch), Err(BatchError::UnsupportedMagic(1)));
    }
}
