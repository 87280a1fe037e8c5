//! Record batches as Kafka's log cleaner rewrites them: the records of a batch
//! with their keys, and a copy of the batch holding only the records a caller
//! keeps.
//!
//! A rewritten batch is the original with records left out: the same
//! `baseOffset`, `lastOffsetDelta` (so the batch still ends at the same offset
//! and an idempotent producer's last sequence stays where it was), producer id,
//! epoch, base sequence, attributes, `baseTimestamp` and `maxTimestamp`. Kept
//! records are copied byte for byte, so their offset and timestamp deltas (and
//! headers) are unchanged and the batch has gaps where records went, as
//! Kafka's cleaned batches do. The records are compressed again with the
//! batch's codec; the length, the count and the CRC are recomputed.
//!
//! Kafka's cleaner resets `baseTimestamp` to the first kept record's and
//! `maxTimestamp` to the largest kept one; keeping both is what lets the
//! rewritten batch keep every record's bytes, and the index's timestamps stay
//! those of the original offsets.

use std::io::Write;

use crate::batch::codec::{GZIP, LZ4, NONE, SNAPPY, XERIAL_HEADER_BYTES, XERIAL_MAGIC, ZSTD};
use crate::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use crate::records::{decompress, RecordsError};

/// One record as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanRecord<'a> {
    pub offset_delta: i32,
    /// The record's timestamp (a LogAppendTime batch's `maxTimestamp`).
    pub timestamp: i64,
    /// `None` for a record without a key.
    pub key: Option<&'a [u8]>,
    /// A null value: a tombstone, on a compacted topic.
    pub tombstone: bool,
}

/// What [`filter`] made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record is kept: the original bytes serve.
    Unchanged,
    /// No record is kept: the batch goes.
    Empty,
    /// The batch with only the kept records.
    Rewritten(Vec<u8>),
}

/// Xerial snappy blocks hold this many uncompressed bytes, as the Java client
/// writes them.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Calls `visit` with each record of `batch` (exactly one whole batch),
/// decompressing at most `max_bytes`.
pub fn for_each_record(
    batch: &[u8],
    max_bytes: usize,
    mut visit: impl FnMut(&CleanRecord<'_>),
) -> Result<(), RecordsError> {
    let (header, records) = open(batch, max_bytes)?;
    walk(&header, &records, |record, _| visit(record))
}

/// The batch with only the records `keep` says yes to (see the module doc).
/// Control batches are never rewritten.
pub fn filter(
    batch: &[u8],
    max_bytes: usize,
    mut keep: impl FnMut(&CleanRecord<'_>) -> bool,
) -> Result<Filtered, RecordsError> {
    let (header, records) = open(batch, max_bytes)?;
    if header.is_control() {
        return Ok(Filtered::Unchanged);
    }
    let mut kept = Vec::with_capacity(records.len());
    let (mut count, mut total) = (0i32, 0i32);
    walk(&header, &records, |record, raw| {
        total += 1;
        if keep(record) {
            count += 1;
            kept.extend_from_slice(raw);
        }
    })?;
    if count == total {
        return Ok(Filtered::Unchanged);
    }
    if count == 0 {
        return Ok(Filtered::Empty);
    }
    let body = compress(header.compression_codec(), &batch[HEADER_BYTES..], &kept)?;
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| RecordsError::TooLarge(i32::MAX as usize))?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Filtered::Rewritten(out))
}

fn open(batch: &[u8], max_bytes: usize) -> Result<(BatchHeader, Vec<u8>), RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordsError::BadHeader)?;
    if header.total_size() != batch.len() as i64 {
        return Err(RecordsError::BadHeader);
    }
    let records = decompress(&header, &batch[HEADER_BYTES..], max_bytes)?;
    Ok((header, records))
}

/// Walks the records, handing each parsed with its raw bytes (length prefix
/// included).
fn walk(
    header: &BatchHeader,
    records: &[u8],
    mut visit: impl FnMut(&CleanRecord<'_>, &[u8]),
) -> Result<(), RecordsError> {
    let log_append_time = header.attributes & 0x08 != 0;
    let mut at = 0;
    while at < records.len() {
        let start = at;
        let length = varint(records, &mut at)?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|end| *end <= records.len())
            .ok_or(RecordsError::MalformedRecord)?;
        let fields = &records[..end];
        at += 1; // attributes
        let timestamp_delta = varint(fields, &mut at)?;
        let offset_delta =
            i32::try_from(varint(fields, &mut at)?).map_err(|_| RecordsError::MalformedRecord)?;
        let key = bytes_field(fields, &mut at)?;
        let value = bytes_field(fields, &mut at)?;
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        let record = CleanRecord {
            offset_delta,
            timestamp,
            key,
            tombstone: value.is_none(),
        };
        visit(&record, &records[start..end]);
        at = end;
    }
    Ok(())
}

/// A zigzag varint or varlong.
fn varint(buf: &[u8], at: &mut usize) -> Result<i64, RecordsError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*at).ok_or(RecordsError::MalformedRecord)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(RecordsError::MalformedRecord)
}

/// A length-prefixed field; `None` when the length is negative (null).
fn bytes_field<'a>(buf: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, RecordsError> {
    let length = varint(buf, at)?;
    if length < 0 {
        return Ok(None);
    }
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| at.checked_add(l))
        .filter(|end| *end <= buf.len())
        .ok_or(RecordsError::MalformedRecord)?;
    let field = &buf[*at..end];
    *at = end;
    Ok(Some(field))
}

/// `records` compressed with `codec`, framed as `original` (the old body) was.
fn compress(codec: i16, original: &[u8], records: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let failed = |e: std::io::Error| RecordsError::Decompression(format!("recompression: {e}"));
    match codec {
        NONE => Ok(records.to_vec()),
        GZIP => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(records).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        SNAPPY if original.starts_with(XERIAL_MAGIC) => {
            // The Java client's framing: magic, version 1, compatible version 1,
            // then length-prefixed blocks.
            let mut out = Vec::with_capacity(records.len() / 2 + XERIAL_HEADER_BYTES);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in records.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| RecordsError::Decompression(e.to_string()))?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        SNAPPY => snap::raw::Encoder::new()
            .compress_vec(records)
            .map_err(|e| RecordsError::Decompression(e.to_string())),
        LZ4 => {
            // Independent blocks without checksums: what Kafka's
            // KafkaLZ4BlockOutputStream writes and every client reads.
            let mut encoder = lz4::EncoderBuilder::new()
                .block_mode(lz4::BlockMode::Independent)
                .block_size(lz4::BlockSize::Max64KB)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(failed)?;
            encoder.write_all(records).map_err(failed)?;
            let (out, result) = encoder.finish();
            result.map_err(failed)?;
            Ok(out)
        }
        ZSTD => zstd::stream::encode_all(records, 3).map_err(failed),
        other => Err(RecordsError::UnknownCodec(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    use streamhouse_testkit::BatchBuilder;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Ten records keyed `k0`..`k9` at 1000 + 10 i, odd ones tombstones,
    /// each with header `h=v`, from an idempotent producer.
    fn batch(codec: Compression) -> Bytes {
        let builder = BatchBuilder::new(10)
            .producer(7, 2, 100)
            .timestamps(1_000, 10)
            .key(|i| format!("k{i}"))
            .header("h", Some(Bytes::from_static(b"v")));
        let records: Vec<_> = builder
            .records()
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.value = (i % 2 == 0).then(|| Bytes::from(format!("value-{i}")));
                r
            })
            .collect();
        let mut bytes = bytes::BytesMut::new();
        kafka_protocol::records::RecordBatchEncoder::encode(
            &mut bytes,
            &records,
            &kafka_protocol::records::RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .unwrap();
        bytes.freeze()
    }

    #[test]
    fn records_are_seen_with_keys_tombstones_and_timestamps_in_every_codec() {
        for codec in CODECS {
            let mut seen = Vec::new();
            for_each_record(&batch(codec), 1 << 20, |r| {
                seen.push((
                    r.offset_delta,
                    r.timestamp,
                    r.key.map(<[u8]>::to_vec),
                    r.tombstone,
                ))
            })
            .unwrap();
            let expected: Vec<_> = (0..10)
                .map(|i| {
                    (
                        i,
                        1_000 + 10 * i64::from(i),
                        Some(format!("k{i}").into_bytes()),
                        i % 2 == 1,
                    )
                })
                .collect();
            assert_eq!(seen, expected, "{codec:?}");
        }
    }

    #[test]
    fn a_filtered_batch_keeps_its_offsets_producer_timestamps_and_headers_in_every_codec() {
        for codec in CODECS {
            let original = batch(codec);
            let before = BatchHeader::parse(&original).unwrap();
            // Keep records 2, 3 and 7: a gap at the start, inside and at the end.
            let Filtered::Rewritten(cleaned) =
                filter(&original, 1 << 20, |r| [2, 3, 7].contains(&r.offset_delta)).unwrap()
            else {
                panic!("{codec:?}: expected a rewrite")
            };
            // Fewer records than offsets: produce validation would refuse
            // it, as Kafka's does; the length and CRC are what must hold.
            let header = BatchHeader::parse(&cleaned).unwrap();
            assert_eq!(header.total_size(), cleaned.len() as i64);
            assert_eq!(header.crc, crc32c::crc32c(&cleaned[21..]), "{codec:?}");
            assert_eq!(header.compression_codec(), before.compression_codec());
            assert_eq!(
                header.last_offset_delta, 9,
                "{codec:?}: the batch still ends at 9"
            );
            assert_eq!(header.records_count, 3);
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (7, 2, 100)
            );
            assert_eq!(
                (header.base_timestamp, header.max_timestamp),
                (before.base_timestamp, before.max_timestamp)
            );
            // A client decodes it: the kept records with their offsets, values,
            // timestamps and headers.
            let mut buf = Bytes::from(cleaned);
            let decoded = RecordBatchDecoder::decode(&mut buf).expect("clients can read it");
            let records: Vec<_> = decoded
                .records
                .iter()
                .map(|r| {
                    (
                        r.offset,
                        r.timestamp,
                        r.key.clone(),
                        r.value.clone(),
                        r.headers.len(),
                        r.sequence,
                    )
                })
                .collect();
            assert_eq!(
                records,
                vec![
                    (2, 1_020, Some("k2".into()), Some("value-2".into()), 1, 102),
                    (3, 1_030, Some("k3".into()), None, 1, 103),
                    (7, 1_070, Some("k7".into()), None, 1, 107),
                ],
                "{codec:?}"
            );
            let headers: Vec<_> = decoded.records[0]
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            assert_eq!(
                headers,
                vec![("h".to_string(), Some(Bytes::from_static(b"v")))]
            );
        }
    }

    #[test]
    fn keeping_all_leaves_the_batch_and_keeping_none_drops_it() {
        for codec in CODECS {
            let original = batch(codec);
            assert_eq!(
                filter(&original, 1 << 20, |_| true).unwrap(),
                Filtered::Unchanged
            );
            assert_eq!(
                filter(&original, 1 << 20, |_| false).unwrap(),
                Filtered::Empty
            );
        }
    }

    /// `batch` with its records compressed again, framed as `like` is.
    fn reframed(batch: &[u8], like: &[u8]) -> Vec<u8> {
        let header = BatchHeader::parse(batch).unwrap();
        let records = decompress(&header, &batch[HEADER_BYTES..], 1 << 20).unwrap();
        let mut out = batch[..HEADER_BYTES].to_vec();
        out.extend_from_slice(&compress(SNAPPY, like, &records).unwrap());
        let length = (out.len() - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn snappy_keeps_its_framing() {
        let java = batch(Compression::Snappy).to_vec();
        let librdkafka = reframed(&java, b"raw");
        for (original, xerial) in [(java, true), (librdkafka, false)] {
            assert_eq!(original[HEADER_BYTES..].starts_with(XERIAL_MAGIC), xerial);
            assert!(validate::validate(&original, None).is_ok());
            let Filtered::Rewritten(cleaned) =
                filter(&original, 1 << 20, |r| r.offset_delta == 4).unwrap()
            else {
                panic!("expected a rewrite")
            };
            assert_eq!(cleaned[HEADER_BYTES..].starts_with(XERIAL_MAGIC), xerial);
            let mut seen = Vec::new();
            for_each_record(&cleaned, 1 << 20, |r| seen.push(r.offset_delta)).unwrap();
            assert_eq!(seen, vec![4], "xerial: {xerial}");
        }
    }

    #[test]
    fn a_batch_beyond_the_cap_is_refused() {
        let original = batch(Compression::Zstd);
        assert_eq!(
            filter(&original, 16, |_| true),
            Err(RecordsError::TooLarge(16))
        );
    }
}
