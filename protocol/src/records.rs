//! Reading records inside a batch, for the one place the broker needs them:
//! ListOffsets by timestamp, which must name the first *record* at or after a
//! time, also inside compressed batches.
//!
//! Client data decides every size here, so nothing is pre-sized from it: the
//! decompressed stream is read through a cap (`max_bytes`), and each record's
//! length is checked against the bytes present before it is used.

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
    let body = &batch[HEADER_BYTES..];
    let records = match header.compression_codec() {
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
    };
    parse_records(&records, header.base_timestamp)
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

/// Reads a zigzag varint (at most 10 bytes) at `*at`.
fn read_varlong(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

fn parse_records(records: &[u8], base_timestamp: i64) -> Result<Vec<(i32, i64)>, RecordsError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let length = read_varlong(records, &mut at)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(RecordsError::MalformedRecord)?;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= records.len())
            .ok_or(RecordsError::MalformedRecord)?;
        let mut field = at + 1; // attributes
        let timestamp_delta =
            read_varlong(records, &mut field).ok_or(RecordsError::MalformedRecord)?;
        let offset_delta = read_varlong(records, &mut field)
            .and_then(|d| i32::try_from(d).ok())
            .ok_or(RecordsError::MalformedRecord)?;
        if field > end {
            return Err(RecordsError::MalformedRecord);
        }
        out.push((offset_delta, base_timestamp.wrapping_add(timestamp_delta)));
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::BatchBuilder;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;

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

    #[test]
    fn a_record_longer_than_the_batch_is_malformed() {
        let mut batch = batch(Compression::None, 1);
        batch[HEADER_BYTES] = 0x7e; // zigzag 63: beyond the bytes left
        assert_eq!(
            record_timestamps(&batch, 1 << 20),
            Err(RecordsError::MalformedRecord)
        );
    }
}
