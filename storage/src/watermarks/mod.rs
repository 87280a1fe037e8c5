//! The agent's view of each partition's offsets (log start, high watermark), and
//! the notifications that wake fetches waiting for new data.
//!
//! Entries are loaded from the catalog on first use and then advanced by this
//! agent's own commits, which are the only writes while an agent is alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use streamhouse_metadata::{Catalog, PartitionOffsets, TopicId};
use tokio::sync::watch;

type Key = (TopicId, i32);

pub struct Watermarks {
    catalog: Arc<dyn Catalog>,
    /// A std Mutex: it is never held across an await.
    marks: Mutex<HashMap<Key, watch::Sender<PartitionOffsets>>>,
    /// Serialises catalog loads with advances, so a load that read the catalog
    /// just before a commit cannot overwrite the commit's newer high watermark.
    load_lock: tokio::sync::Mutex<()>,
}

impl Watermarks {
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Watermarks {
            catalog,
            marks: Mutex::new(HashMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, key: &Key) -> Option<PartitionOffsets> {
        self.lock().get(key).map(|tx| *tx.borrow())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, watch::Sender<PartitionOffsets>>> {
        // A panic while holding this lock cannot leave the map half-updated (each
        // operation is a single insert/update), so a poisoned lock is still usable.
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partition's offsets; `None` if the partition does not exist.
    pub async fn get(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> streamhouse_metadata::Result<Option<PartitionOffsets>> {
        let key = (topic, partition);
        if let Some(offsets) = self.cached(&key) {
            return Ok(Some(offsets));
        }
        let _guard = self.load_lock.lock().await;
        if let Some(offsets) = self.cached(&key) {
            return Ok(Some(offsets));
        }
        let loaded = self.catalog.partition_offsets(topic, partition).await?;
        if let Some(offsets) = loaded {
            self.lock().insert(key, watch::channel(offsets).0);
        }
        Ok(loaded)
    }

    /// A receiver that changes whenever the partition's offsets change. Loads the
    /// partition first if needed; `None` if it does not exist.
    pub async fn subscribe(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> streamhouse_metadata::Result<Option<watch::Receiver<PartitionOffsets>>> {
        if self.get(topic, partition).await?.is_none() {
            return Ok(None);
        }
        Ok(self
            .lock()
            .get(&(topic, partition))
            .map(|tx| tx.subscribe()))
    }

    /// Records a commit that moved the high watermark to `high_watermark`.
    pub async fn advance(&self, topic: TopicId, partition: i32, high_watermark: i64) {
        let _guard = self.load_lock.lock().await;
        if let Some(tx) = self.lock().get(&(topic, partition)) {
            tx.send_if_modified(|offsets| {
                let moved = high_watermark > offsets.high_watermark;
                if moved {
                    offsets.high_watermark = high_watermark;
                }
                moved
            });
        }
    }

    /// Records a new log start offset (retention, DeleteRecords).
    pub async fn set_log_start(&self, topic: TopicId, partition: i32, log_start_offset: i64) {
        let _guard = self.load_lock.lock().await;
        if let Some(tx) = self.lock().get(&(topic, partition)) {
            tx.send_if_modified(|offsets| {
                let moved = log_start_offset > offsets.log_start_offset;
                if moved {
                    offsets.log_start_offset = log_start_offset;
                }
                moved
            });
        }
    }

    /// Drops every partition of a deleted topic; waiting fetches see their
    /// channel close and answer at once.
    pub fn forget_topic(&self, topic: TopicId) {
        self.lock().retain(|(t, _), _| *t != topic);
    }
}
