//! The coordinator's side of the KIP-848 APIs: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, and of KIP-932's ShareGroupHeartbeat and
//! ShareGroupDescribe, under the same leases, locks and catalog writes as
//! classic groups (a group is of one kind, see `Group::consumer_group` and
//! `Group::share_group`).

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::CatalogError;

use super::consumer::{ConsumerGroup, HeartbeatAnswer, HeartbeatRequest, Refusal, Topics};
use super::share_group::{ShareAnswer, ShareGroup, ShareHeartbeat};
use super::{Coordinator, GroupState};

fn bare(error: ResponseError) -> Refusal {
    (error, String::new())
}

/// ConsumerGroupDescribe's view of a group.
pub enum Described {
    Consumer(ConsumerGroup),
    /// Unknown, or a classic group.
    NotFound(String),
}

impl Coordinator {
    /// One ConsumerGroupHeartbeat, validated. A v0 join without a member id
    /// gets one made here.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        mut request: HeartbeatRequest,
        topics: &Topics,
    ) -> Result<HeartbeatAnswer, Refusal> {
        self.ensure_owned(group_id).await.map_err(bare)?;
        if request.member_id.is_empty() {
            request.member_id = uuid::Uuid::new_v4().to_string();
        }
        let joining = request.member_epoch == 0;
        let group = match self.group(group_id) {
            Some(group) => group,
            None if joining => self
                .group_or_create(group_id)
                .ok_or(bare(ResponseError::NotCoordinator))?,
            None => {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("Member {} is not a member of the group.", request.member_id),
                ))
            }
        };
        let mut group = group.lock().await;
        if group.state == GroupState::Dead {
            return Err(bare(ResponseError::CoordinatorNotAvailable));
        }
        let now = self.clock.now();
        let rules = self.rules;
        let converted = group.consumer.is_none();
        let Some(consumer) = group.consumer_group() else {
            return Err((
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            ));
        };
        let before = consumer.to_json();
        let result = consumer.heartbeat(request, topics, &rules, now);
        let changed = consumer.to_json() != before;
        if result.is_err() && converted && consumer.members.is_empty() {
            // A refused first heartbeat leaves the group as it was.
            group.consumer = None;
            group.protocol_type = None;
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
        self.ensure_owned(group_id).await.map_err(bare)?;
        let group = match self.group(group_id) {
            Some(group) => group,
            None if request.member_epoch == 0 => self
                .group_or_create(group_id)
                .ok_or(bare(ResponseError::NotCoordinator))?,
            None => {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("Member {} is not a member of the group.", request.member_id),
                ))
            }
        };
        let mut group = group.lock().await;
        if group.state == GroupState::Dead {
            return Err(bare(ResponseError::CoordinatorNotAvailable));
        }
        let now = self.clock.now();
        let rules = self.rules;
        let converted = group.share.is_none();
        let Some(share) = group.share_group() else {
            return Err((
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a share group."),
            ));
        };
        let before = share.to_json();
        let result = share.heartbeat(request, topics, &rules, now);
        let changed = share.to_json() != before;
        if result.is_err() && converted && share.members.is_empty() {
            group.share = None;
            group.protocol_type = None;
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
