//! The StreamHouse object format, version 1.
//!
//! One object holds runs of record batches from many partitions, each run the
//! client's batches byte for byte (their base offsets are assigned by the catalog
//! and patched in on read). A footer indexes the runs, so an object is
//! self-describing: compaction and garbage collection can read it without the
//! catalog.
//!
//! | offset          | field                                   | bytes |
//! |-----------------|-----------------------------------------|------:|
//! | 0               | magic `SHOB`                            |     4 |
//! | 4               | format version (u16, big-endian) = 1    |     2 |
//! | 6               | flags (u16) = 0: runs stored raw        |     2 |
//! | 8               | runs, back to back                      |     … |
//! | F               | run count (u32)                         |     4 |
//! | F+4             | run descriptors, 64 bytes each (below)  |  64·n |
//! | end−12          | footer length F..end−12 (u32)           |     4 |
//! | end−8           | CRC-32 (IEEE) of bytes 0..end−8         |     4 |
//! | end−4           | magic `SHOB`                            |     4 |
//!
//! Run descriptor: topic id (16 bytes, UUID), partition (i32), position (u64),
//! length (u64), batch count (u32), offset count (i64), min base timestamp (i64),
//! max timestamp (i64). All integers big-endian.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

pub const MAGIC: &[u8; 4] = b"SHOB";
pub const VERSION: u16 = 1;
const HEADER_BYTES: usize = 8;
const TRAILER_BYTES: usize = 12;
const DESCRIPTOR_BYTES: usize = 64;

/// Where one partition's run lies in an object, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDescriptor {
    pub topic: Uuid,
    pub partition: i32,
    pub position: u64,
    pub length: u64,
    pub batch_count: u32,
    pub offset_count: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
}

/// Footer space reserved by [`ObjectEncoder::with_capacity`]: the descriptors
/// of 63 runs. An object's buffer is its memory in the read cache, so it must
/// not be grown by doubling when the footer is written (that made every cached
/// object cost twice its weight); objects with more runs are copied once into
/// an exact buffer instead.
const FOOTER_RESERVE_BYTES: usize = 4096;

/// Assembles one object. Runs are written in the order they are added.
pub struct ObjectEncoder {
    buf: BytesMut,
    runs: Vec<RunDescriptor>,
}

impl ObjectEncoder {
    /// An encoder for `bytes` of runs, whose object is allocated once when
    /// its footer fits in [`FOOTER_RESERVE_BYTES`].
    pub fn with_capacity(bytes: usize) -> Self {
        Self::with_footer_capacity(bytes, FOOTER_RESERVE_BYTES)
    }

    /// An encoder for `bytes` of runs in `runs` runs, whose object is
    /// allocated once at exactly its size.
    pub fn for_runs(bytes: usize, runs: usize) -> Self {
        Self::with_footer_capacity(bytes, footer_bytes(runs))
    }

    fn with_footer_capacity(bytes: usize, footer: usize) -> Self {
        let mut buf = BytesMut::with_capacity(HEADER_BYTES + bytes + footer);
        buf.put_slice(MAGIC);
        buf.put_u16(VERSION);
        buf.put_u16(0);
        ObjectEncoder {
            buf,
            runs: Vec::new(),
        }
    }

    /// Appends one run made of `chunks` (each one or more whole batches).
    /// Returns the run's position and length in the object.
    pub fn add_run<'a>(
        &mut self,
        topic: Uuid,
        partition: i32,
        chunks: impl IntoIterator<Item = &'a Bytes>,
        stats: RunStats,
    ) -> (u64, u64) {
        let position = self.buf.len() as u64;
        for chunk in chunks {
            self.buf.put_slice(chunk);
        }
        let length = self.buf.len() as u64 - position;
        self.runs.push(RunDescriptor {
            topic,
            partition,
            position,
            length,
            batch_count: stats.batch_count,
            offset_count: stats.offset_count,
            min_timestamp: stats.min_timestamp,
            max_timestamp: stats.max_timestamp,
        });
        (position, length)
    }

    /// Writes the footer and returns the object's bytes.
    pub fn finish(self) -> Bytes {
        self.finish_buf().freeze()
    }

    fn finish_buf(mut self) -> BytesMut {
        let size = self.buf.len() + footer_bytes(self.runs.len());
        if self.buf.capacity() < size {
            let mut exact = BytesMut::with_capacity(size);
            exact.put_slice(&self.buf);
            self.buf = exact;
        }
        let footer_start = self.buf.len();
        self.buf.put_u32(self.runs.len() as u32);
        for run in &self.runs {
            self.buf.put_slice(run.topic.as_bytes());
            self.buf.put_i32(run.partition);
            self.buf.put_u64(run.position);
            self.buf.put_u64(run.length);
            self.buf.put_u32(run.batch_count);
            self.buf.put_i64(run.offset_count);
            self.buf.put_i64(run.min_timestamp);
            self.buf.put_i64(run.max_timestamp);
        }
        let footer_length = (self.buf.len() - footer_start) as u32;
        self.buf.put_u32(footer_length);
        let crc = crc32fast::hash(&self.buf);
        self.buf.put_u32(crc);
        self.buf.put_slice(MAGIC);
        self.buf
    }
}

/// Bytes after the runs: run count, descriptors, footer length, CRC, magic.
fn footer_bytes(runs: usize) -> usize {
    4 + DESCRIPTOR_BYTES * runs + TRAILER_BYTES
}

/// Totals of one run, kept by the writer as batches arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub batch_count: u32,
    pub offset_count: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
}

impl Default for RunStats {
    fn default() -> Self {
        RunStats {
            batch_count: 0,
            offset_count: 0,
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("object of {0} bytes is too small")]
    TooSmall(usize),
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported object format version {0}")]
    UnsupportedVersion(u16),
    #[error("object checksum mismatch")]
    ChecksumMismatch,
    #[error("footer is inconsistent: {0}")]
    BadFooter(&'static str),
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(bytes)
}

/// Verifies a whole object and returns its run descriptors.
pub fn decode_footer(object: &[u8]) -> Result<Vec<RunDescriptor>, FormatError> {
    let len = object.len();
    if len < HEADER_BYTES + 4 + TRAILER_BYTES {
        return Err(FormatError::TooSmall(len));
    }
    if &object[..4] != MAGIC || &object[len - 4..] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = u16::from_be_bytes([object[4], object[5]]);
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    if crc32fast::hash(&object[..len - 8]) != u32_at(object, len - 8) {
        return Err(FormatError::ChecksumMismatch);
    }
    let footer_length = u32_at(object, len - TRAILER_BYTES) as usize;
    let footer_start = (len - TRAILER_BYTES)
        .checked_sub(footer_length)
        .filter(|start| *start >= HEADER_BYTES)
        .ok_or(FormatError::BadFooter("footer length exceeds the object"))?;
    let count = u32_at(object, footer_start) as usize;
    if count.checked_mul(DESCRIPTOR_BYTES).map(|n| n + 4) != Some(footer_length) {
        return Err(FormatError::BadFooter(
            "run count does not match footer length",
        ));
    }
    let mut runs = Vec::with_capacity(count);
    for i in 0..count {
        let at = footer_start + 4 + i * DESCRIPTOR_BYTES;
        let d = &object[at..at + DESCRIPTOR_BYTES];
        let run = RunDescriptor {
            topic: Uuid::from_slice(&d[..16]).map_err(|_| FormatError::BadFooter("topic id"))?,
            partition: u32_at(d, 16) as i32,
            position: u64_at(d, 20),
            length: u64_at(d, 28),
            batch_count: u32_at(d, 36),
            offset_count: u64_at(d, 40) as i64,
            min_timestamp: u64_at(d, 48) as i64,
            max_timestamp: u64_at(d, 56) as i64,
        };
        let end = run.position.checked_add(run.length);
        if run.position < HEADER_BYTES as u64 || end.is_none_or(|end| end > footer_start as u64) {
            return Err(FormatError::BadFooter("run outside the data section"));
        }
        runs.push(run);
    }
    Ok(runs)
}

/// A new, never-repeating object key. The two-character shard from the random
/// end of a time-ordered UUID spreads writes over S3 key prefixes.
pub fn new_object_key() -> String {
    let id = Uuid::now_v7().simple().to_string();
    format!("objects/{}/{id}.sho", &id[id.len() - 2..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(offsets: i64) -> RunStats {
        RunStats {
            batch_count: 1,
            offset_count: offsets,
            min_timestamp: 10,
            max_timestamp: 20,
        }
    }

    #[test]
    fn an_object_round_trips_its_runs() {
        let topic = Uuid::new_v4();
        let a = Bytes::from_static(b"aaaa");
        let b = Bytes::from_static(b"bbbbbb");
        let mut encoder = ObjectEncoder::with_capacity(16);
        assert_eq!(encoder.add_run(topic, 0, [&a], stats(3)), (8, 4));
        assert_eq!(encoder.add_run(topic, 1, [&b, &a], stats(5)), (12, 10));
        let object = encoder.finish();
        let runs = decode_footer(&object).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].partition, 1);
        assert_eq!(runs[1].offset_count, 5);
        assert_eq!(&object[12..22], b"bbbbbbaaaa");
    }

    #[test]
    fn a_damaged_object_fails_its_checksum() {
        let mut encoder = ObjectEncoder::with_capacity(4);
        encoder.add_run(Uuid::new_v4(), 0, [&Bytes::from_static(b"x")], stats(1));
        let mut object = encoder.finish().to_vec();
        object[8] ^= 0xff;
        assert_eq!(decode_footer(&object), Err(FormatError::ChecksumMismatch));
    }

    /// The object's buffer is its memory in the read cache.
    fn encode(mut encoder: ObjectEncoder, runs: usize) -> BytesMut {
        for partition in 0..runs {
            let run = Bytes::from(vec![b'r'; 10]);
            encoder.add_run(Uuid::nil(), partition as i32, [&run], stats(1));
        }
        encoder.finish_buf()
    }

    #[test]
    fn an_object_of_known_runs_is_allocated_at_exactly_its_size() {
        let object = encode(ObjectEncoder::for_runs(30, 3), 3);
        assert_eq!(object.len(), HEADER_BYTES + 30 + footer_bytes(3));
        assert_eq!(object.capacity(), object.len());
    }

    #[test]
    fn a_footer_within_the_reserve_needs_no_second_buffer() {
        let object = encode(ObjectEncoder::with_capacity(20), 2);
        assert_eq!(
            object.capacity(),
            HEADER_BYTES + 20 + FOOTER_RESERVE_BYTES,
            "the buffer allocated first"
        );
    }

    #[test]
    fn a_footer_beyond_the_reserve_moves_the_object_once_to_an_exact_buffer() {
        let object = encode(ObjectEncoder::with_capacity(1000), 100);
        assert_eq!(object.len(), HEADER_BYTES + 1000 + footer_bytes(100));
        assert_eq!(object.capacity(), object.len(), "not grown by doubling");
        assert_eq!(decode_footer(&object).unwrap().len(), 100);
    }

    #[test]
    fn object_keys_never_repeat() {
        let a = new_object_key();
        let b = new_object_key();
        assert_ne!(a, b);
        assert!(a.starts_with("objects/") && a.ends_with(".sho"));
    }
}
