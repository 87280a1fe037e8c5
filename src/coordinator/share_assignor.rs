//! The share groups' assignor, Kafka's `simple` (KIP-932): every partition
//! of the subscribed topics is shared by `ceil(members / partitions)`
//! members, and each member gets its even share of those assignments (two
//! members' counts differ by one at most), keeping what it had where that
//! stays balanced. With more partitions than members each partition has one
//! member; with more members than partitions, several members read each.
//!
//! Balance comes before stickiness, as in Kafka. Nothing is revoked first:
//! records are handed out one at a time by the share-partition state, so a
//! partition may pass from one member to another at once. Members
//! subscribed to different topics are served the same way over the
//! partitions they subscribe to, and a partition no balanced choice covers
//! goes to its least loaded subscriber, so every partition with a
//! subscriber is read.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::consumer::{Partitions, Topics};

/// What the assignor knows of a member.
pub struct ShareMemberSpec<'a> {
    pub subscribed: &'a [String],
    /// Its assignment so far.
    pub current: &'a Partitions,
}

/// Readers and the partitions they share, as (topic id, partition).
type Span<'a> = (Vec<&'a str>, Vec<(Uuid, i32)>);

/// The assignment of every member (ids in `members`). When every member
/// subscribes to the same topics, their partitions are balanced together;
/// otherwise each topic's partitions are balanced among its own
/// subscribers, as Kafka's heterogeneous builder does, so no subscriber of
/// a topic is left out because of members of other topics.
pub fn assign(
    members: &BTreeMap<String, ShareMemberSpec<'_>>,
    topics: &Topics,
) -> BTreeMap<String, Partitions> {
    let mut assigned: BTreeMap<String, Partitions> = members
        .keys()
        .map(|id| (id.clone(), Partitions::new()))
        .collect();
    let subscribers = |name: &str| -> Vec<&str> {
        members
            .iter()
            .filter(|(_, m)| m.subscribed.iter().any(|t| t == name))
            .map(|(id, _)| id.as_str())
            .collect()
    };
    let mut first = members.values().map(|m| m.subscribed);
    let homogeneous = first
        .next()
        .is_some_and(|one| members.values().all(|m| m.subscribed == one));
    // Who reads what: one span for all topics when subscriptions are equal,
    // else one per topic.
    let mut spans: Vec<Span> = Vec::new();
    for (name, shape) in topics {
        let readers = subscribers(name);
        if readers.is_empty() {
            continue;
        }
        let partitions = (0..shape.partitions).map(|p| (shape.id, p));
        match spans.last_mut() {
            Some((_, targets)) if homogeneous => targets.extend(partitions),
            _ => spans.push((readers, partitions.collect())),
        }
    }
    for (readers, targets) in spans {
        for (id, partition) in balance(&readers, &targets, members) {
            assigned
                .get_mut(id)
                .expect("readers are members")
                .entry(partition.0)
                .or_default()
                .insert(partition.1);
        }
    }
    assigned
}

/// Kafka's simple assignment of `targets` among `readers` (every one may
/// read every target): each target shared by ceil(readers / targets), the
/// readers' counts even to one, each keeping what it had where that fits.
/// Returns (reader, target) pairs.
fn balance<'a>(
    readers: &[&'a str],
    targets: &[(Uuid, i32)],
    members: &BTreeMap<String, ShareMemberSpec<'_>>,
) -> Vec<(&'a str, (Uuid, i32))> {
    if targets.is_empty() || readers.is_empty() {
        return Vec::new();
    }
    let sharing = readers.len().div_ceil(targets.len());
    let quota: BTreeMap<&str, usize> = readers
        .iter()
        .copied()
        .zip(quotas(sharing * targets.len(), readers.len()))
        .collect();
    let mut holders: BTreeMap<(Uuid, i32), BTreeSet<&str>> =
        targets.iter().map(|t| (*t, BTreeSet::new())).collect();
    let mut counts: BTreeMap<&str, usize> = readers.iter().map(|id| (*id, 0)).collect();
    // What readers keep, in order, while within both bounds.
    for reader in readers {
        for (topic_id, partitions) in members[*reader].current {
            for partition in partitions {
                let Some(held) = holders.get_mut(&(*topic_id, *partition)) else {
                    continue;
                };
                let count = counts.get_mut(reader).expect("every reader is counted");
                if *count < quota[reader] && held.len() < sharing {
                    held.insert(reader);
                    *count += 1;
                }
            }
        }
    }
    // The rest: each target short of its sharing goes to the least loaded
    // reader under its quota that does not hold it yet.
    for target in targets {
        let held = holders.get_mut(target).expect("every target is held");
        while held.len() < sharing {
            let chosen = counts
                .iter()
                .filter(|(id, count)| **count < quota[*id] && !held.contains(*id))
                .min_by_key(|(_, count)| **count)
                .map(|(id, _)| *id);
            let Some(chosen) = chosen else {
                break;
            };
            held.insert(chosen);
            *counts.get_mut(chosen).expect("every reader is counted") += 1;
        }
        if held.is_empty() {
            // Every quota filled by other targets: the least loaded reads it.
            if let Some((id, count)) = counts.iter_mut().min_by_key(|(_, count)| **count) {
                held.insert(*id);
                *count += 1;
            }
        }
    }
    // The greedy fill can end with a target short of readers while the only
    // readers under quota already hold it (three readers, two targets:
    // quotas 2, 1, 1, the reader owed two holding the short target). A swap
    // fixes it: another reader of some other target moves to the short
    // one, and the reader under quota takes its place.
    for target in targets {
        while holders[target].len() < sharing {
            let swap = counts
                .iter()
                .filter(|(id, count)| **count < quota[*id] && holders[target].contains(*id))
                .find_map(|(needy, _)| {
                    holders.iter().find_map(|(other, held)| {
                        if other == target || held.contains(needy) {
                            return None;
                        }
                        held.iter()
                            .find(|mover| !holders[target].contains(*mover))
                            .map(|mover| (*needy, *other, *mover))
                    })
                });
            let Some((needy, other, mover)) = swap else {
                break;
            };
            let from = holders.get_mut(&other).expect("a target");
            from.remove(mover);
            from.insert(needy);
            holders.get_mut(target).expect("a target").insert(mover);
            *counts.get_mut(needy).expect("every reader is counted") += 1;
        }
    }
    holders
        .into_iter()
        .flat_map(|(target, held)| held.into_iter().map(move |id| (id, target)))
        .collect()
}

/// `total` assignments split over `members` as evenly as integers allow
/// (Kafka's formula: member i gets ceil(q * (i + 1)) - ceil(q * i) with q =
/// total / members).
fn quotas(total: usize, members: usize) -> Vec<usize> {
    let upto = |i: usize| (total * i).div_ceil(members);
    (0..members).map(|i| upto(i + 1) - upto(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::consumer::TopicShape;

    const T1: Uuid = Uuid::from_u128(1);
    const T2: Uuid = Uuid::from_u128(2);

    fn topics() -> Topics {
        [("a", T1, 2), ("b", T2, 8)]
            .into_iter()
            .map(|(name, id, partitions)| (name.to_owned(), TopicShape { id, partitions }))
            .collect()
    }

    /// Runs the assignor for members `(id, subscribed topics)`, each with
    /// the assignment it had in `before`.
    fn run(
        members: &[(&str, &[&str])],
        before: &BTreeMap<String, Partitions>,
    ) -> BTreeMap<String, Partitions> {
        let subscriptions: Vec<(String, Vec<String>)> = members
            .iter()
            .map(|(id, topics)| {
                (
                    id.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect();
        let empty = Partitions::new();
        let specs = subscriptions
            .iter()
            .map(|(id, subscribed)| {
                let current = before.get(id).unwrap_or(&empty);
                (
                    id.clone(),
                    ShareMemberSpec {
                        subscribed,
                        current,
                    },
                )
            })
            .collect();
        assign(&specs, &topics())
    }

    fn count(partitions: &Partitions) -> usize {
        partitions.values().map(BTreeSet::len).sum()
    }

    /// How many members hold each partition of `topic`.
    fn sharing(
        assignment: &BTreeMap<String, Partitions>,
        topic: Uuid,
        partitions: i32,
    ) -> Vec<usize> {
        (0..partitions)
            .map(|p| {
                assignment
                    .values()
                    .filter(|a| a.get(&topic).is_some_and(|ps| ps.contains(&p)))
                    .count()
            })
            .collect()
    }

    #[test]
    fn quotas_are_even_to_one() {
        assert_eq!(quotas(4, 3), vec![2, 1, 1]);
        assert_eq!(quotas(8, 2), vec![4, 4]);
        assert_eq!(quotas(9, 4), vec![3, 2, 2, 2]);
        assert_eq!(quotas(0, 2), vec![0, 0]);
    }

    #[test]
    fn more_members_than_partitions_share_each_partition() {
        let three = [("m1", &["a"][..]), ("m2", &["a"][..]), ("m3", &["a"][..])];
        let assignment = run(&three, &BTreeMap::new());
        assert_eq!(sharing(&assignment, T1, 2), vec![2, 2]);
        let mut counts: Vec<usize> = assignment.values().map(count).collect();
        counts.sort();
        assert_eq!(counts, vec![1, 1, 2]);
    }

    #[test]
    fn a_reader_owed_more_than_it_can_take_is_swapped_in() {
        // a (whose quota becomes 2) held partition 1 and b partition 0
        // when c joins: the fill gives 0 to c, and then 1 has no taker but
        // a, which holds it already.
        let before = BTreeMap::from([
            (
                "a".to_owned(),
                Partitions::from([(T1, BTreeSet::from([1]))]),
            ),
            (
                "b".to_owned(),
                Partitions::from([(T1, BTreeSet::from([0]))]),
            ),
        ]);
        let three = [("a", &["a"][..]), ("b", &["a"][..]), ("c", &["a"][..])];
        let assignment = run(&three, &before);
        assert_eq!(sharing(&assignment, T1, 2), vec![2, 2], "{assignment:?}");
        let mut counts: Vec<usize> = assignment.values().map(count).collect();
        counts.sort();
        assert_eq!(counts, vec![1, 1, 2]);
        // Every order of arrival ends balanced.
        for ids in [
            ["a", "b", "c"],
            ["c", "b", "a"],
            ["b", "a", "c"],
            ["c", "a", "b"],
        ] {
            let mut state = BTreeMap::new();
            let mut joined: Vec<(&str, &[&str])> = Vec::new();
            for id in ids {
                joined.push((id, &["a"][..]));
                state = run(&joined, &state);
            }
            assert_eq!(sharing(&state, T1, 2), vec![2, 2], "{ids:?}: {state:?}");
        }
    }

    #[test]
    fn more_partitions_than_members_split_them() {
        let two = [("m1", &["b"][..]), ("m2", &["b"][..])];
        let assignment = run(&two, &BTreeMap::new());
        assert_eq!(sharing(&assignment, T2, 8), vec![1; 8]);
        assert_eq!(count(&assignment["m1"]), 4);
        assert_eq!(count(&assignment["m2"]), 4);
        let one = run(&[("m1", &["b"][..])], &BTreeMap::new());
        assert_eq!(count(&one["m1"]), 8);
    }

    #[test]
    fn a_new_member_takes_a_share_and_the_others_keep_the_rest() {
        let two = [("m1", &["b"][..]), ("m2", &["b"][..])];
        let before = run(&two, &BTreeMap::new());
        let three = [("m1", &["b"][..]), ("m2", &["b"][..]), ("m3", &["b"][..])];
        let after = run(&three, &before);
        assert_eq!(sharing(&after, T2, 8), vec![1; 8]);
        let mut counts: Vec<usize> = after.values().map(count).collect();
        counts.sort();
        assert_eq!(counts, vec![2, 3, 3]);
        for id in ["m1", "m2"] {
            let kept = &after[id][&T2];
            assert!(
                kept.is_subset(&before[id][&T2]),
                "{id} only gives partitions up"
            );
        }
        // And when it leaves, the two take its partitions back.
        let back = run(&two, &after);
        assert_eq!(sharing(&back, T2, 8), vec![1; 8]);
        assert_eq!((count(&back["m1"]), count(&back["m2"])), (4, 4));
    }

    #[test]
    fn members_of_different_topics_get_partitions_of_theirs_only_and_all_are_read() {
        let members = [
            ("m1", &["a"][..]),
            ("m2", &["b"][..]),
            ("m3", &["a", "b"][..]),
        ];
        let assignment = run(&members, &BTreeMap::new());
        assert!(!assignment["m1"].contains_key(&T2));
        assert!(!assignment["m2"].contains_key(&T1));
        assert!(sharing(&assignment, T1, 2).iter().all(|n| *n >= 1));
        assert!(sharing(&assignment, T2, 8).iter().all(|n| *n >= 1));
        // A topic nobody subscribes to is nobody's.
        let only_a = run(&[("m1", &["a"][..])], &BTreeMap::new());
        assert_eq!(only_a["m1"].keys().collect::<Vec<_>>(), vec![&T1]);
        assert_eq!(count(&only_a["m1"]), 2);
    }

    #[test]
    fn each_topic_is_balanced_among_its_own_subscribers() {
        // Four readers of a (2 partitions), one of b: a's partitions have two
        // readers each, and nobody is idle.
        let members = [
            ("m1", &["a"][..]),
            ("m2", &["a"][..]),
            ("m3", &["a"][..]),
            ("m4", &["a"][..]),
            ("m5", &["b"][..]),
        ];
        let assignment = run(&members, &BTreeMap::new());
        assert_eq!(sharing(&assignment, T1, 2), vec![2, 2]);
        assert_eq!(sharing(&assignment, T2, 8), vec![1; 8]);
        for id in ["m1", "m2", "m3", "m4"] {
            assert_eq!(count(&assignment[id]), 1, "{id}");
        }
        assert_eq!(count(&assignment["m5"]), 8);
        // Members with nothing to read take no share of others' partitions.
        let members = [
            ("m1", &["a"][..]),
            ("m2", &["a"][..]),
            ("m3", &[][..]),
            ("m4", &["missing"][..]),
        ];
        let assignment = run(&members, &BTreeMap::new());
        assert_eq!((count(&assignment["m1"]), count(&assignment["m2"])), (1, 1));
        assert_eq!((count(&assignment["m3"]), count(&assignment["m4"])), (0, 0));
    }
}
