//! ConsumerGroupHeartbeat: a member joins with epoch 0, heartbeats with its
//! current epoch, leaves with -1 (-2 for a static member that comes back).
//! Each heartbeat moves the member one step towards its target assignment
//! (`reconcile`), in Kafka's order of checks and with Kafka's errors.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::{after, topic_pattern, Assignor, ConsumerGroup, ConsumerMember, MemberState};
use super::{Partitions, Topics};
use crate::coordinator::GroupRules;

/// Epochs with a meaning of their own.
const JOIN_EPOCH: i32 = 0;
const LEAVE_EPOCH: i32 = -1;
const LEAVE_STATIC_EPOCH: i32 = -2;

/// One heartbeat, with nulls (unchanged since the last) as None.
#[derive(Clone, Debug, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when not sent.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member owns, when it says.
    pub owned: Option<Partitions>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, sent when it changed or the member asked
    /// (joined, or told what it owns).
    pub assignment: Option<Partitions>,
}

/// A refusal: the error and the message Kafka sends with it.
pub type Refusal = (ResponseError, String);

fn invalid(message: &str) -> Refusal {
    (ResponseError::InvalidRequest, message.to_owned())
}

/// Kafka's request checks, before the group is looked at.
pub fn validate(request: &HeartbeatRequest, version: i16) -> Result<(), Refusal> {
    if request.instance_id.as_deref() == Some("") {
        return Err(invalid("InstanceId can't be empty."));
    }
    if request.rack_id.as_deref() == Some("") {
        return Err(invalid("RackId can't be empty."));
    }
    if request.member_epoch < LEAVE_STATIC_EPOCH {
        return Err(invalid("MemberEpoch is invalid."));
    }
    // From v1 the client makes its member id; before, the first heartbeat
    // has none and the coordinator makes it.
    let needs_id = version >= 1 || request.member_epoch != JOIN_EPOCH;
    if needs_id && request.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    if request.member_epoch == JOIN_EPOCH {
        if request.rebalance_timeout_ms == -1 {
            return Err(invalid(
                "RebalanceTimeoutMs must be provided in first request.",
            ));
        }
        if request.owned.as_ref().is_none_or(|o| !o.is_empty()) {
            return Err(invalid("TopicPartitions must be empty when (re-)joining."));
        }
        if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none() {
            return Err(invalid(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            ));
        }
    }
    if request.member_epoch == LEAVE_STATIC_EPOCH && request.instance_id.is_none() {
        return Err(invalid(
            "InstanceId can't be null when leaving with epoch -2.",
        ));
    }
    if let Some(name) = request.server_assignor.as_deref() {
        if Assignor::named(name).is_none() {
            return Err((
                ResponseError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: uniform, range."
                ),
            ));
        }
    }
    if let Some(regex) = request.subscribed_topic_regex.as_deref() {
        if topic_pattern(regex).is_none() {
            return Err((
                ResponseError::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{regex}` is not a valid regular expression."),
            ));
        }
    }
    Ok(())
}

impl ConsumerGroup {
    /// Handles a validated heartbeat. `member_id` is the id to use (made by
    /// the coordinator for a v0 join without one).
    pub fn heartbeat(
        &mut self,
        request: HeartbeatRequest,
        topics: &Topics,
        rules: &GroupRules,
        now: Instant,
    ) -> Result<HeartbeatAnswer, Refusal> {
        let interval = rules.consumer_heartbeat_interval_ms;
        let member_id = request.member_id.clone();
        let mut joined = false;
        match request.member_epoch {
            LEAVE_EPOCH | LEAVE_STATIC_EPOCH => {
                let Some(member) = self
                    .members
                    .get_mut(&member_id)
                    .filter(|m| m.classic.is_none())
                else {
                    return Err(unknown_member(&member_id));
                };
                if request.member_epoch == LEAVE_STATIC_EPOCH {
                    // Kept, with its partitions, for the instance to come back
                    // under a new member id.
                    member.departed = true;
                } else {
                    self.remove_member(&member_id);
                }
                return Ok(HeartbeatAnswer {
                    member_id,
                    member_epoch: request.member_epoch,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                });
            }
            JOIN_EPOCH => joined = self.join(&request, rules, now)?,
            epoch => {
                let Some(member) = self.members.get(&member_id).filter(|m| m.classic.is_none())
                else {
                    return Err(unknown_member(&member_id));
                };
                let lost_answer = epoch == member.previous_epoch
                    && request
                        .owned
                        .as_ref()
                        .is_some_and(|owned| is_subset(owned, &member.assigned));
                if member.departed || (epoch != member.epoch && !lost_answer) {
                    return Err((
                        ResponseError::FencedMemberEpoch,
                        format!(
                            "The consumer group member has a smaller member epoch ({epoch}) than \
                             the one known by the group coordinator ({}). The member must abandon \
                             all its partitions and rejoin.",
                            member.epoch
                        ),
                    ));
                }
            }
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return Err(unknown_member(&member_id));
        };
        let assigned_before = member.assigned.clone();
        member.session_deadline = after(now, rules.consumer_session_timeout_ms);
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        if request.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if request.rack_id.is_some() {
            member.rack_id = request.rack_id;
        }
        let mut resubscribed = false;
        if let Some(names) = request.subscribed_topic_names {
            let mut names = names;
            names.sort();
            names.dedup();
            resubscribed |= names != member.subscribed_topic_names;
            member.subscribed_topic_names = names;
        }
        if let Some(regex) = request.subscribed_topic_regex {
            // An empty regex clears it (as the Java client's unsubscribe()).
            let regex = Some(regex).filter(|r| !r.is_empty());
            if regex != member.subscribed_topic_regex {
                resubscribed = true;
                member.topic_pattern = regex.as_deref().and_then(topic_pattern);
                member.subscribed_topic_regex = regex;
            }
        }
        if let Some(name) = request.server_assignor {
            resubscribed |= member.server_assignor.as_deref() != Some(name.as_str());
            member.server_assignor = Some(name);
        }
        if let Some(owned) = &request.owned {
            member.confirm_revocation(owned);
        }
        self.advance(&member_id, joined || resubscribed, topics, now);
        let member = &self.members[&member_id];
        let send = request.member_epoch == JOIN_EPOCH
            || request.owned.is_some()
            || member.assigned != assigned_before;
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: interval,
            assignment: send.then(|| member.assigned.clone()),
        })
    }

    /// Epoch 0: a new member, a member rejoining after it was fenced, or a
    /// static member's instance coming back under a new member id. Whether a
    /// member was added.
    fn join(
        &mut self,
        request: &HeartbeatRequest,
        rules: &GroupRules,
        now: Instant,
    ) -> Result<bool, Refusal> {
        let id = request.member_id.clone();
        if let Some(instance) = request.instance_id.as_deref() {
            let holder = self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance) && m.id != id)
                .map(|m| (m.id.clone(), m.departed));
            match holder {
                Some((_, false)) => {
                    return Err((
                        ResponseError::UnreleasedInstanceId,
                        format!(
                            "Static member {id} with instance id {instance} cannot join the \
                             group because the instance id is owned by another member."
                        ),
                    ))
                }
                Some((old_id, true)) => {
                    // The instance takes its assignment back without a rebalance.
                    let Some(mut member) = self.members.remove(&old_id) else {
                        return Ok(false);
                    };
                    let target = self.target.remove(&old_id).unwrap_or_default();
                    member.id = id.clone();
                    member.departed = false;
                    self.target.insert(id.clone(), target);
                    self.members.insert(id, member);
                    return Ok(false);
                }
                None => {}
            }
        }
        if let Some(member) = self.members.get_mut(&id) {
            // Fenced, it gave everything up: it starts again from nothing.
            member.assigned.clear();
            member.assigned_epochs.clear();
            member.revoking.clear();
            member.revocation_deadline = None;
            member.previous_epoch = member.epoch;
            member.epoch = JOIN_EPOCH;
            member.state = MemberState::Stable;
            member.classic = None;
            return Ok(false);
        }
        if self.members.len() >= rules.max_size {
            return Err((
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    rules.max_size
                ),
            ));
        }
        let regex = request
            .subscribed_topic_regex
            .clone()
            .filter(|r| !r.is_empty());
        self.members.insert(
            id.clone(),
            ConsumerMember {
                id,
                instance_id: request.instance_id.clone(),
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                subscribed_topic_names: Vec::new(),
                topic_pattern: regex.as_deref().and_then(topic_pattern),
                subscribed_topic_regex: regex,
                server_assignor: None,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                epoch: JOIN_EPOCH,
                previous_epoch: JOIN_EPOCH,
                state: MemberState::Stable,
                assigned: Partitions::new(),
                revoking: Partitions::new(),
                assigned_epochs: BTreeMap::new(),
                departed: false,
                session_deadline: after(now, rules.consumer_session_timeout_ms),
                revocation_deadline: None,
                classic: None,
            },
        );
        Ok(true)
    }

    /// The rest of a member's heartbeat (or a classic member's JoinGroup)
    /// once its own fields are updated: one bump of the group epoch for all
    /// that changed (as Kafka's one epoch per heartbeat), the target
    /// assignment of the new epoch, and one reconciliation step of the member.
    pub(super) fn advance(
        &mut self,
        member_id: &str,
        changed: bool,
        topics: &Topics,
        now: Instant,
    ) {
        let topics_changed = self.refresh_topics(topics);
        if changed || topics_changed {
            self.epoch += 1;
        }
        if self.assignment_epoch < self.epoch {
            self.target = self.assignor().assign(&self.members, topics, &self.target);
            self.assignment_epoch = self.epoch;
        }
        self.reconcile(member_id, now);
    }

    /// The partitions members other than `member_id` hold or are giving up.
    pub(super) fn held_by_others(&self, member_id: &str) -> BTreeSet<(Uuid, i32)> {
        self.members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| flatten(&m.assigned).chain(flatten(&m.revoking)))
            .collect()
    }

    /// Whether a subscribed topic was created, deleted or grown since the
    /// last assignment (the group epoch must grow).
    fn refresh_topics(&mut self, topics: &Topics) -> bool {
        let subscribed: Topics = topics
            .iter()
            .filter(|(name, _)| self.members.values().any(|m| m.subscribes(name)))
            .map(|(name, shape)| (name.clone(), shape.clone()))
            .collect();
        if subscribed == self.subscribed_topics {
            return false;
        }
        self.subscribed_topics = subscribed;
        true
    }

    /// One step of the member towards its target: revoke first (staying at
    /// its epoch), then move to the assignment epoch and take every target
    /// partition no other member still holds.
    fn reconcile(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others = self.held_by_others(member_id);
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        if !member.revoking.is_empty() {
            return;
        }
        let revoke: BTreeSet<(Uuid, i32)> = flatten(&member.assigned)
            .filter(|tp| !contains(&target, tp))
            .collect();
        if !revoke.is_empty() {
            member.assigned = gather(flatten(&member.assigned).filter(|tp| !revoke.contains(tp)));
            member.revoking = gather(revoke.into_iter());
            member.state = MemberState::UnrevokedPartitions;
            member.revocation_deadline = Some(after(now, member.rebalance_timeout_ms));
            return;
        }
        let wanted: Vec<(Uuid, i32)> = flatten(&target)
            .filter(|tp| !contains(&member.assigned, tp))
            .collect();
        if member.epoch != assignment_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = assignment_epoch;
        }
        let mut unreleased = false;
        for tp in wanted {
            if held_by_others.contains(&tp) {
                unreleased = true;
            } else {
                member.assigned.entry(tp.0).or_default().insert(tp.1);
                member.assigned_epochs.insert(tp, assignment_epoch);
            }
        }
        let held: BTreeSet<(Uuid, i32)> = flatten(&member.assigned).collect();
        member.assigned_epochs.retain(|tp, _| held.contains(tp));
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }
}

impl ConsumerMember {
    /// It has given up what it was told to once what it owns holds none of it.
    pub(super) fn confirm_revocation(&mut self, owned: &Partitions) {
        if !self.revoking.is_empty() && !intersects(owned, &self.revoking) {
            self.revoking.clear();
            self.revocation_deadline = None;
        }
    }
}

fn unknown_member(member_id: &str) -> Refusal {
    (
        ResponseError::UnknownMemberId,
        format!("Member {member_id} is not a member of the group."),
    )
}

pub(super) fn flatten(partitions: &Partitions) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    partitions
        .iter()
        .flat_map(|(id, ps)| ps.iter().map(move |p| (*id, *p)))
}

fn gather(pairs: impl Iterator<Item = (Uuid, i32)>) -> Partitions {
    let mut partitions = Partitions::new();
    for (id, p) in pairs {
        partitions.entry(id).or_default().insert(p);
    }
    partitions
}

pub(super) fn contains(partitions: &Partitions, (id, p): &(Uuid, i32)) -> bool {
    partitions.get(id).is_some_and(|ps| ps.contains(p))
}

fn is_subset(small: &Partitions, big: &Partitions) -> bool {
    flatten(small).all(|tp| contains(big, &tp))
}

fn intersects(a: &Partitions, b: &Partitions) -> bool {
    flatten(a).any(|tp| contains(b, &tp))
}
