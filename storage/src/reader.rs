//! The read path: offset ranges of a partition served from recent objects.
//!
//! Objects are read (and cached) whole: one GET serves every partition's run in
//! the object, which is what a catch-up consumer of many partitions needs. Objects this agent wrote enter the cache at commit, so tailing consumers
//! never touch the store. Concurrent misses for the same object share one GET.
//!
//! Runs are stored with the client's base offsets; the catalog's offsets are
//! written into each batch header on the way out.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use moka::future::Cache;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use streamhouse_metadata::IndexEntry;
use streamhouse_protocol::batch;

use crate::StorageError;

#[derive(Debug, Clone)]
pub struct ReadCacheConfig {
    /// Bytes of object data kept in memory.
    pub capacity_bytes: u64,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        ReadCacheConfig {
            capacity_bytes: 256 * 1024 * 1024,
        }
    }
}

pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    /// Whole objects by key.
    cache: Cache<String, Bytes>,
}

impl ObjectReader {
    pub fn new(store: Arc<dyn ObjectStore>, config: &ReadCacheConfig) -> Self {
        let cache = Cache::builder()
            .max_capacity(config.capacity_bytes)
            .weigher(|_key: &String, object: &Bytes| {
                u32::try_from(object.len()).unwrap_or(u32::MAX)
            })
            .build();
        ObjectReader { store, cache }
    }

    /// Makes a just-committed object readable without a GET.
    pub async fn cache_committed(&self, key: &str, object: &Bytes) {
        self.cache.insert(key.to_string(), object.clone()).await;
    }

    /// The raw bytes of one index entry's run, from the cache or the store.
    async fn run_bytes(&self, entry: &IndexEntry) -> Result<Bytes, StorageError> {
        let position =
            u64::try_from(entry.position).map_err(|_| corrupt(entry, "negative position"))?;
        let length = u64::try_from(entry.length).map_err(|_| corrupt(entry, "negative length"))?;
        let store = Arc::clone(&self.store);
        let path = Path::from(entry.object_key.as_str());
        // Objects are bounded by the write path's flush size, so they are read
        // whole: one GET serves every partition's run in them.
        let object = self
            .cache
            .try_get_with(entry.object_key.clone(), async move {
                store.get(&path).await?.bytes().await
            })
            .await
            .map_err(|e: Arc<object_store::Error>| StorageError::ObjectRead {
                key: entry.object_key.clone(),
                reason: e.to_string(),
            })?;
        slice(&object, position, length).ok_or_else(|| corrupt(entry, "run outside the object"))
    }

    /// Reads whole batches of one partition starting with the batch that holds
    /// `from_offset`, following `entries` (consecutive index entries), until
    /// `max_bytes` would be exceeded. At least one batch is returned when any
    /// exists, even if it is larger than `max_bytes`, as Kafka does. The batches
    /// carry their assigned base offsets.
    pub async fn read(
        &self,
        entries: &[IndexEntry],
        from_offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, StorageError> {
        let mut out = BytesMut::new();
        'entries: for entry in entries {
            let run = self.run_bytes(entry).await?;
            let ranges = batch::split(&run).map_err(|e| corrupt(entry, &e.to_string()))?;
            let mut base_offset = entry.base_offset;
            for range in ranges {
                let header = batch::BatchHeader::parse(&run[range.clone()])
                    .map_err(|e| corrupt(entry, &e.to_string()))?;
                let batch_base = base_offset;
                base_offset += header.offset_count();
                if base_offset <= from_offset {
                    continue;
                }
                if !out.is_empty() && out.len() + range.len() > max_bytes {
                    break 'entries;
                }
                let at = out.len();
                out.extend_from_slice(&run[range]);
                batch::set_base_offset(&mut out[at..], batch_base);
                if out.len() >= max_bytes {
                    break 'entries;
                }
            }
            if base_offset != entry.last_offset + 1 {
                return Err(corrupt(entry, "batches do not fill the entry's offsets"));
            }
        }
        Ok(out.freeze())
    }
}

fn slice(object: &Bytes, position: u64, length: u64) -> Option<Bytes> {
    let to = position.checked_add(length)?;
    if to > object.len() as u64 {
        return None;
    }
    Some(object.slice(position as usize..to as usize))
}

fn corrupt(entry: &IndexEntry, reason: &str) -> StorageError {
    StorageError::CorruptObject {
        key: entry.object_key.clone(),
        reason: format!("entry at offset {}: {reason}", entry.base_offset),
    }
}
