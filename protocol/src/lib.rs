//! Kafka wire protocol for StreamHouse, without I/O.
//!
//! - [`frame`]: the 4-byte length prefix, checked against a maximum before anything
//!   is allocated.
//! - [`request`] and [`response`]: request headers and bodies decoded, responses
//!   encoded, on top of the `kafka-protocol` crate's message types.
//! - [`counts`]: counts and lengths in a request kept within the bytes left,
//!   so that none sizes an allocation before it is checked.
//! - [`topic_id_offsets`]: OffsetCommit and OffsetFetch v10 request bodies
//!   (topics by id), which the `kafka-protocol` crate does not read.
//! - [`versions`]: the table of API versions this broker advertises.
//! - [`batch`]: a view of Kafka RecordBatch (magic 2) headers that validates the
//!   CRC-32C and patches the base offset, without decoding records.
//! - [`control`]: transaction markers (commit and abort control batches).
//! - [`records`]: record timestamps inside a batch, decompressed under a cap.
//! - [`clean`]: the records of a batch with their keys, and a batch rewritten
//!   with only the records the log cleaner keeps (offsets and producer fields
//!   unchanged, recompressed with its codec).
//! - [`validate`]: every record of a produced batch checked as Kafka's log
//!   validator does (count, framing, offset deltas, timestamps), compressed
//!   batches decompressed as a bounded stream.
//! - `fuzzing` (feature `fuzzing`): the bodies of the fuzz targets in `fuzz/`,
//!   and the short pass over their corpus that `cargo test` runs.
//!
//! The connection loop in the broker owns the socket; everything here works on
//! byte buffers it hands in.

pub mod append_time;
pub mod batch;
pub mod batches;
pub mod clean;
pub mod control;
pub mod counts;
pub mod frame;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod records;
pub mod request;
pub mod response;
pub mod sasl;
pub mod topic_id_offsets;
pub mod validate;
pub mod versions;

pub use kafka_protocol;
