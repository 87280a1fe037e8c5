//! The log cleaner of compacted topics (`cleanup.policy` with `compact`):
//! Kafka's `LogCleaner` on index entries and objects.
//!
//! A pass, every `cleaner_interval`, lists the topics, and for each partition
//! of a compacted one placed on this agent ([`partition_shard`], the
//! `log-cleaner` job of `src/cluster/work.rs`) reads its view from the
//! catalog and decides ([`plan`]) whether it is dirty enough. If so it reads
//! the runs of the entries from the log start to the end of the cleanable
//! range (ranged GETs, a few in flight), rewrites them ([`rewrite`]) keeping
//! each key's latest record, uploads the result as one object, and swaps the
//! entries in ONE catalog transaction that also raises the partition's
//! cleaned-up-to offset (`LifecycleCatalog::swap_cleaned`). The swap fails,
//! changing nothing, if any source entry changed meanwhile (another agent's
//! cleaner after a placement change, the small-object compactor, a trim); the
//! new object is then deleted and the next pass starts afresh. The source
//! objects stay live: other partitions' entries may point into them; the
//! garbage collector retires each once nothing does, after its grace period,
//! so a fetch that read an entry just before the swap can still read it.
//!
//! Producer state lives in the catalog (`producer_batches`), not in the log,
//! so removing an idempotent producer's batches loses no state; and a kept
//! batch keeps its producer fields and its last offset, as Kafka's do.
//!
//! Memory: a cleaning holds the runs it read (at most
//! `cleaner_max_pass_bytes`), the object it writes (no larger than them), the
//! key map (about 48 bytes per distinct key among the records read: a 128-bit
//! hash, an offset and the map's overhead), and one decompressed batch at a
//! time (at most the produce path's 64 MiB cap, validated on the way in).
//! With the default 128 MiB cap: about 256 MiB plus the key map.

pub mod plan;
pub mod rewrite;

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::compaction::{CleaningSwap, PartitionEntry, Shards, SwapOutcome};
use streamhouse_metadata::{NewObject, TopicId};

use super::{delete_if_present, CompactionWorker, CONCURRENT_REQUESTS};
use crate::background::BackgroundWrite;
use crate::format::new_object_key;
use crate::StorageError;
use plan::{CleaningRules, Decision};
use rewrite::Tombstones;

/// Index entries one cleaning looks at: with entries of a few hundred KiB
/// (the writer's flush) to 8 MiB (compacted), far beyond what the byte cap
/// lets a pass read.
const VIEW_ENTRIES: u32 = 20_000;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerPass {
    /// Partitions of compacted topics placed on this agent, looked at.
    pub partitions: u64,
    pub cleaned: u64,
    pub conflicts: u64,
    /// Partitions whose clean section alone is beyond the pass's byte cap.
    pub too_large: u64,
    pub bytes_removed: u64,
    pub errors: u64,
}

/// The partition shard of a partition, stable across agents and builds (a
/// fixed mix of the topic id's bits and the partition), so every agent places
/// a partition's cleaning on the same agent.
pub fn partition_shard(topic: TopicId, partition: i32) -> u32 {
    let id = topic.as_u128();
    let mixed = ((id >> 64) as u64 ^ id as u64)
        .wrapping_add((partition as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let folded = mixed ^ (mixed >> 32) ^ (mixed >> 16) ^ (mixed >> 8);
    (folded % u64::from(Shards::COUNT)) as u32
}

fn byte_count(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// How one partition's cleaning ended.
enum Cleaning {
    Skipped,
    TooLarge,
    Cleaned { bytes_removed: u64 },
    Conflict,
}

impl CompactionWorker {
    /// One log cleaner pass over the compacted partitions of this agent's
    /// share. A partition that fails is counted and logged, and the pass goes
    /// on with the others.
    pub async fn clean_logs(&self) -> Result<CleanerPass, StorageError> {
        let shards = self.share.current().cleaner;
        let mut pass = CleanerPass::default();
        if shards.is_empty() || self.config.cleaner_max_pass_bytes == 0 {
            return Ok(pass);
        }
        let metrics = &self.metrics.compaction;
        metrics.cleaner_passes.inc();
        let topics = match self.catalog.list_topics().await {
            Ok(topics) => topics,
            Err(e) => {
                metrics.cleaner_errors.inc();
                return Err(e.into());
            }
        };
        for topic in topics {
            let Some(rules) = CleaningRules::of_topic(&topic.configs) else {
                continue;
            };
            for partition in 0..topic.partition_count {
                if !shards.contains(partition_shard(topic.id, partition)) {
                    continue;
                }
                pass.partitions += 1;
                match self.clean_partition(topic.id, partition, &rules).await {
                    Ok(Cleaning::Skipped) => {}
                    Ok(Cleaning::TooLarge) => pass.too_large += 1,
                    Ok(Cleaning::Conflict) => {
                        pass.conflicts += 1;
                        metrics.cleaner_conflicts.inc();
                    }
                    Ok(Cleaning::Cleaned { bytes_removed }) => {
                        pass.cleaned += 1;
                        pass.bytes_removed += bytes_removed;
                        metrics.cleaner_partitions_cleaned.inc();
                        metrics.cleaner_bytes_removed.inc_by(bytes_removed);
                    }
                    Err(e) => {
                        pass.errors += 1;
                        metrics.cleaner_errors.inc();
                        static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                        if let Some(suppressed) = WARNINGS.allow() {
                            tracing::warn!(error = %e, topic = %topic.name, partition, suppressed,
                                "cleaning a compacted partition failed; retrying next pass");
                        }
                    }
                }
            }
        }
        Ok(pass)
    }

    async fn clean_partition(
        &self,
        topic: TopicId,
        partition: i32,
        rules: &CleaningRules,
    ) -> Result<Cleaning, StorageError> {
        let Some(view) = self
            .catalog
            .cleaner_view(topic, partition, VIEW_ENTRIES)
            .await?
        else {
            return Ok(Cleaning::Skipped);
        };
        let now_ms = self.clock.now_ms();
        let max_bytes = self.config.cleaner_max_pass_bytes;
        let (end, limit) = match plan::decide(&view, rules, now_ms, max_bytes) {
            Decision::Wait => return Ok(Cleaning::Skipped),
            Decision::TooLarge => {
                static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                if let Some(suppressed) = WARNINGS.allow() {
                    tracing::warn!(%topic, partition, max_bytes, suppressed,
                        "a compacted partition's clean section is beyond the cleaner's byte cap; not cleaned");
                }
                return Ok(Cleaning::TooLarge);
            }
            Decision::Clean { end, limit } => (end, limit),
        };
        let sources: Vec<PartitionEntry> = view.entries[..end].to_vec();
        let runs = self.read_runs(&sources).await?;
        let tombstones = Tombstones {
            now_ms,
            retention_ms: rules.delete_retention_ms,
        };
        let entries = sources.clone();
        let last_offset = view.high_watermark - 1;
        // Decompressing and recompressing megabytes: off the runtime's workers.
        let cleaning = tokio::task::spawn_blocking(move || {
            rewrite::clean(
                topic,
                partition,
                &entries,
                &runs,
                limit,
                last_offset,
                tombstones,
            )
        });
        let cleaned = cleaning.await.map_err(|e| StorageError::TaskFailed {
            task: "log cleaner rewrite",
            reason: e.to_string(),
        })??;
        if cleaned.records_removed == 0 {
            // Nothing to remove: only the partition's cleaning state moves.
            let swap = CleaningSwap {
                topic,
                partition,
                object: None,
                sources: Vec::new(),
                entries: Vec::new(),
                cleaned_offset: limit,
                cleaned_bytes: byte_count(cleaned.bytes_read),
                cleaner_limit: limit,
                tombstones_expire_at_ms: cleaned.tombstones_expire_at_ms,
            };
            self.catalog.swap_cleaned(&swap).await?;
            return Ok(Cleaning::Cleaned { bytes_removed: 0 });
        }
        let uploaded = match cleaned.object {
            Some(bytes) => {
                let key = new_object_key();
                let size = bytes.len() as i64;
                self.store
                    .put_opts(
                        &Path::from(key.as_str()),
                        PutPayload::from(bytes),
                        BackgroundWrite::put_options(),
                    )
                    .await?;
                Some(NewObject {
                    key,
                    size_bytes: size,
                })
            }
            None => None,
        };
        let swap = CleaningSwap {
            topic,
            partition,
            object: uploaded.clone(),
            sources,
            entries: cleaned.entries,
            cleaned_offset: limit,
            cleaned_bytes: byte_count(cleaned.bytes_kept),
            cleaner_limit: limit,
            tombstones_expire_at_ms: cleaned.tombstones_expire_at_ms,
        };
        // On an error the new object stays in the store: the transaction may
        // have committed with its answer lost, and then the index points into it.
        match self.catalog.swap_cleaned(&swap).await? {
            SwapOutcome::Swapped => Ok(Cleaning::Cleaned {
                bytes_removed: cleaned.bytes_read.saturating_sub(cleaned.bytes_kept),
            }),
            SwapOutcome::Conflict => {
                if let Some(object) = uploaded {
                    delete_if_present(&self.store, &Path::from(object.key.as_str())).await?;
                }
                Ok(Cleaning::Conflict)
            }
        }
    }

    /// The runs of `entries`, in order, a few ranged GETs at a time.
    async fn read_runs(&self, entries: &[PartitionEntry]) -> Result<Vec<Bytes>, StorageError> {
        let requests: Vec<_> = entries
            .iter()
            .map(|entry| {
                let store: Arc<dyn ObjectStore> = Arc::clone(&self.store);
                let key = entry.object_key.clone();
                let start = u64::try_from(entry.position).unwrap_or(0);
                let end = start + u64::try_from(entry.length).unwrap_or(0);
                let gets = self.metrics.compaction.store_gets.clone();
                async move {
                    gets.inc();
                    let bytes = store
                        .get_range(&Path::from(key.as_str()), start..end)
                        .await?;
                    Ok::<_, StorageError>(bytes)
                }
            })
            .collect();
        futures::stream::iter(requests)
            .buffered(CONCURRENT_REQUESTS)
            .try_collect()
            .await
    }
}
