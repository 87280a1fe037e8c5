//! The committer: the task that commits sealed objects to the catalog strictly
//! in seal order, several at once when their uploads have all finished (group
//! commit), then answers their appends, caches the objects for readers and
//! advances the partitions' high watermarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::{AppendOutcome, Catalog, NewObject, ObjectCommit, RunOutcome};
use tokio::sync::mpsc;

use super::uploader::{fail_all, SealedObject};
use super::{Appended, Pipeline};
use crate::metrics::Metrics;
use crate::reader::ObjectReader;
use crate::{StorageError, Watermarks};

/// A catalog commit taking at least this long is logged (a healthy one takes
/// milliseconds).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What the committer task owns.
pub(super) struct Committer {
    /// From the packer, in seal order.
    pub(super) sealed: mpsc::Receiver<SealedObject>,
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) catalog: Arc<dyn Catalog>,
    pub(super) watermarks: Arc<Watermarks>,
    pub(super) reader: Arc<ObjectReader>,
    /// Failed objects so far; read by the packer and the uploads.
    pub(super) failures: Arc<AtomicU64>,
    pub(super) metrics: Arc<Metrics>,
}

impl Committer {
    /// Commits until the packer drops its end of the channel.
    pub(super) async fn run(mut self) {
        let mut waiting: Option<SealedObject> = None;
        loop {
            let first = match waiting.take() {
                Some(sealed) => sealed,
                None => match self.sealed.recv().await {
                    Some(sealed) => sealed,
                    None => break,
                },
            };
            let mut group = Vec::new();
            let mut taken = 1;
            group.extend(first.settle(&self.failures).await);
            // Group commit: the objects behind it whose uploads have finished too
            // (they did while we waited, or while the previous commit ran) share its
            // transaction. The first unfinished one waits for the next round, so
            // commits stay in seal order.
            loop {
                match self.sealed.try_recv() {
                    Ok(sealed) if sealed.upload_finished() => {
                        taken += 1;
                        group.extend(sealed.settle(&self.failures).await);
                    }
                    Ok(sealed) => {
                        waiting = Some(sealed);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group).await;
            }
            self.pipeline.finished(taken);
        }
    }

    /// Commits uploaded objects in one catalog transaction, then answers their
    /// producers, caches the objects and wakes fetches.
    async fn commit_group(&self, group: Vec<SealedObject>) {
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
        let committed = self.catalog.commit_objects(&commits).await;
        let elapsed = started.elapsed();
        self.metrics.catalog_commit_latency.record(elapsed);
        if elapsed >= SLOW_COMMIT {
            // Producers wait this long for their acks: worth a line, but at
            // most one a period while the catalog stays slow.
            static SLOW: Throttle = Throttle::new(WARN_EVERY);
            if let Some(suppressed) = SLOW.allow() {
                tracing::warn!(
                    objects = group.len(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    suppressed,
                    "slow catalog commit"
                );
            }
        }
        let outcomes = match committed {
            Ok(outcomes) => outcomes,
            Err(e) => {
                static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                if let Some(suppressed) = WARNINGS.allow() {
                    tracing::error!(objects = group.len(), error = %e, suppressed, "catalog commit failed; producers get an error");
                }
                self.failures.fetch_add(1, Ordering::AcqRel);
                let e = Arc::new(StorageError::Catalog(e));
                for sealed in group {
                    fail_all(sealed.runs, &e);
                }
                return;
            }
        };
        self.metrics.objects_committed.inc_by(group.len() as u64);
        for (sealed, outcomes) in group.into_iter().zip(outcomes) {
            let mut advanced = Vec::with_capacity(outcomes.len());
            for (run, outcome) in sealed.runs.into_iter().zip(outcomes) {
                match outcome {
                    RunOutcome::Committed(appends) => {
                        let mut high_watermark = None;
                        let answers = run.replies.into_iter().zip(&run.append.appends);
                        for ((reply, append), outcome) in answers.zip(appends) {
                            reply.send(match outcome {
                                AppendOutcome::Appended {
                                    base_offset,
                                    append_time_ms,
                                } => {
                                    high_watermark = Some(base_offset + append.offset_count);
                                    Ok(Appended {
                                        base_offset,
                                        append_time_ms,
                                    })
                                }
                                AppendOutcome::Duplicate {
                                    base_offset,
                                    append_time_ms,
                                } => Ok(Appended {
                                    base_offset,
                                    append_time_ms,
                                }),
                                AppendOutcome::Refused(e) => {
                                    Err(Arc::new(StorageError::Producer(e)))
                                }
                            });
                        }
                        if let Some(high_watermark) = high_watermark {
                            advanced.push((run.append.topic, run.append.partition, high_watermark));
                        }
                    }
                    RunOutcome::UnknownPartition => {
                        let e = Arc::new(StorageError::UnknownPartition);
                        for reply in run.replies {
                            reply.send(Err(Arc::clone(&e)));
                        }
                    }
                }
            }
            self.reader
                .cache_committed(sealed.key.as_ref(), &sealed.bytes)
                .await;
            for (topic, partition, high_watermark) in advanced {
                self.watermarks
                    .advance(topic, partition, high_watermark)
                    .await;
            }
        }
    }
}
