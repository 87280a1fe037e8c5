//! The bodies of the fuzz targets, shared by the cargo-fuzz project in `fuzz/`
//! (libFuzzer, on nightly) and by the short pass over the committed corpus
//! that `cargo test` runs on the pinned toolchain ([`tests`]), so the two
//! cannot drift apart.
//!
//! Every body takes arbitrary bytes and must return: no panic, no abort, no
//! hang, no allocation the input does not pay for. Where two parsers read the
//! same bytes, a body also checks that they agree (a disagreement panics):
//! the produce-path validator ([`crate::validate`]) and the record readers of
//! [`crate::records`] must see the same records in a batch the validator
//! accepts, the ListOffsets search must find the record a look through all of
//! them finds, and the in-place patches of [`crate::batch`] and
//! [`crate::append_time`] must keep a valid batch valid.
//!
//! A mutated batch almost never carries a correct CRC-32C or length, and a
//! mutated compressed stream almost never decompresses, so the bodies repair
//! what would stop a mutation at the door: the batch length and CRC are
//! recomputed over the mutated bytes, and [`compressed_records`] compresses
//! its input itself so mutations land in the records behind each codec.

use bytes::Bytes;

use crate::append_time;
use crate::batch::{self, codec, BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use crate::records;
use crate::request;
use crate::sasl;
use crate::validate::{self, InvalidBatch, TimestampBounds, ValidBatch, MAX_DECOMPRESSED_BYTES};

#[cfg(test)]
mod mutate;
#[cfg(test)]
mod seeds;
#[cfg(test)]
mod tests;

/// One fuzz target: its name (the cargo-fuzz binary's and the corpus
/// directory's, `fuzz/corpus/<name>`) and its body.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "request_decode",
        run: request_decode,
    },
    Target {
        name: "record_batch",
        run: record_batch,
    },
    Target {
        name: "validate_batch",
        run: validate_batch,
    },
    Target {
        name: "compressed_records",
        run: compressed_records,
    },
    Target {
        name: "sasl_messages",
        run: sasl_messages,
    },
];

/// A SASL token as a client sends it before authentication: read as a
/// PLAIN message, a SCRAM client-first and a SCRAM client-final message.
/// Any result is fine; a parsed message must hold what it was parsed from.
pub fn sasl_messages(data: &[u8]) {
    if let Ok(plain) = sasl::PlainMessage::parse(data) {
        assert!(!plain.user.is_empty() && !plain.password.is_empty());
    }
    if let Ok(first) = sasl::ClientFirst::parse(data) {
        assert!(!first.user.is_empty() && !first.nonce.is_empty());
        assert!(first.gs2_header.len() + first.bare.len() == data.len());
    }
    if let Ok(last) = sasl::ClientFinal::parse(data) {
        assert!(last.without_proof.len() < data.len());
        assert!(data.starts_with(last.without_proof.as_bytes()));
    }
}

/// A request frame body (without its length prefix) as the connection loop
/// hands it to [`request::decode`]: any result is fine.
pub fn request_decode(data: &[u8]) {
    if let Ok(request) = request::decode(Bytes::copy_from_slice(data)) {
        // What the connection loop reads of every request it answers.
        let _ = (request.correlation_id(), request.client_id());
    }
}

/// A run of batches, as a Produce partition carries it or an object holds it:
/// split ([`batch::split`]), and each batch's header parsed and validated,
/// its records searched by timestamp (the ListOffsets search, [`records`]),
/// and the in-place patches applied.
///
/// The header check runs once on the bytes as they came (the CRC mismatch
/// path); then each batch's CRC is recomputed so the rest sees the records.
/// If the lengths do not split, the whole input is taken as one batch with
/// its length repaired.
pub fn record_batch(data: &[u8]) {
    let _ = batch::validate(data);
    let mut run = data.to_vec();
    let ranges = match batch::split(&run) {
        Ok(ranges) => ranges,
        Err(_) if run.len() >= HEADER_BYTES => {
            set_batch_length(&mut run);
            std::iter::once(0..run.len()).collect()
        }
        Err(_) => return,
    };
    for range in ranges {
        let one = &mut run[range];
        set_crc(one);
        batch_and_its_patches(one);
    }
}

fn batch_and_its_patches(batch: &mut [u8]) {
    let header = BatchHeader::parse(batch).expect("split yields whole headers");
    let _ = (
        header.total_size(),
        header.offset_count(),
        header.is_transactional(),
        header.is_control(),
    );
    let _ = validate::is_compressed(batch);
    let timestamps = records::record_timestamps(batch, MAX_DECOMPRESSED_BYTES);
    if let Ok(all) = &timestamps {
        searches_agree(batch, all);
    } else {
        // Whatever the broker's search makes of it, it must return.
        let _ = records::first_at_or_after(batch, header.max_timestamp, MAX_DECOMPRESSED_BYTES);
    }
    if batch::validate(batch).is_err() {
        return;
    }
    // What the produce path does to a valid batch before storing it.
    batch::set_base_offset(batch, header.base_offset.wrapping_add(1));
    batch::clear_partition_leader_epoch(batch);
    assert!(
        batch::validate(batch).is_ok(),
        "the base offset and the leader epoch lie outside the CRC"
    );
    assert!(append_time::stamp(
        batch,
        header.max_timestamp.wrapping_add(1)
    ));
    let stamped = batch::validate(batch).expect("stamping recomputes the CRC");
    assert_eq!(
        stamped.compression_codec(),
        header.compression_codec(),
        "stamping leaves the codec alone"
    );
    assert_eq!(
        records::record_timestamps(batch, MAX_DECOMPRESSED_BYTES),
        timestamps,
        "stamping leaves the records alone"
    );
}

/// One batch through the produce path's full validation
/// ([`validate::validate`]): every record, compressed bodies decompressed up
/// to [`MAX_DECOMPRESSED_BYTES`]. The length and CRC are repaired first.
///
/// The timestamp window comes from two fields the validation does not read:
/// `baseOffset` is the broker's clock and `partitionLeaderEpoch` both bounds
/// (a negative epoch: a `LogAppendTime` topic, no window), so mutations reach
/// the window's edges too.
pub fn validate_batch(data: &[u8]) {
    if data.len() < HEADER_BYTES {
        let _ = validate::validate(data, None);
        return;
    }
    let mut batch = data.to_vec();
    set_batch_length(&mut batch);
    set_crc(&mut batch);
    let header = BatchHeader::parse(&batch).expect("long enough");
    let window = (header.partition_leader_epoch >= 0).then(|| TimestampBounds {
        now_ms: header.base_offset,
        before_max_ms: i64::from(header.partition_leader_epoch),
        after_max_ms: i64::from(header.partition_leader_epoch),
    });
    let result = validate::validate(&batch, window);
    readers_agree(&batch, &result);
}

/// The records of a batch the body builds itself, so that mutations explore
/// the record parser behind each codec's reader instead of breaking the
/// compressed stream:
///
/// | byte | meaning |
/// |-----:|---------|
/// | 0    | bits 0-2: codec ([`CODECS`], modulo its length); bit 3: `LogAppendTime`; bit 4: a one-hour timestamp window around the base timestamp |
/// | 1-4  | `recordsCount` (big-endian; `lastOffsetDelta` is one less) |
/// | 5-   | the records, uncompressed; the body compresses them |
pub fn compressed_records(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((count, records)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let count = i32::from_be_bytes(*count);
    let (codec, body) = CODECS[usize::from(selector & 0x07) % CODECS.len()].compress(records);
    let log_append_time = selector & 0x08 != 0;
    let mut attributes = codec;
    if log_append_time {
        attributes |= append_time::LOG_APPEND_TIME_BIT;
    }
    let batch = build_batch(attributes, count, &body);
    let window = (selector & 0x10 != 0).then_some(TimestampBounds {
        now_ms: BASE_TIMESTAMP,
        before_max_ms: 3_600_000,
        after_max_ms: 3_600_000,
    });
    let result = validate::validate(&batch, window);
    readers_agree(&batch, &result);
}

/// The base timestamp of the batches [`compressed_records`] builds.
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// How [`compressed_records`] compresses its records: each of Kafka's codecs,
/// and snappy both as the Java client frames it and as librdkafka sends it.
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    None,
    Gzip,
    SnappyXerial,
    SnappyRaw,
    Lz4,
    Zstd,
}

pub const CODECS: [Codec; 6] = [
    Codec::None,
    Codec::Gzip,
    Codec::SnappyXerial,
    Codec::SnappyRaw,
    Codec::Lz4,
    Codec::Zstd,
];

impl Codec {
    /// The codec id for the attributes and the compressed records.
    pub fn compress(self, records: &[u8]) -> (i16, Vec<u8>) {
        use std::io::Write;
        match self {
            Codec::None => (codec::NONE, records.to_vec()),
            Codec::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(records).expect("writes to a Vec");
                (codec::GZIP, encoder.finish().expect("writes to a Vec"))
            }
            Codec::SnappyXerial => {
                let mut out = codec::XERIAL_MAGIC.to_vec();
                // Version 1, compatible version 1, as the Java client writes it.
                out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
                for block in records.chunks(32 * 1024) {
                    let compressed = snap::raw::Encoder::new()
                        .compress_vec(block)
                        .expect("a block below snappy's limit");
                    out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                    out.extend_from_slice(&compressed);
                }
                (codec::SNAPPY, out)
            }
            Codec::SnappyRaw => (
                codec::SNAPPY,
                snap::raw::Encoder::new()
                    .compress_vec(records)
                    .expect("input below snappy's limit"),
            ),
            Codec::Lz4 => {
                let mut encoder = lz4::EncoderBuilder::new()
                    .build(Vec::new())
                    .expect("lz4 encoder");
                encoder.write_all(records).expect("writes to a Vec");
                let (out, result) = encoder.finish();
                result.expect("writes to a Vec");
                (codec::LZ4, out)
            }
            Codec::Zstd => (
                codec::ZSTD,
                zstd::bulk::compress(records, 1).expect("zstd compresses any input"),
            ),
        }
    }
}

/// A magic-2 batch around `body` with a correct length and CRC, no producer
/// id, and every timestamp at [`BASE_TIMESTAMP`].
fn build_batch(attributes: i16, count: i32, body: &[u8]) -> Vec<u8> {
    let mut batch = Vec::with_capacity(HEADER_BYTES + body.len());
    batch.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    batch.extend_from_slice(&0i32.to_be_bytes()); // batchLength, set below
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    batch.extend_from_slice(&attributes.to_be_bytes());
    batch.extend_from_slice(&count.wrapping_sub(1).to_be_bytes()); // lastOffsetDelta
    batch.extend_from_slice(&BASE_TIMESTAMP.to_be_bytes()); // baseTimestamp
    batch.extend_from_slice(&BASE_TIMESTAMP.to_be_bytes()); // maxTimestamp
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    batch.extend_from_slice(&count.to_be_bytes()); // recordsCount
    debug_assert_eq!(batch.len(), HEADER_BYTES);
    batch.extend_from_slice(body);
    set_batch_length(&mut batch);
    set_crc(&mut batch);
    batch
}

/// Sets `batchLength` to the bytes present (at least a header's worth).
fn set_batch_length(batch: &mut [u8]) {
    let length = i32::try_from(batch.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
    batch[8..12].copy_from_slice(&length.to_be_bytes());
}

/// Recomputes the CRC-32C over the bytes it covers (21..end).
fn set_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The validator and the record readers of [`records`] must see the same
/// records in a batch the validator accepts; the error's text must render.
fn readers_agree(batch: &[u8], result: &Result<ValidBatch, InvalidBatch>) {
    let valid = match result {
        Ok(valid) => valid,
        Err(error) => {
            let _ = (error.to_string(), error.has_bad_timestamp());
            return;
        }
    };
    let timestamps =
        records::record_timestamps(batch, MAX_DECOMPRESSED_BYTES).unwrap_or_else(|e| {
            panic!("the validator accepted a batch the record reader refuses: {e}")
        });
    let offsets: Vec<i32> = timestamps.iter().map(|(delta, _)| *delta).collect();
    let expected: Vec<i32> = (0..valid.header.records_count).collect();
    assert_eq!(offsets, expected, "the readers disagree on the records");
    if valid.header.attributes & append_time::LOG_APPEND_TIME_BIT == 0 {
        // The validator's -1 means "no record has a timestamp".
        let largest = timestamps.iter().map(|(_, ts)| *ts).max().unwrap_or(-1);
        assert_eq!(
            valid.max_timestamp,
            largest.max(-1),
            "the readers disagree on the timestamps"
        );
    }
    searches_agree(batch, &timestamps);
}

/// The broker's timestamp search ([`records::first_at_or_after`], a stream
/// that stops at its answer) must find what a look through all the records
/// ([`records::record_timestamps`], which read them without error) finds.
fn searches_agree(batch: &[u8], all: &[(i32, i64)]) {
    let mut probes = vec![i64::MIN, i64::MAX];
    if let (Some(first), Some(last)) = (all.first(), all.last()) {
        let middle = all[all.len() / 2].1;
        probes.extend([first.1, last.1, middle, middle.wrapping_add(1)]);
    }
    for wanted in probes {
        let expected = all.iter().find(|(_, ts)| *ts >= wanted).copied();
        assert_eq!(
            records::first_at_or_after(batch, wanted, MAX_DECOMPRESSED_BYTES),
            Ok(expected),
            "the search for {wanted} disagrees with the records"
        );
    }
}
