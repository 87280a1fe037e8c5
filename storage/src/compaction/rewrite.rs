//! Building a compacted object: each partition's runs from the source objects,
//! in offset order, and the index entries that describe them.
//!
//! Entries of a partition that are adjacent in offsets (`base_offset` = the
//! previous `last_offset + 1`) become contiguous in the new object and so become
//! ONE entry: fewer index rows, and a fetch's 64-entry query covers more. Its
//! `max_timestamp` is the largest of the parts'; its `running_max_timestamp` the
//! last part's, which is already the maximum over everything before it.

use std::collections::HashMap;

use bytes::Bytes;
use streamhouse_metadata::compaction::{CompactedEntry, ObjectEntry, PartitionSwap};
use streamhouse_protocol::batch;

use crate::format::{ObjectEncoder, RunStats};
use crate::StorageError;

/// A compacted object and what its swap does to each partition.
pub struct Rewritten {
    pub bytes: Bytes,
    /// In (topic, partition) order.
    pub partitions: Vec<PartitionSwap>,
}

/// One run of the new object while it is assembled.
struct MergedRun {
    chunks: Vec<Bytes>,
    stats: RunStats,
    base_offset: i64,
    last_offset: i64,
    running_max_timestamp: i64,
}

/// Rewrites `entries` (sorted by topic, partition and offset) from the source
/// objects' bytes (by object id, key beside for error messages). Entries wholly
/// below their partition's log start are dropped rather than copied. `None` when
/// nothing is left to copy.
pub fn rewrite(
    entries: &[ObjectEntry],
    objects: &HashMap<i64, (String, Bytes)>,
) -> Result<Option<Rewritten>, StorageError> {
    let copied: usize = entries
        .iter()
        .filter(|e| e.last_offset >= e.log_start_offset)
        .map(|e| usize::try_from(e.length).unwrap_or(0))
        .sum();
    let mut encoder = ObjectEncoder::with_capacity(copied);
    let mut partitions: Vec<PartitionSwap> = Vec::new();
    let mut runs = 0;
    for group in entries.chunk_by(|a, b| (a.topic, a.partition) == (b.topic, b.partition)) {
        let mut merged: Vec<MergedRun> = Vec::new();
        for entry in group.iter().filter(|e| e.last_offset >= e.log_start_offset) {
            let (chunk, stats) = source_run(entry, objects)?;
            match merged.last_mut() {
                Some(run) if entry.base_offset == run.last_offset + 1 => {
                    run.chunks.push(chunk);
                    run.stats.batch_count += stats.batch_count;
                    run.stats.offset_count += stats.offset_count;
                    run.stats.min_timestamp = run.stats.min_timestamp.min(stats.min_timestamp);
                    run.stats.max_timestamp = run.stats.max_timestamp.max(stats.max_timestamp);
                    run.last_offset = entry.last_offset;
                    run.running_max_timestamp = entry.running_max_timestamp;
                }
                _ => merged.push(MergedRun {
                    chunks: vec![chunk],
                    stats,
                    base_offset: entry.base_offset,
                    last_offset: entry.last_offset,
                    running_max_timestamp: entry.running_max_timestamp,
                }),
            }
        }
        let first = &group[0];
        let mut compacted = Vec::with_capacity(merged.len());
        for run in merged {
            let (position, length) =
                encoder.add_run(first.topic, first.partition, &run.chunks, run.stats);
            runs += 1;
            compacted.push(CompactedEntry {
                base_offset: run.base_offset,
                last_offset: run.last_offset,
                position: position as i64,
                length: length as i64,
                max_timestamp: run.stats.max_timestamp,
                running_max_timestamp: run.running_max_timestamp,
            });
        }
        partitions.push(PartitionSwap {
            topic: first.topic,
            partition: first.partition,
            source_entries: group.len(),
            entries: compacted,
        });
    }
    if runs == 0 {
        return Ok(None);
    }
    Ok(Some(Rewritten {
        bytes: encoder.finish(),
        partitions,
    }))
}

/// The bytes of one entry's run, checked to be whole batches that fill exactly
/// the entry's offsets (a compaction must never make a damaged object worse),
/// and their totals.
fn source_run(
    entry: &ObjectEntry,
    objects: &HashMap<i64, (String, Bytes)>,
) -> Result<(Bytes, RunStats), StorageError> {
    let missing = || StorageError::CorruptObject {
        key: format!("object id {}", entry.object_id),
        reason: "not read for compaction".to_string(),
    };
    let (key, object) = objects.get(&entry.object_id).ok_or_else(missing)?;
    let corrupt = |reason: String| StorageError::CorruptObject {
        key: key.clone(),
        reason: format!("entry at offset {}: {reason}", entry.base_offset),
    };
    let start = usize::try_from(entry.position).map_err(|_| corrupt("bad position".into()))?;
    let length = usize::try_from(entry.length).map_err(|_| corrupt("bad length".into()))?;
    let end = start
        .checked_add(length)
        .filter(|end| *end <= object.len())
        .ok_or_else(|| corrupt("run outside the object".into()))?;
    let run = object.slice(start..end);
    let mut stats = RunStats {
        max_timestamp: entry.max_timestamp,
        ..RunStats::default()
    };
    for range in batch::split(&run).map_err(|e| corrupt(e.to_string()))? {
        let header = batch::BatchHeader::parse(&run[range]).map_err(|e| corrupt(e.to_string()))?;
        stats.batch_count += 1;
        stats.offset_count += header.offset_count();
        stats.min_timestamp = stats.min_timestamp.min(header.base_timestamp);
    }
    if stats.offset_count != entry.last_offset - entry.base_offset + 1 {
        return Err(corrupt(format!(
            "batches hold {} offsets, the entry {}",
            stats.offset_count,
            entry.last_offset - entry.base_offset + 1
        )));
    }
    Ok((run, stats))
}
