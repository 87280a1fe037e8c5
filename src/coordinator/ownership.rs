//! Which groups this agent coordinates, and how a group comes and goes
//! (docs/ARCHITECTURE.md, "Group coordinators in a cluster"). The answers
//! naming coordinators (FindCoordinator, ListGroups) are in `lookup.rs`.
//!
//! A group is served only while this agent holds its lease in the catalog's
//! `group_leases`. The lease is taken on the first request for the group, if
//! no live agent holds it and this agent is the group's rendezvous winner in
//! its view, and the stored group is loaded then (not at start). Every write
//! of the group carries the lease epoch (`Group::fence`); a write the catalog
//! refuses as NotCoordinator drops the group. When a new view names another
//! agent, the group is handed off at a safe point (Empty or Stable): stored,
//! parked requests answered NOT_COORDINATOR, lease released. While this
//! agent's own lease is in doubt it serves no group at all.
//!
//! Outside a cluster ([`super::Solo`]) every group is this agent's: nothing is
//! leased and writes are unfenced, but groups are still loaded on first use.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::groups::{Acquisition, GroupFence};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::placement::AgentId;
use super::{Coordinator, Group, GroupState};

/// A group whose lease this agent holds.
pub(super) struct Slot {
    pub fence: GroupFence,
    /// The registration the lease was taken under (None outside a cluster);
    /// a slot of an earlier registration is void.
    pub incarnation: Option<String>,
    /// The view epoch in which this agent was last found to be the group's
    /// winner.
    pub view_epoch: i64,
    /// None while the group has no state (never stored, or deleted): the
    /// lease is held all the same.
    pub group: Option<Arc<Mutex<Group>>>,
    pub standing: Standing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    Staying,
    /// Another agent is the winner now: handed off at the next safe point.
    Leaving,
    /// The handoff is under way.
    HandingOff,
}

/// Catalog failures while taking a group over: every client handles
/// COORDINATOR_NOT_AVAILABLE by looking for the coordinator again.
fn unavailable(group_id: &str, error: &streamhouse_metadata::CatalogError) -> ResponseError {
    tracing::warn!(group = group_id, %error, "cannot take the group's lease");
    ResponseError::CoordinatorNotAvailable
}

impl Coordinator {
    /// Makes sure this agent coordinates the group: Ok if it holds the lease,
    /// or took it now (loading the stored group). Otherwise the error to
    /// answer: NOT_COORDINATOR when another agent holds it or should take it,
    /// COORDINATOR_NOT_AVAILABLE while this agent cannot coordinate anything.
    pub async fn ensure_owned(&self, group_id: &str) -> Result<(), ResponseError> {
        if self.is_closed() {
            return Err(ResponseError::NotCoordinator);
        }
        if !self.placement.lease_valid() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let me = self.placement.this_agent();
        if self.holds(group_id, &me) {
            return Ok(());
        }
        // One acquisition per group at a time; requests arriving meanwhile
        // wait for it and are then served (or refused) like the first.
        let gate = Arc::clone(
            self.acquiring()
                .entry(group_id.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(()))),
        );
        let result = {
            let _acquiring = gate.lock().await;
            if self.holds(group_id, &me) {
                Ok(())
            } else {
                self.acquire(group_id, me).await
            }
        };
        let mut acquiring = self.acquiring();
        if acquiring
            .get(group_id)
            .is_some_and(|g| Arc::ptr_eq(g, &gate) && Arc::strong_count(g) == 2)
        {
            acquiring.remove(group_id);
        }
        result
    }

    fn holds(&self, group_id: &str, me: &Option<AgentId>) -> bool {
        self.slot_map().get(group_id).is_some_and(|slot| {
            slot.incarnation.as_deref() == me.as_ref().map(|me| me.incarnation.as_str())
        })
    }

    async fn acquire(&self, group_id: &str, me: Option<AgentId>) -> Result<(), ResponseError> {
        let Some(me) = me else {
            return self.load(group_id, GroupFence::Unfenced, None, 0).await;
        };
        let view_epoch = self.placement.view_epoch();
        let leases = self
            .catalog
            .group_leases(&[group_id.to_owned()])
            .await
            .map_err(|e| unavailable(group_id, &e))?;
        let lease = leases.into_iter().find(|l| l.group_id == group_id);
        let ours = match lease.as_ref().and_then(|l| l.live_owner()) {
            Some(owner) if owner.incarnation != me.incarnation => {
                return Err(ResponseError::NotCoordinator)
            }
            owner => owner.is_some(),
        };
        if self.placement.winner(group_id).map(|w| w.node_id) != Some(me.node_id) {
            if let (true, Some(lease)) = (ours, &lease) {
                // Ours but not served here (a handoff whose release failed):
                // give it up so that the winner can take it.
                if let Err(error) = self.catalog.release_group(group_id, lease.epoch).await {
                    tracing::warn!(group = group_id, %error, "cannot release the group's lease");
                }
            }
            return Err(ResponseError::NotCoordinator);
        }
        match self
            .catalog
            .acquire_group(group_id, me.node_id, &me.incarnation)
            .await
        {
            Ok(Acquisition::Acquired { epoch }) => {
                tracing::info!(group = group_id, epoch, "took over the group's lease");
                self.load(
                    group_id,
                    GroupFence::Lease(epoch),
                    Some(me.incarnation),
                    view_epoch,
                )
                .await
            }
            Ok(Acquisition::Held { .. }) => Err(ResponseError::NotCoordinator),
            Ok(Acquisition::NotRegistered) => Err(ResponseError::CoordinatorNotAvailable),
            Err(error) => Err(unavailable(group_id, &error)),
        }
    }

    /// Loads the stored group under a lease just taken. If loading fails the
    /// lease stays ours and the next request takes it again.
    async fn load(
        &self,
        group_id: &str,
        fence: GroupFence,
        incarnation: Option<String>,
        view_epoch: i64,
    ) -> Result<(), ResponseError> {
        let stored = self
            .catalog
            .load_group(group_id)
            .await
            .map_err(|e| unavailable(group_id, &e))?;
        // The group's own session timeouts (group configs) for the members
        // loaded, until their next heartbeat here.
        let rules = match &stored {
            Some(_) => {
                let configs = self
                    .catalog
                    .group_configs(group_id)
                    .await
                    .map_err(|e| unavailable(group_id, &e))?;
                crate::config::group::rules_of(&configs, self.rules)
            }
            None => self.rules,
        };
        let group = stored.map(|stored| {
            let mut group = Group::from_stored(stored, rules, self.clock.now());
            group.fence = fence;
            Arc::new(Mutex::new(group))
        });
        let replaced = self.slot_map().insert(
            group_id.to_owned(),
            Slot {
                fence,
                incarnation,
                view_epoch,
                group,
                standing: Standing::Staying,
            },
        );
        if let Some(old) = replaced.and_then(|slot| slot.group) {
            unload_later(old, ResponseError::NotCoordinator);
        }
        Ok(())
    }

    /// The catalog refused a write of the group: another agent owns it now.
    pub(super) fn fenced(&self, group: &mut Group) {
        tracing::info!(group = %group.id, "the group's lease moved to another agent; dropping it");
        self.drop_slot(&group.id, group.fence);
        group.unload(ResponseError::NotCoordinator);
    }

    fn drop_slot(&self, group_id: &str, fence: GroupFence) {
        let mut slots = self.slot_map();
        if slots.get(group_id).is_some_and(|slot| slot.fence == fence) {
            slots.remove(group_id);
        }
    }

    /// Run every tick: drops every group while this agent's lease is in doubt
    /// or after it registered again, and hands off the groups a new view gives
    /// to another agent once they are at a safe point.
    pub(super) fn follow_placement(self: &Arc<Self>) {
        let Some(me) = self.placement.this_agent() else {
            return;
        };
        let valid = self.placement.lease_valid();
        let epoch = self.placement.view_epoch();
        let mut dropped = Vec::new();
        let mut leaving = Vec::new();
        {
            let mut slots = self.slot_map();
            slots.retain(|_, slot| {
                let keep = valid && slot.incarnation.as_deref() == Some(me.incarnation.as_str());
                if !keep {
                    dropped.extend(slot.group.take());
                }
                keep
            });
            for (group_id, slot) in slots.iter_mut() {
                if slot.standing == Standing::Staying && slot.view_epoch != epoch {
                    let winner = self.placement.winner(group_id);
                    if winner.is_some_and(|w| w.node_id == me.node_id) {
                        slot.view_epoch = epoch;
                    } else {
                        slot.standing = Standing::Leaving;
                    }
                }
                if slot.standing == Standing::Leaving {
                    leaving.push((group_id.clone(), slot.fence, slot.group.clone()));
                }
            }
        }
        for group in dropped {
            unload_later(group, ResponseError::CoordinatorNotAvailable);
        }
        for (group_id, fence, group) in leaving {
            let guard = match group {
                None => None,
                Some(group) => match group.try_lock_owned() {
                    Ok(guard)
                        if matches!(
                            guard.state,
                            GroupState::Empty | GroupState::Stable | GroupState::Dead
                        ) =>
                    {
                        Some(guard)
                    }
                    // Busy or rebalancing: looked at again next tick.
                    _ => continue,
                },
            };
            if let Some(slot) = self.slot_map().get_mut(&group_id) {
                slot.standing = Standing::HandingOff;
            }
            tokio::spawn(Arc::clone(self).hand_off(group_id, fence, guard));
        }
    }

    /// Stores the group, answers its parked requests, forgets it and releases
    /// its lease; members rediscover the coordinator and go on with their
    /// generation there.
    async fn hand_off(
        self: Arc<Self>,
        group_id: String,
        fence: GroupFence,
        group: Option<OwnedMutexGuard<Group>>,
    ) {
        if let Some(mut group) = group {
            if group.state != GroupState::Dead {
                if let Err(error) = self.persist(&mut group).await {
                    if !matches!(
                        error,
                        streamhouse_metadata::CatalogError::NotCoordinator { .. }
                    ) {
                        // Not released with state the next owner would miss: again
                        // next tick.
                        if let Some(slot) = self.slot_map().get_mut(&group_id) {
                            slot.standing = Standing::Leaving;
                        }
                        return;
                    }
                }
            }
            group.unload(ResponseError::NotCoordinator);
        }
        self.drop_slot(&group_id, fence);
        if let GroupFence::Lease(epoch) = fence {
            match self.catalog.release_group(&group_id, epoch).await {
                Ok(_) => tracing::info!(group = %group_id, epoch, "handed the group off"),
                // The next request for it here releases it (see `acquire`).
                Err(error) => {
                    tracing::warn!(group = %group_id, %error, "cannot release the group's lease")
                }
            }
        }
    }

    /// A clean shutdown: every group stored and its parked JoinGroup and
    /// SyncGroup answered NOT_COORDINATOR; requests arriving later are
    /// answered so too. The leases stay: leaving the cluster next releases all
    /// of them with this agent's row, in one transaction.
    pub async fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let slots: Vec<(String, Slot)> = self.slot_map().drain().collect();
        for (_, slot) in slots {
            if let Some(group) = slot.group {
                let mut group = group.lock().await;
                if group.state != GroupState::Dead {
                    let _ = self.persist(&mut group).await;
                }
                group.unload(ResponseError::NotCoordinator);
            }
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Answers a dropped group's parked requests once whoever holds it lets go.
fn unload_later(group: Arc<Mutex<Group>>, error: ResponseError) {
    tokio::spawn(async move {
        group.lock().await.unload(error);
    });
}
