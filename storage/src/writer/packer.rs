//! The packer: the task that owns the open object. It takes appends in the
//! order they were submitted, runs the idempotence checks of
//! [`crate::producers`], adds each append's batches to its partition's run,
//! and seals the object by size, by age or when the pipeline is idle, handing
//! it to the uploader.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use streamhouse_metadata::producers::NewProducerBatch;
use streamhouse_metadata::{Catalog, RunAppend, TopicId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::uploader::{fail_all, SealedObject, SealedRun};
use super::{Append, Pipeline, Reply, Submission, Waiter, WriterConfig};
use crate::append::ProducerAppend;
use crate::format::{ObjectEncoder, RunStats};
use crate::metrics::Metrics;
use crate::producers::{ProducerWindow, Verdict};
use crate::StorageError;

/// What the packer task owns.
pub(super) struct Packer {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) catalog: Arc<dyn Catalog>,
    pub(super) config: WriterConfig,
    /// To the committer; bounded, so a full pipeline stops the packer.
    pub(super) sealed: mpsc::Sender<SealedObject>,
    pub(super) pipeline: Arc<Pipeline>,
    /// Failed objects so far, counted by the committer.
    pub(super) failures: Arc<AtomicU64>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) open: OpenObject,
    pub(super) windows: Windows,
}

/// The object being filled.
#[derive(Default)]
pub(super) struct OpenObject {
    runs: BTreeMap<(TopicId, i32), OpenRun>,
    bytes: usize,
    /// Failures seen when the object got its first batch.
    generation: u64,
}

#[derive(Default)]
struct OpenRun {
    chunks: Vec<Bytes>,
    stats: RunStats,
    waiters: Vec<Waiter>,
    producer_batches: Vec<NewProducerBatch>,
}

/// Idempotent producers' windows, as the packer last knew them.
#[derive(Default)]
pub(super) struct Windows {
    producers: HashMap<(TopicId, i32, i64), Option<ProducerWindow>>,
    /// Failed objects when the windows were last valid.
    seen_failures: u64,
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
        loop {
            let submission = tokio::select! {
                next = rx.recv() => next,
                _ = sleep_until(deadline) => {
                    self.seal().await;
                    deadline = None;
                    continue;
                }
                _ = pipeline.idle.notified(), if seal_when_idle && !self.open.runs.is_empty() => {
                    if pipeline.is_idle() {
                        self.seal().await;
                        deadline = None;
                    }
                    continue;
                }
                _ = &mut stop => {
                    // Take what is already queued, then refuse more.
                    rx.close();
                    while let Ok((append, reply)) = rx.try_recv() {
                        self.add(append, reply).await;
                    }
                    break;
                }
            };
            let Some((append, reply)) = submission else {
                break;
            };
            self.add(append, reply).await;
            // Appends already queued join this object before an idle seal, so
            // requests that arrive together share one PUT.
            let idle_seal = seal_when_idle && rx.is_empty() && pipeline.is_idle();
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

    /// Adds an append to the open object, after the idempotence checks for
    /// appends from idempotent producers.
    async fn add(&mut self, append: Append, reply: Reply) {
        let failures = self.failures.load(Ordering::Acquire);
        if failures != self.windows.seen_failures {
            // Windows may hold batches of failed objects; reload from the catalog.
            self.windows.producers.clear();
            self.windows.seen_failures = failures;
        }
        let publish = match append.producer {
            None => None,
            Some(producer) => match self.check_producer(&append, &producer).await {
                Ok(Verdict::Accept(publish)) => Some(publish),
                Ok(Verdict::Duplicate(mut original)) => {
                    tokio::spawn(async move {
                        let outcome = match original.wait_for(Option::is_some).await {
                            Ok(outcome) => outcome
                                .clone()
                                .unwrap_or_else(|| Err(Arc::new(StorageError::ShuttingDown))),
                            Err(_) => Err(Arc::new(StorageError::ShuttingDown)),
                        };
                        let _ = reply.send(outcome);
                    });
                    return;
                }
                Ok(Verdict::Reject(e)) => {
                    let _ = reply.send(Err(Arc::new(e)));
                    return;
                }
                Err(e) => {
                    let _ = reply.send(Err(Arc::new(e)));
                    return;
                }
            },
        };
        if self.open.runs.is_empty() {
            self.open.generation = self.windows.seen_failures;
        }
        let run = self
            .open
            .runs
            .entry((append.topic, append.partition))
            .or_default();
        let offset_in_run = run.stats.offset_count;
        if let Some(producer) = append.producer {
            run.producer_batches.push(NewProducerBatch {
                producer_id: producer.producer_id,
                epoch: producer.epoch,
                first_sequence: producer.first_sequence,
                last_sequence: producer.last_sequence,
                offset_in_run,
            });
        }
        run.waiters.push(Waiter {
            offset_in_run,
            reply,
            publish,
        });
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

    async fn check_producer(
        &mut self,
        append: &Append,
        producer: &ProducerAppend,
    ) -> Result<Verdict, StorageError> {
        let key = (append.topic, append.partition, producer.producer_id);
        let window = match self.windows.producers.entry(key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(unknown) => {
                let committed = self
                    .catalog
                    .producer_batches(append.topic, append.partition, producer.producer_id)
                    .await?;
                unknown.insert(ProducerWindow::from_committed(&committed))
            }
        };
        Ok(ProducerWindow::check(window, producer))
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
            let (position, length) = encoder.add_run(topic, partition, &run.chunks, run.stats);
            runs.push(SealedRun {
                append: RunAppend {
                    topic,
                    partition,
                    position: position as i64,
                    length: length as i64,
                    record_offsets: run.stats.offset_count,
                    max_timestamp: run.stats.max_timestamp,
                    producer_batches: run.producer_batches,
                },
                waiters: run.waiters,
            });
        }
        let bytes = encoder.finish();
        self.metrics.objects_sealed.inc();
        let sealed = SealedObject::upload(&self.store, open.generation, bytes, runs);
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
