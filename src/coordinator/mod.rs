//! The group coordinator: owns every consumer group this agent
//! coordinates, in memory, and persists what clients depend on to the catalog.
//!
//! - `group.rs`: the state machine of joining and rebalancing.
//! - `join_answer.rs`: choosing the protocol; each member's JoinGroup answer.
//! - `sync.rs`: SyncGroup, the leader's assignment handed out.
//! - `membership.rs`: heartbeats, leaving, member checks, session and
//!   rebalance expiry.
//! - `persisted.rs`: what the catalog stores of a group, and resuming from it.
//! - `offsets.rs`: committing and deleting offsets, deleting groups.
//! - `ownership.rs`: which groups this agent coordinates in a cluster: leases
//!   taken on first use, fencing, handoff, shutdown.
//! - `lookup.rs`: FindCoordinator for groups, and ListGroups.
//! - `placement.rs`: what the coordinator asks of the cluster's membership.
//! - `member.rs`: a member and the answers parked members receive.
//! - `subscription.rs`: bounds-checked parsing of "consumer" protocol metadata.
//! - `consumer/`: consumer groups of the new protocol (KIP-848), whose state
//!   a `Group` holds while it is one; `consumer_calls.rs` serves their APIs
//!   and those of share groups (`share_group.rs`, KIP-932).
//!
//! Each group sits behind its own async mutex; catalog writes that must precede
//! an answer (the generation's assignment) happen under it, so stores of one
//! group are ordered. A ticker advances timers (sessions, rebalance deadlines,
//! the initial rebalance delay) every [`TICK`], never waiting for the catalog
//! (see `run_timers`).

#[cfg(test)]
mod cluster_tests;
pub mod consumer;
mod consumer_calls;
mod group;
mod join_answer;
mod lookup;
mod member;
mod membership;
mod migration;
#[cfg(test)]
mod migration_tests;
mod offsets;
mod ownership;
mod persisted;
mod placement;
mod share_assignor;
pub mod share_group;
mod subscription;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_clock::SharedClock;
use streamhouse_metadata::{CatalogError, GroupCatalog};
use tokio::sync::Mutex;

use consumer::Topics;

pub use consumer_calls::{Described, DescribedShare};
pub use group::{
    Group, GroupRules, GroupState, JoinReply, CONSUMER_PROTOCOL_TYPE, SHARE_PROTOCOL_TYPE,
};
pub use lookup::{ListedGroup, CLASSIC_GROUP_TYPE, CONSUMER_GROUP_TYPE, SHARE_GROUP_TYPE};
pub use member::{JoinRequest, JoinResult, Member, SyncResult};
pub use placement::{AgentId, CoordinatorNode, Placement, Solo};
pub use subscription::subscribed_topics;
pub use sync::{SyncReply, SyncRequest};

/// Timer resolution: how late a deadline may be noticed.
pub const TICK: Duration = Duration::from_millis(20);

/// FindCoordinator key types.
pub const KEY_TYPE_GROUP: i8 = 0;
pub const KEY_TYPE_TRANSACTION: i8 = 1;

pub struct Coordinator {
    /// Only the groups' part of the catalog: all the coordinator stores.
    catalog: Arc<dyn GroupCatalog>,
    /// Who this agent is and which groups it should coordinate.
    placement: Arc<dyn Placement>,
    /// Named for transactional ids, which have no coordinator of their own yet.
    this_node: CoordinatorNode,
    rules: GroupRules,
    /// Sessions, rebalance deadlines and the initial delay are measured on it.
    clock: SharedClock,
    /// The groups whose leases this agent holds (see `ownership.rs`).
    slots: std::sync::Mutex<HashMap<String, ownership::Slot>>,
    /// One gate per group being acquired, so that one acquisition runs at a time.
    acquiring: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Set by [`Coordinator::shutdown`].
    closed: AtomicBool,
}

impl Coordinator {
    /// Starts the coordinator and its timer task, which ends once the
    /// coordinator is dropped. No group is loaded yet: each is loaded when
    /// this agent takes it (`ownership.rs`).
    pub fn start(
        catalog: Arc<dyn GroupCatalog>,
        placement: Arc<dyn Placement>,
        this_node: CoordinatorNode,
        rules: GroupRules,
        clock: SharedClock,
    ) -> Arc<Coordinator> {
        let coordinator = Arc::new(Coordinator {
            catalog,
            placement,
            this_node,
            rules,
            clock,
            slots: std::sync::Mutex::new(HashMap::new()),
            acquiring: std::sync::Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(run_timers(Arc::downgrade(&coordinator)));
        coordinator
    }

    /// The agent FindCoordinator names for a transactional id: this one, as
    /// no agent coordinates transactions yet.
    pub fn this_node(&self) -> &CoordinatorNode {
        &self.this_node
    }

    fn slot_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, ownership::Slot>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every use is a single insert, remove or field update), so poisoning
        // is ignored.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn acquiring(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<()>>>> {
        // As `slot_map`.
        self.acquiring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group, if this agent holds it and it has state.
    pub fn group(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        self.slot_map()
            .get(group_id)
            .and_then(|slot| slot.group.clone())
    }

    /// [`Coordinator::group`] after making sure this agent coordinates it
    /// (taking it over if it should).
    pub async fn owned_group(
        &self,
        group_id: &str,
    ) -> Result<Option<Arc<Mutex<Group>>>, ResponseError> {
        self.ensure_owned(group_id).await?;
        Ok(self.group(group_id))
    }

    /// The group, created empty if it has no state; None if this agent no
    /// longer holds it (dropped since [`Coordinator::ensure_owned`]).
    fn group_or_create(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        let mut slots = self.slot_map();
        let slot = slots.get_mut(group_id)?;
        let fence = slot.fence;
        let rules = self.rules;
        Some(Arc::clone(slot.group.get_or_insert_with(|| {
            let mut group = Group::new(group_id, rules);
            group.fence = fence;
            Arc::new(Mutex::new(group))
        })))
    }

    /// Forgets the group's state (the lease stays held).
    fn remove_group(&self, group_id: &str) {
        if let Some(slot) = self.slot_map().get_mut(group_id) {
            slot.group = None;
        }
    }

    /// Ids of the groups this agent holds with state, in id order.
    pub fn group_ids(&self) -> Vec<String> {
        let slots = self.slot_map();
        let mut ids: Vec<String> = slots
            .iter()
            .filter(|(_, slot)| slot.group.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Every group this agent holds, in id order.
    pub fn groups(&self) -> Vec<Arc<Mutex<Group>>> {
        let slots = self.slot_map();
        let mut ids: Vec<&String> = slots.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| slots.get(id).and_then(|slot| slot.group.clone()))
            .collect()
    }

    /// Stores the group if it changed; a failure is logged (the next change
    /// stores it again). Refused because another agent took the group over,
    /// the group is dropped instead (see `ownership.rs`).
    async fn persist(&self, group: &mut Group) -> Result<(), CatalogError> {
        if !group.dirty {
            return Ok(());
        }
        group.dirty = false;
        let result = self
            .catalog
            .store_group(&group.to_stored(), group.fence)
            .await;
        if result.is_ok() {
            group.stored = true;
        }
        if let Err(CatalogError::NotCoordinator { .. }) = &result {
            self.fenced(group);
            return result;
        }
        if let Err(error) = &result {
            // The timer retries a dirty group every tick while the catalog fails.
            static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
            if let Some(suppressed) = WARNINGS.allow() {
                tracing::warn!(group = %group.id, %error, suppressed, "cannot store group");
            }
            group.dirty = true;
        }
        result
    }

    /// A JoinGroup. `topics` lists every topic; it is awaited only for a
    /// consumer-protocol group, which a classic member joins as one of its
    /// members (see `consumer/classic.rs`).
    pub async fn join(
        &self,
        group_id: &str,
        request: JoinRequest,
        topics: impl std::future::Future<Output = Result<Topics, ResponseError>>,
    ) -> JoinResult {
        let member_id = request.member_id.clone();
        if let Err(error) = self.ensure_owned(group_id).await {
            return JoinResult::error(&member_id, error);
        }
        let group = if member_id.is_empty() {
            match self.group_or_create(group_id) {
                Some(group) => group,
                None => return JoinResult::error(&member_id, ResponseError::NotCoordinator),
            }
        } else {
            // A known member id for a group this coordinator does not have: the
            // group is gone (deleted, or its members all expired long ago).
            match self.group(group_id) {
                Some(group) => group,
                None => return JoinResult::error(&member_id, ResponseError::UnknownMemberId),
            }
        };
        let reply = {
            let mut group = group.lock().await;
            let topics = if group.is_live_consumer() {
                match topics.await {
                    Ok(topics) => Some(topics),
                    Err(error) => return JoinResult::error(&member_id, error),
                }
            } else {
                None
            };
            let reply = group.join(request, topics.as_ref(), self.clock.now());
            if group.is_unused() {
                // A refused first join must not leave a phantom group behind (it
                // would be listed). Dead: anyone holding it retries with a new one.
                group.state = GroupState::Dead;
                self.remove_group(group_id);
            }
            let _ = self.persist(&mut group).await;
            reply
        };
        match reply {
            JoinReply::Now(result) => result,
            JoinReply::Later(receiver) => receiver.await.unwrap_or_else(|_| {
                JoinResult::error(&member_id, ResponseError::CoordinatorNotAvailable)
            }),
        }
    }

    pub async fn sync(&self, group_id: &str, request: SyncRequest) -> SyncResult {
        if let Err(error) = self.ensure_owned(group_id).await {
            return SyncResult::error(error);
        }
        let Some(group) = self.group(group_id) else {
            return SyncResult::error(ResponseError::UnknownMemberId);
        };
        let reply = {
            let mut group = group.lock().await;
            let reply = group.sync(request, self.clock.now());
            if matches!(reply, SyncReply::Persist(_)) {
                group.dirty = true;
                match self.persist(&mut group).await {
                    Ok(()) => group.release_syncs(),
                    // Dropped, its waiters answered: nothing to rebalance here.
                    Err(CatalogError::NotCoordinator { .. }) => {}
                    Err(error) => {
                        group.fail_syncs(crate::errors::catalog(&error), self.clock.now())
                    }
                }
            }
            reply
        };
        match reply {
            SyncReply::Now(result) => result,
            SyncReply::Later(receiver) | SyncReply::Persist(receiver) => receiver
                .await
                .unwrap_or_else(|_| SyncResult::error(ResponseError::CoordinatorNotAvailable)),
        }
    }

    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if let Err(error) = self.ensure_owned(group_id).await {
            return Some(error);
        }
        let Some(group) = self.group(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let mut group = group.lock().await;
        group.heartbeat(member_id, instance_id, generation, self.clock.now())
    }

    /// Removes members; the answer holds one error per (member id, instance
    /// id), or the error of the whole request (this agent is not the
    /// coordinator).
    pub async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.ensure_owned(group_id).await?;
        let Some(group) = self.group(group_id) else {
            return Ok(vec![Some(ResponseError::UnknownMemberId); members.len()]);
        };
        let mut group = group.lock().await;
        let now = self.clock.now();
        let errors = members
            .iter()
            .map(|(member_id, instance_id)| group.leave(member_id, instance_id.as_deref(), now))
            .collect();
        if let Err(CatalogError::NotCoordinator { .. }) = self.persist(&mut group).await {
            // The departures are void: the group's new owner never saw them.
            return Err(ResponseError::NotCoordinator);
        }
        Ok(errors)
    }

    pub fn catalog(&self) -> &Arc<dyn GroupCatalog> {
        &self.catalog
    }
}

/// Advances every group's timers each tick without waiting for the catalog.
///
/// A group whose lock is taken (a request in progress, or its save still
/// running) is skipped this tick and looked at again the next: waiting for it
/// would let one group stalled in the catalog stop every other group's
/// sessions from lapsing. A group the tick changed is saved on a task of its
/// own that keeps the group's lock until the catalog answers, so saves of one
/// group stay in order and at most one per group is in flight.
async fn run_timers(coordinator: Weak<Coordinator>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(coordinator) = coordinator.upgrade() else {
            return;
        };
        coordinator.follow_placement();
        for group in coordinator.groups() {
            let Ok(mut group) = group.try_lock_owned() else {
                continue;
            };
            if group.state == GroupState::Dead {
                continue;
            }
            group.tick(coordinator.clock.now());
            if group.dirty {
                let coordinator = Arc::clone(&coordinator);
                tokio::spawn(async move {
                    let _ = coordinator.persist(&mut group).await;
                });
            }
        }
    }
}
