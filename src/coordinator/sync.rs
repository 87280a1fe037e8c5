//! SyncGroup: the leader hands out the assignment, every member waits for its
//! part until the completed generation is persisted.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::group::{Group, GroupState};
use super::member::SyncResult;

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
    pub fn sync(&mut self, request: SyncRequest, now: Instant) -> SyncReply {
        let id = request.member_id.as_str();
        if let Some(consumer) = self
            .consumer
            .as_mut()
            .filter(|_| self.state != GroupState::Dead)
        {
            let result = consumer.classic_sync(
                id,
                request.instance_id.as_deref(),
                request.generation,
                (
                    request.protocol_type.as_deref(),
                    request.protocol_name.as_deref(),
                ),
                now,
            );
            return SyncReply::Now(result);
        }
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
}
