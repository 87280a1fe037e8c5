//! Members of the classic protocol in a consumer group of the new protocol:
//! Kafka's online migration (`group.consumer.migration.policy`, whose
//! default, `bidirectional`, this follows). A classic consumer keeps sending
//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup; the group answers them
//! from its server-side assignment, so a running application can move
//! between the protocols one consumer at a time.
//!
//! As in Kafka, a JoinGroup is answered at once with the member's epoch as
//! the generation and no leader; SyncGroup hands the member its assignment
//! in the embedded "consumer" protocol; a Heartbeat answers
//! REBALANCE_IN_PROGRESS when the member must rejoin to move on: the group
//! epoch grew past it, it must give partitions up, or partitions it waits
//! for are free. Revocation works through the owned partitions its JoinGroup
//! subscription carries, as a heartbeat's do for a member of the new
//! protocol.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::heartbeat::{contains, flatten};
use super::{after, ConsumerGroup, ConsumerMember, MemberState, Partitions, Topics};
use crate::coordinator::group::{GroupRules, CONSUMER_PROTOCOL_TYPE};
use crate::coordinator::member::{JoinRequest, JoinResult, SyncResult};
use crate::coordinator::subscription::{self, NamedPartitions};

/// What a classic member of a consumer group keeps of its last JoinGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    /// (name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

impl ClassicMember {
    /// The protocol (assignor name) its answers carry: its first, as Kafka
    /// answers it.
    pub fn protocol_name(&self) -> &str {
        self.protocols.first().map_or("", |(name, _)| name)
    }

    /// The version of its subscription, which its assignment is written in.
    pub fn subscription_version(&self) -> i16 {
        self.protocols
            .first()
            .and_then(|(_, metadata)| subscription::subscription(metadata))
            .map_or(0, |s| s.version)
    }
}

impl ConsumerGroup {
    /// Whether a classic member with these protocols fits among the
    /// classic members already here: one protocol every one of them
    /// supports (Kafka's `supportsClassicProtocols`).
    fn accepts_classic(&self, request: &JoinRequest) -> bool {
        if request.protocol_type != CONSUMER_PROTOCOL_TYPE || request.protocols.is_empty() {
            return false;
        }
        let others: Vec<&ClassicMember> = self
            .members
            .values()
            .filter(|m| m.id != request.member_id)
            .filter_map(|m| m.classic.as_ref())
            .collect();
        request.protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|o| o.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// A JoinGroup of a classic member. `topics`: every topic, as for a
    /// heartbeat. Answered at once.
    pub fn classic_join(
        &mut self,
        request: &JoinRequest,
        topics: &Topics,
        rules: &GroupRules,
        now: Instant,
    ) -> JoinResult {
        let unknown = request.member_id.is_empty();
        let member_id = if unknown {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };
        let replaced = match request.instance_id.as_deref() {
            Some(instance) => match self.static_member(instance) {
                Some(holder) if holder != member_id && !unknown => {
                    return JoinResult::error(&member_id, ResponseError::FencedInstanceId)
                }
                Some(holder) if holder != member_id => Some(holder.to_owned()),
                _ => None,
            },
            None => None,
        };
        let is_new = replaced.is_none() && !self.members.contains_key(&member_id);
        if is_new && self.members.len() >= rules.max_size {
            return JoinResult::error(&member_id, ResponseError::GroupMaxSizeReached);
        }
        let request = JoinRequest {
            member_id: member_id.clone(),
            ..request.clone()
        };
        if !self.accepts_classic(&request) {
            return JoinResult::error(&member_id, ResponseError::InconsistentGroupProtocol);
        }
        if unknown && request.instance_id.is_none() && request.require_known_member_id {
            // Kafka keeps no list of handed-out ids for a consumer group: the
            // member is created when it comes back with this one.
            return JoinResult::error(&member_id, ResponseError::MemberIdRequired);
        }
        let Some(subscription) = request
            .protocols
            .first()
            .and_then(|(_, metadata)| subscription::subscription(metadata))
        else {
            return JoinResult::error(&member_id, ResponseError::InconsistentGroupProtocol);
        };
        if let Some(old_id) = replaced {
            // A static member's new instance takes its place and assignment.
            if let Some(mut member) = self.members.remove(&old_id) {
                let target = self.target.remove(&old_id).unwrap_or_default();
                member.id = member_id.clone();
                member.departed = false;
                self.target.insert(member_id.clone(), target);
                self.members.insert(member_id.clone(), member);
            }
        }
        let mut names = subscription.topics.clone();
        names.sort();
        names.dedup();
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| ConsumerMember::new(&member_id, &request, now));
        let resubscribed = is_new || member.subscribed_topic_names != names;
        member.subscribed_topic_names = names;
        member.instance_id = request.instance_id.clone();
        member.rack_id = subscription.rack_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.server_assignor = None;
        member.classic = Some(ClassicMember {
            session_timeout_ms: request.session_timeout_ms,
            protocols: request.protocols.clone(),
        });
        member.session_deadline = after(now, request.session_timeout_ms);
        member.confirm_revocation(&by_id(&subscription.owned, topics));
        self.advance(&member_id, resubscribed, topics, now);
        let member = &self.members[&member_id];
        JoinResult {
            error: None,
            member_id: member_id.clone(),
            generation: member.epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_owned()),
            protocol_name: member
                .classic
                .as_ref()
                .map(|c| c.protocol_name().to_owned()),
            leader: String::new(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }

    /// A SyncGroup of a classic member: its assignment, written in the
    /// embedded protocol.
    pub fn classic_sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        now: Instant,
    ) -> SyncResult {
        let member = match self.classic_member(member_id, instance_id, generation) {
            Ok(member) => member,
            Err(error) => return SyncResult::error(error),
        };
        let classic = member.classic.clone().unwrap_or_else(|| ClassicMember {
            session_timeout_ms: 0,
            protocols: Vec::new(),
        });
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE)
            || protocol_name.is_some_and(|n| n != classic.protocol_name())
        {
            return SyncResult::error(ResponseError::InconsistentGroupProtocol);
        }
        // A new rebalance began since it joined: it must join again, unless
        // it is still giving partitions up (that rebalance is the current one).
        if self.epoch > member.epoch && member.state != MemberState::UnrevokedPartitions {
            return SyncResult::error(ResponseError::RebalanceInProgress);
        }
        let assigned = by_name(&member.assigned, &self.subscribed_topics);
        let id = member.id.clone();
        if let Some(member) = self.members.get_mut(&id) {
            member.session_deadline = after(now, classic.session_timeout_ms);
        }
        SyncResult {
            error: None,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_owned()),
            protocol_name: Some(classic.protocol_name().to_owned()),
            assignment: subscription::encode_assignment(classic.subscription_version(), &assigned),
        }
    }

    /// A Heartbeat of a classic member: REBALANCE_IN_PROGRESS when it must
    /// rejoin to move on.
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        let member = match self.classic_member(member_id, instance_id, generation) {
            Ok(member) => member,
            Err(error) => return Some(error),
        };
        let rejoin = member.epoch < self.epoch
            || member.state == MemberState::UnrevokedPartitions
            || (member.state == MemberState::UnreleasedPartitions
                && !self.waits_on_unreleased(member));
        let id = member.id.clone();
        if let Some(member) = self.members.get_mut(&id) {
            let session = member.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
            member.session_deadline = after(now, session);
        }
        rejoin.then_some(ResponseError::RebalanceInProgress)
    }

    /// One member of a LeaveGroup: a classic member leaves the group.
    pub fn classic_leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let id = match instance_id {
            Some(instance) => {
                let Some(holder) = self.static_member(instance) else {
                    return Some(ResponseError::UnknownMemberId);
                };
                if !member_id.is_empty() && member_id != holder {
                    return Some(ResponseError::FencedInstanceId);
                }
                holder.to_owned()
            }
            None => member_id.to_owned(),
        };
        match self.members.get(&id) {
            Some(member) if member.classic.is_some() => {
                self.remove_member(&id);
                None
            }
            _ => Some(ResponseError::UnknownMemberId),
        }
    }

    /// The classic member a request names, with Kafka's checks in Kafka's
    /// order: the instance id's holder, the member, its protocol, its epoch
    /// as the generation.
    fn classic_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<&ConsumerMember, ResponseError> {
        let member = match instance_id {
            Some(instance) => {
                let holder = self
                    .static_member(instance)
                    .ok_or(ResponseError::UnknownMemberId)?;
                if holder != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
                &self.members[holder]
            }
            None => self
                .members
                .get(member_id)
                .ok_or(ResponseError::UnknownMemberId)?,
        };
        if member.classic.is_none() {
            return Err(ResponseError::UnknownMemberId);
        }
        if member.epoch != generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(member)
    }

    /// The member id holding a static instance.
    fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.as_str())
    }

    /// Whether a partition of the member's target is still held by another.
    fn waits_on_unreleased(&self, member: &ConsumerMember) -> bool {
        let held = self.held_by_others(&member.id);
        self.target.get(&member.id).is_some_and(|target| {
            flatten(target).any(|tp| !contains(&member.assigned, &tp) && held.contains(&tp))
        })
    }

    /// Whether every member is a classic one (and there is one): Kafka turns
    /// such a group back into a classic group.
    pub fn only_classic_members(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }
}

impl ConsumerMember {
    /// A member as a classic JoinGroup creates it: at epoch 0, owning nothing.
    fn new(id: &str, request: &JoinRequest, now: Instant) -> ConsumerMember {
        ConsumerMember {
            id: id.to_owned(),
            instance_id: request.instance_id.clone(),
            rack_id: None,
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            topic_pattern: None,
            server_assignor: None,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Partitions::new(),
            revoking: Partitions::new(),
            assigned_epochs: Default::default(),
            departed: false,
            session_deadline: after(now, request.session_timeout_ms),
            revocation_deadline: None,
            classic: None,
        }
    }
}

/// Named partitions by topic id; topics that no longer exist are left out.
pub fn by_id(named: &NamedPartitions, topics: &Topics) -> Partitions {
    let mut partitions = Partitions::new();
    for (name, ps) in named {
        if let Some(shape) = topics.get(name) {
            partitions
                .entry(shape.id)
                .or_default()
                .extend(ps.iter().copied());
        }
    }
    partitions
}

/// Partitions by topic name, of the topics among `topics`.
pub fn by_name(partitions: &Partitions, topics: &Topics) -> NamedPartitions {
    topics
        .iter()
        .filter_map(|(name, shape)| {
            let ps = partitions.get(&shape.id).filter(|ps| !ps.is_empty())?;
            Some((name.clone(), ps.iter().copied().collect()))
        })
        .collect()
}
