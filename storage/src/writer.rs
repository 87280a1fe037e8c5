//! The write path: batches from all partitions are packed into one open object,
//! sealed by size or age, uploaded, committed to the catalog in one transaction,
//! and only then acknowledged.
//!
//! Three stages run concurrently:
//! 1. the packer task owns the open object and seals it when it reaches
//!    `flush_bytes` or when its first batch is `flush_interval` old;
//! 2. each sealed object uploads in its own task, at most `max_inflight_uploads`
//!    at once (a full pipeline stops the packer, which stops producers: back
//!    pressure instead of unbounded memory);
//! 3. the committer commits sealed objects strictly in seal order, so a producer's
//!    pipelined batches keep their order in every partition, then answers waiters,
//!    warms the read cache and wakes fetches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_metadata::{Catalog, NewObject, RunAppend, RunOutcome, TopicId};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::format::{new_object_key, ObjectEncoder, RunStats};
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
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            flush_bytes: 4 * 1024 * 1024,
            flush_interval: Duration::from_millis(10),
            max_inflight_uploads: 4,
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
}

/// The base offset the catalog assigned to an append's first batch.
pub type AppendOutcome = Result<i64, Arc<StorageError>>;

struct Waiter {
    /// Offset of this append within its run.
    offset_in_run: i64,
    reply: oneshot::Sender<AppendOutcome>,
}

#[derive(Default)]
struct OpenRun {
    chunks: Vec<Bytes>,
    stats: RunStats,
    waiters: Vec<Waiter>,
}

struct SealedRun {
    append: RunAppend,
    waiters: Vec<Waiter>,
}

struct SealedObject {
    key: Path,
    bytes: Bytes,
    runs: Vec<SealedRun>,
    upload: JoinHandle<Result<(), object_store::Error>>,
}

type Submission = (Append, oneshot::Sender<AppendOutcome>);

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
    ) -> Self {
        // Bounded so that a stalled store pushes back on producers.
        let (tx, rx) = mpsc::channel(1024);
        let (sealed_tx, sealed_rx) = mpsc::channel(config.max_inflight_uploads.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let committer = tokio::spawn(commit_in_order(sealed_rx, catalog, watermarks, reader));
        let packer = tokio::spawn(pack(rx, stop_rx, sealed_tx, store, config, committer));
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

    /// Queues an append and waits for its outcome.
    pub async fn append(&self, append: Append) -> AppendOutcome {
        let outcome = self.submit(append).await.map_err(Arc::new)?;
        outcome
            .await
            .unwrap_or_else(|_| Err(Arc::new(StorageError::ShuttingDown)))
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
    mut rx: mpsc::Receiver<Submission>,
    mut stop: oneshot::Receiver<()>,
    sealed_tx: mpsc::Sender<SealedObject>,
    store: Arc<dyn ObjectStore>,
    config: WriterConfig,
    committer: JoinHandle<()>,
) {
    let mut open: BTreeMap<(TopicId, i32), OpenRun> = BTreeMap::new();
    let mut open_bytes = 0usize;
    let mut deadline: Option<Instant> = None;
    loop {
        let submission = tokio::select! {
            next = rx.recv() => next,
            _ = sleep_until(deadline) => {
                seal(&mut open, &mut open_bytes, &sealed_tx, &store).await;
                deadline = None;
                continue;
            }
            _ = &mut stop => {
                // Take what is already queued, then refuse more.
                rx.close();
                while let Ok((append, reply)) = rx.try_recv() {
                    add(&mut open, &mut open_bytes, append, reply);
                }
                break;
            }
        };
        let Some((append, reply)) = submission else {
            break;
        };
        add(&mut open, &mut open_bytes, append, reply);
        if open_bytes >= config.flush_bytes {
            seal(&mut open, &mut open_bytes, &sealed_tx, &store).await;
            deadline = None;
        } else if deadline.is_none() {
            deadline = Some(Instant::now() + config.flush_interval);
        }
    }
    seal(&mut open, &mut open_bytes, &sealed_tx, &store).await;
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

fn add(
    open: &mut BTreeMap<(TopicId, i32), OpenRun>,
    open_bytes: &mut usize,
    append: Append,
    reply: oneshot::Sender<AppendOutcome>,
) {
    let run = open.entry((append.topic, append.partition)).or_default();
    run.waiters.push(Waiter {
        offset_in_run: run.stats.offset_count,
        reply,
    });
    run.stats.batch_count += append.batch_count;
    run.stats.offset_count += append.offset_count;
    run.stats.min_timestamp = run.stats.min_timestamp.min(append.min_timestamp);
    run.stats.max_timestamp = run.stats.max_timestamp.max(append.max_timestamp);
    *open_bytes += append.batches.len();
    run.chunks.push(append.batches);
}

/// Turns the open runs into an object (runs in topic/partition order, which is
/// also the order the catalog locks partition rows in) and starts its upload.
async fn seal(
    open: &mut BTreeMap<(TopicId, i32), OpenRun>,
    open_bytes: &mut usize,
    sealed_tx: &mpsc::Sender<SealedObject>,
    store: &Arc<dyn ObjectStore>,
) {
    if open.is_empty() {
        return;
    }
    let mut encoder = ObjectEncoder::with_capacity(*open_bytes);
    let mut runs = Vec::with_capacity(open.len());
    for ((topic, partition), run) in std::mem::take(open) {
        let (position, length) = encoder.add_run(topic, partition, &run.chunks, run.stats);
        runs.push(SealedRun {
            append: RunAppend {
                topic,
                partition,
                position: position as i64,
                length: length as i64,
                record_offsets: run.stats.offset_count,
                max_timestamp: run.stats.max_timestamp,
            },
            waiters: run.waiters,
        });
    }
    *open_bytes = 0;
    let bytes = encoder.finish();
    let key = Path::from(new_object_key());
    let upload = {
        let store = Arc::clone(store);
        let key = key.clone();
        let payload = PutPayload::from(bytes.clone());
        tokio::spawn(async move { store.put(&key, payload).await.map(|_| ()) })
    };
    let sealed = SealedObject {
        key,
        bytes,
        runs,
        upload,
    };
    if let Err(mpsc::error::SendError(sealed)) = sealed_tx.send(sealed).await {
        fail_all(sealed.runs, &Arc::new(StorageError::ShuttingDown));
    }
}

async fn commit_in_order(
    mut sealed_rx: mpsc::Receiver<SealedObject>,
    catalog: Arc<dyn Catalog>,
    watermarks: Arc<Watermarks>,
    reader: Arc<ObjectReader>,
) {
    while let Some(sealed) = sealed_rx.recv().await {
        let uploaded = match sealed.upload.await {
            Ok(result) => result.map_err(StorageError::Store),
            Err(join) => Err(StorageError::CorruptObject {
                key: sealed.key.to_string(),
                reason: format!("upload task failed: {join}"),
            }),
        };
        if let Err(e) = uploaded {
            tracing::error!(key = %sealed.key, error = %e, "object upload failed; producers get an error");
            fail_all(sealed.runs, &Arc::new(e));
            continue;
        }
        let object = NewObject {
            key: sealed.key.to_string(),
            size_bytes: sealed.bytes.len() as i64,
        };
        let appends: Vec<RunAppend> = sealed.runs.iter().map(|r| r.append.clone()).collect();
        let outcomes = match catalog.commit_object(&object, &appends).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(key = %sealed.key, error = %e, "catalog commit failed; producers get an error");
                fail_all(sealed.runs, &Arc::new(StorageError::Catalog(e)));
                continue;
            }
        };
        let mut committed = Vec::with_capacity(outcomes.len());
        for (run, outcome) in sealed.runs.into_iter().zip(outcomes) {
            match outcome {
                RunOutcome::Appended { base_offset } => {
                    committed.push((run.append.clone(), base_offset));
                    for waiter in run.waiters {
                        let _ = waiter.reply.send(Ok(base_offset + waiter.offset_in_run));
                    }
                }
                RunOutcome::UnknownPartition => {
                    let e = Arc::new(StorageError::UnknownPartition);
                    for waiter in run.waiters {
                        let _ = waiter.reply.send(Err(Arc::clone(&e)));
                    }
                }
            }
        }
        reader.cache_committed(&object.key, &sealed.bytes).await;
        for (run, base_offset) in committed {
            watermarks
                .advance(run.topic, run.partition, base_offset + run.record_offsets)
                .await;
        }
    }
}

fn fail_all(runs: Vec<SealedRun>, error: &Arc<StorageError>) {
    for run in runs {
        for waiter in run.waiters {
            let _ = waiter.reply.send(Err(Arc::clone(error)));
        }
    }
}
