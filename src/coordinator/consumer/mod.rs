//! Consumer groups of the new protocol (KIP-848, `group.protocol=consumer`):
//! the server computes the assignment and hands it to each member through its
//! heartbeats, partition by partition, without stopping the group.
//!
//! - `heartbeat.rs`: ConsumerGroupHeartbeat: joining, leaving, fencing, and
//!   the reconciliation of a member towards its target assignment.
//! - `assignor.rs`: the server-side assignors, `uniform` and `range`.
//! - `stored.rs`: the JSON document the catalog keeps of such a group.
//! - `classic.rs`: members of the classic protocol in such a group (Kafka's
//!   online migration between the protocols).
//!
//! Pure state, like the classic group beside it: no I/O, `now` passed in.
//! A group is one kind or the other: the classic `Group` holds this state in
//! `Group::consumer` while it is a consumer-protocol group (see
//! `Group::consumer_group`), and its classic members stay empty meanwhile.
//!
//! The epochs follow Kafka's: the group epoch grows whenever membership,
//! subscriptions or the subscribed topics change; the target assignment is
//! recomputed for the group epoch (the assignment epoch); a member moves to
//! the assignment epoch once it has given up what it must revoke, and is
//! given a partition only once no other member holds it.

mod assignor;
mod classic;
pub(super) mod heartbeat;
mod stored;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

pub use assignor::{Assignor, DEFAULT_ASSIGNOR};
pub use classic::{by_id, by_name, ClassicMember};
pub use heartbeat::{validate, HeartbeatAnswer, HeartbeatRequest, Refusal};

/// Partitions by topic id.
pub type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// A topic as the assignors see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicShape {
    pub id: Uuid,
    pub partitions: i32,
}

/// The topics that exist, by name, when a heartbeat is handled.
pub type Topics = BTreeMap<String, TopicShape>;

/// The states ConsumerGroupDescribe and ListGroups show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// The target assignment is behind the group epoch.
    Assigning,
    /// Some member is not yet at the target assignment.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Where a member is on its way to its target assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// It must give partitions up before it moves to the new epoch.
    UnrevokedPartitions,
    /// At the new epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// `subscribed_topic_regex` compiled, anchored at both ends as Java's
    /// `Pattern.matcher(..).matches()`.
    pub topic_pattern: Option<regex::Regex>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What it owns now (as far as the coordinator has told it).
    pub assigned: Partitions,
    /// What it was told to give up and has not yet confirmed giving up.
    pub revoking: Partitions,
    /// The member epoch at which it was given each partition it holds
    /// (commits at an older epoch are judged by it).
    pub assigned_epochs: BTreeMap<(Uuid, i32), i32>,
    /// A static member that left with epoch -2: its assignment is kept for
    /// the instance until the session lapses.
    pub departed: bool,
    pub session_deadline: Instant,
    /// Removed if the revocation has not been confirmed by then.
    pub revocation_deadline: Option<Instant>,
    /// Set for a member of the classic protocol (see `classic.rs`).
    pub classic: Option<ClassicMember>,
}

impl ConsumerMember {
    /// Whether it subscribes to `topic` by name or by its regex (which, as
    /// the Java client's `exclude.internal.topics`, never matches an internal
    /// topic).
    pub fn subscribes(&self, topic: &str) -> bool {
        self.subscribed_topic_names.iter().any(|t| t == topic)
            || (topic != crate::internal_topics::CONSUMER_OFFSETS
                && self
                    .topic_pattern
                    .as_ref()
                    .is_some_and(|re| re.is_match(topic)))
    }
}

/// A subscription regex compiled as the group matches it: the whole topic
/// name must match. None if it is not a valid regular expression.
pub fn topic_pattern(regex: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{regex})$")).ok()
}

#[derive(Clone, Debug, Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// The target assignment of the assignment epoch, by member id.
    pub target: BTreeMap<String, Partitions>,
    /// The subscribed topics as they were when the group epoch last grew:
    /// a topic created, deleted or grown bumps it.
    pub subscribed_topics: Topics,
}

impl ConsumerGroup {
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.assignment_epoch < self.epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor the group uses: the one most members ask for, else the
    /// default (as Kafka picks it).
    pub fn assignor(&self) -> Assignor {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.server_assignor.as_deref() {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, count)| *count)
            .and_then(|(name, _)| Assignor::named(name))
            .unwrap_or(DEFAULT_ASSIGNOR)
    }

    /// Removes a member (left, expired, fenced): its partitions are free for
    /// others and the group epoch grows.
    pub fn remove_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.epoch += 1;
        }
    }

    /// Removes members whose session lapsed or whose revocation is overdue;
    /// whether any was.
    pub fn tick(&mut self, group_id: &str, now: Instant) -> bool {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.session_deadline <= now {
                    Some((m.id.clone(), "session expired"))
                } else if m.revocation_deadline.is_some_and(|d| d <= now) {
                    Some((
                        m.id.clone(),
                        "did not revoke its partitions in its rebalance timeout",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (member_id, why) in &expired {
            tracing::info!(group = group_id, member = %member_id, "{why}; removing member");
            self.remove_member(member_id);
        }
        !expired.is_empty()
    }

    /// Kafka 4.4's checks of an OffsetCommit of these (topic, partition)s:
    /// outside group management (epoch -1) only while the group is empty;
    /// else a member at its current epoch, or at an earlier one for
    /// partitions it has held since that epoch or is giving up (a commit
    /// that raced the answer moving it on); never a later one.
    pub fn check_commit(
        &self,
        member_id: &str,
        epoch: i32,
        partitions: &[(&str, i32)],
    ) -> Option<ResponseError> {
        if epoch < 0 && self.members.is_empty() {
            return None;
        }
        let Some(member) = self.members.get(member_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if epoch == member.epoch {
            return None;
        }
        if member.classic.is_some() {
            // A classic member commits at its generation, exactly.
            return Some(ResponseError::IllegalGeneration);
        }
        let held_since_then = |(topic, partition): &(&str, i32)| {
            let Some(shape) = self.subscribed_topics.get(*topic) else {
                return false;
            };
            let key = (shape.id, *partition);
            let assigned_at = member.assigned_epochs.get(&key).copied();
            let assigned = member
                .assigned
                .get(&shape.id)
                .is_some_and(|ps| ps.contains(partition));
            let revoking = member
                .revoking
                .get(&shape.id)
                .is_some_and(|ps| ps.contains(partition));
            revoking || (assigned && assigned_at.is_some_and(|at| at <= epoch))
        };
        if epoch < member.epoch && epoch > 0 && partitions.iter().all(held_since_then) {
            return None;
        }
        Some(ResponseError::StaleMemberEpoch)
    }
}

/// A session of `ms` from `now`.
pub(in crate::coordinator) fn after(now: Instant, ms: i32) -> Instant {
    now + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod classic_tests;
#[cfg(test)]
pub(super) mod tests;
