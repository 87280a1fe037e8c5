//! Reading records inside a batch, for the one place the broker needs them:
//! ListOffsets by timestamp, which must name the first *record* at or after a
//! time, also inside compressed batches.
//!
//! Client data decides every size here, so nothing is pre-sized from it: the
//! decompressed stream is read through a cap (`max_bytes`), and each record's
//! length is checked against the bytes present before it is used.
//!
//! [`first_at_or_after`], what the broker uses, reads the records as a stream
//! through a small buffer and holds none of them: a batch of a few KiB can
//! decompress to the cap, and holding that (or a list of its millions of tiny
//! records, as [`record_timestamps`] makes) is what a hostile client would
//! want. Snappy is the exception: a block is decompressed whole (within the
//! cap), as its format requires.

use std::io::Read;

use crate::batch::{BatchHeader, HEADER_BYTES};

use crate::batch::codec::{GZIP, LZ4, NONE, SNAPPY, XERIAL_HEADER_BYTES, XERIAL_MAGIC, ZSTD};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    #[error("batch header is invalid")]
    BadHeader,
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    #[error("decompression failed: {0}")]
    Decompression(String),
    #[error("records decompress to more than {0} bytes")]
    TooLarge(usize),
    #[error("a record is malformed")]
    MalformedRecord,
}

/// The offset delta and timestamp of each record of a batch, in order.
pub fn record_timestamps(batch: &[u8], max_bytes: usize) -> Result<Vec<(i32, i64)>, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordsError::BadHeader)?;
    if header.total_size() != batch.len() as i64 {
        return Err(RecordsError::BadHeader);
    }
    let records = decompress(&header, &batch[HEADER_BYTES..], max_bytes)?;
    parse_records(&records, header.base_timestamp)
}

/// A batch's records, decompressed whole (at most `max_bytes`).
pub(crate) fn decompress(
    header: &BatchHeader,
    body: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, RecordsError> {
    Ok(match header.compression_codec() {
        NONE => body.to_vec(),
        GZIP => read_capped(flate2::read::GzDecoder::new(body), max_bytes)?,
        SNAPPY => snappy(body, max_bytes)?,
        LZ4 => read_capped(
            lz4::Decoder::new(body).map_err(|e| RecordsError::Decompression(e.to_string()))?,
            max_bytes,
        )?,
        ZSTD => read_capped(
            zstd::stream::read::Decoder::new(body)
                .map_err(|e| RecordsError::Decompression(e.to_string()))?,
            max_bytes,
        )?,
        other => return Err(RecordsError::UnknownCodec(other)),
    })
}

fn read_capped(reader: impl Read, max_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    // One byte over the cap tells "exactly at the cap" from "beyond it".
    reader
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordsError::Decompression(e.to_string()))?;
    if out.len() > max_bytes {
        return Err(RecordsError::TooLarge(max_bytes));
    }
    Ok(out)
}

/// Snappy as Kafka clients write it: xerial-framed blocks (Java) or one raw
/// block (librdkafka).
fn snappy(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), RecordsError> {
        let length = snap::raw::decompress_len(block)
            .map_err(|e| RecordsError::Decompression(e.to_string()))?;
        if out.len() + length > max_bytes {
            return Err(RecordsError::TooLarge(max_bytes));
        }
        let at = out.len();
        out.resize(at + length, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[at..])
            .map_err(|e| RecordsError::Decompression(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !body.starts_with(XERIAL_MAGIC) {
        raw(body, &mut out)?;
        return Ok(out);
    }
    let mut at = XERIAL_HEADER_BYTES.min(body.len());
    while at < body.len() {
        let length_bytes = body
            .get(at..at + 4)
            .ok_or_else(|| RecordsError::Decompression("truncated snappy block length".into()))?;
        let length = u32::from_be_bytes([
            length_bytes[0],
            length_bytes[1],
            length_bytes[2],
            length_bytes[3],
        ]) as usize;
        let block = at
            .checked_add(4 + length)
            .and_then(|end| body.get(at + 4..end))
            .ok_or_else(|| {
                RecordsError::Decompression("snappy block runs past the batch".into())
            })?;
        raw(block, &mut out)?;
        at += 4 + length;
    }
    Ok(out)
}

/// An unsigned LEB128 of at most `max_bytes` bytes at `*at`.
fn read_unsigned(buf: &[u8], at: &mut usize, max_bytes: u32) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A zigzag varint as Kafka's `readVarint` reads it (and the produce
/// validator, [`crate::validate`]): at most 5 bytes, bits beyond 32 dropped.
/// Read as a varlong, a padded varint the validator accepted would name a
/// different record length or offset delta here.
fn read_varint(buf: &[u8], at: &mut usize) -> Option<i32> {
    let raw = read_unsigned(buf, at, 5)? as u32;
    Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong (Kafka's `readVarlong`: at most 10 bytes).
fn read_varlong(buf: &[u8], at: &mut usize) -> Option<i64> {
    let raw = read_unsigned(buf, at, 10)?;
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn parse_records(records: &[u8], base_timestamp: i64) -> Result<Vec<(i32, i64)>, RecordsError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let length = read_varint(records, &mut at)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(RecordsError::MalformedRecord)?;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= records.len())
            .ok_or(RecordsError::MalformedRecord)?;
        let mut field = at + 1; // attributes
        let timestamp_delta =
            read_varlong(records, &mut field).ok_or(RecordsError::MalformedRecord)?;
        let offset_delta = read_varint(records, &mut field).ok_or(RecordsError::MalformedRecord)?;
        if field > end {
            return Err(RecordsError::MalformedRecord);
        }
        out.push((offset_delta, base_timestamp.wrapping_add(timestamp_delta)));
        at = end;
    }
    Ok(out)
}

/// The offset delta and timestamp of the first record of `batch` whose
/// timestamp is at or after `timestamp`, None if no record's is. Records are
/// read in order up to that one, decompressing at most `max_bytes`; a record
/// found before the cap is the answer even if the batch goes on beyond it.
pub fn first_at_or_after(
    batch: &[u8],
    timestamp: i64,
    max_bytes: usize,
) -> Result<Option<(i32, i64)>, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordsError::BadHeader)?;
    if header.total_size() != batch.len() as i64 {
        return Err(RecordsError::BadHeader);
    }
    let body = &batch[HEADER_BYTES..];
    let decompression = |e: std::io::Error| RecordsError::Decompression(e.to_string());
    let scan = Scan {
        base_timestamp: header.base_timestamp,
        wanted: timestamp,
    };
    match header.compression_codec() {
        NONE => scan.run(body, usize::MAX),
        GZIP => scan.run(flate2::read::GzDecoder::new(body), max_bytes),
        SNAPPY => scan.run(&snappy(body, max_bytes)?[..], max_bytes),
        LZ4 => scan.run(lz4::Decoder::new(body).map_err(decompression)?, max_bytes),
        ZSTD => scan.run(
            zstd::stream::read::Decoder::new(body).map_err(decompression)?,
            max_bytes,
        ),
        other => Err(RecordsError::UnknownCodec(other)),
    }
}

/// Bytes of decompressed records [`first_at_or_after`] reads at a time.
const SCAN_BUFFER_BYTES: usize = 16 * 1024;

/// The search of [`first_at_or_after`] over one stream of records.
struct Scan {
    base_timestamp: i64,
    wanted: i64,
}

impl Scan {
    fn run(
        &self,
        records: impl Read,
        max_bytes: usize,
    ) -> Result<Option<(i32, i64)>, RecordsError> {
        let capped = Capped {
            inner: records,
            left: max_bytes,
            beyond: false,
        };
        let mut input = std::io::BufReader::with_capacity(SCAN_BUFFER_BYTES, capped);
        match self.scan(&mut input) {
            // Every byte read lies within the cap.
            Ok(Some(found)) => Ok(Some(found)),
            // The records were cut at the cap: that, not the cut, is why.
            _ if input.get_ref().beyond => Err(RecordsError::TooLarge(max_bytes)),
            other => other,
        }
    }

    fn scan(&self, input: &mut impl std::io::BufRead) -> Result<Option<(i32, i64)>, RecordsError> {
        let decompression = |e: std::io::Error| RecordsError::Decompression(e.to_string());
        while !input.fill_buf().map_err(decompression)?.is_empty() {
            let length =
                u64::try_from(varint_from(input)?).map_err(|_| RecordsError::MalformedRecord)?;
            let mut record = input.take(length);
            let mut attributes = [0u8; 1];
            record
                .read_exact(&mut attributes)
                .map_err(|_| RecordsError::MalformedRecord)?;
            let timestamp_delta = varlong_from(&mut record)?;
            let offset_delta = varint_from(&mut record)?;
            let timestamp = self.base_timestamp.wrapping_add(timestamp_delta);
            if timestamp >= self.wanted {
                return Ok(Some((offset_delta, timestamp)));
            }
            // The rest of the record, which must all be there.
            let rest = record.limit();
            let skipped =
                std::io::copy(&mut record, &mut std::io::sink()).map_err(decompression)?;
            if skipped != rest {
                return Err(RecordsError::MalformedRecord);
            }
        }
        Ok(None)
    }
}

/// A stream ending after `left` bytes, noting whether more followed.
struct Capped<R> {
    inner: R,
    left: usize,
    beyond: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            self.beyond |= self.inner.read(&mut probe)? > 0;
            return Ok(0);
        }
        let wanted = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..wanted])?;
        self.left -= n;
        Ok(n)
    }
}

/// An unsigned LEB128 of at most `max_bytes` bytes from `input`.
fn unsigned_from(input: &mut impl Read, max_bytes: u32) -> Result<u64, RecordsError> {
    let mut value: u64 = 0;
    let mut byte = [0u8; 1];
    for i in 0..max_bytes {
        input
            .read_exact(&mut byte)
            .map_err(|_| RecordsError::MalformedRecord)?;
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordsError::MalformedRecord)
}

/// A zigzag varint as Kafka's `readVarint` and the produce validator read
/// it (record lengths, offset deltas): at most 5 bytes, bits beyond 32
/// dropped.
fn varint_from(input: &mut impl Read) -> Result<i32, RecordsError> {
    let raw = unsigned_from(input, 5)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong (Kafka's `readVarlong`: at most 10 bytes).
fn varlong_from(input: &mut impl Read) -> Result<i64, RecordsError> {
    let raw = unsigned_from(input, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;
    use streamhouse_testkit::BatchBuilder;

    fn batch(compression: Compression, count: usize) -> BytesMut {
        BatchBuilder::new(count)
            .timestamps(1_000, 10)
            .value(|_| vec![b'x'; 100])
            .header("h", None)
            .compression(compression)
            .build_mut()
    }

    #[test]
    fn every_codec_yields_each_records_timestamp() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let timestamps = record_timestamps(&batch(codec, 5), 1 << 20).unwrap();
            assert_eq!(
                timestamps,
                vec![(0, 1000), (1, 1010), (2, 1020), (3, 1030), (4, 1040)],
                "{codec:?}"
            );
        }
    }

    #[test]
    fn decompression_beyond_the_cap_is_refused() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert_eq!(
                record_timestamps(&batch(codec, 50), 1024),
                Err(RecordsError::TooLarge(1024)),
                "{codec:?}"
            );
        }
    }

    /// A length and an offset delta written as 5-byte varints whose last byte
    /// carries bits beyond 32: Kafka's `readVarint` drops them, and so does
    /// the produce validator, which accepts this batch. Read as varlongs here
    /// they were a different length and an offset delta beyond i32, so a
    /// ListOffsets search fell back to the batch's first offset. Found when
    /// writing the fuzz bodies' check that the two readers agree.
    #[test]
    fn five_byte_varints_read_as_kafka_and_the_validator_read_them() {
        let mut record = vec![0x96, 0x80, 0x80, 0x80, 0x10]; // 11, padded
        record.extend_from_slice(&[0x00, 0x0a]); // attributes, timestamp delta 5
        record.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]); // offset delta 0
        record.extend_from_slice(&[0x01, 0x02, b'x', 0x00]); // null key, value "x", no headers
        let mut batch = batch(Compression::None, 1)[..HEADER_BYTES].to_vec();
        batch.extend_from_slice(&record);
        let length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let valid = crate::validate::validate(&batch, None).expect("the validator accepts it");
        assert_eq!(valid.max_timestamp, 1_005);
        assert_eq!(record_timestamps(&batch, 1 << 20), Ok(vec![(0, 1_005)]));
    }

    #[test]
    fn a_record_longer_than_the_batch_is_malformed() {
        let mut batch = batch(Compression::None, 1);
        batch[HEADER_BYTES] = 0x7e; // zigzag 63: beyond the bytes left
        assert_eq!(
            record_timestamps(&batch, 1 << 20),
            Err(RecordsError::MalformedRecord)
        );
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_finds_the_first_record_at_or_after_a_time() {
        for codec in CODECS {
            let batch = batch(codec, 5);
            let at = |t| first_at_or_after(&batch, t, 1 << 20).unwrap();
            assert_eq!(at(0), Some((0, 1000)), "{codec:?}");
            assert_eq!(at(1000), Some((0, 1000)), "{codec:?}");
            assert_eq!(at(1015), Some((2, 1020)), "{codec:?}");
            assert_eq!(at(1040), Some((4, 1040)), "{codec:?}");
            assert_eq!(at(1041), None, "{codec:?}");
        }
    }

    /// Records are skipped as they stream by, however large: ten of 1 MiB.
    #[test]
    fn large_records_are_read_through() {
        for codec in CODECS {
            let batch = BatchBuilder::new(10)
                .timestamps(1_000, 10)
                .value(|_| vec![0; 1 << 20])
                .compression(codec)
                .build_mut();
            assert_eq!(
                first_at_or_after(&batch, 1090, 64 << 20),
                Ok(Some((9, 1090))),
                "{codec:?}"
            );
        }
    }

    /// Past the cap the search stops; a record found before it is still the
    /// answer (except with snappy, whose block is decompressed whole).
    #[test]
    fn a_search_past_the_cap_is_refused() {
        for codec in &CODECS[1..] {
            let batch = batch(*codec, 50);
            assert_eq!(
                first_at_or_after(&batch, i64::MAX, 1024),
                Err(RecordsError::TooLarge(1024)),
                "{codec:?}"
            );
            let first = first_at_or_after(&batch, 0, 1024);
            if *codec == Compression::Snappy {
                assert_eq!(first, Err(RecordsError::TooLarge(1024)));
            } else {
                assert_eq!(first, Ok(Some((0, 1000))), "{codec:?}");
            }
        }
    }

    #[test]
    fn a_search_over_a_record_longer_than_the_batch_is_malformed() {
        let mut batch = batch(Compression::None, 1);
        batch[HEADER_BYTES] = 0x7e; // zigzag 63: beyond the bytes left
        assert_eq!(
            first_at_or_after(&batch, i64::MAX, 1 << 20),
            Err(RecordsError::MalformedRecord)
        );
    }
}
