//! The write path: batches from all partitions are packed into one open object,
//! sealed by size or age, uploaded, committed to the catalog in one transaction,
//! and only then acknowledged.
//!
//! Three stages run concurrently:
//! 1. the packer task owns the open object and seals it when it reaches
//!    `flush_bytes`, when its first batch is `flush_interval` old, or (with
//!    `seal_when_idle`) as soon as no earlier object is uploading or
//!    committing;
//! 2. each sealed object uploads in its own task, at most `max_inflight_uploads`
//!    at once (a full pipeline stops the packer, which stops producers: back
//!    pressure instead of unbounded memory);
//! 3. the committer commits sealed objects strictly in seal order, so a producer's
//!    pipelined batches keep their order in every partition, then answers waiters,
//!    warms the read cache and wakes fetches. Objects whose uploads finished
//!    while it was busy are committed together in one transaction (group
//!    commit), so a slow catalog costs latency but not throughput.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_metadata::producers::NewProducerBatch;
use streamhouse_metadata::{Catalog, NewObject, ObjectCommit, RunAppend, RunOutcome, TopicId};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::format::{new_object_key, ObjectEncoder, RunStats};
use crate::metrics::Metrics;
use crate::producers::{OutcomeSender, ProducerAppend, ProducerWindow, Verdict};
use crate::reader::ObjectReader;
use crate::{StorageError, Watermarks};

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
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            flush_bytes: 4 * 1024 * 1024,
            flush_interval: Duration::from_millis(10),
            max_inflight_uploads: 4,
            seal_when_idle: true,
        }
    }
}

/// One partition's batches from one produce request, already validated.
#[derive(Debug, Clone)]
pub struct Append {
    pub topic: TopicId,
    pub partition: i32,
    /// One or more whole record batches, as the client sent them.
    pub batches: Bytes,
    pub batch_count: u32,
    /// Offsets the batches occupy (sum of `lastOffsetDelta + 1`).
    pub offset_count: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Set when the batches come from an idempotent producer.
    pub producer: Option<ProducerAppend>,
}

/// The base offset the catalog assigned to an append's first batch.
pub type AppendOutcome = Result<i64, Arc<StorageError>>;

struct Waiter {
    /// Offset of this append within its run.
    offset_in_run: i64,
    reply: oneshot::Sender<AppendOutcome>,
    /// For idempotent appends: where retries of the same batch wait.
    publish: Option<OutcomeSender>,
}

impl Waiter {
    fn finish(self, outcome: AppendOutcome) {
        if let Some(publish) = self.publish {
            publish.send_replace(Some(outcome.clone()));
        }
        let _ = self.reply.send(outcome);
    }
}

#[derive(Default)]
struct OpenRun {
    chunks: Vec<Bytes>,
    stats: RunStats,
    waiters: Vec<Waiter>,
    producer_batches: Vec<NewProducerBatch>,
}

/// The open object and what the packer knows while filling it.
struct Packer {
    open: BTreeMap<(TopicId, i32), OpenRun>,
    open_bytes: usize,
    /// Failures seen when the open object got its first batch.
    open_generation: u64,
    producers: HashMap<(TopicId, i32, i64), Option<ProducerWindow>>,
    /// Failed objects so far, as last seen by the packer.
    seen_failures: u64,
    failures: Arc<AtomicU64>,
    catalog: Arc<dyn Catalog>,
    metrics: Arc<Metrics>,
    pipeline: Arc<Pipeline>,
}

struct SealedRun {
    append: RunAppend,
    waiters: Vec<Waiter>,
}

struct SealedObject {
    /// Failed objects the packer had seen when this one was started; if more
    /// have failed by its turn to commit, its producer checks were made against
    /// batches that never landed, so it fails too.
    generation: u64,
    key: Path,
    bytes: Bytes,
    runs: Vec<SealedRun>,
    upload: JoinHandle<Result<(), object_store::Error>>,
}

type Submission = (Append, oneshot::Sender<AppendOutcome>);

/// Objects between seal and the end of their commit, shared by the packer
/// (which counts them in) and the committer (which counts them out).
#[derive(Default)]
struct Pipeline {
    busy: AtomicUsize,
    /// Signalled when `busy` drops to zero.
    idle: Notify,
}

impl Pipeline {
    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    fn sealed(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    fn finished(&self, objects: usize) {
        if objects > 0 && self.busy.fetch_sub(objects, Ordering::AcqRel) == objects {
            self.idle.notify_one();
        }
    }
}

/// Handle to the agent's write path. Cheap to share behind an `Arc`.
pub struct ObjectWriter {
    submissions: mpsc::Sender<Submission>,
    /// Taken by `shutdown`; `None` afterwards.
    packer: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
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
        let (sealed_tx, sealed_rx) = mpsc::channel(config.max_inflight_uploads.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let failures = Arc::new(AtomicU64::new(0));
        let pipeline = Arc::new(Pipeline::default());
        let committer = tokio::spawn(commit_in_order(
            sealed_rx,
            Arc::clone(&pipeline),
            Arc::clone(&catalog),
            watermarks,
            reader,
            Arc::clone(&failures),
            Arc::clone(&metrics),
        ));
        let packer = Packer {
            open: BTreeMap::new(),
            open_bytes: 0,
            open_generation: 0,
            producers: HashMap::new(),
            seen_failures: 0,
            failures,
            catalog,
            metrics,
            pipeline,
        };
        let packer = tokio::spawn(pack(
            packer, rx, stop_rx, sealed_tx, store, config, committer,
        ));
        ObjectWriter {
            submissions: tx,
            packer: Mutex::new(Some((stop_tx, packer))),
        }
    }

    /// Queues an append. Appends queued by one caller are stored in the order
    /// they were queued. The receiver resolves once the append is durable and
    /// committed (or failed); dropping it does not cancel the append.
    pub async fn submit(
        &self,
        append: Append,
    ) -> Result<oneshot::Receiver<AppendOutcome>, StorageError> {
        let (reply, outcome) = oneshot::channel();
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

async fn pack(
    mut packer: Packer,
    mut rx: mpsc::Receiver<Submission>,
    mut stop: oneshot::Receiver<()>,
    sealed_tx: mpsc::Sender<SealedObject>,
    store: Arc<dyn ObjectStore>,
    config: WriterConfig,
    committer: JoinHandle<()>,
) {
    let mut deadline: Option<Instant> = None;
    let pipeline = Arc::clone(&packer.pipeline);
    loop {
        let submission = tokio::select! {
            next = rx.recv() => next,
            _ = sleep_until(deadline) => {
                packer.seal(&sealed_tx, &store).await;
                deadline = None;
                continue;
            }
            _ = pipeline.idle.notified(), if config.seal_when_idle && !packer.open.is_empty() => {
                if pipeline.is_idle() {
                    packer.seal(&sealed_tx, &store).await;
                    deadline = None;
                }
                continue;
            }
            _ = &mut stop => {
                // Take what is already queued, then refuse more.
                rx.close();
                while let Ok((append, reply)) = rx.try_recv() {
                    packer.add(append, reply).await;
                }
                break;
            }
        };
        let Some((append, reply)) = submission else {
            break;
        };
        packer.add(append, reply).await;
        // Appends already queued join this object before an idle seal, so
        // requests that arrive together share one PUT.
        let idle_seal = config.seal_when_idle && rx.is_empty() && pipeline.is_idle();
        if packer.open_bytes >= config.flush_bytes || (idle_seal && !packer.open.is_empty()) {
            packer.seal(&sealed_tx, &store).await;
            deadline = None;
        } else if deadline.is_none() && !packer.open.is_empty() {
            deadline = Some(Instant::now() + config.flush_interval);
        }
    }
    packer.seal(&sealed_tx, &store).await;
    drop(sealed_tx);
    if let Err(e) = committer.await {
        tracing::error!(error = %e, "object committer task failed");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Packer {
    /// Adds an append to the open object, after the idempotence checks for
    /// appends from idempotent producers.
    async fn add(&mut self, append: Append, reply: oneshot::Sender<AppendOutcome>) {
        let failures = self.failures.load(Ordering::Acquire);
        if failures != self.seen_failures {
            // Windows may hold batches of failed objects; reload from the catalog.
            self.producers.clear();
            self.seen_failures = failures;
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
        if self.open.is_empty() {
            self.open_generation = self.seen_failures;
        }
        let run = self
            .open
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
            .fetch_add(u64::from(append.batch_count), Ordering::Relaxed);
        run.stats.batch_count += append.batch_count;
        run.stats.offset_count += append.offset_count;
        run.stats.min_timestamp = run.stats.min_timestamp.min(append.min_timestamp);
        run.stats.max_timestamp = run.stats.max_timestamp.max(append.max_timestamp);
        self.open_bytes += append.batches.len();
        run.chunks.push(append.batches);
    }

    async fn check_producer(
        &mut self,
        append: &Append,
        producer: &ProducerAppend,
    ) -> Result<Verdict, StorageError> {
        let key = (append.topic, append.partition, producer.producer_id);
        if !self.producers.contains_key(&key) {
            let committed = self
                .catalog
                .producer_batches(append.topic, append.partition, producer.producer_id)
                .await?;
            self.producers
                .insert(key, ProducerWindow::from_committed(&committed));
        }
        let window = self.producers.entry(key).or_insert(None);
        Ok(ProducerWindow::check(window, producer))
    }

    /// Turns the open runs into an object (runs in topic/partition order, which
    /// is also the order the catalog locks partition rows in) and starts its
    /// upload.
    async fn seal(&mut self, sealed_tx: &mpsc::Sender<SealedObject>, store: &Arc<dyn ObjectStore>) {
        if self.open.is_empty() {
            return;
        }
        let mut encoder = ObjectEncoder::for_runs(self.open_bytes, self.open.len());
        let mut runs = Vec::with_capacity(self.open.len());
        for ((topic, partition), run) in std::mem::take(&mut self.open) {
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
        self.open_bytes = 0;
        let bytes = encoder.finish();
        self.metrics.objects_sealed.fetch_add(1, Ordering::Relaxed);
        let key = Path::from(new_object_key());
        let upload = {
            let store = Arc::clone(store);
            let key = key.clone();
            let payload = PutPayload::from(bytes.clone());
            tokio::spawn(async move { store.put(&key, payload).await.map(|_| ()) })
        };
        let sealed = SealedObject {
            generation: self.open_generation,
            key,
            bytes,
            runs,
            upload,
        };
        self.pipeline.sealed();
        if let Err(mpsc::error::SendError(sealed)) = sealed_tx.send(sealed).await {
            self.pipeline.finished(1);
            fail_all(sealed.runs, &Arc::new(StorageError::ShuttingDown));
        }
    }
}

async fn commit_in_order(
    mut sealed_rx: mpsc::Receiver<SealedObject>,
    pipeline: Arc<Pipeline>,
    catalog: Arc<dyn Catalog>,
    watermarks: Arc<Watermarks>,
    reader: Arc<ObjectReader>,
    failures: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
) {
    let mut waiting: Option<SealedObject> = None;
    loop {
        let first = match waiting.take() {
            Some(sealed) => sealed,
            None => match sealed_rx.recv().await {
                Some(sealed) => sealed,
                None => break,
            },
        };
        let mut group = Vec::new();
        let mut taken = 1;
        group.extend(settle_upload(first, &failures).await);
        // Group commit: the objects behind it whose uploads have finished too
        // (they did while we waited, or while the previous commit ran) share its
        // transaction. The first unfinished one waits for the next round, so
        // commits stay in seal order.
        loop {
            match sealed_rx.try_recv() {
                Ok(sealed) if sealed.upload.is_finished() => {
                    taken += 1;
                    group.extend(settle_upload(sealed, &failures).await);
                }
                Ok(sealed) => {
                    waiting = Some(sealed);
                    break;
                }
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            commit_group(group, &*catalog, &watermarks, &reader, &failures, &metrics).await;
        }
        pipeline.finished(taken);
    }
}

/// Waits for an object's upload. `None` (its producers answered with the error)
/// if the upload failed, or if an earlier object failed after this one was
/// started: its idempotence checks counted on batches that never landed.
async fn settle_upload(mut sealed: SealedObject, failures: &AtomicU64) -> Option<SealedObject> {
    if sealed.generation < failures.load(Ordering::Acquire) {
        sealed.upload.abort();
        fail_all(sealed.runs, &Arc::new(StorageError::EarlierWriteFailed));
        return None;
    }
    let uploaded = match (&mut sealed.upload).await {
        Ok(result) => result.map_err(StorageError::Store),
        Err(join) => Err(StorageError::CorruptObject {
            key: sealed.key.to_string(),
            reason: format!("upload task failed: {join}"),
        }),
    };
    match uploaded {
        Ok(()) => Some(sealed),
        Err(e) => {
            tracing::error!(key = %sealed.key, error = %e, "object upload failed; producers get an error");
            failures.fetch_add(1, Ordering::AcqRel);
            fail_all(sealed.runs, &Arc::new(e));
            None
        }
    }
}

/// Commits uploaded objects in one catalog transaction, then answers their
/// producers, caches the objects and wakes fetches.
async fn commit_group(
    group: Vec<SealedObject>,
    catalog: &dyn Catalog,
    watermarks: &Watermarks,
    reader: &ObjectReader,
    failures: &AtomicU64,
    metrics: &Metrics,
) {
    let commits: Vec<ObjectCommit> = group
        .iter()
        .map(|sealed| ObjectCommit {
            object: NewObject {
                key: sealed.key.to_string(),
                size_bytes: sealed.bytes.len() as i64,
            },
            runs: sealed.runs.iter().map(|r| r.append.clone()).collect(),
        })
        .collect();
    let started = std::time::Instant::now();
    let committed = catalog.commit_objects(&commits).await;
    metrics.catalog_commit_latency.record(started.elapsed());
    let outcomes = match committed {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(objects = group.len(), error = %e, "catalog commit failed; producers get an error");
            failures.fetch_add(1, Ordering::AcqRel);
            let e = Arc::new(StorageError::Catalog(e));
            for sealed in group {
                fail_all(sealed.runs, &e);
            }
            return;
        }
    };
    metrics
        .objects_committed
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    for (sealed, outcomes) in group.into_iter().zip(outcomes) {
        let mut advanced = Vec::with_capacity(outcomes.len());
        for (run, outcome) in sealed.runs.into_iter().zip(outcomes) {
            match outcome {
                RunOutcome::Appended { base_offset } => {
                    advanced.push((
                        run.append.topic,
                        run.append.partition,
                        base_offset + run.append.record_offsets,
                    ));
                    for waiter in run.waiters {
                        let offset = base_offset + waiter.offset_in_run;
                        waiter.finish(Ok(offset));
                    }
                }
                RunOutcome::UnknownPartition => {
                    let e = Arc::new(StorageError::UnknownPartition);
                    for waiter in run.waiters {
                        waiter.finish(Err(Arc::clone(&e)));
                    }
                }
            }
        }
        reader
            .cache_committed(sealed.key.as_ref(), &sealed.bytes)
            .await;
        for (topic, partition, high_watermark) in advanced {
            watermarks.advance(topic, partition, high_watermark).await;
        }
    }
}

fn fail_all(runs: Vec<SealedRun>, error: &Arc<StorageError>) {
    for run in runs {
        for waiter in run.waiters {
            waiter.finish(Err(Arc::clone(error)));
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
