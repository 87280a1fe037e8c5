//! The server-side assignors of KIP-848 groups, chosen by the members'
//! `group.remote.assignor` (Kafka's `uniform` and `range`).
//!
//! - `uniform` spreads every subscribed partition evenly over the members
//!   that subscribe to its topic, keeping each member's partitions of the
//!   previous target where balance allows (sticky), so a rebalance moves as
//!   little as it can.
//! - `range` gives each member a contiguous range of every topic it
//!   subscribes to, members in instance-id (else member-id) order, the first
//!   `partitions % members` one partition more: members subscribed to the
//!   same co-partitioned topics get the same partition numbers of each.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{ConsumerMember, Partitions, Topics};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

/// Kafka's default (`group.consumer.assignors` lists uniform first).
pub const DEFAULT_ASSIGNOR: Assignor = Assignor::Uniform;

impl Assignor {
    pub fn named(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member (members with nothing get an
    /// empty entry).
    pub fn assign(
        self,
        members: &BTreeMap<String, ConsumerMember>,
        topics: &Topics,
        previous: &BTreeMap<String, Partitions>,
    ) -> BTreeMap<String, Partitions> {
        let subscriptions: BTreeMap<&str, BTreeSet<(&str, Uuid, i32)>> = members
            .values()
            .map(|m| {
                let topics = topics
                    .iter()
                    .filter(|(name, _)| m.subscribes(name))
                    .map(|(name, shape)| (name.as_str(), shape.id, shape.partitions))
                    .collect();
                (m.id.as_str(), topics)
            })
            .collect();
        let assigned = match self {
            Assignor::Uniform => uniform(&subscriptions, previous),
            Assignor::Range => range(members, &subscriptions),
        };
        members
            .keys()
            .map(|id| {
                let mut partitions = Partitions::new();
                for &(topic, partition) in assigned.get(id.as_str()).into_iter().flatten() {
                    partitions.entry(topic).or_default().insert(partition);
                }
                (id.clone(), partitions)
            })
            .collect()
    }
}

type Subscriptions<'a> = BTreeMap<&'a str, BTreeSet<(&'a str, Uuid, i32)>>;
type Assigned<'a> = BTreeMap<&'a str, Vec<(Uuid, i32)>>;

fn range<'a>(
    members: &'a BTreeMap<String, ConsumerMember>,
    subscriptions: &Subscriptions<'a>,
) -> Assigned<'a> {
    let mut by_topic: BTreeMap<(&str, Uuid, i32), Vec<&ConsumerMember>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for &topic in topics {
            by_topic.entry(topic).or_default().push(&members[*member]);
        }
    }
    let mut assigned: Assigned = BTreeMap::new();
    for ((_, id, partitions), mut subscribers) in by_topic {
        subscribers.sort_by_key(|m| (m.instance_id.as_deref().unwrap_or(&m.id), m.id.as_str()));
        let count = subscribers.len() as i32;
        let (each, extra) = (partitions / count, partitions % count);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let share = each + i32::from((i as i32) < extra);
            let mine = assigned.entry(member.id.as_str()).or_default();
            mine.extend((next..next + share).map(|p| (id, p)));
            next += share;
        }
    }
    assigned
}

fn uniform<'a>(
    subscriptions: &Subscriptions<'a>,
    previous: &BTreeMap<String, Partitions>,
) -> Assigned<'a> {
    let eligible: BTreeMap<(Uuid, i32), Vec<&str>> = {
        let mut eligible: BTreeMap<(Uuid, i32), Vec<&str>> = BTreeMap::new();
        for (member, topics) in subscriptions {
            for &(_, id, partitions) in topics {
                for p in 0..partitions {
                    eligible.entry((id, p)).or_default().push(member);
                }
            }
        }
        eligible
    };
    let active = subscriptions.values().filter(|t| !t.is_empty()).count();
    let mut assigned: Assigned = subscriptions.keys().map(|m| (*m, Vec::new())).collect();
    if active == 0 {
        return assigned;
    }
    let (quota, mut extra) = (eligible.len() / active, eligible.len() % active);
    // Sticky: each member keeps what it had and may still have, up to its share.
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    for (member, mine) in assigned.iter_mut() {
        let kept: Vec<(Uuid, i32)> = previous
            .get(*member)
            .into_iter()
            .flat_map(|p| p.iter())
            .flat_map(|(id, ps)| ps.iter().map(move |p| (*id, *p)))
            .filter(|tp| eligible.get(tp).is_some_and(|ms| ms.contains(member)))
            .collect();
        let mut share = quota;
        if kept.len() > quota && extra > 0 {
            share += 1;
            extra -= 1;
        }
        for tp in kept.into_iter().take(share) {
            taken.insert(tp);
            mine.push(tp);
        }
    }
    // The rest, each to the eligible member with the fewest.
    for (tp, members) in &eligible {
        if taken.contains(tp) {
            continue;
        }
        let fewest = members.iter().min_by_key(|m| (assigned[**m].len(), **m));
        if let Some(mine) = fewest.and_then(|m| assigned.get_mut(*m)) {
            mine.push(*tp);
        }
    }
    balance(&mut assigned, &eligible);
    assigned
}

/// Moves partitions from the fullest members to eligible emptier ones until
/// no move narrows the spread (subscriptions that differ can leave it > 1).
fn balance(assigned: &mut Assigned<'_>, eligible: &BTreeMap<(Uuid, i32), Vec<&str>>) {
    loop {
        let mut order: Vec<&str> = assigned.keys().copied().collect();
        order.sort_by_key(|m| (std::cmp::Reverse(assigned[*m].len()), *m));
        let mut moved = None;
        'search: for from in &order {
            let from_len = assigned[*from].len();
            for tp in assigned[*from].iter().rev() {
                let to = eligible[tp]
                    .iter()
                    .filter(|m| assigned[**m].len() + 1 < from_len)
                    .min_by_key(|m| (assigned[**m].len(), **m));
                if let Some(to) = to {
                    moved = Some((*from, *to, *tp));
                    break 'search;
                }
            }
        }
        let Some((from, to, tp)) = moved else {
            return;
        };
        if let Some(mine) = assigned.get_mut(from) {
            mine.retain(|p| *p != tp);
        }
        if let Some(theirs) = assigned.get_mut(to) {
            theirs.push(tp);
        }
    }
}
