//! The rewrite of a partition's cleanable entries: the latest offset of every
//! key over them, then each batch with only the records that are their key's
//! latest (and not an expired tombstone), laid out as runs of a new object.
//!
//! Offsets never change: a kept batch keeps its base offset and its offset
//! span ([`streamhouse_protocol::clean`]); a batch left empty goes. Each
//! maximal sequence of kept batches of one source entry becomes one new
//! entry (one run of the new object), so an entry that loses a batch from its
//! middle becomes two, with a gap the read path skips ("first entry whose
//! last offset is at or beyond the offset").
//!
//! Transactions: markers stay; an aborted transaction's data goes and never
//! counts as its keys' latest; a transaction with no marker in the range yet
//! is left whole, like the head (Kafka cleans only below the last stable
//! offset).
//!
//! Keys are held as 128-bit hashes (two SipHash-1-3 of the key), as Kafka's
//! cleaner holds MD5 digests: a collision, at odds of about n²/2¹²⁹ for n
//! keys, would drop the older key's record.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use streamhouse_metadata::compaction::{CompactedEntry, PartitionEntry, NO_TOMBSTONES};
use streamhouse_protocol::batch::{self, BatchHeader};
use streamhouse_protocol::clean::{self, CleanRecord, Filtered};
use streamhouse_protocol::control;
use streamhouse_protocol::validate::MAX_DECOMPRESSED_BYTES;
use uuid::Uuid;

use crate::format::{ObjectEncoder, RunStats};
use crate::StorageError;

/// What a tombstone (a record with a null value) must outlive.
#[derive(Debug, Clone, Copy)]
pub struct Tombstones {
    pub now_ms: i64,
    /// `delete.retention.ms`: a tombstone whose timestamp is older than this is
    /// removed.
    pub retention_ms: i64,
}

impl Tombstones {
    fn expired(&self, timestamp: i64) -> bool {
        self.now_ms >= self.expires_at(timestamp)
    }

    /// The first time at which a tombstone of `timestamp` counts as expired.
    fn expires_at(&self, timestamp: i64) -> i64 {
        timestamp
            .saturating_add(self.retention_ms)
            .saturating_add(1)
    }
}

/// The new object and the entries replacing the sources.
#[derive(Debug)]
pub struct Cleaned {
    /// `None` when no record of the sources is kept.
    pub object: Option<Bytes>,
    pub entries: Vec<CompactedEntry>,
    /// Bytes of the source runs, and of the runs written in their place.
    pub bytes_read: u64,
    pub bytes_kept: u64,
    pub records_removed: u64,
    /// When the earliest tombstone kept outside the head expires
    /// ([`NO_TOMBSTONES`] if none is kept).
    pub tombstones_expire_at_ms: i64,
}

type KeyHash = u128;

fn key_hash(key: &[u8]) -> KeyHash {
    let mut first = std::hash::DefaultHasher::new();
    key.hash(&mut first);
    let mut second = std::hash::DefaultHasher::new();
    0xA5u8.hash(&mut second);
    key.hash(&mut second);
    (u128::from(first.finish()) << 64) | u128::from(second.finish())
}

/// Cleans `entries` (in offset order) whose runs are `runs` (same order).
/// Batches reaching `limit` (the head) are left as they are, and their
/// records do not count as any key's latest. The record at `last_offset`
/// (the partition's last) is kept whatever it is, so the log always ends
/// with the batch holding it.
pub fn clean(
    topic: Uuid,
    partition: i32,
    entries: &[PartitionEntry],
    runs: &[Bytes],
    limit: i64,
    last_offset: i64,
    tombstones: Tombstones,
) -> Result<Cleaned, StorageError> {
    let fate = transaction_fates(entries, runs)?;
    // Batches of a transaction still open in the cleaned range stay whole and
    // hide nothing, as the head does: the transaction may yet abort.
    let in_head = |base: i64, bytes: &Bytes| {
        BatchHeader::parse(bytes).map_or(true, |h| base + h.offset_count() > limit)
            || fate.get(&base) == Some(&TxnFate::Open)
    };
    let mut latest: HashMap<KeyHash, i64> = HashMap::new();
    for (entry, run) in entries.iter().zip(runs) {
        for (base, bytes) in batches(entry, run)? {
            // Markers carry no key of the log's; an aborted transaction's
            // records never were the log's latest for their keys.
            if in_head(base, &bytes) || fate.contains_key(&base) {
                continue;
            }
            clean::for_each_record(&bytes, MAX_DECOMPRESSED_BYTES, |r| {
                if let Some(key) = r.key {
                    latest.insert(key_hash(key), base + i64::from(r.offset_delta));
                }
            })
            .map_err(|e| corrupt(entry, &e.to_string()))?;
        }
    }
    let next_expiry = Cell::new(NO_TOMBSTONES);
    let keep = |base: i64, r: &CleanRecord<'_>| {
        let Some(key) = r.key else {
            // Kafka's cleaner drops records without a key (written before the
            // topic became compacted).
            return false;
        };
        let offset = base + i64::from(r.offset_delta);
        if offset == last_offset {
            // Not counted among the tombstones kept: it stays even expired.
            return true;
        }
        if latest.get(&key_hash(key)) != Some(&offset) {
            return false;
        }
        if r.tombstone {
            if tombstones.expired(r.timestamp) {
                return false;
            }
            next_expiry.set(next_expiry.get().min(tombstones.expires_at(r.timestamp)));
        }
        true
    };

    let bytes_read: u64 = runs.iter().map(|r| r.len() as u64).sum();
    let mut encoder = ObjectEncoder::with_capacity(bytes_read as usize);
    let mut new_entries = Vec::new();
    let mut records_removed = 0u64;
    for (entry, run) in entries.iter().zip(runs) {
        let mut current: Option<(Vec<Bytes>, RunStats, i64, i64, i64)> = None;
        let mut flush = |current: &mut Option<(Vec<Bytes>, RunStats, i64, i64, i64)>,
                         encoder: &mut ObjectEncoder| {
            if let Some((chunks, stats, first, last, max_timestamp)) = current.take() {
                let (position, length) = encoder.add_run(topic, partition, &chunks, stats);
                new_entries.push(CompactedEntry {
                    base_offset: first,
                    last_offset: last,
                    position: position as i64,
                    length: length as i64,
                    max_timestamp,
                    running_max_timestamp: entry.running_max_timestamp,
                });
            }
        };
        for (base, bytes) in batches(entry, run)? {
            let header = BatchHeader::parse(&bytes).map_err(|e| corrupt(entry, &e.to_string()))?;
            let before = header.records_count;
            let kept = if in_head(base, &bytes) {
                Some(bytes)
            } else if fate.get(&base) == Some(&TxnFate::Aborted) {
                // As Kafka's cleaner: an aborted transaction's data goes.
                None
            } else if fate.get(&base) == Some(&TxnFate::Marker) {
                Some(bytes)
            } else {
                match clean::filter(&bytes, MAX_DECOMPRESSED_BYTES, |r| keep(base, r))
                    .map_err(|e| corrupt(entry, &e.to_string()))?
                {
                    Filtered::Unchanged => Some(bytes),
                    Filtered::Empty => None,
                    Filtered::Rewritten(rewritten) => Some(Bytes::from(rewritten)),
                }
            };
            let Some(kept) = kept else {
                records_removed += u64::try_from(before).unwrap_or(0);
                flush(&mut current, &mut encoder);
                continue;
            };
            let after = BatchHeader::parse(&kept).map_err(|e| corrupt(entry, &e.to_string()))?;
            records_removed += u64::try_from(before - after.records_count).unwrap_or(0);
            let last = base + header.offset_count() - 1;
            // The header's maxTimestamp is the client's; the entry's is what
            // the broker measured, an upper bound for every batch in it.
            let max_timestamp = header.max_timestamp.min(entry.max_timestamp);
            let run = current
                .get_or_insert_with(|| (Vec::new(), RunStats::default(), base, last, i64::MIN));
            run.0.push(kept);
            run.1.batch_count += 1;
            run.1.offset_count += header.offset_count();
            run.1.min_timestamp = run.1.min_timestamp.min(header.base_timestamp);
            run.1.max_timestamp = run.1.max_timestamp.max(max_timestamp);
            run.3 = last;
            run.4 = run.4.max(max_timestamp);
        }
        flush(&mut current, &mut encoder);
    }
    let bytes_kept: u64 = new_entries.iter().map(|e| e.length as u64).sum();
    Ok(Cleaned {
        object: (!new_entries.is_empty()).then(|| encoder.finish()),
        entries: new_entries,
        bytes_read,
        bytes_kept,
        records_removed,
        tombstones_expire_at_ms: next_expiry.get(),
    })
}

/// What the cleaner must know of a batch that belongs to a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnFate {
    /// A commit or abort marker: kept, so read_committed readers still see
    /// where each transaction ends.
    Marker,
    /// Data of a transaction whose abort marker is in the range.
    Aborted,
    /// Data of a transaction with no marker in the range yet.
    Open,
}

/// The fate of every control and transactional batch of `entries`, by base
/// offset; committed transactions' data is absent (cleaned as any data).
fn transaction_fates(
    entries: &[PartitionEntry],
    runs: &[Bytes],
) -> Result<HashMap<i64, TxnFate>, StorageError> {
    let mut fates = HashMap::new();
    let mut pending: HashMap<i64, Vec<i64>> = HashMap::new();
    for (entry, run) in entries.iter().zip(runs) {
        for (base, bytes) in batches(entry, run)? {
            let header = BatchHeader::parse(&bytes).map_err(|e| corrupt(entry, &e.to_string()))?;
            if header.is_control() {
                fates.insert(base, TxnFate::Marker);
                let ended = pending.remove(&header.producer_id).unwrap_or_default();
                if control::marker_type(&bytes) == Some(false) {
                    fates.extend(ended.into_iter().map(|b| (b, TxnFate::Aborted)));
                }
            } else if header.is_transactional() {
                pending.entry(header.producer_id).or_default().push(base);
            }
        }
    }
    fates.extend(pending.into_values().flatten().map(|b| (b, TxnFate::Open)));
    Ok(fates)
}

/// The batches of an entry's run with their offsets (runs are stored with the
/// client's base offsets; an entry's batches fill its offsets in order),
/// checked to fill exactly the entry.
fn batches(entry: &PartitionEntry, run: &Bytes) -> Result<Vec<(i64, Bytes)>, StorageError> {
    let mut out = Vec::new();
    let mut next = entry.base_offset;
    for range in batch::split(run).map_err(|e| corrupt(entry, &e.to_string()))? {
        let header =
            BatchHeader::parse(&run[range.clone()]).map_err(|e| corrupt(entry, &e.to_string()))?;
        out.push((next, run.slice(range)));
        next += header.offset_count();
    }
    if next != entry.last_offset + 1 {
        return Err(corrupt(entry, "batches do not fill the entry's offsets"));
    }
    Ok(out)
}

fn corrupt(entry: &PartitionEntry, reason: &str) -> StorageError {
    StorageError::CorruptObject {
        key: entry.object_key.clone(),
        reason: format!("entry at offset {}: {reason}", entry.base_offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_protocol::kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions,
    };
    use streamhouse_testkit::BatchBuilder;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// A batch of records (key, value; `None` a tombstone) at `timestamp`,
    /// with header `h=v`, stored as the writer stores it (client base offset 0).
    fn batch(codec: Compression, records: &[(&str, Option<&str>)], timestamp: i64) -> Bytes {
        let template: Vec<Record> = BatchBuilder::new(records.len())
            .timestamp(timestamp)
            .producer(9, 1, 0)
            .key(|_| "")
            .header("h", Some(Bytes::from_static(b"v")))
            .records();
        let records: Vec<Record> = template
            .into_iter()
            .zip(records)
            .map(|(mut r, (key, value))| {
                r.key = Some(Bytes::copy_from_slice(key.as_bytes()));
                r.value = value.map(|v| Bytes::copy_from_slice(v.as_bytes()));
                r
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .unwrap();
        buf.freeze()
    }

    /// Entries laid out one per group of batches, offsets from 0, in one
    /// object; returns the entries and their runs.
    fn log(groups: &[Vec<Bytes>]) -> (Vec<PartitionEntry>, Vec<Bytes>) {
        let mut entries = Vec::new();
        let mut runs = Vec::new();
        let mut offset = 0;
        for group in groups {
            let run: Bytes = group.concat().into();
            let count: i64 = group
                .iter()
                .map(|b| BatchHeader::parse(b).unwrap().offset_count())
                .sum();
            entries.push(PartitionEntry {
                base_offset: offset,
                last_offset: offset + count - 1,
                object_id: 1,
                object_key: "source".into(),
                position: 0,
                length: run.len() as i64,
                max_timestamp: 5_000,
                running_max_timestamp: 5_000,
            });
            runs.push(run);
            offset += count;
        }
        (entries, runs)
    }

    /// (offset, key, value) of every record the new entries hold, read as the
    /// read path reads them (offsets from each entry's base).
    /// The whole log cleaned: nothing past a limit, tombstones kept.
    fn clean_all(entries: &[PartitionEntry], runs: &[Bytes]) -> Cleaned {
        clean(Uuid::nil(), 0, entries, runs, i64::MAX, -1, KEEP_TOMBSTONES).unwrap()
    }

    /// The offset spans of the cleaned entries.
    fn spans_of(cleaned: &Cleaned) -> Vec<(i64, i64)> {
        cleaned
            .entries
            .iter()
            .map(|e| (e.base_offset, e.last_offset))
            .collect()
    }

    fn read_back(cleaned: &Cleaned) -> Vec<(i64, String, Option<String>)> {
        let object = cleaned.object.clone().unwrap_or_default();
        let mut out = Vec::new();
        for entry in &cleaned.entries {
            let run =
                object.slice(entry.position as usize..(entry.position + entry.length) as usize);
            let source = PartitionEntry {
                base_offset: entry.base_offset,
                last_offset: entry.last_offset,
                object_id: 0,
                object_key: "new".into(),
                position: entry.position,
                length: entry.length,
                max_timestamp: entry.max_timestamp,
                running_max_timestamp: entry.running_max_timestamp,
            };
            for (base, bytes) in batches(&source, &run).expect("batches fill the new entry") {
                clean::for_each_record(&bytes, 1 << 20, |r| {
                    out.push((
                        base + i64::from(r.offset_delta),
                        String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                        (!r.tombstone).then(|| "kept".to_string()),
                    ))
                })
                .unwrap();
            }
        }
        out
    }

    const KEEP_TOMBSTONES: Tombstones = Tombstones {
        now_ms: 10_000,
        retention_ms: 1_000_000,
    };

    #[test]
    fn aborted_transactions_go_markers_stay_and_open_ones_hide_nothing() {
        let data = |key: &'static str, value: &'static str| {
            BatchBuilder::new(1)
                .timestamp(1_000)
                .producer(9, 1, 0)
                .transactional()
                .key(move |_| key)
                .value(move |_| value)
                .build()
        };
        let marker = |commit| control::end_transaction_marker(9, 1, commit, 0, 1_000);
        // Offsets: a(0) | txn a(1), abort(2) | txn b(3), commit(4) | txn c(5) | d(6).
        let (entries, runs) = log(&[
            vec![batch(Compression::None, &[("a", Some("1"))], 1_000)],
            vec![data("a", "aborted"), marker(false)],
            vec![data("b", "1"), marker(true)],
            vec![data("c", "open")],
            vec![batch(Compression::None, &[("d", Some("1"))], 1_000)],
        ]);
        let cleaned = clean_all(&entries, &runs);
        let keys: Vec<(i64, String)> = read_back(&cleaned)
            .into_iter()
            .map(|(offset, key, _)| (offset, key))
            .collect();
        let key = |offset, key: &str| (offset, key.to_string());
        // The committed "a" survives the aborted one; markers are records with
        // their 4-byte keys.
        let marker_key = |commit: bool| String::from_utf8(vec![0, 0, 0, u8::from(commit)]).unwrap();
        assert_eq!(
            keys,
            vec![
                key(0, "a"),
                (2, marker_key(false)),
                key(3, "b"),
                (4, marker_key(true)),
                key(5, "c"),
                key(6, "d"),
            ]
        );
        assert_eq!(cleaned.records_removed, 1);
    }

    #[test]
    fn the_latest_record_of_each_key_is_kept_at_its_offset_in_every_codec() {
        for codec in CODECS {
            // Offsets: entry 0 = [a b c](0-2) [a](3); entry 1 = [b x](4-5).
            let (entries, runs) = log(&[
                vec![
                    batch(
                        codec,
                        &[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))],
                        1_000,
                    ),
                    batch(codec, &[("a", Some("2"))], 1_000),
                ],
                vec![batch(codec, &[("b", Some("2")), ("x", None)], 1_000)],
            ]);
            let cleaned = clean_all(&entries, &runs);
            assert_eq!(
                read_back(&cleaned),
                vec![
                    (2, "c".into(), Some("kept".into())),
                    (3, "a".into(), Some("kept".into())),
                    (4, "b".into(), Some("kept".into())),
                    (5, "x".into(), None),
                ],
                "{codec:?}"
            );
            assert_eq!(cleaned.records_removed, 2);
            // Entry 0 keeps both batches (the first rewritten): still one
            // entry 0-3; entry 1 is unchanged.
            let spans = spans_of(&cleaned);
            assert_eq!(spans, vec![(0, 3), (4, 5)], "{codec:?}");
            assert!(cleaned.bytes_kept < cleaned.bytes_read);
        }
    }

    #[test]
    fn a_batch_left_empty_goes_and_splits_its_entry_around_a_gap() {
        // [a](0) [b c](1-2) [a](3) [d](4) in one entry.
        let codec = Compression::Lz4;
        let (entries, runs) = log(&[vec![
            batch(codec, &[("a", Some("1"))], 1_000),
            batch(codec, &[("b", Some("1")), ("c", Some("1"))], 1_000),
            batch(codec, &[("a", Some("2"))], 1_000),
            batch(codec, &[("d", Some("1"))], 1_000),
        ]]);
        let cleaned = clean_all(&entries, &runs);
        let spans = spans_of(&cleaned);
        // The first batch goes; the second keeps b and c: 1-4 stays whole.
        assert_eq!(spans, vec![(1, 4)]);
        let (entries, runs) = log(&[vec![
            batch(codec, &[("a", Some("1"))], 1_000),
            batch(codec, &[("b", Some("1"))], 1_000),
            batch(codec, &[("b", Some("2"))], 1_000),
            batch(codec, &[("a", Some("2"))], 1_000),
        ]]);
        let cleaned = clean_all(&entries, &runs);
        let spans = spans_of(&cleaned);
        // Batches 0 and 1 go: one entry 2-3, nothing below.
        assert_eq!(spans, vec![(2, 3)]);
        let (entries, runs) = log(&[vec![
            batch(codec, &[("a", Some("1"))], 1_000),
            batch(codec, &[("b", Some("1"))], 1_000),
            batch(codec, &[("a", Some("2"))], 1_000),
        ]]);
        let cleaned = clean_all(&entries, &runs);
        let spans = spans_of(&cleaned);
        assert_eq!(spans, vec![(1, 2)]);
        let (entries, runs) = log(&[vec![
            batch(codec, &[("b", Some("1"))], 1_000),
            batch(codec, &[("a", Some("1"))], 1_000),
            batch(codec, &[("a", Some("2"))], 1_000),
            batch(codec, &[("b", Some("2")), ("c", Some("1"))], 1_000),
        ]]);
        let cleaned = clean_all(&entries, &runs);
        let spans = spans_of(&cleaned);
        assert_eq!(spans, vec![(2, 4)], "batches 0 and 1 go");
        // A batch emptied in the middle splits the entry in two.
        let (entries, runs) = log(&[vec![
            batch(codec, &[("a", Some("1"))], 1_000),
            batch(codec, &[("b", Some("1"))], 1_000),
            batch(codec, &[("b", Some("2"))], 1_000),
        ]]);
        let cleaned = clean_all(&entries, &runs);
        let spans = spans_of(&cleaned);
        assert_eq!(spans, vec![(0, 0), (2, 2)]);
        assert_eq!(
            read_back(&cleaned),
            vec![
                (0, "a".into(), Some("kept".into())),
                (2, "b".into(), Some("kept".into()))
            ]
        );
    }

    #[test]
    fn tombstones_older_than_the_retention_go_and_younger_ones_stay() {
        let codec = Compression::Zstd;
        let (entries, runs) = log(&[vec![
            batch(codec, &[("a", Some("1")), ("b", Some("1"))], 1_000),
            batch(codec, &[("a", None)], 2_000),
            batch(codec, &[("b", None)], 8_000),
        ]]);
        let tombstones = Tombstones {
            now_ms: 10_000,
            retention_ms: 5_000,
        };
        let cleaned = clean(Uuid::nil(), 0, &entries, &runs, i64::MAX, -1, tombstones).unwrap();
        // a's tombstone (2 s) is older than 10 s - 5 s: gone with a's value;
        // b's (8 s) stays, and still hides b's value.
        assert_eq!(read_back(&cleaned), vec![(3, "b".into(), None)]);
        assert_eq!(cleaned.records_removed, 3);
        // b's goes once it is older than 5 s: at 13,001 ms.
        assert_eq!(cleaned.tombstones_expire_at_ms, 13_001);
        let later = Tombstones {
            now_ms: 13_001,
            ..tombstones
        };
        let cleaned = clean(Uuid::nil(), 0, &entries, &runs, i64::MAX, -1, later).unwrap();
        assert!(cleaned.entries.is_empty());
        assert_eq!(cleaned.tombstones_expire_at_ms, NO_TOMBSTONES);
    }

    #[test]
    fn nothing_kept_means_no_object() {
        let codec = Compression::Gzip;
        let (entries, runs) = log(&[vec![batch(codec, &[("a", None)], 1_000)]]);
        let expired = Tombstones {
            now_ms: 10_000,
            retention_ms: 0,
        };
        let cleaned = clean(Uuid::nil(), 0, &entries, &runs, i64::MAX, -1, expired).unwrap();
        assert!(cleaned.object.is_none() && cleaned.entries.is_empty());
        assert_eq!(cleaned.records_removed, 1);
    }

    #[test]
    fn batches_reaching_the_limit_are_left_whole_and_hide_nothing() {
        let codec = Compression::Snappy;
        // [a b](0-1) [a](2) [b a](3-4); the head starts at 4.
        let (entries, runs) = log(&[vec![
            batch(codec, &[("a", Some("1")), ("b", Some("1"))], 1_000),
            batch(codec, &[("a", Some("2"))], 1_000),
            batch(codec, &[("b", Some("2")), ("a", Some("3"))], 1_000),
        ]]);
        let cleaned = clean(Uuid::nil(), 0, &entries, &runs, 4, -1, KEEP_TOMBSTONES).unwrap();
        // a@0 goes (a@2 is later, outside the head); b@1 stays: the only later
        // b is in the head batch, which is left whole.
        let offsets: Vec<i64> = read_back(&cleaned).iter().map(|r| r.0).collect();
        assert_eq!(offsets, vec![1, 2, 3, 4]);
        assert_eq!(cleaned.records_removed, 1);

        // A tombstone in the head batch is not counted among those kept.
        let (entries, runs) = log(&[vec![
            batch(codec, &[("a", None)], 1_000),
            batch(codec, &[("b", None), ("c", Some("1"))], 2_000),
        ]]);
        let cleaned = clean(Uuid::nil(), 0, &entries, &runs, 2, -1, KEEP_TOMBSTONES).unwrap();
        assert_eq!(cleaned.tombstones_expire_at_ms, 1_001_001);
    }

    #[test]
    fn the_partitions_last_record_stays_even_an_expired_tombstone() {
        let codec = Compression::Zstd;
        // One last batch [a a b b(tombstone)](0-3): offset 3 is the partition's last.
        let (entries, runs) = log(&[vec![batch(
            codec,
            &[
                ("a", Some("1")),
                ("a", Some("2")),
                ("b", Some("1")),
                ("b", None),
            ],
            1_000,
        )]]);
        let expired = Tombstones {
            now_ms: 10_000,
            retention_ms: 0,
        };
        let cleaned = clean(Uuid::nil(), 0, &entries, &runs, i64::MAX, 3, expired).unwrap();
        // The last batch itself is cleaned: a@0 and b@2 go; b's tombstone,
        // the last record, stays, and no expiry is due for it.
        assert_eq!(
            read_back(&cleaned),
            vec![(1, "a".into(), Some("kept".into())), (3, "b".into(), None)]
        );
        assert_eq!(cleaned.tombstones_expire_at_ms, NO_TOMBSTONES);
        let spans = spans_of(&cleaned);
        assert_eq!(spans, vec![(0, 3)], "the batch keeps its offsets");
    }

    #[test]
    fn a_run_that_does_not_fill_its_entry_is_refused() {
        let (mut entries, runs) = log(&[vec![batch(Compression::None, &[("a", Some("1"))], 1)]]);
        entries[0].last_offset += 1;
        assert!(matches!(
            clean(
                Uuid::nil(),
                0,
                &entries,
                &runs,
                i64::MAX,
                -1,
                KEEP_TOMBSTONES
            ),
            Err(StorageError::CorruptObject { .. })
        ));
    }
}
