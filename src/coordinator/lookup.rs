//! The answers that name coordinators and groups across the cluster:
//! FindCoordinator for groups and ListGroups (docs/ARCHITECTURE.md, "Group
//! coordinators in a cluster").

use std::collections::{HashMap, HashSet};

use kafka_protocol::error::ResponseError;

use super::consumer::ConsumerGroup;
use super::placement::CoordinatorNode;
use super::share_group::ShareGroup;
use super::SHARE_PROTOCOL_TYPE;
use super::{Coordinator, GroupState};

/// A group ListGroups names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// As ListGroups shows it: a classic group's state, or a consumer-protocol
    /// group's (`ConsumerGroupState`).
    pub state: &'static str,
    pub protocol_type: Option<String>,
    /// ListGroups' group type: "classic" or "consumer".
    pub group_type: &'static str,
}

/// ListGroups' group types.
pub const CLASSIC_GROUP_TYPE: &str = "classic";
pub const CONSUMER_GROUP_TYPE: &str = "consumer";
pub const SHARE_GROUP_TYPE: &str = "share";

impl Coordinator {
    /// FindCoordinator for groups: the live owner of each group's lease, or
    /// else the group's winner in this agent's view. The agent named sorts out
    /// ownership when the request arrives.
    pub async fn group_coordinators(&self, group_ids: &[String]) -> Vec<CoordinatorNode> {
        let this = || self.this_node.clone();
        if self.placement.this_agent().is_none() {
            return group_ids.iter().map(|_| this()).collect();
        }
        let owners: HashMap<String, i32> = match self.catalog.group_leases(group_ids).await {
            Ok(leases) => leases
                .iter()
                .filter_map(|l| l.live_owner().map(|o| (l.group_id.clone(), o.node_id)))
                .collect(),
            Err(error) => {
                // The winner is the likely owner; it answers NOT_COORDINATOR if not.
                tracing::warn!(%error, "cannot read group leases; naming the winners");
                HashMap::new()
            }
        };
        group_ids
            .iter()
            .map(|id| {
                owners
                    .get(id)
                    .and_then(|&node_id| self.placement.agent(node_id))
                    .or_else(|| self.placement.winner(id))
                    .unwrap_or_else(this)
            })
            .collect()
    }

    /// ListGroups: the groups this agent holds, and the stored groups no live
    /// agent holds whose winner it is. Admin clients ask every agent and merge.
    pub async fn listed_groups(&self) -> Result<Vec<ListedGroup>, ResponseError> {
        if !self.placement.lease_valid() || self.is_closed() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut listed = Vec::new();
        for group in self.groups() {
            let group = group.lock().await;
            if group.state != GroupState::Dead {
                let (state, group_type) = match (&group.consumer, &group.share) {
                    (Some(consumer), _) => (consumer.state().name(), CONSUMER_GROUP_TYPE),
                    (None, Some(share)) => (share.state_name(), SHARE_GROUP_TYPE),
                    (None, None) => (group.state.name(), CLASSIC_GROUP_TYPE),
                };
                listed.push(ListedGroup {
                    group_id: group.id.clone(),
                    state,
                    protocol_type: group.protocol_type.clone(),
                    group_type,
                });
            }
        }
        let stored = self.catalog.load_groups().await.map_err(|error| {
            tracing::warn!(%error, "cannot list stored groups");
            ResponseError::CoordinatorNotAvailable
        })?;
        let held: HashSet<String> = self.slot_map().keys().cloned().collect();
        let unheld: Vec<_> = stored
            .into_iter()
            .filter(|s| !held.contains(&s.group_id))
            .collect();
        let me = self.placement.this_agent();
        let owned_elsewhere: HashSet<String> = match &me {
            None => HashSet::new(),
            Some(_) => {
                let ids: Vec<String> = unheld.iter().map(|s| s.group_id.clone()).collect();
                self.catalog
                    .group_leases(&ids)
                    .await
                    .map_err(|_| ResponseError::CoordinatorNotAvailable)?
                    .into_iter()
                    .filter(|l| l.live_owner().is_some())
                    .map(|l| l.group_id)
                    .collect()
            }
        };
        for stored in unheld {
            let winner = self.placement.winner(&stored.group_id).map(|w| w.node_id);
            let mine = me.as_ref().is_none_or(|me| winner == Some(me.node_id));
            if !mine || owned_elsewhere.contains(&stored.group_id) {
                continue;
            }
            // Not loaded: as it would be once loaded (members of either kind
            // are resumed as Stable, see `persisted.rs`).
            let share = stored.protocol_type.as_deref() == Some(SHARE_PROTOCOL_TYPE);
            let (members, group_type) = match &stored.consumer_state {
                Some(json) if share => (
                    ShareGroup::from_json(json, 0, std::time::Instant::now())
                        .map_or(0, |s| s.members.len()),
                    SHARE_GROUP_TYPE,
                ),
                Some(json) => (
                    ConsumerGroup::from_json(json, 0, std::time::Instant::now())
                        .map_or(0, |c| c.members.len()),
                    CONSUMER_GROUP_TYPE,
                ),
                None => (stored.members.len(), CLASSIC_GROUP_TYPE),
            };
            let state = if members == 0 {
                GroupState::Empty
            } else {
                GroupState::Stable
            };
            listed.push(ListedGroup {
                state: state.name(),
                group_id: stored.group_id,
                protocol_type: stored.protocol_type,
                group_type,
            });
        }
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(listed)
    }
}
