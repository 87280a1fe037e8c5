//! Two coordinators, two agents registered on one catalog: who coordinates a
//! group, takeover, fencing, handoff, self-fencing, shutdown and listing. Each
//! agent's view of the cluster is set by the test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use streamhouse_clock::ManualClock;
use streamhouse_metadata::agents::AgentRegistration;
use streamhouse_metadata::groups::{GroupFence, OffsetCommit};
use streamhouse_metadata::prelude::*;
use streamhouse_metadata::SqlCatalog;

use super::tests::{a_few_ticks, join_request, no_topics, stable_group, SESSION};
use super::{AgentId, Coordinator, CoordinatorNode, GroupRules, GroupState, Placement};
use crate::cluster::rendezvous::{winner, KeyKind};

/// One agent's membership as the test sets it: its view of the live node
/// ids, and whether its own lease holds.
struct TestCluster {
    me: AgentId,
    valid: AtomicBool,
    view: Mutex<(i64, Vec<i32>)>,
}

impl TestCluster {
    fn see(&self, nodes: &[i32]) {
        let mut view = self.view.lock().unwrap();
        *view = (view.0 + 1, nodes.to_vec());
    }
}

fn node(node_id: i32) -> CoordinatorNode {
    CoordinatorNode { node_id }
}

impl Placement for TestCluster {
    fn this_agent(&self) -> Option<AgentId> {
        Some(self.me.clone())
    }

    fn lease_valid(&self) -> bool {
        self.valid.load(Ordering::SeqCst)
    }

    fn view_epoch(&self) -> i64 {
        self.view.lock().unwrap().0
    }

    fn winner(&self, group_id: &str) -> Option<CoordinatorNode> {
        let nodes = self.view.lock().unwrap().1.clone();
        winner(KeyKind::GroupCoordinator, group_id.as_bytes(), nodes).map(node)
    }

    fn agent(&self, node_id: i32) -> Option<CoordinatorNode> {
        let known = self.view.lock().unwrap().1.contains(&node_id);
        known.then(|| node(node_id))
    }
}

/// Agents 0 and 1, both registered, both seeing both.
struct Agents {
    _dir: tempfile::TempDir,
    catalog: Arc<SqlCatalog>,
    clusters: [Arc<TestCluster>; 2],
    coordinators: [Arc<Coordinator>; 2],
}

async fn two_agents(initial_delay: Duration) -> Agents {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    let clock = ManualClock::new();
    let mut clusters = Vec::new();
    let mut coordinators = Vec::new();
    for node_id in 0..2 {
        let incarnation = uuid::Uuid::new_v4().to_string();
        catalog
            .register_agent(&AgentRegistration {
                node_id: Some(node_id),
                incarnation: incarnation.clone(),
                host: "127.0.0.1".into(),
                port: 9000 + node_id,
                endpoints: Vec::new(),
                zone: None,
                lease_ms: 60_000,
            })
            .await
            .unwrap();
        let cluster = Arc::new(TestCluster {
            me: AgentId {
                node_id,
                incarnation,
            },
            valid: AtomicBool::new(true),
            view: Mutex::new((1, vec![0, 1])),
        });
        coordinators.push(Coordinator::start(
            Arc::clone(&catalog) as Arc<dyn GroupCatalog>,
            Arc::clone(&cluster) as Arc<dyn Placement>,
            node(node_id),
            GroupRules {
                initial_delay,
                ..GroupRules::default()
            },
            clock.clone(),
        ));
        clusters.push(cluster);
    }
    Agents {
        _dir: dir,
        catalog,
        clusters: [Arc::clone(&clusters[0]), Arc::clone(&clusters[1])],
        coordinators: [Arc::clone(&coordinators[0]), Arc::clone(&coordinators[1])],
    }
}

impl Agents {
    async fn leave(&self, agent: usize) {
        let me = &self.clusters[agent].me;
        self.catalog
            .deregister_agent(me.node_id, &me.incarnation)
            .await
            .unwrap();
    }

    async fn lease_owner(&self, group_id: &str) -> Option<(i32, i64)> {
        let leases = self
            .catalog
            .group_leases(&[group_id.to_owned()])
            .await
            .unwrap();
        let lease = leases.first()?;
        Some((lease.owner.as_ref().map_or(-1, |o| o.node_id), lease.epoch))
    }
}

/// A group id whose winner over `nodes` is `node_id`.
fn won_by(node_id: i32, nodes: &[i32]) -> String {
    (0..)
        .map(|i| format!("group-{i}"))
        .find(|g| winner(KeyKind::GroupCoordinator, g.as_bytes(), nodes.to_vec()) == Some(node_id))
        .unwrap()
}

async fn coordinator_of(coordinator: &Coordinator, group_id: &str) -> i32 {
    coordinator.group_coordinators(&[group_id.to_owned()]).await[0].node_id
}

fn offset(offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: "t".into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: None,
    }
}

#[tokio::test]
async fn both_agents_name_the_lease_owner_while_it_lives_and_else_the_winner() {
    let agents = two_agents(Duration::ZERO).await;
    let group = won_by(1, &[0, 1]);
    for coordinator in &agents.coordinators {
        assert_eq!(coordinator_of(coordinator, &group).await, 1);
    }
    // Agent 0 holds the lease (taken while it was the winner of an older view).
    let me = &agents.clusters[0].me;
    agents
        .catalog
        .acquire_group(&group, me.node_id, &me.incarnation)
        .await
        .unwrap();
    for coordinator in &agents.coordinators {
        assert_eq!(coordinator_of(coordinator, &group).await, 0);
    }
    agents.leave(0).await;
    for coordinator in &agents.coordinators {
        assert_eq!(coordinator_of(coordinator, &group).await, 1);
    }
}

#[tokio::test]
async fn an_agent_that_neither_owns_nor_wins_a_group_answers_not_coordinator() {
    let agents = two_agents(Duration::ZERO).await;
    let [a, b] = &agents.coordinators;
    let group = won_by(0, &[0, 1]);
    let joined = b.join(&group, join_request(SESSION), no_topics()).await;
    assert_eq!(joined.error, Some(ResponseError::NotCoordinator));
    assert_eq!(agents.lease_owner(&group).await, None, "nothing taken");

    let member = stable_group(a, &group, SESSION).await;
    assert_eq!(agents.lease_owner(&group).await, Some((0, 1)));

    // B's view no longer has A, but A's row exists: A's lease holds.
    agents.clusters[1].see(&[1]);
    assert_eq!(
        b.heartbeat(&group, &member, None, 1).await,
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(
        b.owned_group(&group).await.err(),
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(a.heartbeat(&group, &member, None, 1).await, None);
}

#[tokio::test]
async fn once_the_owner_left_the_winner_takes_the_group_over_at_its_stored_generation() {
    let agents = two_agents(Duration::ZERO).await;
    let [a, b] = &agents.coordinators;
    let group = won_by(0, &[0, 1]);
    let member = stable_group(a, &group, SESSION).await;
    assert_eq!(
        a.commit_offsets(&group, &member, None, 1, &[offset(42)])
            .await,
        None
    );

    agents.leave(0).await;
    agents.clusters[1].see(&[1]);
    // The member goes on with its generation: no rebalance.
    assert_eq!(b.heartbeat(&group, &member, None, 1).await, None);
    assert_eq!(agents.lease_owner(&group).await, Some((1, 2)));
    let taken = b.group(&group).unwrap();
    let taken = taken.lock().await;
    assert_eq!(
        (taken.state, taken.generation, taken.members.len()),
        (GroupState::Stable, 1, 1)
    );
    drop(taken);
    assert_eq!(
        b.commit_offsets(&group, &member, None, 1, &[offset(43)])
            .await,
        None
    );
    let committed = agents.catalog.committed_offsets(&group).await.unwrap();
    assert_eq!(committed[0].offset, 43);
}

#[tokio::test]
async fn a_former_owner_that_missed_the_takeover_is_refused_and_drops_the_group() {
    let agents = two_agents(Duration::ZERO).await;
    let [a, b] = &agents.coordinators;
    let group = won_by(0, &[0, 1]);
    let member = stable_group(a, &group, SESSION).await;
    agents.leave(0).await;
    agents.clusters[1].see(&[1]);
    assert_eq!(b.heartbeat(&group, &member, None, 1).await, None);

    // A still believes it owns the group (paused through the takeover): its
    // store is refused and it lets the group go.
    let left = a.leave(&group, &[(member.clone(), None)]).await;
    assert_eq!(left, Err(ResponseError::NotCoordinator));
    assert!(a.group(&group).is_none());
    let stored = agents.catalog.load_group(&group).await.unwrap().unwrap();
    assert_eq!(
        stored.members.len(),
        1,
        "the refused departure is not stored"
    );
    // A commit under the old lease is refused the same way.
    let again = commit_under_the_first_lease(&agents, &group).await;
    assert_eq!(again, Some(ResponseError::NotCoordinator));
    assert_eq!(b.heartbeat(&group, &member, None, 1).await, None);
}

/// A commit through the catalog under agent 0's first lease of the group.
async fn commit_under_the_first_lease(agents: &Agents, group: &str) -> Option<ResponseError> {
    agents
        .catalog
        .commit_offsets(group, GroupFence::Lease(1), &[offset(7)])
        .await
        .err()
        .map(|e| crate::errors::catalog(&e))
}

#[tokio::test]
async fn a_group_a_new_view_gives_to_another_agent_is_handed_off_and_continues_there() {
    let agents = two_agents(Duration::ZERO).await;
    let [a, b] = &agents.coordinators;
    let group = won_by(1, &[0, 1]);
    // Agent 1 has not been seen yet: A wins everything.
    agents.clusters[0].see(&[0]);
    agents.clusters[1].see(&[0]);
    let member = stable_group(a, &group, SESSION).await;
    assert_eq!(agents.lease_owner(&group).await, Some((0, 1)));

    agents.clusters[0].see(&[0, 1]);
    agents.clusters[1].see(&[0, 1]);
    a_few_ticks().await;
    assert!(a.group(&group).is_none(), "handed off");
    assert_eq!(agents.lease_owner(&group).await, Some((-1, 1)), "released");
    assert_eq!(
        a.heartbeat(&group, &member, None, 1).await,
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(coordinator_of(a, &group).await, 1);
    assert_eq!(b.heartbeat(&group, &member, None, 1).await, None);
    assert_eq!(agents.lease_owner(&group).await, Some((1, 2)));
}

#[tokio::test]
async fn a_rebalancing_group_is_handed_off_only_once_the_rebalance_completes() {
    let agents = two_agents(Duration::ZERO).await;
    let a = &agents.coordinators[0];
    let group = won_by(1, &[0, 1]);
    agents.clusters[0].see(&[0]);
    let joining = {
        let a = Arc::clone(a);
        let group = group.clone();
        // Completes the join at once (no delay), then waits in SyncGroup-less
        // CompletingRebalance until the leader syncs.
        tokio::spawn(async move { a.join(&group, join_request(SESSION), no_topics()).await })
    };
    let joined = joining.await.unwrap();
    assert_eq!(joined.error, None);
    agents.clusters[0].see(&[0, 1]);
    a_few_ticks().await;
    assert!(a.group(&group).is_some(), "kept while rebalancing");
    let synced = a
        .sync(
            &group,
            super::SyncRequest {
                member_id: joined.member_id.clone(),
                instance_id: None,
                generation: 1,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: vec![(joined.member_id.clone(), bytes::Bytes::from_static(b"p"))],
            },
        )
        .await;
    assert_eq!(synced.error, None);
    a_few_ticks().await;
    assert!(a.group(&group).is_none(), "handed off once stable");
    let stored = agents.catalog.load_group(&group).await.unwrap().unwrap();
    assert_eq!(stored.generation, 1);
}

#[tokio::test]
async fn parked_joins_are_answered_not_coordinator_at_shutdown() {
    let agents = two_agents(Duration::from_secs(60)).await;
    let a = &agents.coordinators[0];
    let group = won_by(0, &[0, 1]);
    let joining = {
        let a = Arc::clone(a);
        let group = group.clone();
        tokio::spawn(async move { a.join(&group, join_request(SESSION), no_topics()).await })
    };
    // Parked in the initial rebalance delay.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!joining.is_finished());
    a.shutdown().await;
    let joined = tokio::time::timeout(Duration::from_secs(1), joining)
        .await
        .expect("answered at shutdown")
        .unwrap();
    assert_eq!(joined.error, Some(ResponseError::NotCoordinator));
    assert_eq!(
        a.join(&group, join_request(SESSION), no_topics())
            .await
            .error,
        Some(ResponseError::NotCoordinator)
    );
}

#[tokio::test]
async fn a_self_fenced_agent_coordinates_nothing_until_its_lease_holds_again() {
    let agents = two_agents(Duration::ZERO).await;
    let a = &agents.coordinators[0];
    let group = won_by(0, &[0, 1]);
    let member = stable_group(a, &group, SESSION).await;

    agents.clusters[0].valid.store(false, Ordering::SeqCst);
    assert_eq!(
        a.heartbeat(&group, &member, None, 1).await,
        Some(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(
        a.listed_groups().await,
        Err(ResponseError::CoordinatorNotAvailable)
    );
    a_few_ticks().await;
    assert!(a.group(&group).is_none(), "dropped");

    agents.clusters[0].valid.store(true, Ordering::SeqCst);
    assert_eq!(a.heartbeat(&group, &member, None, 1).await, None);
    assert_eq!(agents.lease_owner(&group).await, Some((0, 2)));
}

#[tokio::test]
async fn list_groups_names_held_groups_and_stored_ones_no_live_agent_holds_that_it_would_win() {
    let agents = two_agents(Duration::ZERO).await;
    let [a, b] = &agents.coordinators;
    let first = won_by(0, &[0, 1]);
    let second = won_by(1, &[0, 1]);
    stable_group(a, &first, SESSION).await;
    stable_group(b, &second, SESSION).await;
    let ids = |listed: Vec<super::ListedGroup>| -> Vec<String> {
        listed.into_iter().map(|g| g.group_id).collect()
    };
    assert_eq!(ids(a.listed_groups().await.unwrap()), vec![first.clone()]);
    assert_eq!(ids(b.listed_groups().await.unwrap()), vec![second.clone()]);

    agents.leave(1).await;
    // Still the winner in A's view: B's group is listed by nobody until then.
    assert_eq!(ids(a.listed_groups().await.unwrap()), vec![first.clone()]);
    agents.clusters[0].see(&[0]);
    let mut expected = vec![first, second.clone()];
    expected.sort();
    assert_eq!(ids(a.listed_groups().await.unwrap()), expected);
    assert_eq!(
        agents.lease_owner(&second).await,
        Some((-1, 1)),
        "listed, not taken"
    );
}
