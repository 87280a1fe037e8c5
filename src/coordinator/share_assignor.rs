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

/// The assignment of every member (ids in `members`).
pub fn assign(
    members: &BTreeMap<String, ShareMemberSpec<'_>>,
    topics: &Topics,
) -> BTreeMap<String, Partitions> {
    let mut assigned: BTreeMap<String, Partitions> = members
        .keys()
        .map(|id| (id.clone(), Partitions::new()))
        .collect();
    // (topic id, partition, topic name), in topic-name order.
    let targets: Vec<(Uuid, i32, &str)> = topics
        .iter()
        .filter(|(name, _)| members.values().any(|m| m.subscribed.contains(name)))
        .flat_map(|(name, shape)| (0..shape.partitions).map(move |p| (shape.id, p, name.as_str())))
        .collect();
    if targets.is_empty() {
        return assigned;
    }
    let member_count = members.len();
    let sharing = member_count.div_ceil(targets.len());
    let quotas = quotas(sharing * targets.len(), member_count);
    let quota: BTreeMap<&str, usize> = members.keys().map(String::as_str).zip(quotas).collect();
    let mut holders: BTreeMap<(Uuid, i32), BTreeSet<&str>> = targets
        .iter()
        .map(|(id, p, _)| ((*id, *p), BTreeSet::new()))
        .collect();
    let mut counts: BTreeMap<&str, usize> = members.keys().map(|id| (id.as_str(), 0)).collect();
    let subscribes =
        |member: &str, topic: &str| members[member].subscribed.iter().any(|t| t == topic);
    let topic_of: BTreeMap<Uuid, &str> = targets.iter().map(|(id, _, name)| (*id, *name)).collect();

    // What members keep, in member order, while within both bounds.
    for (id, spec) in members {
        for (topic_id, partitions) in spec.current {
            let Some(topic) = topic_of.get(topic_id) else {
                continue;
            };
            if !subscribes(id, topic) {
                continue;
            }
            for partition in partitions {
                let Some(held) = holders.get_mut(&(*topic_id, *partition)) else {
                    continue;
                };
                if counts[id.as_str()] < quota[id.as_str()] && held.len() < sharing {
                    held.insert(id);
                    *counts
                        .get_mut(id.as_str())
                        .expect("every member is counted") += 1;
                }
            }
        }
    }
    // The rest: each partition short of its sharing goes to the least
    // loaded member under its quota that subscribes to its topic.
    for (topic_id, partition, topic) in &targets {
        let held = holders
            .get_mut(&(*topic_id, *partition))
            .expect("every target is held");
        while held.len() < sharing {
            let chosen = counts
                .iter()
                .filter(|(id, count)| {
                    **count < quota[*id] && !held.contains(*id) && subscribes(id, topic)
                })
                .min_by_key(|(_, count)| **count)
                .map(|(id, _)| *id);
            let Some(chosen) = chosen else {
                break;
            };
            held.insert(chosen);
            *counts.get_mut(chosen).expect("every member is counted") += 1;
        }
        if held.is_empty() {
            // Quotas full among its subscribers: the least loaded reads it.
            let chosen = counts
                .iter()
                .filter(|(id, _)| subscribes(id, topic))
                .min_by_key(|(_, count)| **count)
                .map(|(id, _)| *id);
            if let Some(chosen) = chosen {
                held.insert(chosen);
                *counts.get_mut(chosen).expect("every member is counted") += 1;
            }
        }
    }
    for ((topic_id, partition), held) in holders {
        for id in held {
            assigned
                .get_mut(id)
                .expect("holders are members")
                .entry(topic_id)
                .or_default()
                .insert(partition);
        }
    }
    assigned
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
}
