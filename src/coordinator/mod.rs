//! The group coordinator: owns every classic consumer group this agent
//! coordinates, in memory, and persists what clients depend on to the catalog.
//!
//! - `group.rs`: the state machine of joining and rebalancing.
//! - `join_answer.rs`: choosing the protocol; each member's JoinGroup answer.
//! - `sync.rs`: SyncGroup, the leader's assignment handed out.
//! - `membership.rs`: heartbeats, leaving, member checks, session and
//!   rebalance expiry.
//! - `persisted.rs`: what the catalog stores of a group, and resuming from it.
//! - `member.rs`: a member and the answers parked members receive.
//! - `subscription.rs`: bounds-checked parsing of "consumer" protocol metadata.
//!
//! Each group sits behind its own async mutex; catalog writes that must precede
//! an answer (the generation's assignment) happen under it, so stores of one
//! group are ordered. A ticker advances timers (sessions, rebalance deadlines,
//! the initial rebalance delay) every [`TICK`], never waiting for the catalog
//! (see `run_timers`).

mod group;
mod join_answer;
mod member;
mod membership;
mod persisted;
mod subscription;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_clock::SharedClock;
use streamhouse_metadata::groups::GroupFence;
use streamhouse_metadata::{CatalogError, GroupCatalog};
use tokio::sync::Mutex;

pub use group::{Group, GroupState, JoinReply};
pub use member::{JoinRequest, JoinResult, Member, SyncResult};
pub use subscription::subscribed_topics;
pub use sync::{SyncReply, SyncRequest};

/// Timer resolution: how late a deadline may be noticed.
pub const TICK: Duration = Duration::from_millis(20);

/// Where a coordinator lives: today always this agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorNode {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// FindCoordinator key types.
pub const KEY_TYPE_GROUP: i8 = 0;
pub const KEY_TYPE_TRANSACTION: i8 = 1;

pub struct Coordinator {
    /// Only the groups' part of the catalog: all the coordinator stores.
    catalog: Arc<dyn GroupCatalog>,
    this_node: CoordinatorNode,
    initial_delay: Duration,
    /// Sessions, rebalance deadlines and the initial delay are measured on it.
    clock: SharedClock,
    groups: std::sync::Mutex<HashMap<String, Arc<Mutex<Group>>>>,
}

impl Coordinator {
    /// Loads every stored group and starts the timer task, which ends once the
    /// coordinator is dropped.
    pub async fn start(
        catalog: Arc<dyn GroupCatalog>,
        this_node: CoordinatorNode,
        initial_delay: Duration,
        clock: SharedClock,
    ) -> Result<Arc<Coordinator>, CatalogError> {
        let now = clock.now();
        let groups = catalog
            .load_groups()
            .await?
            .into_iter()
            .map(|stored| {
                let group = Group::from_stored(stored, initial_delay, now);
                (group.id.clone(), Arc::new(Mutex::new(group)))
            })
            .collect();
        let coordinator = Arc::new(Coordinator {
            catalog,
            this_node,
            initial_delay,
            clock,
            groups: std::sync::Mutex::new(groups),
        });
        tokio::spawn(run_timers(Arc::downgrade(&coordinator)));
        Ok(coordinator)
    }

    /// The one placement decision: which agent coordinates this group or
    /// transactional id. A single agent coordinates everything; a cluster of
    /// agents would hash `key` over the live agents here.
    pub fn placement(&self, _key_type: i8, _key: &str) -> CoordinatorNode {
        self.this_node.clone()
    }

    fn group_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Group>>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every use is a single insert, remove or clone), so poisoning is ignored.
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn group(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        self.group_map().get(group_id).cloned()
    }

    fn group_or_create(&self, group_id: &str) -> Arc<Mutex<Group>> {
        Arc::clone(
            self.group_map()
                .entry(group_id.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(Group::new(group_id, self.initial_delay)))),
        )
    }

    /// Every group, in id order.
    pub fn groups(&self) -> Vec<Arc<Mutex<Group>>> {
        let map = self.group_map();
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| map.get(id).cloned())
            .collect()
    }

    /// Stores the group if it changed; a failure is logged (the next change
    /// stores it again).
    async fn persist(&self, group: &mut Group) -> Result<(), CatalogError> {
        if !group.dirty {
            return Ok(());
        }
        group.dirty = false;
        let result = self
            .catalog
            .store_group(&group.to_stored(), GroupFence::Unfenced)
            .await;
        if result.is_ok() {
            group.stored = true;
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

    pub async fn join(&self, group_id: &str, request: JoinRequest) -> JoinResult {
        let member_id = request.member_id.clone();
        let group = if member_id.is_empty() {
            self.group_or_create(group_id)
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
            let reply = group.join(request, self.clock.now());
            if group.is_unused() {
                // A refused first join must not leave a phantom group behind (it
                // would be listed). Dead: anyone holding it retries with a new one.
                group.state = GroupState::Dead;
                self.group_map().remove(group_id);
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
        let Some(group) = self.group(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let mut group = group.lock().await;
        group.heartbeat(member_id, instance_id, generation, self.clock.now())
    }

    /// Removes members; the answer holds one error per (member id, instance id).
    pub async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Option<ResponseError>> {
        let Some(group) = self.group(group_id) else {
            return vec![Some(ResponseError::UnknownMemberId); members.len()];
        };
        let mut group = group.lock().await;
        let now = self.clock.now();
        let errors = members
            .iter()
            .map(|(member_id, instance_id)| group.leave(member_id, instance_id.as_deref(), now))
            .collect();
        let _ = self.persist(&mut group).await;
        errors
    }

    /// Checks an OffsetCommit's member and generation and, if allowed, stores the
    /// offsets. The group is created for a commit outside group management.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commits: &[streamhouse_metadata::groups::OffsetCommit],
    ) -> Option<ResponseError> {
        let group = match self.group(group_id) {
            Some(group) => group,
            None if generation < 0 => self.group_or_create(group_id),
            // A generation of a group this coordinator never had.
            None => return Some(ResponseError::IllegalGeneration),
        };
        let mut group = group.lock().await;
        if let Some(error) =
            group.check_commit(member_id, instance_id, generation, self.clock.now())
        {
            return Some(error);
        }
        if group.state == GroupState::Empty
            && group.generation == 0
            && group.protocol_type.is_none()
        {
            // First commit of a group outside group management: it must exist
            // after a restart too (ListGroups, DescribeGroups).
            group.dirty = true;
        }
        if let Err(error) = self.persist(&mut group).await {
            return Some(crate::errors::catalog(&error));
        }
        if commits.is_empty() {
            return None;
        }
        self.catalog
            .commit_offsets(group_id, GroupFence::Unfenced, commits)
            .await
            .err()
            .map(|e| crate::errors::catalog(&e))
    }

    /// Deletes an empty group and its offsets.
    pub async fn delete_group(&self, group_id: &str) -> Option<ResponseError> {
        let Some(group) = self.group(group_id) else {
            return Some(ResponseError::GroupIdNotFound);
        };
        let mut group = group.lock().await;
        match group.state {
            GroupState::Dead => return Some(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Some(ResponseError::NonEmptyGroup),
        }
        if let Err(error) = self
            .catalog
            .delete_group(group_id, GroupFence::Unfenced)
            .await
        {
            return Some(crate::errors::catalog(&error));
        }
        group.state = GroupState::Dead;
        self.group_map().remove(group_id);
        None
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
        for group in coordinator.groups() {
            let Ok(mut group) = group.try_lock_owned() else {
                continue;
            };
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
