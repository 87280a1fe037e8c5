//! The read path: offset ranges of a partition served from recent objects.
//!
//! Objects are read (and cached) whole: one GET serves every partition's run in
//! the object, which is what a catch-up consumer of many partitions needs.
//! Objects this agent wrote enter the cache at commit, so tailing consumers
//! never touch the store. Concurrent misses for the same object share one GET.
//!
//! A read that needs several objects starts their GETs together (at most
//! [`GETS_IN_FLIGHT`], in index order) and consumes them in order, so a fetch
//! pays about one GET latency per [`GETS_IN_FLIGHT`] objects instead of one per
//! object. A read that missed the cache (a catch-up reader) also warms the
//! objects its next read will probably need in the background (see
//! [`read_ahead`]).
//!
//! Runs are stored with the client's base offsets; the catalog's offsets are
//! written into a copy of each batch header on the way out, and the rest of
//! the batch stays a slice of the cached object ([`Batches`]): a read copies
//! no records.

mod read_ahead;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use streamhouse_metadata::IndexEntry;
use streamhouse_protocol::batch;
use streamhouse_protocol::batches::Batches;
use tokio::sync::Semaphore;

use crate::StorageError;

/// GETs one read keeps in flight. Catch-up reads of small objects are bound by
/// GET latency, not bandwidth: a 1 MiB partition budget over objects that hold
/// 64 KiB of the partition each needs 16 objects. Eight in flight turn 16 round
/// trips into 2 while keeping a fetch from flooding the store.
const GETS_IN_FLIGHT: usize = 8;

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

/// A whole object in the cache.
#[derive(Clone)]
struct Cached {
    bytes: Bytes,
    /// Brought in by read-ahead: a reader that finds it was predicted right, so
    /// it reads ahead again (see [`read_ahead`]).
    read_ahead: bool,
}

pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    /// Whole objects by key.
    cache: Cache<String, Cached>,
    /// Objects warmed after a read that missed; see [`read_ahead`].
    read_ahead_objects: usize,
    /// Read-ahead GETs in flight across the agent.
    read_ahead_permits: Arc<Semaphore>,
}

impl ObjectReader {
    pub fn new(store: Arc<dyn ObjectStore>, config: &ReadCacheConfig) -> Self {
        // LRU, not moka's default TinyLFU: TinyLFU admits a new object only
        // if it looks more popular than the one it would evict, so once the
        // cache is full of objects every partition of a catch-up read used,
        // the next objects (each wanted once per partition, soon) are turned
        // away and read again by each partition that wants them, and an
        // object just committed may not enter at all. A log's reads follow
        // recency: the newest objects are the ones wanted next.
        let cache = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .max_capacity(config.capacity_bytes)
            .weigher(|_key: &String, object: &Cached| {
                u32::try_from(object.bytes.len()).unwrap_or(u32::MAX)
            })
            .build();
        ObjectReader {
            store,
            cache,
            read_ahead_objects: read_ahead::OBJECTS,
            read_ahead_permits: Arc::new(Semaphore::new(read_ahead::IN_FLIGHT)),
        }
    }

    /// Sets how many objects a read that missed the cache warms for the next
    /// one (0 turns read-ahead off).
    pub fn with_read_ahead(mut self, objects: usize) -> Self {
        self.read_ahead_objects = objects;
        self
    }

    /// Makes a just-committed object readable without a GET.
    pub async fn cache_committed(&self, key: &str, object: &Bytes) {
        let cached = Cached {
            bytes: object.clone(),
            read_ahead: false,
        };
        self.cache.insert(key.to_string(), cached).await;
    }

    /// The object under `key` if the cache holds it (never a GET).
    pub async fn cached(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key).await.map(|cached| cached.bytes)
    }

    /// One index entry's object from the cache or the store, and whether this
    /// read found it by a miss or by read-ahead (the signs of a sequential
    /// reader that read-ahead can help).
    async fn object(&self, entry: &IndexEntry) -> Result<(Bytes, bool), StorageError> {
        let fetched = self
            .cache
            .entry_by_ref(&entry.object_key)
            .or_try_insert_with(get_object(
                Arc::clone(&self.store),
                &entry.object_key,
                false,
            ))
            .await
            .map_err(|e: Arc<object_store::Error>| StorageError::ObjectRead {
                key: entry.object_key.clone(),
                reason: e.to_string(),
            })?;
        let missed = fetched.is_fresh() || fetched.value().read_ahead;
        Ok((fetched.into_value().bytes, missed))
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
    ) -> Result<Batches, StorageError> {
        let mut out = Batches::default();
        let mut next = 0;
        let mut missed = false;
        'rounds: while next < entries.len() {
            // The entries this budget will probably need, fetched together. The
            // estimate is off by at most a batch: a short one costs another
            // round, a long one a GET that read-ahead would have made anyway.
            let budget = max_bytes.saturating_sub(out.len());
            let planned = &entries[next..][..entries_needed(&entries[next..], from_offset, budget)];
            let mut pending = planned.iter();
            let mut objects = FuturesOrdered::new();
            objects.extend(
                pending
                    .by_ref()
                    .take(GETS_IN_FLIGHT)
                    .map(|e| self.object(e)),
            );
            while let Some(fetched) = objects.next().await {
                let (object, miss) = fetched?;
                objects.extend(pending.next().map(|e| self.object(e)));
                let entry = &entries[next];
                next += 1;
                missed |= miss;
                let run = run_of(&object, entry)?;
                if append_run(&mut out, entry, &run, from_offset, max_bytes)? == Appended::Full {
                    break 'rounds;
                }
            }
        }
        if missed {
            self.read_ahead(&entries[next..], max_bytes);
        }
        Ok(out)
    }
}

/// Fetches one whole object. Objects are bounded by the write path's flush
/// size, so they are read whole: one GET serves every partition's run in them.
async fn get_object(
    store: Arc<dyn ObjectStore>,
    key: &str,
    read_ahead: bool,
) -> Result<Cached, object_store::Error> {
    let bytes = store.get(&Path::from(key)).await?.bytes().await?;
    Ok(Cached { bytes, read_ahead })
}

/// How many of `entries` a read of `max_bytes` from `from_offset` is expected
/// to use: at least one, and those whose runs start before the budget is
/// spent. The part of the first run before `from_offset` is estimated by its
/// share of the run's offsets.
fn entries_needed(entries: &[IndexEntry], from_offset: i64, max_bytes: usize) -> usize {
    let mut bytes = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 && bytes >= max_bytes {
            return i;
        }
        bytes = bytes.saturating_add(if i == 0 {
            unread_share(entry, from_offset)
        } else {
            run_length(entry)
        });
    }
    entries.len()
}

/// The bytes of `entry`'s run from `from_offset` on, assuming offsets are
/// spread evenly over the run.
fn unread_share(entry: &IndexEntry, from_offset: i64) -> usize {
    let offsets = (entry.last_offset - entry.base_offset + 1).max(1);
    let unread = (entry.last_offset + 1 - from_offset.max(entry.base_offset)).clamp(0, offsets);
    let share = i128::from(entry.length.max(0)) * i128::from(unread) / i128::from(offsets);
    usize::try_from(share).unwrap_or(usize::MAX)
}

fn run_length(entry: &IndexEntry) -> usize {
    usize::try_from(entry.length).unwrap_or(0)
}

#[derive(Debug, PartialEq, Eq)]
enum Appended {
    /// The whole run from `from_offset` on was appended.
    All,
    /// The budget is spent; later runs are not wanted.
    Full,
}

/// Appends the batches of `run` that hold offsets from `from_offset` on, with
/// their assigned base offsets, while they fit in `max_bytes` (the first batch
/// of the read always does).
fn append_run(
    out: &mut Batches,
    entry: &IndexEntry,
    run: &Bytes,
    from_offset: i64,
    max_bytes: usize,
) -> Result<Appended, StorageError> {
    let ranges = batch::split(run).map_err(|e| corrupt(entry, &e.to_string()))?;
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
            return Ok(Appended::Full);
        }
        out.push_patched(&run.slice(range), batch_base)
            .map_err(|e| corrupt(entry, &e.to_string()))?;
        if out.len() >= max_bytes {
            return Ok(Appended::Full);
        }
    }
    if base_offset != entry.last_offset + 1 {
        return Err(corrupt(entry, "batches do not fill the entry's offsets"));
    }
    Ok(Appended::All)
}

/// The run an index entry points at, inside its object.
fn run_of(object: &Bytes, entry: &IndexEntry) -> Result<Bytes, StorageError> {
    let position =
        u64::try_from(entry.position).map_err(|_| corrupt(entry, "negative position"))?;
    let length = u64::try_from(entry.length).map_err(|_| corrupt(entry, "negative length"))?;
    let to = position
        .checked_add(length)
        .filter(|to| *to <= object.len() as u64)
        .ok_or_else(|| corrupt(entry, "run outside the object"))?;
    Ok(object.slice(position as usize..to as usize))
}

fn corrupt(entry: &IndexEntry, reason: &str) -> StorageError {
    StorageError::CorruptObject {
        key: entry.object_key.clone(),
        reason: format!("entry at offset {}: {reason}", entry.base_offset),
    }
}
