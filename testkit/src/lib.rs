//! Record batches as a producer would send them, for the workspace's tests and
//! benchmarks only (a dev-dependency). It is a crate of its own, not a feature
//! of the protocol crate, so that tests do not build the protocol crate, and
//! everything above it, with other features than `cargo build` does: the
//! broker binary the tests build is then the one `cargo build` reuses.
//!
//! [`BatchBuilder`] owns the one place that fills in the kafka-protocol
//! crate's `Record` and encodes a magic-2 batch; every test that needs client
//! bytes asks it for them instead of writing its own encoder call.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// The bytes of a key, value or header for the record at an index.
type Content = Box<dyn Fn(usize) -> Option<Bytes>>;

/// Builds one RecordBatch (magic 2) of `count` records.
///
/// Records are numbered `first..first + count`; keys and values are functions
/// of that number, offsets (deltas) start at 0. By default a record has no
/// key, no value and no headers, timestamp 0, no compression, and no producer
/// id (-1, epoch -1, base sequence -1).
pub struct BatchBuilder {
    count: usize,
    first: usize,
    timestamp: i64,
    timestamp_step: i64,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    key: Content,
    value: Content,
    headers: Vec<(&'static str, Option<Bytes>)>,
}

impl BatchBuilder {
    pub fn new(count: usize) -> BatchBuilder {
        BatchBuilder {
            count,
            first: 0,
            timestamp: 0,
            timestamp_step: 0,
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            key: Box::new(|_| None),
            value: Box::new(|_| None),
            headers: Vec::new(),
        }
    }

    /// `count` records keyed `key-I` with value `value-I` and one header
    /// `h=v`, for I from `first`: what the wire tests produce and read back.
    pub fn keyed(count: usize, first: usize) -> BatchBuilder {
        BatchBuilder::new(count)
            .first(first)
            .key(|i| format!("key-{i}"))
            .value(|i| format!("value-{i}"))
            .header("h", Some(Bytes::from_static(b"v")))
    }

    /// The number of the first record (keys and values are made from it).
    pub fn first(mut self, first: usize) -> Self {
        self.first = first;
        self
    }

    /// Every record at `timestamp`.
    pub fn timestamp(self, timestamp: i64) -> Self {
        self.timestamps(timestamp, 0)
    }

    /// The n-th record (from 0) at `start + n * step`.
    pub fn timestamps(mut self, start: i64, step: i64) -> Self {
        self.timestamp = start;
        self.timestamp_step = step;
        self
    }

    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// An idempotent producer's batch whose first record has `base_sequence`.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// A transactional producer's batch (attribute bit 0x10).
    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self
    }

    pub fn key<T: Into<Bytes>>(mut self, key: impl Fn(usize) -> T + 'static) -> Self {
        self.key = Box::new(move |i| Some(key(i).into()));
        self
    }

    pub fn value<T: Into<Bytes>>(mut self, value: impl Fn(usize) -> T + 'static) -> Self {
        self.value = Box::new(move |i| Some(value(i).into()));
        self
    }

    /// Adds a header to every record.
    pub fn header(mut self, name: &'static str, value: Option<Bytes>) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The records as the encoder takes them.
    pub fn records(&self) -> Vec<Record> {
        (0..self.count)
            .map(|n| {
                let i = self.first + n;
                Record {
                    transactional: self.transactional,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: self.producer_id,
                    producer_epoch: self.producer_epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: n as i64,
                    // The encoder groups records whose offset - sequence is
                    // constant into one batch; its base sequence is the first
                    // record's.
                    sequence: self.base_sequence + n as i32,
                    timestamp: self.timestamp + n as i64 * self.timestamp_step,
                    key: (self.key)(i),
                    value: (self.value)(i),
                    headers: self
                        .headers
                        .iter()
                        .map(|(name, value)| (StrBytes::from_static_str(name), value.clone()))
                        .collect(),
                }
            })
            .collect()
    }

    /// The encoded batch, mutable for tests that corrupt or patch it.
    pub fn build_mut(&self) -> BytesMut {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &self.records(),
            &RecordEncodeOptions {
                version: 2,
                compression: self.compression,
            },
        )
        .expect("encode record batch");
        buf
    }

    pub fn build(&self) -> Bytes {
        self.build_mut().freeze()
    }
}
