//! The packer: the task that owns the open object. It takes appends in the
//! order they were submitted, adds each append's batches to its partition's
//! run (idempotent or not: the commit judges sequences), and seals the object
//! by size, by age or when the pipeline is idle, handing it to the uploader.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use streamhouse_metadata::{AppendSlice, RunAppend, TopicId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::hedge::Hedger;
use super::uploader::{fail_all, SealedObject, SealedRun};
use super::{Append, Pipeline, Reply, Submission, WriterConfig};
use crate::format::{ObjectEncoder, RunStats};
use crate::metrics::Metrics;
use crate::StorageError;

/// What the packer task owns.
pub(super) struct Packer {
    pub(super) store: Arc<dyn ObjectStore>,
    /// Hedges late uploads (`WriterConfig::put_hedge`).
    pub(super) hedger: Option<Arc<Hedger>>,
    pub(super) config: WriterConfig,
    /// To the committer; bounded, so a full pipeline stops the packer.
    pub(super) sealed: mpsc::Sender<SealedObject>,
    pub(super) pipeline: Arc<Pipeline>,
    /// Failed objects so far, counted by the committer.
    pub(super) failures: Arc<AtomicU64>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) open: OpenObject,
}

/// The object being filled.
#[derive(Default)]
pub(super) struct OpenObject {
    runs: BTreeMap<(TopicId, i32), OpenRun>,
    bytes: usize,
    /// Failures seen when the object got its first batch.
    generation: u64,
}

/// A partition's appends in the open object: `appends[i]` is answered on
/// `replies[i]`.
#[derive(Default)]
struct OpenRun {
    chunks: Vec<Bytes>,
    stats: RunStats,
    appends: Vec<AppendSlice>,
    replies: Vec<Reply>,
}

impl Packer {
    /// Packs until stopped or until every `ObjectWriter` handle is gone, then
    /// seals what is left and waits for the committer to finish.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Submission>,
        mut stop: oneshot::Receiver<()>,
        committer: JoinHandle<()>,
    ) {
        let mut deadline: Option<Instant> = None;
        let pipeline = Arc::clone(&self.pipeline);
        let seal_when_idle = self.config.seal_when_idle;
        let idle_below = self.config.idle_below_in_flight.max(1);
        loop {
            let submission = tokio::select! {
                next = rx.recv() => next,
                _ = sleep_until(deadline) => {
                    self.seal().await;
                    deadline = None;
                    continue;
                }
                _ = pipeline.freed.notified(), if seal_when_idle && !self.open.runs.is_empty() => {
                    // Appends still queued are taken first (the check after
                    // each one seals once the queue is empty).
                    if rx.is_empty() && pipeline.below(idle_below) {
                        self.seal().await;
                        deadline = None;
                    }
                    continue;
                }
                _ = &mut stop => {
                    // Take what is already queued, then refuse more.
                    rx.close();
                    while let Ok((append, reply)) = rx.try_recv() {
                        self.add(append, reply);
                    }
                    break;
                }
            };
            let Some((append, reply)) = submission else {
                break;
            };
            self.add(append, reply);
            // Appends already queued join this object before an idle seal, so
            // requests that arrive together share one PUT.
            let idle_seal = seal_when_idle && rx.is_empty() && pipeline.below(idle_below);
            if self.open.bytes >= self.config.flush_bytes
                || (idle_seal && !self.open.runs.is_empty())
            {
                self.seal().await;
                deadline = None;
            } else if deadline.is_none() && !self.open.runs.is_empty() {
                deadline = Some(Instant::now() + self.config.flush_interval);
            }
        }
        self.seal().await;
        drop(self.sealed);
        if let Err(e) = committer.await {
            tracing::error!(error = %e, "object committer task failed");
        }
    }

    /// Adds an append to the open object.
    fn add(&mut self, append: Append, reply: Reply) {
        if self.open.runs.is_empty() {
            self.open.generation = self.failures.load(Ordering::Acquire);
        }
        let run = self
            .open
            .runs
            .entry((append.topic, append.partition))
            .or_default();
        run.appends.push(AppendSlice {
            length: append.batches.len() as i64,
            offset_count: append.offset_count,
            max_timestamp: append.max_timestamp,
            append_time_ms: append.append_time_ms,
            producer: append.producer,
            txn: append.txn,
        });
        run.replies.push(reply);
        self.metrics
            .batches_appended
            .inc_by(u64::from(append.batch_count));
        run.stats.batch_count += append.batch_count;
        run.stats.offset_count += append.offset_count;
        run.stats.min_timestamp = run.stats.min_timestamp.min(append.min_timestamp);
        run.stats.max_timestamp = run.stats.max_timestamp.max(append.max_timestamp);
        self.open.bytes += append.batches.len();
        run.chunks.push(append.batches);
    }

    /// Turns the open runs into an object (runs in topic/partition order, which
    /// is also the order the catalog locks partition rows in) and starts its
    /// upload.
    async fn seal(&mut self) {
        if self.open.runs.is_empty() {
            return;
        }
        let open = std::mem::take(&mut self.open);
        let mut encoder = ObjectEncoder::for_runs(open.bytes, open.runs.len());
        let mut runs = Vec::with_capacity(open.runs.len());
        for ((topic, partition), run) in open.runs {
            let (position, _) = encoder.add_run(topic, partition, &run.chunks, run.stats);
            runs.push(SealedRun {
                append: RunAppend {
                    topic,
                    partition,
                    position: position as i64,
                    appends: run.appends,
                },
                replies: run.replies,
            });
        }
        let bytes = encoder.finish();
        self.metrics.objects_sealed.inc();
        let sealed = SealedObject::upload(
            &self.store,
            self.hedger.as_ref(),
            open.generation,
            bytes,
            runs,
        );
        self.pipeline.sealed();
        if let Err(mpsc::error::SendError(sealed)) = self.sealed.send(sealed).await {
            self.pipeline.finished(1);
            fail_all(sealed.runs, &Arc::new(StorageError::ShuttingDown));
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
