//! The coordinator's side of the KIP-848 APIs: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, and of KIP-932's ShareGroupHeartbeat and
//! ShareGroupDescribe, under the same leases, locks and catalog writes as
//! classic groups (a group is of one kind, see `Group::consumer_group` and
//! `Group::share_group`).

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::CatalogError;

use super::consumer::{ConsumerGroup, HeartbeatAnswer, HeartbeatRequest, Refusal, Topics};
use super::share_group::{ShareAnswer, ShareGroup, ShareHeartbeat};
use super::{Coordinator, Group, GroupRules, GroupState};

fn bare(error: ResponseError) -> Refusal {
    (error, String::new())
}

/// ConsumerGroupDescribe's view of a group.
pub enum Described {
    Consumer(ConsumerGroup),
    /// Unknown, or a classic group.
    NotFound(String),
}

/// What one heartbeat did to a group of its kind.
enum Beat<T> {
    /// The group is a live group of another kind.
    OtherKind,
    Done {
        result: Result<T, Refusal>,
        /// Whether the stored state changed.
        changed: bool,
        /// Whether it has no members of this kind afterwards.
        empty: bool,
    },
}

impl Coordinator {
    /// The path both kinds' heartbeats share: the group (created for a
    /// join), `beat` run on it under its lock, the group stored if it
    /// changed; a refused first heartbeat leaves the group as it was.
    async fn modern_heartbeat<T>(
        &self,
        group_id: &str,
        member_id: &str,
        joining: bool,
        kind: &str,
        rules: &GroupRules,
        beat: impl FnOnce(&mut Group, &GroupRules, Instant) -> Beat<T>,
    ) -> Result<T, Refusal> {
        self.ensure_owned(group_id).await.map_err(bare)?;
        let group = match self.group(group_id) {
            Some(group) => group,
            None if joining => self
                .group_or_create(group_id)
                .ok_or(bare(ResponseError::NotCoordinator))?,
            None => {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("Member {member_id} is not a member of the group."),
                ))
            }
        };
        let mut group = group.lock().await;
        if group.state == GroupState::Dead {
            return Err(bare(ResponseError::CoordinatorNotAvailable));
        }
        let was = (
            group.consumer.is_some(),
            group.share.is_some(),
            group.protocol_type.clone(),
        );
        let (result, changed, empty) = match beat(&mut group, rules, self.clock.now()) {
            Beat::OtherKind => {
                return Err((
                    ResponseError::GroupIdNotFound,
                    format!("Group {group_id} is not a {kind} group."),
                ))
            }
            Beat::Done {
                result,
                changed,
                empty,
            } => (result, changed, empty),
        };
        let converted = (group.consumer.is_some(), group.share.is_some()) != (was.0, was.1);
        if result.is_err() && converted && empty {
            // A refused first heartbeat leaves the group as it was (empty).
            group.consumer = None;
            group.share = None;
            group.protocol_type = was.2;
            if group.is_unused() {
                group.state = GroupState::Dead;
                self.remove_group(group_id);
            }
            return result;
        }
        group.dirty |= changed || converted;
        if let Err(CatalogError::NotCoordinator { .. }) = self.persist(&mut group).await {
            return Err(bare(ResponseError::NotCoordinator));
        }
        result
    }

    /// One ConsumerGroupHeartbeat, validated. A v0 join without a member id
    /// gets one made here. `rules`: the agent's, with the group's own
    /// session timeout and heartbeat interval if it sets them.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        mut request: HeartbeatRequest,
        topics: &Topics,
        rules: &GroupRules,
    ) -> Result<HeartbeatAnswer, Refusal> {
        if request.member_id.is_empty() {
            request.member_id = uuid::Uuid::new_v4().to_string();
        }
        let member_id = request.member_id.clone();
        let joining = request.member_epoch == 0;
        self.modern_heartbeat(
            group_id,
            &member_id,
            joining,
            "consumer",
            rules,
            |group, rules, now| {
                if joining && group.is_live_classic() {
                    if let Err(message) = group.upgrade(topics, now) {
                        return Beat::Done {
                            result: Err((ResponseError::GroupIdNotFound, message)),
                            changed: false,
                            empty: false,
                        };
                    }
                }
                let Some(consumer) = group.consumer_group() else {
                    return Beat::OtherKind;
                };
                let before = consumer.to_json();
                let result = consumer.heartbeat(request, topics, rules, now);
                let changed = consumer.to_json() != before;
                let empty = consumer.members.is_empty();
                // The last member of this protocol gone, classic ones left.
                group.downgrade_if_only_classic(now);
                Beat::Done {
                    result,
                    changed,
                    empty,
                }
            },
        )
        .await
    }

    /// OffsetFetch v9+ naming a member of a KIP-848 group: its member id and
    /// epoch must be current (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH, as
    /// Kafka checks them), so that a member whose assignment moved on reads
    /// offsets only once it knows. A fetch naming no member (an admin's, or
    /// an older client's: no id, epoch -1) and fetches of other kinds of
    /// group are not checked. The caller has made sure this agent owns the
    /// group.
    pub async fn check_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        if member_id.is_none() && member_epoch < 0 {
            return Ok(());
        }
        let Some(group) = self.group(group_id) else {
            return Ok(());
        };
        let group = group.lock().await;
        let Some(consumer) = group.consumer.as_ref() else {
            return Ok(());
        };
        if group.state == GroupState::Dead {
            return Ok(());
        }
        let member = member_id
            .and_then(|id| consumer.members.get(id))
            .ok_or(ResponseError::UnknownMemberId)?;
        if member.epoch != member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// The group for ConsumerGroupDescribe.
    pub async fn describe_consumer_group(
        &self,
        group_id: &str,
    ) -> Result<Described, ResponseError> {
        self.ensure_owned(group_id).await?;
        let not_found = |why: &str| Described::NotFound(format!("Group {group_id} {why}."));
        let Some(group) = self.group(group_id) else {
            return Ok(not_found("not found"));
        };
        let group = group.lock().await;
        Ok(match &group.consumer {
            Some(consumer) if group.state != GroupState::Dead => {
                Described::Consumer(consumer.clone())
            }
            Some(_) => not_found("not found"),
            None => not_found("is not a consumer group"),
        })
    }
}

/// ShareGroupDescribe's view of a group.
pub enum DescribedShare {
    Share(ShareGroup),
    NotFound(String),
}

impl Coordinator {
    /// One ShareGroupHeartbeat, validated, under `rules` (the agent's, with
    /// the group's own times).
    pub async fn share_heartbeat(
        &self,
        group_id: &str,
        request: ShareHeartbeat,
        topics: &Topics,
        rules: &GroupRules,
    ) -> Result<ShareAnswer, Refusal> {
        let member_id = request.member_id.clone();
        let joining = request.member_epoch == 0;
        self.modern_heartbeat(
            group_id,
            &member_id,
            joining,
            "share",
            rules,
            |group, rules, now| {
                let Some(share) = group.share_group() else {
                    return Beat::OtherKind;
                };
                let before = share.to_json();
                let result = share.heartbeat(request, topics, rules, now);
                Beat::Done {
                    result,
                    changed: share.to_json() != before,
                    empty: share.members.is_empty(),
                }
            },
        )
        .await
    }

    /// The group for ShareGroupDescribe.
    pub async fn describe_share_group(
        &self,
        group_id: &str,
    ) -> Result<DescribedShare, ResponseError> {
        self.ensure_owned(group_id).await?;
        let not_found = |why: &str| DescribedShare::NotFound(format!("Group {group_id} {why}."));
        let Some(group) = self.group(group_id) else {
            return Ok(not_found("not found"));
        };
        let group = group.lock().await;
        Ok(match &group.share {
            Some(share) if group.state != GroupState::Dead => DescribedShare::Share(share.clone()),
            Some(_) => not_found("not found"),
            None => not_found("is not a share group"),
        })
    }

    /// Runs `change` (of the group's records) while the share group is held
    /// empty: no member joins until it is done. Refused with
    /// GROUP_ID_NOT_FOUND for no share group, NON_EMPTY_GROUP for one with
    /// members, as Kafka refuses altering or deleting a share group's
    /// offsets.
    pub async fn while_share_group_empty<T>(
        &self,
        group_id: &str,
        change: impl std::future::Future<Output = T>,
    ) -> Result<T, Refusal> {
        self.ensure_owned(group_id).await.map_err(bare)?;
        let not_found = |why: &str| {
            (
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} {why}."),
            )
        };
        let Some(group) = self.group(group_id) else {
            return Err(not_found("not found"));
        };
        let group = group.lock().await;
        match &group.share {
            _ if group.state == GroupState::Dead => Err(not_found("not found")),
            None => Err(not_found("is not a share group")),
            Some(share) if !share.members.is_empty() => Err((
                ResponseError::NonEmptyGroup,
                format!("Share group {group_id} is not empty."),
            )),
            Some(_) => Ok(change.await),
        }
    }
}
