//! The uploader: each sealed object's PUT runs in its own task from the moment
//! it is sealed, and the committer settles the uploads in seal order. How many
//! are in flight is bounded by the channel from the packer to the committer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::RunAppend;
use tokio::task::JoinHandle;

use super::hedge::Hedger;
use super::Reply;
use crate::format::new_object_key;
use crate::StorageError;

pub(super) struct SealedRun {
    pub(super) append: RunAppend,
    /// One per append of `append`, in the same order.
    pub(super) replies: Vec<Reply>,
}

/// A sealed object, its upload under way.
pub(super) struct SealedObject {
    /// Failed objects the packer had seen when this one was started; if more
    /// have failed by its turn to commit, it fails too, so that no batch
    /// packed behind a failed one commits around the hole (a producer's
    /// pipelined batches are retried in order; Kafka's producers expect it).
    generation: u64,
    pub(super) key: Path,
    pub(super) bytes: Bytes,
    pub(super) runs: Vec<SealedRun>,
    upload: JoinHandle<Result<(), object_store::Error>>,
}

impl SealedObject {
    /// Names the object and starts its upload (hedged, given a `hedger`).
    pub(super) fn upload(
        store: &Arc<dyn ObjectStore>,
        hedger: Option<&Arc<Hedger>>,
        generation: u64,
        bytes: Bytes,
        runs: Vec<SealedRun>,
    ) -> Self {
        let key = Path::from(new_object_key());
        let upload = {
            let store = Arc::clone(store);
            let hedger = hedger.map(Arc::clone);
            let key = key.clone();
            let payload = PutPayload::from(bytes.clone());
            tokio::spawn(async move {
                match hedger {
                    Some(hedger) => hedger.put(store.as_ref(), &key, payload).await,
                    None => store.put(&key, payload).await.map(|_| ()),
                }
            })
        };
        SealedObject {
            generation,
            key,
            bytes,
            runs,
            upload,
        }
    }

    /// Whether the upload has ended, successfully or not.
    pub(super) fn upload_finished(&self) -> bool {
        self.upload.is_finished()
    }

    /// Waits for the upload. `None` (its producers answered with the error)
    /// if the upload failed, or if an earlier object failed after this one was
    /// started. A failed upload counts in `failures`.
    pub(super) async fn settle(mut self, failures: &AtomicU64) -> Option<SealedObject> {
        if self.generation < failures.load(Ordering::Acquire) {
            self.upload.abort();
            fail_all(self.runs, &Arc::new(StorageError::EarlierWriteFailed));
            return None;
        }
        let uploaded = match (&mut self.upload).await {
            Ok(result) => result.map_err(StorageError::Store),
            Err(join) => Err(StorageError::CorruptObject {
                key: self.key.to_string(),
                reason: format!("upload task failed: {join}"),
            }),
        };
        match uploaded {
            Ok(()) => Some(self),
            Err(e) => {
                static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                if let Some(suppressed) = WARNINGS.allow() {
                    tracing::error!(key = %self.key, error = %e, suppressed, "object upload failed; producers get an error");
                }
                failures.fetch_add(1, Ordering::AcqRel);
                fail_all(self.runs, &Arc::new(e));
                None
            }
        }
    }
}

/// Answers every append of these runs with `error`.
pub(super) fn fail_all(runs: Vec<SealedRun>, error: &Arc<StorageError>) {
    for run in runs {
        for reply in run.replies {
            reply.send(Err(Arc::clone(error)));
        }
    }
}
