//! The write path: batches from all partitions are packed into one open object,
//! sealed by size or age, uploaded, committed to the catalog in one transaction,
//! and only then acknowledged.
//!
//! Three stages run concurrently, one file each:
//! 1. the packer (`packer.rs`) task owns the open object and seals it when it
//!    reaches `flush_bytes`, when its first batch is `flush_interval` old, or
//!    (with `seal_when_idle`) as soon as no earlier object is uploading or
//!    committing;
//! 2. each sealed object uploads in its own task (`uploader.rs`), at most
//!    `max_inflight_uploads` at once (a full pipeline stops the packer, which
//!    stops producers: back pressure instead of unbounded memory), and is sent
//!    a second time when it is late (`hedge.rs`, with `put_hedge`);
//! 3. the committer (`committer.rs`) commits sealed objects strictly in seal
//!    order, so a producer's pipelined batches keep their order in every
//!    partition, then answers waiters, warms the read cache and wakes fetches.
//!    Objects whose uploads finished while it was busy are committed together
//!    in one transaction (group commit), so a slow catalog costs latency but
//!    not throughput.
//!
//! Idempotent producers' sequences are not checked here but in the catalog's
//! commit, the one place that sees every agent's batches: the write path packs
//! every append and answers each with the outcome the commit gave it.
//!
//! This module owns the handle ([`ObjectWriter`]), its configuration, the wiring
//! of the three stages and what they hand each other: a `Reply` per append
//! and the `Pipeline` count of objects between seal and commit.

mod committer;
mod hedge;
mod packer;
mod uploader;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use streamhouse_metadata::Catalog;
use tokio::sync::{mpsc, oneshot, Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

pub use crate::append::{Append, AppendOutcome, Appended};
use crate::metrics::Metrics;
use crate::reader::ObjectReader;
use crate::{StorageError, Watermarks};
use committer::Committer;
pub use hedge::HedgeConfig;
use hedge::Hedger;
use packer::Packer;

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Seal the open object once it holds this many bytes.
    pub flush_bytes: usize,
    /// Seal the open object once its oldest batch has waited this long.
    pub flush_interval: Duration,
    /// Sealed objects uploading at once.
    pub max_inflight_uploads: usize,
    /// Seal the open object at once when no earlier object is still uploading
    /// or committing, instead of waiting for `flush_interval`.
    ///
    /// Why: a producer that waits for its acknowledgements (every Kafka
    /// producer, within its in-flight limit) otherwise pays the whole interval
    /// on every round trip, which caps its throughput at its in-flight bytes
    /// per (interval + PUT + commit). Sealing when idle makes the round trip
    /// PUT + commit; while an object is in flight the next one fills, so under
    /// load objects still grow and the interval still bounds the wait. The cost:
    /// up to one PUT per (PUT + commit) time while idle, against one per
    /// interval.
    pub seal_when_idle: bool,
    /// With `seal_when_idle`, the pipeline counts as idle while fewer than
    /// this many objects are uploading or committing (1: none at all).
    ///
    /// Why more than one on a remote store: a PUT there takes tens of
    /// milliseconds, and with one object in flight an append waits for it to
    /// finish before its own object even starts, so the round trip is about
    /// one and a half PUTs plus commits. Java's default producer (five
    /// requests of 16 KiB per partition in flight) is bound by that round
    /// trip; sealing each request as it comes, up to the uploads the pipeline
    /// allows, makes it one PUT, for more PUTs while lightly loaded.
    pub idle_below_in_flight: usize,
    /// Most bytes of batches submitted and not yet answered, wherever they are
    /// in the pipeline (queued, in the open object, uploading, committing).
    /// A submission that would exceed it waits, which stops the producer's
    /// connection: the write path's memory is bounded in bytes, whatever the
    /// number or size of the appends. One append larger than the whole budget
    /// still passes, alone.
    pub max_buffered_bytes: usize,
    /// Hedge uploads that are late (see `hedge.rs`); `None` never does.
    /// Worth it on remote stores with a long latency tail (S3), not on a
    /// local folder, where a second write of the same file only adds work.
    pub put_hedge: Option<HedgeConfig>,
}

impl WriterConfig {
    /// Room for the pipeline at full speed (the open object, the sealed ones
    /// queued and uploading, a group being committed: about ten flush sizes)
    /// with a margin, so the budget bounds memory without throttling.
    pub const BUFFERED_FLUSH_SIZES: usize = 16;
}

impl Default for WriterConfig {
    fn default() -> Self {
        let flush_bytes = 4 * 1024 * 1024;
        WriterConfig {
            flush_bytes,
            flush_interval: Duration::from_millis(10),
            max_inflight_uploads: 4,
            seal_when_idle: true,
            idle_below_in_flight: 1,
            max_buffered_bytes: Self::BUFFERED_FLUSH_SIZES * flush_bytes,
            put_hedge: None,
        }
    }
}

/// Where an append's outcome goes, holding the append's share of the write
/// path's byte budget until it is answered (or dropped).
struct Reply {
    sender: oneshot::Sender<AppendOutcome>,
    _buffered: OwnedSemaphorePermit,
}

impl Reply {
    /// Answers the append; a caller that stopped waiting is no error.
    fn send(self, outcome: AppendOutcome) {
        let _ = self.sender.send(outcome);
    }
}

type Submission = (Append, Reply);

/// Objects between seal and the end of their commit, shared by the packer
/// (which counts them in) and the committer (which counts them out).
#[derive(Default)]
struct Pipeline {
    busy: AtomicUsize,
    /// Requests still queueing their appends ([`ObjectWriter::queueing`]).
    queueing: AtomicUsize,
    /// Signalled whenever `busy` or `queueing` drops.
    freed: Notify,
}

impl Pipeline {
    /// Whether fewer than `limit` objects are in flight and no request is
    /// halfway through queueing its appends.
    fn below(&self, limit: usize) -> bool {
        self.busy.load(Ordering::Acquire) < limit && self.queueing.load(Ordering::Acquire) == 0
    }

    fn sealed(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    fn finished(&self, objects: usize) {
        if objects > 0 {
            self.busy.fetch_sub(objects, Ordering::AcqRel);
            self.freed.notify_one();
        }
    }
}

/// Held while a request queues its appends: no idle seal cuts the request
/// in two (see [`ObjectWriter::queueing`]).
pub struct Queueing {
    pipeline: Arc<Pipeline>,
}

impl Drop for Queueing {
    fn drop(&mut self) {
        self.pipeline.queueing.fetch_sub(1, Ordering::AcqRel);
        self.pipeline.freed.notify_one();
    }
}

/// Handle to the agent's write path. Cheap to share behind an `Arc`.
pub struct ObjectWriter {
    submissions: mpsc::Sender<Submission>,
    /// Bytes of submitted, unanswered appends; see
    /// [`WriterConfig::max_buffered_bytes`].
    buffered: Arc<Semaphore>,
    /// The budget's size, the most one append may take of it.
    max_buffered_bytes: u32,
    /// Taken by `shutdown`; `None` afterwards.
    packer: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
    pipeline: Arc<Pipeline>,
}

impl ObjectWriter {
    pub fn start(
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        watermarks: Arc<Watermarks>,
        reader: Arc<ObjectReader>,
        config: WriterConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Bounded so that a stalled store pushes back on producers.
        let (tx, rx) = mpsc::channel(1024);
        // Its capacity bounds the uploads in flight: the packer waits on a
        // full channel.
        let (sealed_tx, sealed_rx) = mpsc::channel(config.max_inflight_uploads.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        // Semaphore permits are counted in u32 per acquisition; a budget beyond
        // 4 GiB is clamped to that.
        let max_buffered_bytes =
            u32::try_from(config.max_buffered_bytes.max(1)).unwrap_or(u32::MAX);
        let buffered = Arc::new(Semaphore::new(max_buffered_bytes as usize));
        // Failed objects so far: an object opened before a failure cannot be
        // committed (see `uploader`).
        let failures = Arc::new(AtomicU64::new(0));
        let pipeline = Arc::new(Pipeline::default());
        let committer = tokio::spawn(
            Committer {
                sealed: sealed_rx,
                pipeline: Arc::clone(&pipeline),
                catalog,
                watermarks,
                reader,
                failures: Arc::clone(&failures),
                metrics: Arc::clone(&metrics),
            }
            .run(),
        );
        let hedger = config
            .put_hedge
            .clone()
            .map(|hedge| Arc::new(Hedger::new(hedge, Arc::clone(&metrics))));
        let packer = Packer {
            store,
            hedger,
            config,
            sealed: sealed_tx,
            pipeline: Arc::clone(&pipeline),
            failures,
            metrics,
            open: Default::default(),
        };
        let packer = tokio::spawn(packer.run(rx, stop_rx, committer));
        ObjectWriter {
            submissions: tx,
            buffered,
            max_buffered_bytes,
            packer: Mutex::new(Some((stop_tx, packer))),
            pipeline,
        }
    }

    /// Marks a request that is about to queue several appends (a Produce
    /// request's partitions) until the guard drops: an idle seal waits for
    /// the rest, so the request's appends share one object instead of being
    /// cut in two, which would make its answer wait for the slower of two
    /// PUTs. Sealing by size or age is not held back.
    pub fn queueing(&self) -> Queueing {
        self.pipeline.queueing.fetch_add(1, Ordering::AcqRel);
        Queueing {
            pipeline: Arc::clone(&self.pipeline),
        }
    }

    /// Queues an append. Appends queued by one caller are stored in the order
    /// they were queued. The receiver resolves once the append is durable and
    /// committed (or failed); dropping it does not cancel the append.
    pub async fn submit(
        &self,
        append: Append,
    ) -> Result<oneshot::Receiver<AppendOutcome>, StorageError> {
        let cost = u32::try_from(append.batches.len())
            .unwrap_or(u32::MAX)
            .min(self.max_buffered_bytes);
        let buffered = Arc::clone(&self.buffered)
            .acquire_many_owned(cost)
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        let (sender, outcome) = oneshot::channel();
        let reply = Reply {
            sender,
            _buffered: buffered,
        };
        self.submissions
            .send((append, reply))
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        Ok(outcome)
    }

    /// Seals what is buffered, waits until every queued append is committed and
    /// answered, and stops the write path. Appends queued afterwards fail with
    /// [`StorageError::ShuttingDown`].
    pub async fn shutdown(&self) {
        let Some((stop, packer)) = self.packer.lock().await.take() else {
            return;
        };
        let _ = stop.send(());
        if let Err(e) = packer.await {
            tracing::error!(error = %e, "object writer task failed");
        }
    }
}

#[cfg(test)]
mod tests;
