//! Object storage for StreamHouse: the object format, the write path that packs
//! batches of many partitions into one object and commits it to the catalog, the
//! read path that serves offset ranges back with their assigned offsets, and
//! object stores built from URLs.
//!
//! This crate knows record batches only as opaque byte runs with an offset count
//! and a max timestamp; it knows nothing of Kafka requests. The catalog decides
//! offsets; this crate moves bytes.

mod append;
pub mod background;
pub mod compaction;
mod error;
pub mod faulty;
pub mod folder;
pub mod format;
pub mod instrumented;
pub mod log;
pub mod metrics;
pub mod reader;
pub mod store;
pub mod watermarks;
pub mod writer;

pub use append::{Append, AppendOutcome, Appended, ProducerAppend, TxnAppend};
pub use background::BackgroundWrite;
pub use compaction::{CompactionConfig, CompactionWorker, Compactor, ShareOfWork, WorkShare};
pub use error::StorageError;
pub use log::{Freshness, Log, LogConfig, ReadBudget, ReadError, ReadResult};
pub use metrics::Metrics;
pub use reader::{ObjectReader, ReadCacheConfig};
pub use store::open_store;
pub use watermarks::Watermarks;
pub use writer::{HedgeConfig, ObjectWriter, WriterConfig};
