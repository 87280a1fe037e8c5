//! Record validation on produce, as Kafka's log validator does it before it
//! appends a batch: the header (size, magic 2, CRC-32C, count against
//! `lastOffsetDelta`, sequence), then every record, decompressing compressed
//! batches.
//!
//! For each record: its length framing lies within the batch and matches the
//! fields inside it (attributes, timestamp delta, offset delta, key, value,
//! headers); its offset delta is its index (0 to count - 1, in order); and, on
//! `CreateTime` topics, its timestamp lies within `message.timestamp.before.max.ms`
//! / `message.timestamp.after.max.ms` of the broker's clock. The batch holds
//! exactly `recordsCount` records and no bytes after the last one.
//!
//! Kafka rewrites a compressed batch whose inner offsets are not 0..count-1; the
//! broker stores client bytes unchanged, so it refuses such a batch instead.
//!
//! Client data decides every size here, so nothing is pre-sized from it:
//! records are parsed as a stream (an uncompressed batch in place, a compressed
//! one through the codec's streaming reader), and decompression stops at
//! [`MAX_DECOMPRESSED_BYTES`].

use std::io::{BufRead, BufReader, Read};

use crate::batch::{self, BatchError, BatchHeader, HEADER_BYTES};

/// The most a batch's records may decompress to. Kafka has no such cap, but
/// it streams records on threads of its own; here one batch's decompression
/// holds a validation thread, and a few kilobytes of zstd or gzip can expand
/// to gigabytes. 64 MiB is 64 times the default `max.message.bytes` (about
/// 1 MiB), beyond what producers build (the Java producer's `batch.size` is
/// 16 KiB, librdkafka's 1 MB, compressed), and costs well under a second of
/// one core at the codecs' speeds. A batch beyond it is refused with
/// MESSAGE_TOO_LARGE, which makes the Java producer split it and retry.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

pub use crate::batch::codec::NONE;
use crate::batch::codec::{
    GZIP, LZ4, SNAPPY, SNAPPY_MAX_EXPANSION, XERIAL_HEADER_BYTES, XERIAL_MAGIC, ZSTD,
};

/// Buffer between a codec's reader and the record parser.
const STREAM_BUFFER_BYTES: usize = 16 * 1024;

/// Attributes bit 3: the batch's timestamps are LogAppendTime.
const LOG_APPEND_TIME_BIT: i16 = 0x08;

/// The window a `CreateTime` record's timestamp must fall in (Kafka's
/// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`
/// around the broker's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampBounds {
    pub now_ms: i64,
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

impl TimestampBounds {
    fn admits(&self, timestamp: i64) -> bool {
        // i128: with Kafka's default `before` of i64::MAX the bounds overflow i64.
        let behind = i128::from(self.now_ms) - i128::from(timestamp);
        behind <= i128::from(self.before_max_ms) && -behind <= i128::from(self.after_max_ms)
    }
}

/// What a valid batch tells the broker beyond its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBatch {
    pub header: BatchHeader,
    /// The largest record timestamp (what Kafka writes into `maxTimestamp`),
    /// -1 if no record has one.
    pub max_timestamp: i64,
}

/// What is wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("the record ends before its fields do")]
    Truncated,
    #[error("a varint is too long")]
    VarintTooLong,
    #[error("Invalid negative record size {0}")]
    NegativeSize(i32),
    #[error("Found invalid number of record headers {0}")]
    NegativeHeaderCount(i32),
    #[error("Invalid negative header key size {0}")]
    NegativeHeaderKeySize(i32),
    #[error("Invalid record size: expected to read {expected} bytes in record payload, but instead read {read}")]
    Size { expected: i32, read: u64 },
    #[error("Invalid offset delta {found}: expected {expected}")]
    OffsetDelta { expected: i32, found: i32 },
    #[error(
        "Timestamp {timestamp} is out of range. The timestamp should be within [{min}, {max}]"
    )]
    Timestamp { timestamp: i64, min: i64, max: i64 },
    /// A record without a key (a null key; an empty one is a key) on a
    /// compacted topic; the field names the partition as Kafka's
    /// `TopicPartition` prints it (`topic-partition`).
    #[error("Compacted topic cannot accept message without key in topic partition {0}")]
    MissingKey(String),
}

/// Why a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBatch {
    #[error(transparent)]
    Header(#[from] BatchError),
    #[error("Invalid reported count for record batch: {0}")]
    InvalidCount(i32),
    #[error(
        "Invalid sequence number {base_sequence} in record batch with producerId {producer_id}"
    )]
    InvalidSequence {
        producer_id: i64,
        base_sequence: i32,
    },
    #[error("Unknown compression type id: {0}")]
    UnknownCodec(i16),
    #[error("Failed to decompress record stream: {0}")]
    Decompression(String),
    #[error("The records of the batch decompress to more than {0} bytes")]
    TooLarge(usize),
    #[error("Incorrect declared batch size, premature EOF reached: the batch declares {declared} records but holds {found}")]
    TooFewRecords { declared: i32, found: i32 },
    #[error("Incorrect declared batch size, records still remaining in file: the batch declares {declared} records")]
    TrailingBytes { declared: i32 },
    /// Problems of single records, in record order; the index is the record's
    /// position in the batch (ProduceResponse's `batch_index`).
    #[error("One or more records have been rejected: {}", first_three(.0))]
    Records(Vec<(i32, RecordProblem)>),
}

fn first_three(errors: &[(i32, RecordProblem)]) -> String {
    let mut text = errors
        .iter()
        .take(3)
        .map(|(index, problem)| format!("record {index}: {problem}"))
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > 3 {
        text.push_str(&format!(" (and {} more)", errors.len() - 3));
    }
    text
}

impl InvalidBatch {
    /// Whether a record's timestamp is out of range: Kafka then answers
    /// INVALID_TIMESTAMP rather than INVALID_RECORD for the whole batch.
    pub fn has_bad_timestamp(&self) -> bool {
        match self {
            InvalidBatch::Records(errors) => errors
                .iter()
                .any(|(_, p)| matches!(p, RecordProblem::Timestamp { .. })),
            _ => false,
        }
    }
}

/// Whether validating `batch` means decompressing it (worth moving off the
/// async workers). False for bytes too short to have a header.
pub fn is_compressed(batch: &[u8]) -> bool {
    BatchHeader::parse(batch).is_ok_and(|h| h.compression_codec() != NONE)
}

/// Validates one complete batch (exactly its bytes) and every record in it.
/// `timestamps`: the window of a `CreateTime` topic; `None` on `LogAppendTime`
/// topics, whose timestamps the broker sets.
pub fn validate(
    batch: &[u8],
    timestamps: Option<TimestampBounds>,
) -> Result<ValidBatch, InvalidBatch> {
    let header = batch::validate(batch).map_err(|e| match e {
        // `batch::validate` refuses count 0 and negative counts as
        // inconsistent; name them as Kafka does.
        BatchError::InconsistentCount { records_count, .. } if records_count <= 0 => {
            InvalidBatch::InvalidCount(records_count)
        }
        e => InvalidBatch::Header(e),
    })?;
    records(batch, &header, timestamps)
}

/// The part of [`validate`] after the header: `header` is what
/// [`batch::validate`] returned for these bytes (size, magic and CRC checked).
pub fn records(
    batch: &[u8],
    header: &BatchHeader,
    timestamps: Option<TimestampBounds>,
) -> Result<ValidBatch, InvalidBatch> {
    records_capped(batch, header, timestamps, None, MAX_DECOMPRESSED_BYTES)
}

/// [`records`] on a compacted topic (`cleanup.policy` includes `compact`):
/// also refuses every record without a key, as Kafka's `LogValidator.validateKey`
/// does, naming `topic_partition` (`topic-partition`) in each record error.
pub fn records_of_compacted(
    batch: &[u8],
    header: &BatchHeader,
    timestamps: Option<TimestampBounds>,
    topic_partition: &str,
) -> Result<ValidBatch, InvalidBatch> {
    records_capped(
        batch,
        header,
        timestamps,
        Some(topic_partition),
        MAX_DECOMPRESSED_BYTES,
    )
}

fn records_capped(
    batch: &[u8],
    header: &BatchHeader,
    timestamps: Option<TimestampBounds>,
    keys_required: Option<&str>,
    cap: usize,
) -> Result<ValidBatch, InvalidBatch> {
    let rules = Rules {
        timestamps,
        keys_required,
    };
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(InvalidBatch::InvalidSequence {
            producer_id: header.producer_id,
            base_sequence: header.base_sequence,
        });
    }
    let body = &batch[HEADER_BYTES..];
    let max_timestamp = match header.compression_codec() {
        NONE => walk(&mut SliceInput { buf: body, at: 0 }, header, &rules)?,
        GZIP => walk(
            &mut StreamInput::new(flate2::read::GzDecoder::new(body), cap),
            header,
            &rules,
        )?,
        SNAPPY => walk(
            &mut StreamInput::new(SnappyReader::new(body, cap), cap),
            header,
            &rules,
        )?,
        LZ4 => walk(
            &mut StreamInput::new(
                lz4::Decoder::new(body).map_err(|e| InvalidBatch::Decompression(e.to_string()))?,
                cap,
            ),
            header,
            &rules,
        )?,
        ZSTD => walk(
            &mut StreamInput::new(
                zstd::stream::read::Decoder::with_buffer(body)
                    .map_err(|e| InvalidBatch::Decompression(e.to_string()))?,
                cap,
            ),
            header,
            &rules,
        )?,
        other => return Err(InvalidBatch::UnknownCodec(other)),
    };
    Ok(ValidBatch {
        header: *header,
        max_timestamp,
    })
}

/// The records of a batch, read byte by byte or skipped over.
trait Input {
    /// The next byte, `None` at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, InvalidBatch>;
    /// Skips `n` bytes; false if the records end first.
    fn skip(&mut self, n: u64) -> Result<bool, InvalidBatch>;
    /// Bytes read so far.
    fn position(&self) -> u64;
}

struct SliceInput<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Input for SliceInput<'_> {
    fn byte(&mut self) -> Result<Option<u8>, InvalidBatch> {
        let byte = self.buf.get(self.at).copied();
        self.at += usize::from(byte.is_some());
        Ok(byte)
    }

    fn skip(&mut self, n: u64) -> Result<bool, InvalidBatch> {
        let left = (self.buf.len() - self.at) as u64;
        if n > left {
            self.at = self.buf.len();
            return Ok(false);
        }
        self.at += n as usize;
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.at as u64
    }
}

/// A codec's output, counted against the cap ([`MAX_DECOMPRESSED_BYTES`]).
struct StreamInput<R> {
    inner: BufReader<R>,
    consumed: u64,
    cap: usize,
}

impl<R: Read> StreamInput<R> {
    fn new(reader: R, cap: usize) -> Self {
        StreamInput {
            inner: BufReader::with_capacity(STREAM_BUFFER_BYTES, reader),
            consumed: 0,
            cap,
        }
    }

    fn count(&mut self, n: usize) -> Result<(), InvalidBatch> {
        self.inner.consume(n);
        self.consumed += n as u64;
        if self.consumed > self.cap as u64 {
            return Err(InvalidBatch::TooLarge(self.cap));
        }
        Ok(())
    }

    fn decompression(&self, e: std::io::Error) -> InvalidBatch {
        if e.get_ref().is_some_and(|inner| inner.is::<BlockTooLarge>()) {
            return InvalidBatch::TooLarge(self.cap);
        }
        InvalidBatch::Decompression(e.to_string())
    }
}

impl<R: Read> Input for StreamInput<R> {
    fn byte(&mut self) -> Result<Option<u8>, InvalidBatch> {
        let available = match self.inner.fill_buf() {
            Ok(available) => available,
            Err(e) => return Err(self.decompression(e)),
        };
        let Some(&byte) = available.first() else {
            return Ok(None);
        };
        self.count(1)?;
        Ok(Some(byte))
    }

    fn skip(&mut self, mut n: u64) -> Result<bool, InvalidBatch> {
        while n > 0 {
            let available = match self.inner.fill_buf() {
                Ok(available) => available.len(),
                Err(e) => return Err(self.decompression(e)),
            };
            if available == 0 {
                return Ok(false);
            }
            let step = available.min(usize::try_from(n).unwrap_or(usize::MAX));
            self.count(step)?;
            n -= step as u64;
        }
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.consumed
    }
}

/// Why reading a record stopped.
enum Fail {
    /// The records ended inside a field.
    End,
    Problem(RecordProblem),
    Input(InvalidBatch),
}

impl From<InvalidBatch> for Fail {
    fn from(e: InvalidBatch) -> Self {
        Fail::Input(e)
    }
}

/// An unsigned LEB128 of at most `max_bytes` bytes.
fn unsigned(input: &mut impl Input, max_bytes: u32) -> Result<u64, Fail> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let byte = input.byte()?.ok_or(Fail::End)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Fail::Problem(RecordProblem::VarintTooLong))
}

/// A zigzag varint (Kafka's `readVarint`: at most 5 bytes).
fn varint(input: &mut impl Input) -> Result<i32, Fail> {
    let raw = unsigned(input, 5)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong (Kafka's `readVarlong`: at most 10 bytes).
fn varlong(input: &mut impl Input) -> Result<i64, Fail> {
    let raw = unsigned(input, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// The fields of a record the validator checks.
struct Record {
    timestamp_delta: i64,
    offset_delta: i32,
    has_key: bool,
}

/// What a topic asks of each record beyond its framing.
struct Rules<'a> {
    timestamps: Option<TimestampBounds>,
    /// On a compacted topic, the partition named when a key is missing.
    keys_required: Option<&'a str>,
}

/// Skips a key, value or header field of `length` bytes (null if negative) of
/// the record of `size` bytes whose fields start at `start`. A field running
/// past the record is refused before it is skipped, so a lying length never
/// reads (or decompresses) past the record.
fn field(input: &mut impl Input, length: i32, start: u64, size: i32) -> Result<(), Fail> {
    if length <= 0 {
        return Ok(());
    }
    let end = input.position() + length as u64;
    if end > start + size as u64 {
        return Err(Fail::Problem(RecordProblem::Size {
            expected: size,
            read: end - start,
        }));
    }
    if input.skip(length as u64)? {
        Ok(())
    } else {
        Err(Fail::End)
    }
}

/// Reads one record, checking that its fields fill exactly its length.
fn record(input: &mut impl Input) -> Result<Record, Fail> {
    let size = varint(input)?;
    if size < 0 {
        return Err(Fail::Problem(RecordProblem::NegativeSize(size)));
    }
    let start = input.position();
    let end = start + size as u64;
    input.byte()?.ok_or(Fail::End)?; // attributes: unused in magic 2
    let timestamp_delta = varlong(input)?;
    let offset_delta = varint(input)?;
    let key = varint(input)?;
    field(input, key, start, size)?;
    let value = varint(input)?;
    field(input, value, start, size)?;
    let headers = varint(input)?;
    if headers < 0 {
        return Err(Fail::Problem(RecordProblem::NegativeHeaderCount(headers)));
    }
    for _ in 0..headers {
        if input.position() >= end {
            // More headers declared than the record's bytes can hold.
            return Err(Fail::Problem(RecordProblem::Size {
                expected: size,
                read: input.position() + 1 - start,
            }));
        }
        let key = varint(input)?;
        if key < 0 {
            return Err(Fail::Problem(RecordProblem::NegativeHeaderKeySize(key)));
        }
        field(input, key, start, size)?;
        let value = varint(input)?;
        field(input, value, start, size)?;
    }
    let read = input.position() - start;
    if read != size as u64 {
        return Err(Fail::Problem(RecordProblem::Size {
            expected: size,
            read,
        }));
    }
    Ok(Record {
        timestamp_delta,
        offset_delta,
        has_key: key >= 0,
    })
}

/// Walks the batch's records; returns the largest record timestamp.
fn walk(
    input: &mut impl Input,
    header: &BatchHeader,
    rules: &Rules<'_>,
) -> Result<i64, InvalidBatch> {
    let timestamps = rules.timestamps;
    let declared = header.records_count;
    let log_append_time = header.attributes & LOG_APPEND_TIME_BIT != 0;
    let mut max_timestamp = -1;
    let mut errors = Vec::new();
    for index in 0..declared {
        let start = input.position();
        let record = match record(input) {
            Ok(record) => record,
            Err(Fail::End) if input.position() == start => {
                return Err(InvalidBatch::TooFewRecords {
                    declared,
                    found: index,
                })
            }
            Err(Fail::End) => {
                return Err(InvalidBatch::Records(vec![(
                    index,
                    RecordProblem::Truncated,
                )]))
            }
            Err(Fail::Problem(problem)) => {
                return Err(InvalidBatch::Records(vec![(index, problem)]))
            }
            Err(Fail::Input(e)) => return Err(e),
        };
        if record.offset_delta != index {
            errors.push((
                index,
                RecordProblem::OffsetDelta {
                    expected: index,
                    found: record.offset_delta,
                },
            ));
        }
        // As Kafka's `Record.timestamp()`: a LogAppendTime batch's records all
        // carry its `maxTimestamp`.
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(record.timestamp_delta)
        };
        max_timestamp = max_timestamp.max(timestamp);
        // Kafka's `validateRecord` reports the key before the timestamp, and
        // one of them per record.
        if let Some(partition) = rules.keys_required.filter(|_| !record.has_key) {
            errors.push((index, RecordProblem::MissingKey(partition.to_string())));
        } else if let Some(bounds) = timestamps.filter(|_| timestamp != -1) {
            if !bounds.admits(timestamp) {
                errors.push((
                    index,
                    RecordProblem::Timestamp {
                        timestamp,
                        min: bounds.now_ms.saturating_sub(bounds.before_max_ms),
                        max: bounds.now_ms.saturating_add(bounds.after_max_ms),
                    },
                ));
            }
        }
    }
    if input.byte()?.is_some() {
        return Err(InvalidBatch::TrailingBytes { declared });
    }
    if errors.is_empty() {
        Ok(max_timestamp)
    } else {
        Err(InvalidBatch::Records(errors))
    }
}

/// Marks a snappy block beyond the cap inside the `io::Error` a reader returns.
#[derive(Debug)]
struct BlockTooLarge;

impl std::fmt::Display for BlockTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "snappy block beyond the decompression cap")
    }
}

impl std::error::Error for BlockTooLarge {}

/// Snappy as Kafka clients write it, one block at a time: xerial-framed
/// blocks (Java; 32 KiB each) or one raw block (librdkafka; the whole batch).
struct SnappyReader<'a> {
    body: &'a [u8],
    /// Where the next block's length prefix is (xerial) or 0 (raw, not read yet).
    at: usize,
    xerial: bool,
    block: Vec<u8>,
    block_at: usize,
    cap: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(body: &'a [u8], cap: usize) -> Self {
        let xerial = body.starts_with(XERIAL_MAGIC);
        SnappyReader {
            body,
            at: if xerial {
                XERIAL_HEADER_BYTES.min(body.len())
            } else {
                0
            },
            xerial,
            block: Vec::new(),
            block_at: 0,
            cap,
        }
    }

    /// Decompresses the next block; false at the end.
    fn next_block(&mut self) -> std::io::Result<bool> {
        let invalid = |text: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, text);
        if self.at >= self.body.len() {
            return Ok(false);
        }
        let block = if self.xerial {
            let length = self
                .body
                .get(self.at..self.at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| invalid("truncated snappy block length"))?;
            let block = self
                .body
                .get(self.at + 4..)
                .and_then(|rest| rest.get(..length))
                .ok_or_else(|| invalid("snappy block runs past the batch"))?;
            self.at += 4 + length;
            block
        } else {
            self.at = self.body.len();
            self.body
        };
        let length = snap::raw::decompress_len(block)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if length > self.cap {
            return Err(std::io::Error::other(BlockTooLarge));
        }
        // A few bytes claiming the cap would otherwise cost the cap in
        // zeroed memory before the decoder finds them short.
        if length > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
            return Err(invalid("snappy block claims more than it can hold"));
        }
        self.block.clear();
        self.block.resize(length, 0);
        let written = snap::raw::Decoder::new()
            .decompress(block, &mut self.block)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.block.truncate(written);
        self.block_at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.block_at >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.block_at);
        buf[..n].copy_from_slice(&self.block[self.block_at..self.block_at + n]);
        self.block_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;
    use streamhouse_testkit::BatchBuilder;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn batch(compression: Compression, count: usize) -> BytesMut {
        BatchBuilder::new(count)
            .timestamps(1_000, 10)
            .key(|i| format!("k{i}"))
            .value(|_| vec![b'x'; 100])
            .header("h", Some(bytes::Bytes::from_static(b"v")))
            .compression(compression)
            .build_mut()
    }

    /// Sets `recordsCount` and `lastOffsetDelta` and recomputes the CRC, so
    /// only the records can disagree with the header.
    fn set_count(batch: &mut [u8], count: i32) {
        batch[57..61].copy_from_slice(&count.to_be_bytes());
        batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        recrc(batch);
    }

    fn recrc(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    fn zigzag(out: &mut Vec<u8>, value: i64) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// One record as a producer encodes it: no key, `value`, no headers.
    fn raw_record(offset_delta: i64, timestamp_delta: i64, value: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8]; // attributes
        zigzag(&mut body, timestamp_delta);
        zigzag(&mut body, offset_delta);
        zigzag(&mut body, -1); // null key
        zigzag(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        zigzag(&mut body, 0); // headers
        let mut record = Vec::new();
        zigzag(&mut record, body.len() as i64);
        record.extend_from_slice(&body);
        record
    }

    /// An uncompressed batch of `count` records whose records are `records`.
    fn raw_batch(count: i32, records: &[u8]) -> Vec<u8> {
        let mut batch = batch(Compression::None, 1)[..HEADER_BYTES].to_vec();
        batch.extend_from_slice(records);
        let length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        set_count(&mut batch, count);
        batch
    }

    #[test]
    fn a_valid_batch_of_every_codec_validates() {
        for codec in CODECS {
            let valid = validate(&batch(codec, 5), None).unwrap();
            assert_eq!(valid.header.records_count, 5, "{codec:?}");
            assert_eq!(valid.max_timestamp, 1_040, "{codec:?}");
        }
    }

    #[test]
    fn a_header_alone_claiming_two_billion_records_is_refused() {
        let mut batch = raw_batch(1, &[]);
        assert_eq!(batch.len(), HEADER_BYTES);
        set_count(&mut batch, i32::MAX);
        let error = validate(&batch, None).unwrap_err();
        assert_eq!(
            error,
            InvalidBatch::TooFewRecords {
                declared: i32::MAX,
                found: 0
            }
        );
        assert!(error
            .to_string()
            .starts_with("Incorrect declared batch size"));
    }

    #[test]
    fn a_count_that_disagrees_with_the_records_is_refused_in_every_codec() {
        for codec in CODECS {
            let mut more = batch(codec, 5);
            set_count(&mut more, 6);
            assert_eq!(
                validate(&more, None),
                Err(InvalidBatch::TooFewRecords {
                    declared: 6,
                    found: 5
                }),
                "{codec:?}"
            );
            let mut fewer = batch(codec, 5);
            set_count(&mut fewer, 4);
            assert_eq!(
                validate(&fewer, None),
                Err(InvalidBatch::TrailingBytes { declared: 4 }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn count_zero_and_negative_counts_are_invalid_counts() {
        for count in [0, -3] {
            let mut batch = batch(Compression::None, 1);
            set_count(&mut batch, count);
            assert_eq!(
                validate(&batch, None),
                Err(InvalidBatch::InvalidCount(count))
            );
        }
    }

    #[test]
    fn garbage_records_are_refused() {
        let garbage = raw_batch(3, &[0xff; 40]);
        assert_eq!(
            validate(&garbage, None),
            Err(InvalidBatch::Records(vec![(
                0,
                RecordProblem::VarintTooLong
            )]))
        );
        let garbage = raw_batch(1, &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01, 0x07]);
        assert!(matches!(
            validate(&garbage, None),
            Err(InvalidBatch::Records(errors)) if errors[0].0 == 0
        ));
    }

    #[test]
    fn a_record_length_that_disagrees_with_its_fields_is_refused() {
        let mut record = raw_record(0, 0, b"abc");
        // One byte more than the fields: the next record's first byte would be read.
        record[0] += 2;
        let mut records = record.clone();
        records.extend_from_slice(&raw_record(1, 0, b"abc"));
        assert_eq!(
            validate(&raw_batch(2, &records), None),
            Err(InvalidBatch::Records(vec![(
                0,
                RecordProblem::Size {
                    expected: 10,
                    read: 9
                }
            )]))
        );
        // The last record's length runs past the batch.
        assert_eq!(
            validate(&raw_batch(1, &record), None),
            Err(InvalidBatch::Records(vec![(
                0,
                RecordProblem::Size {
                    expected: 10,
                    read: 9
                }
            )]))
        );
    }

    #[test]
    fn a_value_longer_than_its_record_is_refused_before_it_is_read() {
        let mut record = raw_record(0, 0, b"abc");
        record[5] = 0x7e; // value length 63 in a 9-byte record
        assert_eq!(
            validate(&raw_batch(1, &record), None),
            Err(InvalidBatch::Records(vec![(
                0,
                RecordProblem::Size {
                    expected: 9,
                    read: 68
                }
            )]))
        );
    }

    #[test]
    fn offset_deltas_must_count_from_zero_in_order() {
        let mut records = raw_record(0, 0, b"a");
        records.extend_from_slice(&raw_record(2, 0, b"b"));
        records.extend_from_slice(&raw_record(1, 0, b"c"));
        let error = validate(&raw_batch(3, &records), None).unwrap_err();
        assert_eq!(
            error,
            InvalidBatch::Records(vec![
                (
                    1,
                    RecordProblem::OffsetDelta {
                        expected: 1,
                        found: 2
                    }
                ),
                (
                    2,
                    RecordProblem::OffsetDelta {
                        expected: 2,
                        found: 1
                    }
                ),
            ])
        );
        assert!(!error.has_bad_timestamp());
        assert!(error
            .to_string()
            .contains("record 1: Invalid offset delta 2"));
    }

    #[test]
    fn timestamps_outside_the_window_are_refused_per_record() {
        let bounds = TimestampBounds {
            now_ms: 1_020,
            before_max_ms: 15,
            after_max_ms: 10,
        };
        // Records at 1000, 1010, 1020, 1030, 1040: the window is [1005, 1030].
        let error = validate(&batch(Compression::Gzip, 5), Some(bounds)).unwrap_err();
        let InvalidBatch::Records(errors) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(
            errors.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![0, 4],
            "{error}"
        );
        assert!(error.has_bad_timestamp());
        // Kafka's defaults admit any past timestamp.
        let defaults = TimestampBounds {
            now_ms: 1_020,
            before_max_ms: i64::MAX,
            after_max_ms: 3_600_000,
        };
        assert!(validate(&batch(Compression::None, 5), Some(defaults)).is_ok());
    }

    #[test]
    fn a_compacted_topic_refuses_records_without_a_key_in_every_codec() {
        for codec in CODECS {
            // Records 0 and 2 have no key, record 1 an empty one (a key).
            let mixed = BatchBuilder::new(3)
                .compression(codec)
                .key(|i| if i == 1 { "" } else { "k" })
                .build();
            let keyless = BatchBuilder::new(3).compression(codec).build_mut();
            let header = batch::validate(&keyless).unwrap();
            let missing = RecordProblem::MissingKey("orders-3".into());
            assert_eq!(
                records_of_compacted(&keyless, &header, None, "orders-3"),
                Err(InvalidBatch::Records(vec![
                    (0, missing.clone()),
                    (1, missing.clone()),
                    (2, missing.clone()),
                ])),
                "{codec:?}"
            );
            assert!(records(&keyless, &header, None).is_ok(), "{codec:?}");
            let header = batch::validate(&mixed).unwrap();
            assert!(
                records_of_compacted(&mixed, &header, None, "orders-3").is_ok(),
                "{codec:?}: every record of this batch has a key, one of them empty"
            );
        }
        assert_eq!(
            RecordProblem::MissingKey("orders-3".into()).to_string(),
            "Compacted topic cannot accept message without key in topic partition orders-3"
        );
    }

    #[test]
    fn a_producer_batch_needs_a_sequence() {
        let mut batch = BatchBuilder::new(1).producer(7, 0, 0).build_mut();
        batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        recrc(&mut batch);
        assert_eq!(
            validate(&batch, None),
            Err(InvalidBatch::InvalidSequence {
                producer_id: 7,
                base_sequence: -1
            })
        );
    }

    #[test]
    fn decompression_stops_at_the_cap() {
        for codec in &CODECS[1..] {
            let batch = batch(*codec, 50);
            let header = batch::validate(&batch).unwrap();
            assert!(
                records_capped(&batch, &header, None, None, 1 << 20).is_ok(),
                "{codec:?}"
            );
            assert_eq!(
                records_capped(&batch, &header, None, None, 1024),
                Err(InvalidBatch::TooLarge(1024)),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_damaged_compressed_stream_is_refused() {
        for codec in &CODECS[1..] {
            let mut batch = batch(*codec, 5);
            let middle = HEADER_BYTES + (batch.len() - HEADER_BYTES) / 2;
            for byte in &mut batch[middle..middle + 8] {
                *byte ^= 0x5a;
            }
            recrc(&mut batch);
            assert!(validate(&batch, None).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn an_unknown_codec_is_refused() {
        let mut batch = batch(Compression::None, 1);
        batch[22] |= 0x05;
        recrc(&mut batch);
        assert_eq!(validate(&batch, None), Err(InvalidBatch::UnknownCodec(5)));
    }

    /// A few bytes whose snappy header claims 64 MiB: refused as a broken
    /// stream, as the decoder would have, but before any room is made for
    /// the claim (it zeroed 64 MiB first, one validation per core at once).
    #[test]
    fn a_snappy_block_claiming_more_than_it_can_hold_gets_no_room() {
        let mut block = Vec::new();
        let mut claim = MAX_DECOMPRESSED_BYTES;
        while claim >= 0x80 {
            block.push((claim as u8 & 0x7f) | 0x80);
            claim >>= 7;
        }
        block.push(claim as u8);
        block.extend_from_slice(b"\x0cabcd"); // a 4-byte literal
        let mut reader = SnappyReader::new(&block, MAX_DECOMPRESSED_BYTES);
        let error = reader.next_block().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
        assert_eq!(reader.block.capacity(), 0);
    }

    /// The densest block snappy writes, of zeros, is within the expansion
    /// allowed.
    #[test]
    fn the_densest_snappy_block_is_within_the_expansion_allowed() {
        let zeros = vec![0u8; 1 << 20];
        let block = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert!(zeros.len() > 20 * block.len(), "{} bytes", block.len());
        let mut reader = SnappyReader::new(&block, MAX_DECOMPRESSED_BYTES);
        assert!(reader.next_block().unwrap());
        assert_eq!(reader.block, zeros);
    }
}
