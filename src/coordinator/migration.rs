//! Converting a live group between the classic protocol and the consumer
//! protocol of KIP-848, as Kafka's default migration policy
//! (`bidirectional`) does:
//!
//! - **upgrade**: the first ConsumerGroupHeartbeat into a classic group whose
//!   members all use the embedded "consumer" protocol turns it into a
//!   consumer group. Its members stay, as classic members of the consumer
//!   group, each at the generation as its epoch and with the partitions of
//!   its last assignment; the new member then joins as into any consumer
//!   group, and the classic members rejoin to be reconciled (see
//!   `consumer/classic.rs`).
//! - **downgrade**: once the last member of the consumer protocol has left
//!   (or expired), a group of classic members only turns back into a classic
//!   group, each member keeping its assignment, and rebalances so that a
//!   leader assigns again. Its generation is the newest member epoch: the
//!   group epoch before the departure, as Kafka keeps it, for every member
//!   that had caught up, so their commits go on during the rebalance.
//!
//! Joins and syncs parked in the classic group when it is upgraded are
//! answered REBALANCE_IN_PROGRESS, as Kafka answers them: those members join
//! again, now into the consumer group.

use std::time::Instant;

use kafka_protocol::error::ResponseError;

use super::consumer::{by_id, by_name, ClassicMember, ConsumerGroup, ConsumerMember};
use super::consumer::{MemberState, Topics};
use super::group::{Group, GroupState, CONSUMER_PROTOCOL_TYPE};
use super::member::{millis, JoinResult, Member, SyncResult};
use super::subscription;

impl Group {
    /// Whether this is a classic group with members: a consumer-protocol
    /// member arriving upgrades it.
    pub fn is_live_classic(&self) -> bool {
        self.consumer.is_none() && self.share.is_none() && !self.members.is_empty()
    }

    /// Turns this live classic group into a consumer group of the same
    /// members; refused (the group unchanged) with Kafka's message when its
    /// members do not all speak the embedded consumer protocol.
    pub fn upgrade(&mut self, topics: &Topics, now: Instant) -> Result<(), String> {
        let id = &self.id;
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return Err(format!(
                "Cannot upgrade classic group {id} to consumer group because the group does \
                 not use the consumer embedded protocol."
            ));
        }
        let mut consumer = ConsumerGroup {
            epoch: self.generation,
            assignment_epoch: self.generation,
            ..ConsumerGroup::default()
        };
        for member in self.members.values() {
            let protocol = self
                .protocol_name
                .clone()
                .or_else(|| member.protocols.first().map(|(name, _)| name.clone()))
                .unwrap_or_default();
            let subscription = subscription::subscription(&member.metadata(&protocol));
            let assigned = subscription::assigned_partitions(&member.assignment);
            let (Some(subscription), Some(assigned)) = (subscription, assigned) else {
                return Err(format!(
                    "Cannot upgrade classic group {id} to consumer group because the embedded \
                     consumer protocol is malformed."
                ));
            };
            let mut names = subscription.topics;
            names.sort();
            names.dedup();
            let assigned = by_id(&assigned, topics);
            let generation = self.generation;
            let assigned_epochs = assigned
                .iter()
                .flat_map(|(topic, ps)| ps.iter().map(move |p| ((*topic, *p), generation)))
                .collect();
            consumer.target.insert(member.id.clone(), assigned.clone());
            consumer.members.insert(
                member.id.clone(),
                ConsumerMember {
                    id: member.id.clone(),
                    instance_id: member.instance_id.clone(),
                    rack_id: subscription.rack_id,
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    subscribed_topic_names: names,
                    subscribed_topic_regex: None,
                    topic_pattern: None,
                    server_assignor: None,
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    epoch: self.generation,
                    previous_epoch: self.generation,
                    state: MemberState::Stable,
                    assigned,
                    revoking: Default::default(),
                    assigned_epochs,
                    departed: false,
                    session_deadline: now + millis(member.session_timeout_ms),
                    revocation_deadline: None,
                    classic: Some(ClassicMember {
                        session_timeout_ms: member.session_timeout_ms,
                        protocols: member.protocols.clone(),
                    }),
                },
            );
        }
        consumer.subscribed_topics = topics
            .iter()
            .filter(|(name, _)| consumer.members.values().any(|m| m.subscribes(name)))
            .map(|(name, shape)| (name.clone(), shape.clone()))
            .collect();
        for member in self.members.values_mut() {
            member.answer_join(JoinResult::error(
                &member.id,
                ResponseError::RebalanceInProgress,
            ));
            member.answer_sync(SyncResult::error(ResponseError::RebalanceInProgress));
        }
        tracing::info!(group = %self.id, generation = self.generation, "classic group upgraded to a consumer group");
        self.members.clear();
        self.pending.clear();
        self.rebalance = None;
        self.sync_deadline = None;
        self.state = GroupState::Empty;
        self.leader = None;
        self.protocol_name = None;
        self.consumer = Some(consumer);
        self.dirty = true;
        Ok(())
    }

    /// Turns a consumer group left with classic members only back into a
    /// classic group, which rebalances at once.
    pub fn downgrade_if_only_classic(&mut self, now: Instant) {
        let Some(consumer) = self.consumer.take_if(|c| c.only_classic_members()) else {
            return;
        };
        let members_newest_epoch = consumer
            .members
            .values()
            .map(|m| m.epoch)
            .max()
            .unwrap_or(consumer.epoch);
        for m in consumer.members.into_values() {
            let Some(classic) = m.classic else { continue };
            let assigned = by_name(&m.assigned, &consumer.subscribed_topics);
            let version = classic.subscription_version();
            let member = Member {
                id: m.id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: classic.session_timeout_ms,
                protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
                protocols: classic.protocols,
                assignment: subscription::encode_assignment(version, &assigned),
                join_waiter: None,
                sync_waiter: None,
                session_deadline: now + millis(classic.session_timeout_ms),
            };
            self.members.insert(m.id, member);
        }
        // Kafka turns the group back at the epoch it had before the leaving
        // member's departure; the newest member epoch is that epoch whenever
        // a member had caught up with it, so those members' commits and
        // heartbeats stay valid until they rejoin.
        self.generation = members_newest_epoch;
        self.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_owned());
        self.protocol_name = self.select_protocol();
        self.leader = self.members.keys().next().cloned();
        self.state = GroupState::Stable;
        tracing::info!(group = %self.id, generation = self.generation, "consumer group downgraded to a classic group");
        self.prepare_rebalance(now);
        self.dirty = true;
    }
}
