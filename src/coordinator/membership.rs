//! A member's standing in a classic group between rebalances: heartbeats,
//! leaving, the member and generation checks of heartbeats, syncs and offset
//! commits, and expiry of sessions and rebalance deadlines.

use std::time::Instant;

use kafka_protocol::error::ResponseError;

use super::group::{Group, GroupState};
use super::member::{JoinResult, SyncResult};

impl Group {
    /// The error a request of this member and generation gets, if any.
    pub(super) fn member_error(
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

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        if let Some(consumer) = self
            .consumer
            .as_mut()
            .filter(|_| self.state != GroupState::Dead)
        {
            return consumer.classic_heartbeat(member_id, instance_id, generation, now);
        }
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
        if let Some(consumer) = &mut self.consumer {
            let before = consumer.to_json();
            let error = consumer.classic_leave(member_id, instance_id);
            self.dirty |= consumer.to_json() != before;
            self.downgrade_if_only_classic(now);
            return error;
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
        partitions: &[(&str, i32)],
        now: Instant,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(consumer) = &self.consumer {
            return consumer.check_commit(member_id, generation, partitions);
        }
        if self.share.is_some() {
            // A share group's progress is its share partitions', not offsets.
            return Some(ResponseError::GroupIdNotFound);
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
        if let Some(consumer) = &mut self.consumer {
            if consumer.tick(&self.id, now) {
                self.dirty = true;
                self.downgrade_if_only_classic(now);
            }
            return;
        }
        if let Some(share) = &mut self.share {
            if share.tick(&self.id, now) {
                self.dirty = true;
            }
            return;
        }
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

    /// This agent no longer coordinates the group: every parked JoinGroup and
    /// SyncGroup is answered with `error` (which sends the client to find the
    /// coordinator again), and anyone still holding the group finds it Dead.
    pub fn unload(&mut self, error: ResponseError) {
        for member in self.members.values_mut() {
            member.answer_join(JoinResult::error(&member.id, error));
            member.answer_sync(SyncResult::error(error));
        }
        self.state = GroupState::Dead;
        self.pending.clear();
        self.rebalance = None;
        self.sync_deadline = None;
    }
}
