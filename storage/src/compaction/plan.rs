//! Which objects a compaction pass takes. Pure functions of the catalog's
//! answers and the time, so the rules are tested exactly.

use std::time::Duration;

use streamhouse_metadata::compaction::StoredObject;

/// Most source objects one compaction reads. Each is below half the target, so
/// the bytes held are bounded by 1.5 × the target anyway; this bounds the GETs
/// (and catalog queries) of one pass when objects are tiny.
pub const MAX_SOURCES: usize = 1000;

/// The rules of [`choose`].
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Size a compacted object aims for; sources are objects below half of it.
    pub target_bytes: u64,
    /// Objects younger than this are left alone: tailing consumers read them
    /// from the writer's cache, and most are still being read.
    pub min_age: Duration,
    /// A run below the target is compacted anyway once its oldest member is this
    /// old, so a slow topic's objects are compacted too.
    pub max_age: Duration,
}

/// Picks the sources of one compaction from `candidates` (live objects below
/// half the target, in commit order): the oldest-first run of those at least
/// `min_age` old that reaches the target, or [`MAX_SOURCES`] of them, or — when
/// neither — all of them if the oldest is `max_age` old and there are at least
/// two. Empty when there is nothing worth doing.
pub fn choose(candidates: &[StoredObject], now_ms: i64, rules: &Rules) -> Vec<StoredObject> {
    let old_enough = now_ms.saturating_sub(millis(rules.min_age));
    let eligible: Vec<&StoredObject> = candidates
        .iter()
        .filter(|o| o.created_at_ms <= old_enough)
        .take(MAX_SOURCES)
        .collect();
    let mut total: u64 = 0;
    for (i, object) in eligible.iter().enumerate() {
        total += u64::try_from(object.size_bytes).unwrap_or(0);
        if total >= rules.target_bytes {
            return eligible[..=i].iter().map(|o| (*o).clone()).collect();
        }
    }
    let overdue = now_ms.saturating_sub(millis(rules.max_age));
    let oldest = eligible.iter().map(|o| o.created_at_ms).min();
    let worth_it = eligible.len() == MAX_SOURCES
        || (eligible.len() >= 2 && oldest.is_some_and(|t| t <= overdue));
    if worth_it {
        eligible.into_iter().cloned().collect()
    } else {
        Vec::new()
    }
}

/// Picks the sources of one compaction of sparse objects (large objects whose
/// retained bytes fell below half their size, in commit order): those at
/// least `min_age` old, oldest first, until their sizes reach four times the
/// target (what is read; what is written is under half of it) or
/// [`MAX_SOURCES`]. A lone sparse object is worth rewriting: it shrinks.
pub fn choose_sparse(candidates: &[StoredObject], now_ms: i64, rules: &Rules) -> Vec<StoredObject> {
    let old_enough = now_ms.saturating_sub(millis(rules.min_age));
    let mut total: u64 = 0;
    let mut chosen = Vec::new();
    for object in candidates.iter().filter(|o| o.created_at_ms <= old_enough) {
        if chosen.len() == MAX_SOURCES || total >= 4 * rules.target_bytes {
            break;
        }
        total += u64::try_from(object.size_bytes).unwrap_or(0);
        chosen.push(object.clone());
    }
    chosen
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        target_bytes: 1000,
        min_age: Duration::from_secs(5),
        max_age: Duration::from_secs(60),
    };
    const NOW: i64 = 1_000_000;

    fn object(id: i64, size_bytes: i64, age_ms: i64) -> StoredObject {
        StoredObject {
            id,
            key: format!("k{id}"),
            size_bytes,
            created_at_ms: NOW - age_ms,
        }
    }

    fn ids(chosen: &[StoredObject]) -> Vec<i64> {
        chosen.iter().map(|o| o.id).collect()
    }

    #[test]
    fn takes_the_oldest_run_that_reaches_the_target() {
        let candidates = [
            object(1, 400, 9_000),
            object(2, 400, 8_000),
            object(3, 300, 7_000),
            object(4, 400, 6_000),
        ];
        assert_eq!(ids(&choose(&candidates, NOW, &RULES)), vec![1, 2, 3]);
    }

    #[test]
    fn young_objects_wait() {
        let candidates = [
            object(1, 400, 9_000),
            object(2, 400, 4_000),
            object(3, 400, 1_000),
        ];
        assert!(choose(&candidates, NOW, &RULES).is_empty());
    }

    #[test]
    fn a_short_run_is_compacted_once_its_oldest_member_is_overdue() {
        let candidates = [object(1, 10, 61_000), object(2, 10, 30_000)];
        assert_eq!(ids(&choose(&candidates, NOW, &RULES)), vec![1, 2]);
        let not_yet = [object(1, 10, 59_000), object(2, 10, 30_000)];
        assert!(choose(&not_yet, NOW, &RULES).is_empty());
    }

    #[test]
    fn a_lone_overdue_object_is_left_as_it_is() {
        assert!(choose(&[object(1, 10, 600_000)], NOW, &RULES).is_empty());
    }

    #[test]
    fn sparse_objects_are_taken_alone_or_up_to_four_targets_once_old_enough() {
        assert_eq!(
            ids(&choose_sparse(&[object(1, 800, 6_000)], NOW, &RULES)),
            vec![1]
        );
        assert!(choose_sparse(&[object(1, 800, 1_000)], NOW, &RULES).is_empty());
        let many: Vec<StoredObject> = (1..=8).map(|i| object(i, 900, 10_000)).collect();
        assert_eq!(ids(&choose_sparse(&many, NOW, &RULES)), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_compaction_reads_at_most_max_sources_objects() {
        let candidates: Vec<StoredObject> = (0..MAX_SOURCES as i64 + 5)
            .map(|i| object(i, 0, 10_000))
            .collect();
        assert_eq!(choose(&candidates, NOW, &RULES).len(), MAX_SOURCES);
    }
}
