//! The rest of a classic group's life: SyncGroup, heartbeats, leaving, offset
//! commit checks, session and rebalance expiry, and the persisted form.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use streamhouse_metadata::groups::{StoredGroup, StoredMember};
use tokio::sync::oneshot;

use super::group::{Group, GroupState};
use super::member::{JoinResult, Member, SyncResult};

/// A SyncGroup as the group sees it.
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

pub enum SyncReply {
    Now(SyncResult),
    Later(oneshot::Receiver<SyncResult>),
    /// The leader's assignment completed the generation: persist the group, then
    /// call [`Group::release_syncs`] (or [`Group::fail_syncs`]).
    Persist(oneshot::Receiver<SyncResult>),
}

impl Group {
    fn member_error(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            Some(ResponseError::CoordinatorNotAvailable)
        } else if self.is_fenced(instance_id, member_id) {
            Some(ResponseError::FencedInstanceId)
        } else if !self.members.contains_key(member_id) {
            Some(ResponseError::UnknownMemberId)
        } else if generation != self.generation {
            Some(ResponseError::IllegalGeneration)
        } else {
            None
        }
    }

    pub fn sync(&mut self, request: SyncRequest, now: Instant) -> SyncReply {
        let id = request.member_id.as_str();
        if let Some(error) =
            self.member_error(id, request.instance_id.as_deref(), request.generation)
        {
            return SyncReply::Now(SyncResult::error(error));
        }
        let mismatch =
            |ours: &Option<String>, theirs: &Option<String>| theirs.is_some() && ours != theirs;
        if mismatch(&self.protocol_type, &request.protocol_type)
            || mismatch(&self.protocol_name, &request.protocol_name)
        {
            return SyncReply::Now(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                SyncReply::Now(SyncResult::error(ResponseError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                SyncReply::Now(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let member = self.members.get_mut(id);
                let assignment = member.map(|m| {
                    m.heartbeat(now);
                    m.assignment.clone()
                });
                SyncReply::Now(self.sync_result(assignment.unwrap_or_default()))
            }
            GroupState::CompletingRebalance => {
                let (sender, receiver) = oneshot::channel();
                if let Some(member) = self.members.get_mut(id) {
                    member.sync_waiter = Some(sender);
                    member.heartbeat(now);
                }
                if self.leader.as_deref() != Some(id) {
                    return SyncReply::Later(receiver);
                }
                // Members the leader left out get an empty assignment, as in Kafka.
                for member in self.members.values_mut() {
                    member.assignment = Bytes::new();
                }
                for (member_id, assignment) in request.assignments {
                    if let Some(member) = self.members.get_mut(&member_id) {
                        member.assignment = assignment;
                    }
                }
                self.state = GroupState::Stable;
                self.sync_deadline = None;
                SyncReply::Persist(receiver)
            }
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// The group was persisted: every member waiting in SyncGroup gets its assignment.
    pub fn release_syncs(&mut self) {
        let results: Vec<(String, SyncResult)> = self
            .members
            .values()
            .map(|m| (m.id.clone(), self.sync_result(m.assignment.clone())))
            .collect();
        for (id, result) in results {
            if let Some(member) = self.members.get_mut(&id) {
                member.answer_sync(result);
            }
        }
    }

    /// Persisting failed: the assignment is void and the group rebalances.
    pub fn fail_syncs(&mut self, error: ResponseError, now: Instant) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            member.answer_sync(SyncResult::error(error));
        }
        self.state = GroupState::CompletingRebalance;
        self.prepare_rebalance(now);
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        if let Some(error) = self.member_error(member_id, instance_id, generation) {
            return Some(error);
        }
        if self.state == GroupState::Empty {
            return Some(ResponseError::UnknownMemberId);
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.heartbeat(now);
        }
        (self.state == GroupState::PreparingRebalance).then_some(ResponseError::RebalanceInProgress)
    }

    /// One member of a LeaveGroup; `member_id` may be empty when the instance id
    /// names the member.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(instance) = instance_id {
            let Some(current) = self.static_member(instance).map(str::to_owned) else {
                return Some(ResponseError::UnknownMemberId);
            };
            if !member_id.is_empty() && member_id != current {
                return Some(ResponseError::FencedInstanceId);
            }
            self.remove_member(&current, now);
            return None;
        }
        if self.pending.remove(member_id).is_some() {
            self.try_complete_join(now);
            return None;
        }
        if !self.members.contains_key(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        self.remove_member(member_id, now);
        None
    }

    /// Removes a member (left or expired); the others rebalance.
    pub(super) fn remove_member(&mut self, member_id: &str, now: Instant) {
        if let Some(mut member) = self.members.remove(member_id) {
            member.answer_join(JoinResult::error(member_id, ResponseError::UnknownMemberId));
            member.answer_sync(SyncResult::error(ResponseError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now);
                // With no member left the rebalance completes at once: Empty.
                self.try_complete_join(now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Whether an OffsetCommit of this member and generation may be stored.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == GroupState::Empty {
            // A group that does not use group management (assign() and commit).
            return None;
        }
        if let Some(error) = self.member_error(member_id, instance_id, generation) {
            return Some(error);
        }
        match self.state {
            GroupState::CompletingRebalance => Some(ResponseError::RebalanceInProgress),
            GroupState::Empty => Some(ResponseError::UnknownMemberId),
            _ => {
                if let Some(member) = self.members.get_mut(member_id) {
                    member.heartbeat(now);
                }
                None
            }
        }
    }

    /// Advances timers: expired pending ids and sessions, the rebalance deadline,
    /// members that never sent SyncGroup.
    pub fn tick(&mut self, now: Instant) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.is_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session expired; removing member");
            self.remove_member(&id, now);
        }
        self.try_complete_join(now);
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            let silent: Vec<String> = self
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in silent {
                self.remove_member(&id, now);
            }
        }
    }

    pub fn to_stored(&self) -> StoredGroup {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        StoredGroup {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            generation: self.generation,
            leader_id: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// A group as a restarted coordinator resumes it: Stable with its members
    /// (whose sessions start now), or Empty, as Kafka loads groups.
    pub fn from_stored(
        stored: StoredGroup,
        initial_delay: std::time::Duration,
        now: Instant,
    ) -> Group {
        let mut group = Group::new(&stored.group_id, initial_delay);
        group.stored = true;
        group.protocol_type = stored.protocol_type;
        group.protocol_name = stored.protocol_name;
        group.generation = stored.generation;
        group.leader = stored.leader_id;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let protocol_type = group.protocol_type.clone().unwrap_or_default();
        for m in stored.members {
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: protocol_type.clone(),
                protocols: vec![(protocol.clone(), Bytes::from(m.subscription))],
                assignment: Bytes::from(m.assignment),
                join_waiter: None,
                sync_waiter: None,
                session_deadline: now + super::member::millis(m.session_timeout_ms),
            };
            group.members.insert(m.member_id, member);
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }
}
