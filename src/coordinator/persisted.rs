//! The persisted form of a group (a consumer-protocol group's state is the
//! JSON document of `consumer/stored.rs`): what the catalog stores and how a
//! restarted coordinator resumes a group from it.

use std::time::Instant;

use bytes::Bytes;
use streamhouse_metadata::groups::{StoredGroup, StoredMember};

use super::consumer::ConsumerGroup;
use super::group::{Group, GroupRules, GroupState, SHARE_PROTOCOL_TYPE};
use super::member::Member;
use super::share_group::ShareGroup;

impl Group {
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
            consumer_state: match (&self.consumer, &self.share) {
                (Some(consumer), _) => Some(consumer.to_json()),
                (None, Some(share)) => Some(share.to_json()),
                (None, None) => None,
            },
        }
    }

    /// A group as a restarted coordinator resumes it: Stable with its members
    /// (whose sessions start now), or Empty, as Kafka loads groups.
    pub fn from_stored(stored: StoredGroup, rules: GroupRules, now: Instant) -> Group {
        let mut group = Group::new(&stored.group_id, rules);
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
        let share = group.protocol_type.as_deref() == Some(SHARE_PROTOCOL_TYPE);
        if let (Some(json), true) = (&stored.consumer_state, share) {
            let session = rules.share_session_timeout_ms;
            group.share = Some(ShareGroup::from_json(json, session, now).unwrap_or_else(|error| {
                tracing::warn!(group = %group.id, %error, "cannot read the stored share group; starting it empty");
                ShareGroup::default()
            }));
        } else if let Some(json) = stored.consumer_state {
            let session = rules.consumer_session_timeout_ms;
            group.consumer = Some(
                ConsumerGroup::from_json(&json, session, now).unwrap_or_else(|error| {
                    // Written by another version, or damaged: the members
                    // rejoin (fenced) and the offsets stay.
                    tracing::warn!(group = %group.id, %error, "cannot read the stored consumer group; starting it empty");
                    ConsumerGroup::default()
                }),
            );
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }
}
