//! Group leases: which agent coordinates a group, takeover once the owner's
//! agents row is gone, and writes fenced by the lease epoch.

use std::sync::Arc;

use streamhouse_metadata::agents::{AgentRegistration, Renewal};
use streamhouse_metadata::groups::{Acquisition, GroupFence, GroupLease, LeaseOwner};
use streamhouse_metadata::prelude::*;
use streamhouse_metadata::CatalogError;
use tokio::sync::Barrier;

use crate::groups::{group, member, offset};
use crate::harness::TestDb;

const LEASE_MS: i64 = 60_000;

/// An agent as the lease operations name it.
struct Agent {
    node_id: i32,
    incarnation: String,
}

async fn register(catalog: &dyn Catalog, port: i32, lease_ms: i64) -> Agent {
    let incarnation = uuid::Uuid::new_v4().to_string();
    let registered = catalog
        .register_agent(&AgentRegistration {
            node_id: None,
            incarnation: incarnation.clone(),
            host: "127.0.0.1".into(),
            port,
            endpoints: Vec::new(),
            zone: None,
            lease_ms,
        })
        .await
        .unwrap();
    Agent {
        node_id: registered.node_id,
        incarnation,
    }
}

async fn acquire(catalog: &dyn Catalog, group_id: &str, agent: &Agent) -> Acquisition {
    catalog
        .acquire_group(group_id, agent.node_id, &agent.incarnation)
        .await
        .unwrap()
}

async fn lease(catalog: &dyn Catalog, group_id: &str) -> Option<GroupLease> {
    let leases = catalog.group_leases(&[group_id.to_owned()]).await.unwrap();
    assert!(leases.len() <= 1, "{leases:?}");
    leases.into_iter().next()
}

fn owned_by(group_id: &str, epoch: i64, agent: &Agent, registered: bool) -> GroupLease {
    GroupLease {
        group_id: group_id.to_owned(),
        epoch,
        owner: Some(LeaseOwner {
            node_id: agent.node_id,
            incarnation: agent.incarnation.clone(),
            registered,
        }),
    }
}

fn is_not_coordinator(error: &CatalogError, epoch: i64, now: Option<i64>) -> bool {
    matches!(error, CatalogError::NotCoordinator { epoch: e, current, .. }
        if *e == epoch && *current == now)
}

pub async fn a_free_group_is_acquired_at_epoch_one_and_each_acquisition_bumps_it(db: &TestDb) {
    let catalog = db.open().await;
    let a = register(&*catalog, 9001, LEASE_MS).await;
    assert_eq!(lease(&*catalog, "g").await, None);

    assert_eq!(
        acquire(&*catalog, "g", &a).await,
        Acquisition::Acquired { epoch: 1 }
    );
    assert_eq!(
        catalog
            .group_leases(&["g".into(), "never".into()])
            .await
            .unwrap(),
        vec![owned_by("g", 1, &a, true)]
    );
    // Acquiring what it holds is allowed and fences the earlier acquisition.
    assert_eq!(
        acquire(&*catalog, "g", &a).await,
        Acquisition::Acquired { epoch: 2 }
    );
    assert_eq!(
        lease(&*catalog, "g").await,
        Some(owned_by("g", 2, &a, true))
    );
}

pub async fn a_group_is_not_taken_over_while_its_owners_row_exists(db: &TestDb) {
    let agents = [db.open().await, db.open().await];
    let a = register(&*agents[0], 9001, LEASE_MS).await;
    let b = register(&*agents[1], 9002, LEASE_MS).await;
    assert_eq!(
        acquire(&*agents[0], "g", &a).await,
        Acquisition::Acquired { epoch: 1 }
    );
    assert_eq!(
        acquire(&*agents[1], "g", &b).await,
        Acquisition::Held { node_id: a.node_id }
    );
    assert_eq!(
        lease(&*agents[1], "g").await,
        Some(owned_by("g", 1, &a, true))
    );
}

pub async fn a_group_is_taken_over_once_its_owner_left_or_was_reaped(db: &TestDb) {
    let agents = [db.open().await, db.open().await];
    let a = register(&*agents[0], 9001, LEASE_MS).await;
    let b = register(&*agents[1], 9002, LEASE_MS).await;
    acquire(&*agents[0], "left", &a).await;

    // A clean shutdown releases the lease and keeps its epoch.
    agents[0]
        .deregister_agent(a.node_id, &a.incarnation)
        .await
        .unwrap();
    let released = lease(&*agents[1], "left").await.unwrap();
    assert_eq!((released.epoch, released.owner), (1, None));
    assert_eq!(
        acquire(&*agents[1], "left", &b).await,
        Acquisition::Acquired { epoch: 2 }
    );

    // An owner whose lease lapsed holds its groups until it is reaped.
    let c = register(&*agents[0], 9003, 1).await;
    assert_eq!(
        acquire(&*agents[0], "reaped", &c).await,
        Acquisition::Acquired { epoch: 1 }
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        acquire(&*agents[1], "reaped", &b).await,
        Acquisition::Held { node_id: c.node_id }
    );
    let renewal = agents[1]
        .renew_agent(b.node_id, &b.incarnation, LEASE_MS, true)
        .await
        .unwrap();
    assert_eq!(
        renewal,
        Renewal::Renewed {
            reaped: vec![c.node_id]
        }
    );
    assert_eq!(
        lease(&*agents[1], "reaped").await,
        Some(owned_by("reaped", 1, &c, false))
    );
    assert_eq!(
        acquire(&*agents[1], "reaped", &b).await,
        Acquisition::Acquired { epoch: 2 }
    );
    // The reaped agent may take nothing, not even a free group.
    assert_eq!(
        acquire(&*agents[0], "free", &c).await,
        Acquisition::NotRegistered
    );
    assert_eq!(lease(&*agents[0], "free").await, None);
}

pub async fn group_writes_under_an_old_lease_epoch_are_refused(db: &TestDb) {
    let agents = [db.open().await, db.open().await];
    let a = register(&*agents[0], 9001, LEASE_MS).await;
    let b = register(&*agents[1], 9002, LEASE_MS).await;
    acquire(&*agents[0], "g", &a).await;
    let old = GroupFence::Lease(1);
    let first = group("g", 1, vec![member("m1", None)]);
    agents[0].store_group(&first, old).await.unwrap();
    agents[0]
        .commit_offsets("g", old, &[offset("t", 0, 10, None)])
        .await
        .unwrap();

    // B takes the group over while A still believes it owns it.
    agents[0]
        .deregister_agent(a.node_id, &a.incarnation)
        .await
        .unwrap();
    assert_eq!(
        acquire(&*agents[1], "g", &b).await,
        Acquisition::Acquired { epoch: 2 }
    );

    let stale = group("g", 2, vec![member("m2", None)]);
    let refused = [
        agents[0].store_group(&stale, old).await.unwrap_err(),
        agents[0]
            .commit_offsets("g", old, &[offset("t", 0, 99, None)])
            .await
            .unwrap_err(),
        agents[0]
            .delete_offsets("g", old, &[("t".into(), 0)])
            .await
            .unwrap_err(),
        agents[0].delete_group("g", old).await.unwrap_err(),
    ];
    for error in &refused {
        assert!(is_not_coordinator(error, 1, Some(2)), "{error:?}");
    }
    // Nothing of the refused writes landed.
    assert_eq!(agents[1].load_group("g").await.unwrap(), Some(first));
    let committed = agents[1].committed_offsets("g").await.unwrap();
    assert_eq!(
        committed.iter().map(|c| c.offset).collect::<Vec<_>>(),
        vec![10]
    );

    // The new owner writes under its epoch.
    let current = GroupFence::Lease(2);
    agents[1].store_group(&stale, current).await.unwrap();
    assert_eq!(agents[1].load_group("g").await.unwrap(), Some(stale));
    agents[1].delete_group("g", current).await.unwrap();
    // The lease row stays, so the next acquisition never reuses an epoch.
    assert_eq!(lease(&*agents[1], "g").await.unwrap().epoch, 2);

    // A fence naming a group that was never leased is refused too.
    let error = agents[1]
        .store_group(&group("never", 1, vec![]), GroupFence::Lease(1))
        .await
        .unwrap_err();
    assert!(is_not_coordinator(&error, 1, None), "{error:?}");
    assert_eq!(agents[1].load_group("never").await.unwrap(), None);
}

pub async fn a_lease_is_released_only_at_its_own_epoch(db: &TestDb) {
    let agents = [db.open().await, db.open().await];
    let a = register(&*agents[0], 9001, LEASE_MS).await;
    let b = register(&*agents[1], 9002, LEASE_MS).await;
    acquire(&*agents[0], "g", &a).await;
    assert!(!agents[0].release_group("g", 0).await.unwrap());
    assert!(agents[0].release_group("g", 1).await.unwrap());
    let released = lease(&*agents[0], "g").await.unwrap();
    assert_eq!((released.epoch, released.owner), (1, None));

    // Released: the next agent takes it at once, without waiting for A to go.
    assert_eq!(
        acquire(&*agents[1], "g", &b).await,
        Acquisition::Acquired { epoch: 2 }
    );
    // A late release of the old epoch leaves the new owner in place.
    assert!(!agents[0].release_group("g", 1).await.unwrap());
    assert_eq!(
        lease(&*agents[0], "g").await,
        Some(owned_by("g", 2, &b, true))
    );
}

pub async fn of_agents_acquiring_a_group_together_one_wins(db: &TestDb) {
    const AGENTS: usize = 4;
    const GROUPS: usize = 5;
    let catalogs = [db.open().await, db.open().await];
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        agents.push(Arc::new(
            register(&*catalogs[i % 2], 9100 + i as i32, LEASE_MS).await,
        ));
    }
    let start = Arc::new(Barrier::new(AGENTS * GROUPS));
    let mut tasks = tokio::task::JoinSet::new();
    for g in 0..GROUPS {
        for (i, agent) in agents.iter().enumerate() {
            let catalog = Arc::clone(&catalogs[i % 2]);
            let agent = Arc::clone(agent);
            let start = Arc::clone(&start);
            tasks.spawn(async move {
                let group_id = format!("g{g}");
                start.wait().await;
                let outcome = acquire(&*catalog, &group_id, &agent).await;
                (group_id, agent.node_id, outcome)
            });
        }
    }
    let mut outcomes = Vec::new();
    while let Some(result) = tasks.join_next().await {
        outcomes.push(result.unwrap());
    }
    for g in 0..GROUPS {
        let group_id = format!("g{g}");
        let mine: Vec<&(String, i32, Acquisition)> =
            outcomes.iter().filter(|o| o.0 == group_id).collect();
        let winners: Vec<i32> = mine
            .iter()
            .filter(|o| o.2 == Acquisition::Acquired { epoch: 1 })
            .map(|o| o.1)
            .collect();
        assert_eq!(winners.len(), 1, "{group_id}: {mine:?}");
        let winner = winners[0];
        for (_, node_id, outcome) in &mine {
            if *node_id != winner {
                assert_eq!(*outcome, Acquisition::Held { node_id: winner });
            }
        }
        let lease = lease(&*catalogs[0], &group_id).await.unwrap();
        assert_eq!(lease.epoch, 1);
        assert_eq!(lease.owner.map(|o| o.node_id), Some(winner));
    }
}
