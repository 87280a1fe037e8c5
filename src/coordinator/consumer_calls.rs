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
        let (result, changed, empty) = match beat(&mut group, &self.rules, self.clock.now()) {
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
    /// gets one made here.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        mut request: HeartbeatRequest,
        topics: &Topics,
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
            |group, rules, now| {
                let Some(consumer) = group.consumer_group() else {
                    return Beat::OtherKind;
                };
                let before = consumer.to_json();
                let result = consumer.heartbeat(request, topics, rules, now);
                Beat::Done {
                    result,
                    changed: consumer.to_json() != before,
                    empty: consumer.members.is_empty(),
                }
            },
        )
        .await
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
    /// One ShareGroupHeartbeat, validated.
    pub async fn share_heartbeat(
        &self,
        group_id: &str,
        request: ShareHeartbeat,
        topics: &Topics,
    ) -> Result<ShareAnswer, Refusal> {
        let member_id = request.member_id.clone();
        let joining = request.member_epoch == 0;
        self.modern_heartbeat(
            group_id,
            &member_id,
            joining,
            "share",
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
}
