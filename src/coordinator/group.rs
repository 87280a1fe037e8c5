//! A classic group's state and its rebalance protocol: joining, choosing the
//! protocol and the leader, completing a generation. Pure state: no I/O, no
//! clock of its own (callers pass `now`). SyncGroup is in `sync.rs`; heartbeats,
//! leaving and expiry in `membership.rs`.
//!
//! This follows Apache Kafka's classic `GroupCoordinator`: the same states, the
//! same errors in the same order of checks, and `group.initial.rebalance.delay.ms`
//! for the first rebalance of an empty group.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::groups::GroupFence;
use tokio::sync::oneshot;

use super::consumer::{ConsumerGroup, Topics};
use super::member::{millis, JoinRequest, JoinResult, Member};
use super::share_group::ShareGroup;

/// The protocol type of consumer groups, classic or not.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// The protocol type share groups are stored with.
pub const SHARE_PROTOCOL_TYPE: &str = "share";

/// The states clients display (DescribeGroups, ListGroups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// When the rebalance in progress completes at the latest.
#[derive(Debug)]
pub(super) struct Rebalance {
    pub deadline: Instant,
    /// First rebalance of an empty group: wait the initial delay, extended while
    /// new members keep arriving, up to the rebalance timeout in all.
    pub initial: Option<InitialDelay>,
}

#[derive(Debug)]
pub(super) struct InitialDelay {
    pub delay: Duration,
    pub remaining: Duration,
}

/// The answer to a JoinGroup: now, or once the rebalance completes.
pub enum JoinReply {
    Now(JoinResult),
    Later(oneshot::Receiver<JoinResult>),
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pub(super) pending: HashMap<String, Instant>,
    pub(super) rebalance: Option<Rebalance>,
    /// CompletingRebalance: members that have not sent SyncGroup by then are removed.
    pub(super) sync_deadline: Option<Instant>,
    pub(super) new_member_added: bool,
    /// Set when the group changed in a way that must be persisted.
    pub dirty: bool,
    /// Stored in the catalog at least once (or loaded from it).
    pub(super) stored: bool,
    pub(super) rules: GroupRules,
    /// What its catalog writes are conditioned on: the lease epoch this agent
    /// loaded it under (see `ownership.rs`).
    pub(super) fence: GroupFence,
    /// Set while the group is a consumer group of the new protocol (KIP-848);
    /// its classic members are empty then (see `consumer/mod.rs`).
    pub consumer: Option<ConsumerGroup>,
    /// Set while the group is a share group (KIP-932), likewise.
    pub share: Option<ShareGroup>,
}

/// What every group of this agent is held to: Kafka's broker-wide group
/// settings (agent settings here, the same on every agent of a cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRules {
    /// `group.initial.rebalance.delay.ms`: how long a new group waits for
    /// more members before its first rebalance.
    pub initial_delay: Duration,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`: a
    /// join asking for a session outside them is refused with
    /// INVALID_SESSION_TIMEOUT.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: a join that would add a member to a group this big is
    /// refused with GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
    /// `group.consumer.session.timeout.ms`: how long a member of a consumer
    /// group of the new protocol lives without a heartbeat.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: the interval its members are told.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.share.session.timeout.ms` and `group.share.heartbeat.interval.ms`:
    /// the same for share group members.
    pub share_session_timeout_ms: i32,
    pub share_heartbeat_interval_ms: i32,
    /// `group.share.record.lock.duration.ms`: how long a delivered record
    /// stays with its consumer unacknowledged before it is delivered again.
    pub share_record_lock_ms: i32,
    /// `group.share.delivery.count.limit`: deliveries before a record that
    /// keeps coming back is archived.
    pub share_delivery_limit: i16,
}

impl Default for GroupRules {
    /// Kafka's defaults.
    fn default() -> GroupRules {
        GroupRules {
            initial_delay: Duration::from_secs(3),
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            share_session_timeout_ms: 45_000,
            share_heartbeat_interval_ms: 5_000,
            share_record_lock_ms: 30_000,
            share_delivery_limit: 5,
        }
    }
}

impl Group {
    pub fn new(id: &str, rules: GroupRules) -> Group {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance: None,
            sync_deadline: None,
            new_member_added: false,
            dirty: false,
            stored: false,
            rules,
            fence: GroupFence::Unfenced,
            consumer: None,
            share: None,
        }
    }

    /// Never joined, never committed to, nothing pending: as if it did not exist.
    pub fn is_unused(&self) -> bool {
        self.state == GroupState::Empty
            && self.generation == 0
            && self.members.is_empty()
            && self.pending.is_empty()
            && self.protocol_type.is_none()
            && self.consumer.is_none()
            && self.share.is_none()
            && !self.dirty
            && !self.stored
    }

    /// The group as a consumer group of the new protocol, converting it if it
    /// is a classic group without members (as Kafka converts an empty group);
    /// None if it is a classic group in use.
    pub fn consumer_group(&mut self) -> Option<&mut ConsumerGroup> {
        if self.consumer.is_none() {
            if !self.is_empty_of_every_kind() {
                return None;
            }
            self.share = None;
            self.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_owned());
            self.protocol_name = None;
            self.leader = None;
            self.consumer = Some(ConsumerGroup::default());
        }
        self.consumer.as_mut()
    }

    /// The group as a share group, converting it if it is a group of
    /// another kind without members; None if it is one in use.
    pub fn share_group(&mut self) -> Option<&mut ShareGroup> {
        if self.share.is_none() {
            if !self.is_empty_of_every_kind() {
                return None;
            }
            self.consumer = None;
            self.protocol_type = Some(SHARE_PROTOCOL_TYPE.to_owned());
            self.protocol_name = None;
            self.leader = None;
            self.share = Some(ShareGroup::default());
        }
        self.share.as_mut()
    }

    /// No members of any protocol.
    fn is_empty_of_every_kind(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && !self.has_consumer_members()
    }

    /// Whether it is a consumer-protocol or share group with members.
    pub fn has_consumer_members(&self) -> bool {
        self.consumer
            .as_ref()
            .is_some_and(|c| !c.members.is_empty())
            || self.share.as_ref().is_some_and(|s| !s.members.is_empty())
    }

    /// The member id a static instance currently holds.
    pub fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.as_str())
    }

    /// A static member presenting an instance id that now belongs to another member id.
    pub fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|instance| self.static_member(instance))
            .is_some_and(|current| current != member_id)
    }

    /// Whether a member of this type and these protocols may join: the group's
    /// protocol type, and a protocol every other member supports too.
    fn accepts_protocols(&self, request: &JoinRequest) -> bool {
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.id != request.member_id)
            .collect();
        if others.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(request.protocol_type.as_str())
            && request
                .protocols
                .iter()
                .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    /// Whether this is a consumer-protocol group with members: a classic
    /// JoinGroup joins it as a classic member (and needs the topics).
    pub fn is_live_consumer(&self) -> bool {
        self.consumer
            .as_ref()
            .is_some_and(|c| !c.members.is_empty())
    }

    /// A JoinGroup. `topics` (every topic) is needed, and given, only when
    /// the group [`is_live_consumer`](Self::is_live_consumer).
    pub fn join(
        &mut self,
        request: JoinRequest,
        topics: Option<&Topics>,
        now: Instant,
    ) -> JoinReply {
        let member_id = request.member_id.clone();
        if self.state == GroupState::Dead {
            return JoinReply::Now(JoinResult::error(
                &member_id,
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if self.share.as_ref().is_some_and(|s| !s.members.is_empty()) {
            // A live share group: no classic member joins it (Kafka has no
            // migration to or from share groups).
            return JoinReply::Now(JoinResult::error(
                &member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        let sessions = self.rules.min_session_timeout_ms..=self.rules.max_session_timeout_ms;
        if !sessions.contains(&request.session_timeout_ms) {
            return JoinReply::Now(JoinResult::error(
                &member_id,
                ResponseError::InvalidSessionTimeout,
            ));
        }
        if self.is_live_consumer() {
            let (Some(topics), Some(consumer)) = (topics, self.consumer.as_mut()) else {
                return JoinReply::Now(JoinResult::error(
                    &member_id,
                    ResponseError::CoordinatorNotAvailable,
                ));
            };
            let before = consumer.to_json();
            let result = consumer.classic_join(&request, topics, &self.rules, now);
            self.dirty |= consumer.to_json() != before;
            return JoinReply::Now(result);
        }
        if self.consumer.take().is_some() | self.share.take().is_some() {
            // An empty consumer-protocol or share group becomes a classic one.
            self.protocol_type = None;
            self.dirty = true;
        }
        if !self.accepts_protocols(&request) {
            return JoinReply::Now(JoinResult::error(
                &member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        if member_id.is_empty() {
            self.join_new_member(request, now)
        } else {
            self.join_known_member(request, now)
        }
    }

    /// Whether another member would take the group past `group.max.size`.
    /// Members already in it always rejoin, as in Kafka; unlike Kafka, which
    /// counts only the members that rejoined while a rebalance is under way,
    /// every member counts until it leaves or expires.
    fn is_full(&self) -> bool {
        self.members.len() >= self.rules.max_size
    }

    fn join_new_member(&mut self, request: JoinRequest, now: Instant) -> JoinReply {
        let prefix = request.instance_id.as_deref().unwrap_or(&request.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = request.instance_id.as_deref() {
            if let Some(old_id) = self.static_member(instance).map(str::to_owned) {
                return self.replace_static_member(&old_id, new_id, request, now);
            }
        }
        if self.is_full() {
            return JoinReply::Now(JoinResult::error("", ResponseError::GroupMaxSizeReached));
        }
        if request.instance_id.is_none() && request.require_known_member_id {
            let deadline = now + millis(request.session_timeout_ms);
            self.pending.insert(new_id.clone(), deadline);
            return JoinReply::Now(JoinResult::error(&new_id, ResponseError::MemberIdRequired));
        }
        self.add_member_and_rebalance(new_id, &request, now)
    }

    fn join_known_member(&mut self, request: JoinRequest, now: Instant) -> JoinReply {
        let id = request.member_id.clone();
        if self.pending.remove(&id).is_some() {
            if self.is_full() {
                return JoinReply::Now(JoinResult::error("", ResponseError::GroupMaxSizeReached));
            }
            return self.add_member_and_rebalance(id, &request, now);
        }
        if self.is_fenced(request.instance_id.as_deref(), &id) {
            return JoinReply::Now(JoinResult::error(&id, ResponseError::FencedInstanceId));
        }
        let Some(member) = self.members.get(&id) else {
            return JoinReply::Now(JoinResult::error(&id, ResponseError::UnknownMemberId));
        };
        let unchanged = member.protocols == request.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(&request, now),
            GroupState::CompletingRebalance if unchanged => {
                // A retried join of this generation: the same answer again.
                let result = self.join_result(&id, is_leader);
                if let Some(member) = self.members.get_mut(&id) {
                    member.heartbeat(now);
                }
                JoinReply::Now(result)
            }
            GroupState::Stable if unchanged && !is_leader => {
                if let Some(member) = self.members.get_mut(&id) {
                    member.heartbeat(now);
                }
                JoinReply::Now(self.join_result(&id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(&request, now)
            }
            GroupState::Empty | GroupState::Dead => {
                JoinReply::Now(JoinResult::error(&id, ResponseError::UnknownMemberId))
            }
        }
    }

    /// A static member rejoined with a new member id: the old id is fenced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        request: JoinRequest,
        now: Instant,
    ) -> JoinReply {
        let Some(mut member) = self.members.remove(old_id) else {
            return JoinReply::Now(JoinResult::error(&new_id, ResponseError::UnknownMemberId));
        };
        member.answer_join(JoinResult::error(old_id, ResponseError::FencedInstanceId));
        member.answer_sync(super::member::SyncResult::error(
            ResponseError::FencedInstanceId,
        ));
        member.id = new_id.clone();
        let old_protocols = std::mem::take(&mut member.protocols);
        member.update(&request, now);
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        self.members.insert(new_id.clone(), member);
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        let protocol_kept = self.select_protocol() == self.protocol_name;
        match self.state {
            GroupState::Stable if protocol_kept && old_protocols == request.protocols => {
                // Nothing the assignment depends on changed: no rebalance.
                self.dirty = true;
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                let mut result = self.join_result(&new_id, is_leader);
                result.skip_assignment = is_leader;
                JoinReply::Now(result)
            }
            _ => self.await_rebalance(&new_id, now),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        request: &JoinRequest,
        now: Instant,
    ) -> JoinReply {
        let member = Member::new(id.clone(), request, now);
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.insert(id.clone(), member);
        self.new_member_added = true;
        self.await_rebalance(&id, now)
    }

    fn update_member_and_rebalance(&mut self, request: &JoinRequest, now: Instant) -> JoinReply {
        if let Some(member) = self.members.get_mut(&request.member_id) {
            member.update(request, now);
        }
        self.await_rebalance(&request.member_id, now)
    }

    /// Parks the member's join until the rebalance completes.
    fn await_rebalance(&mut self, id: &str, now: Instant) -> JoinReply {
        let (sender, receiver) = oneshot::channel();
        if let Some(member) = self.members.get_mut(id) {
            member.join_waiter = Some(sender);
        }
        if matches!(
            self.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now);
        }
        self.try_complete_join(now);
        JoinReply::Later(receiver)
    }

    pub(super) fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            // Assignments of the generation being abandoned must not be handed out.
            for member in self.members.values_mut() {
                member.assignment = bytes::Bytes::new();
                member.answer_sync(super::member::SyncResult::error(
                    ResponseError::RebalanceInProgress,
                ));
            }
        }
        self.sync_deadline = None;
        let timeout = self.rebalance_timeout();
        self.rebalance = Some(
            if self.state == GroupState::Empty && !self.rules.initial_delay.is_zero() {
                self.new_member_added = false;
                Rebalance {
                    deadline: now + self.rules.initial_delay,
                    initial: Some(InitialDelay {
                        delay: self.rules.initial_delay,
                        remaining: timeout.saturating_sub(self.rules.initial_delay),
                    }),
                }
            } else {
                Rebalance {
                    deadline: now + timeout,
                    initial: None,
                }
            },
        );
        self.state = GroupState::PreparingRebalance;
    }

    /// The longest rebalance timeout of the members.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| millis(m.rebalance_timeout_ms))
            .max()
            .unwrap_or_default()
    }

    /// Completes the join phase if every member has rejoined (outside an initial
    /// delay) or the deadline has passed.
    pub(super) fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let Some(rebalance) = &mut self.rebalance else {
            return;
        };
        if let Some(initial) = &mut rebalance.initial {
            if now < rebalance.deadline {
                return;
            }
            if self.new_member_added && !initial.remaining.is_zero() {
                self.new_member_added = false;
                let delay = initial.delay.min(initial.remaining);
                initial.remaining = initial.remaining.saturating_sub(delay);
                rebalance.deadline = now + delay;
                return;
            }
            return self.complete_join(now);
        }
        let all_joined =
            self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        if all_joined || now >= rebalance.deadline {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.pending.clear();
        self.rebalance = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.dirty = true;
            return;
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or(""),
            "group rebalanced"
        );
        self.sync_deadline = Some(now + self.rebalance_timeout());
        let leader = self.leader.clone().unwrap_or_default();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result(&id, id == leader);
            if let Some(member) = self.members.get_mut(&id) {
                member.heartbeat(now);
                member.answer_join(result);
            }
        }
    }
}
