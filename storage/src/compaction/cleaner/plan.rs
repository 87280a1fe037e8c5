//! Which part of a compacted partition a cleaning pass rewrites, and whether
//! it is worth it: Kafka's `LogCleanerManager` choices on index entries.
//!
//! The log from the log start is three sections:
//!
//! - **clean**: entries below the partition's cleaned-up-to offset, rewritten
//!   by an earlier pass (at most one record per key, as of that pass);
//! - **dirty**: entries from there up to the head;
//! - **head**: never cleaned: from the first entry whose
//!   `running_max_timestamp` (the largest record timestamp of the partition
//!   so far) is younger than `min.compaction.lag.ms`; empty without a lag.
//!
//! Kafka never cleans its active segment, so a quiet partition keeps its last
//! segment's duplicates for good. Here the partition's last record is kept by
//! every pass instead (the rewrite keeps it whatever it is, so the log always
//! ends with a batch holding it), and every record before it may go: a large
//! last batch (a Streams changelog or Connect status topic written in a
//! burst) is deduplicated like the rest. A pass records how far it looked
//! (`cleaner_limit`); the partition is looked at again once its log grows
//! beyond that, so a quiet partition is not cleaned again and again.
//!
//! A pass runs when the dirty share of the clean and dirty bytes reaches
//! `min.cleanable.dirty.ratio` (the clean bytes are what the last cleaning
//! left, recorded with its cleaned-up-to offset; the total is the entries'
//! bytes below the head), or when the first dirty entry's newest record
//! is older than `max.compaction.lag.ms` (every dirty record then is). Kafka
//! measures the lag from a segment's first record; an entry's `max_timestamp`
//! is the nearest the index keeps, so a record may wait up to one entry's span
//! longer than Kafka would let it. It also runs, with nothing new, once the
//! earliest tombstone the last pass kept is older than `delete.retention.ms`
//! (Kafka cleans a log whose delete horizon has passed), so a quiet partition
//! loses its tombstones too.
//!
//! A pass reads every entry it rewrites, so it takes entries from the log start
//! while their bytes stay within the cap; the dirty entries beyond it wait for
//! the next pass. A partition whose clean section alone exceeds the cap is not
//! cleaned (reported as [`Decision::TooLarge`]).

use std::collections::BTreeMap;

use streamhouse_metadata::compaction::{CleanerView, PartitionEntry};

/// A compacted topic's cleaning configs, as Kafka names them (`LogConfig`);
/// the defaults are Kafka's and must match the topic config table of the
/// broker (`src/config/topic.rs`, which checks it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleaningRules {
    /// `min.cleanable.dirty.ratio`.
    pub min_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone is kept.
    pub delete_retention_ms: i64,
}

impl CleaningRules {
    pub const DEFAULT: CleaningRules = CleaningRules {
        min_dirty_ratio: 0.5,
        min_lag_ms: 0,
        max_lag_ms: i64::MAX,
        delete_retention_ms: 86_400_000,
    };

    /// The rules of a topic with these configs; `None` unless its
    /// `cleanup.policy` includes `compact` (the broker default is `delete`).
    pub fn of_topic(configs: &BTreeMap<String, String>) -> Option<CleaningRules> {
        let compacted = configs
            .get("cleanup.policy")
            .is_some_and(|v| v.split(',').any(|item| item.trim() == "compact"));
        if !compacted {
            return None;
        }
        let long = |name: &str, default: i64| {
            configs
                .get(name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let d = Self::DEFAULT;
        Some(CleaningRules {
            min_dirty_ratio: configs
                .get("min.cleanable.dirty.ratio")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d.min_dirty_ratio),
            min_lag_ms: long("min.compaction.lag.ms", d.min_lag_ms),
            max_lag_ms: long("max.compaction.lag.ms", d.max_lag_ms),
            delete_retention_ms: long("delete.retention.ms", d.delete_retention_ms),
        })
    }
}

/// What a pass should do with a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing dirty outside the head, or not dirty enough yet.
    Wait,
    /// Its clean section alone is beyond the bytes one pass may read.
    TooLarge,
    /// Rewrite `entries[..end]`, leaving batches that reach `limit` as they
    /// are; afterwards everything below `limit` counts as clean.
    Clean { end: usize, limit: i64 },
}

/// The decision for `view` at `now_ms`, reading at most `max_bytes`.
pub fn decide(view: &CleanerView, rules: &CleaningRules, now_ms: i64, max_bytes: u64) -> Decision {
    let entries = &view.entries;
    let Some(last) = entries.last() else {
        return Decision::Wait;
    };
    // Up to the end of the view (the high watermark unless the view was cut
    // short by its limit).
    let mut limit = last.last_offset + 1;
    if rules.min_lag_ms > 0 {
        let young_after = now_ms.saturating_sub(rules.min_lag_ms);
        if let Some(young) = entries
            .iter()
            .find(|e| e.running_max_timestamp > young_after)
        {
            limit = limit.min(young.base_offset);
        }
    }
    let cleanable = entries.partition_point(|e| e.base_offset < limit);
    let cleanable = &entries[..cleanable];
    // Bytes of an entry's offsets in [from, to), assuming an even spread.
    let share = |e: &PartitionEntry, from: i64, to: i64| -> f64 {
        let (lo, hi) = (from.max(e.base_offset), to.min(e.last_offset + 1));
        if hi <= lo {
            return 0.0;
        }
        e.length.max(0) as f64 * (hi - lo) as f64 / (e.last_offset - e.base_offset + 1) as f64
    };
    let first_dirty = cleanable
        .iter()
        .position(|e| share(e, view.cleaned_offset, limit) > 0.0);
    let tombstones_due = view.tombstones_expire_at_ms <= now_ms;
    let dirty_enough = first_dirty.filter(|&first| {
        if limit <= view.cleaner_limit {
            // Nothing new since the last pass looked.
            return false;
        }
        // The clean section's bytes as the last cleaning left them; the even
        // spread over offsets is only a bound (a cleaned run has gaps, and the
        // compactor may have merged it with dirty runs into one entry).
        let total: f64 = cleanable.iter().map(|e| share(e, 0, limit)).sum();
        let spread: f64 = cleanable
            .iter()
            .map(|e| share(e, 0, view.cleaned_offset))
            .sum();
        let clean = spread.min(view.cleaned_bytes.max(0) as f64);
        let ratio = (total - clean).max(0.0) / total.max(1.0);
        let overdue = cleanable[first].max_timestamp < now_ms.saturating_sub(rules.max_lag_ms);
        ratio >= rules.min_dirty_ratio || overdue
    });
    // A pass for tombstones alone must reach the clean section's end, or it
    // could not record what it found.
    let tombstones_only = tombstones_due && !cleanable.is_empty() && limit >= view.cleaned_offset;
    if dirty_enough.is_none() && !tombstones_only {
        return Decision::Wait;
    }
    let mut end = 0;
    let mut read = 0u64;
    for entry in cleanable {
        read += entry.length.max(0) as u64;
        if read > max_bytes {
            break;
        }
        end += 1;
    }
    let enough = match dirty_enough {
        Some(first) => end > first,
        // Only expired tombstones: they may be anywhere in the clean section,
        // so the pass must read all of it.
        None => end == cleanable.len(),
    };
    if !enough {
        return Decision::TooLarge;
    }
    Decision::Clean {
        end,
        limit: limit.min(cleanable[end - 1].last_offset + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_metadata::compaction::{PartitionEntry, NO_TOMBSTONES};

    /// Entries of 100 bytes, one per (base, last, max timestamp), running
    /// maximum as they come.
    fn view(spans: &[(i64, i64, i64)], cleaned_offset: i64) -> CleanerView {
        let mut running = i64::MIN;
        let entries: Vec<PartitionEntry> = spans
            .iter()
            .map(|&(base, last, max)| {
                running = running.max(max);
                PartitionEntry {
                    base_offset: base,
                    last_offset: last,
                    object_id: 1,
                    object_key: "o".into(),
                    position: 0,
                    length: 100,
                    max_timestamp: max,
                    running_max_timestamp: running,
                }
            })
            .collect();
        CleanerView {
            log_start_offset: 0,
            high_watermark: entries.last().map_or(0, |e| e.last_offset + 1),
            cleaned_offset,
            cleaned_bytes: entries
                .iter()
                .filter(|e| e.last_offset < cleaned_offset)
                .map(|e| e.length)
                .sum(),
            cleaner_limit: cleaned_offset,
            tombstones_expire_at_ms: NO_TOMBSTONES,
            entries,
        }
    }

    const RULES: CleaningRules = CleaningRules::DEFAULT;

    #[test]
    fn the_whole_log_is_cleanable_and_a_cleaned_one_waits_for_more() {
        let one = view(&[(0, 9, 10)], 0);
        assert_eq!(
            decide(&one, &RULES, 1_000, u64::MAX),
            Decision::Clean { end: 1, limit: 10 }
        );
        // Cleaned up to its end: nothing more until more comes.
        let cleaned = view(&[(0, 9, 10)], 10);
        assert_eq!(decide(&cleaned, &RULES, 1_000, u64::MAX), Decision::Wait);
        let three = view(&[(0, 9, 10), (10, 19, 20), (20, 29, 30)], 0);
        assert_eq!(
            decide(&three, &RULES, 1_000, u64::MAX),
            Decision::Clean { end: 3, limit: 30 }
        );
    }

    #[test]
    fn records_younger_than_the_min_lag_stay_in_the_head() {
        let log = view(&[(0, 9, 100), (10, 19, 900), (20, 29, 950)], 0);
        let rules = CleaningRules {
            min_lag_ms: 500,
            ..RULES
        };
        // At 1000 only the first entry is older than 500 ms.
        assert_eq!(
            decide(&log, &rules, 1_000, u64::MAX),
            Decision::Clean { end: 1, limit: 10 }
        );
        assert_eq!(decide(&log, &rules, 550, u64::MAX), Decision::Wait);
    }

    #[test]
    fn the_dirty_ratio_decides_unless_the_max_lag_is_passed() {
        // Clean: 300 bytes; dirty: 200 (offsets 30-49).
        let log = view(
            &[
                (0, 9, 10),
                (10, 19, 20),
                (20, 29, 30),
                (30, 39, 40),
                (40, 49, 50),
            ],
            30,
        );
        assert_eq!(decide(&log, &RULES, 1_000, u64::MAX), Decision::Wait);
        let eager = CleaningRules {
            min_dirty_ratio: 0.25,
            ..RULES
        };
        assert_eq!(
            decide(&log, &eager, 1_000, u64::MAX),
            Decision::Clean { end: 5, limit: 50 }
        );
        let lagging = CleaningRules {
            max_lag_ms: 500,
            ..RULES
        };
        assert_eq!(decide(&log, &lagging, 500, u64::MAX), Decision::Wait);
        assert_eq!(
            decide(&log, &lagging, 1_000, u64::MAX),
            Decision::Clean { end: 5, limit: 50 }
        );
        // Everything cleaned: nothing to do.
        let done = view(&[(0, 9, 10), (10, 19, 20)], 20);
        assert_eq!(decide(&done, &eager, 1_000, u64::MAX), Decision::Wait);
    }

    #[test]
    fn the_clean_bytes_are_the_last_cleanings_not_an_even_spread() {
        // One entry of 1000 bytes for offsets 0-99 (a cleaned run merged with
        // dirty ones by the compactor), cleaned up to 90 leaving 100 bytes:
        // 900 of its bytes are dirty, not the 10% the offsets suggest.
        let mut log = view(&[(0, 99, 10)], 90);
        log.entries[0].length = 1000;
        log.cleaned_bytes = 100;
        assert_eq!(
            decide(&log, &RULES, 1_000, u64::MAX),
            Decision::Clean { end: 1, limit: 100 }
        );
        log.cleaned_bytes = 900;
        assert_eq!(decide(&log, &RULES, 1_000, u64::MAX), Decision::Wait);
    }

    #[test]
    fn a_quiet_partition_waits_until_its_log_grows() {
        // The last pass looked up to 30 and left 50 bytes of 0-29.
        let mut log = view(&[(0, 9, 10), (10, 19, 20), (20, 29, 30)], 30);
        log.cleaned_bytes = 50;
        assert_eq!(decide(&log, &RULES, 1_000, u64::MAX), Decision::Wait);
        // One entry more: of the 400 bytes below 40, 50 are clean.
        let mut grown = view(&[(0, 9, 10), (10, 19, 20), (20, 29, 30), (30, 39, 40)], 30);
        grown.cleaned_bytes = 50;
        assert_eq!(
            decide(&grown, &RULES, 1_000, u64::MAX),
            Decision::Clean { end: 4, limit: 40 }
        );
        // A pass that looked as far already: nothing new.
        grown.cleaner_limit = 40;
        assert_eq!(decide(&grown, &RULES, 1_000, u64::MAX), Decision::Wait);
    }

    #[test]
    fn a_quiet_partition_is_cleaned_again_when_its_tombstones_expire() {
        let mut log = view(&[(0, 9, 10), (10, 19, 20)], 20);
        log.tombstones_expire_at_ms = 900;
        assert_eq!(decide(&log, &RULES, 899, u64::MAX), Decision::Wait);
        assert_eq!(
            decide(&log, &RULES, 900, u64::MAX),
            Decision::Clean { end: 2, limit: 20 }
        );
        // The whole clean section or nothing: the tombstone may be anywhere.
        assert_eq!(decide(&log, &RULES, 900, 150), Decision::TooLarge);
    }

    #[test]
    fn a_pass_reads_at_most_the_cap() {
        let log = view(&[(0, 9, 10), (10, 19, 20), (20, 29, 30), (30, 39, 40)], 10);
        assert_eq!(
            decide(&log, &RULES, 1_000, 250),
            Decision::Clean { end: 2, limit: 20 }
        );
        assert_eq!(decide(&log, &RULES, 1_000, 150), Decision::TooLarge);
    }

    #[test]
    fn only_topics_whose_policy_includes_compact_have_rules() {
        let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(CleaningRules::of_topic(&configs(&[])), None);
        assert_eq!(
            CleaningRules::of_topic(&configs(&[("cleanup.policy", "delete")])),
            None
        );
        assert_eq!(
            CleaningRules::of_topic(&configs(&[("cleanup.policy", "delete, compact")])),
            Some(RULES)
        );
        assert_eq!(
            CleaningRules::of_topic(&configs(&[
                ("cleanup.policy", "compact"),
                ("min.cleanable.dirty.ratio", "0.1"),
                ("delete.retention.ms", "5000"),
                ("min.compaction.lag.ms", "7"),
                ("max.compaction.lag.ms", "9"),
            ])),
            Some(CleaningRules {
                min_dirty_ratio: 0.1,
                min_lag_ms: 7,
                max_lag_ms: 9,
                delete_retention_ms: 5000,
            })
        );
    }
}
