//! The coordinator's timers read the injected clock: sessions lapse when the
//! clock says so, not when the wall clock does.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use streamhouse_clock::ManualClock;
use streamhouse_metadata::groups::{
    Acquisition, CommittedOffset, GroupFence, GroupLease, OffsetCommit, StoredGroup,
};
use streamhouse_metadata::{GroupCatalog, SqlCatalog};
use tokio::sync::Semaphore;

use super::{
    Coordinator, CoordinatorNode, GroupRules, GroupState, JoinRequest, Solo, SyncRequest, TICK,
};

pub(super) const SESSION: Duration = Duration::from_secs(10);

pub(super) fn join_request(session: Duration) -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: session.as_millis() as i32,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

/// The topics a JoinGroup into a classic group never asks for.
pub(super) async fn no_topics() -> Result<super::Topics, ResponseError> {
    Ok(super::Topics::new())
}

pub(super) async fn members_of(coordinator: &Coordinator, group_id: &str) -> (usize, GroupState) {
    let group = coordinator.group(group_id).expect("the group exists");
    let group = group.lock().await;
    (group.members.len(), group.state)
}

/// Lets the timer task run a few ticks of real time.
pub(super) async fn a_few_ticks() {
    tokio::time::sleep(TICK * 5).await;
}

fn node() -> CoordinatorNode {
    CoordinatorNode { node_id: 0 }
}

/// A coordinator outside any cluster, without an initial rebalance delay.
fn solo(catalog: Arc<dyn GroupCatalog>, clock: streamhouse_clock::SharedClock) -> Arc<Coordinator> {
    Coordinator::start(
        catalog,
        Arc::new(Solo(node())),
        node(),
        GroupRules {
            initial_delay: Duration::ZERO,
            ..GroupRules::default()
        },
        clock,
    )
}

/// Joins one member with `session` and hands it its assignment: the group is
/// stable. Returns the member id.
pub(super) async fn stable_group(
    coordinator: &Coordinator,
    group_id: &str,
    session: Duration,
) -> String {
    let joined = coordinator
        .join(group_id, join_request(session), no_topics())
        .await;
    assert_eq!((joined.error, joined.generation), (None, 1));
    let synced = coordinator
        .sync(
            group_id,
            SyncRequest {
                member_id: joined.member_id.clone(),
                instance_id: None,
                generation: 1,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: vec![(joined.member_id.clone(), Bytes::from_static(b"p0"))],
            },
        )
        .await;
    assert_eq!(synced.error, None);
    assert_eq!(
        members_of(coordinator, group_id).await,
        (1, GroupState::Stable)
    );
    joined.member_id
}

#[tokio::test]
async fn a_session_lapses_when_the_clock_passes_its_deadline_and_not_before() {
    let catalog = streamhouse_metadata::open("sqlite::memory:").await.unwrap();
    let clock = ManualClock::new();
    let coordinator = solo(catalog, clock.clone());
    let member_id = stable_group(&coordinator, "g", SESSION).await;

    // Real time passes but the clock does not: the member stays.
    clock.advance(SESSION - Duration::from_millis(1));
    a_few_ticks().await;
    assert_eq!(members_of(&coordinator, "g").await, (1, GroupState::Stable));

    // One more millisecond on the clock and the next tick expires the session.
    clock.advance(Duration::from_millis(1));
    a_few_ticks().await;
    assert_eq!(members_of(&coordinator, "g").await, (0, GroupState::Empty));
    assert_eq!(
        coordinator.heartbeat("g", &member_id, None, 1).await,
        Some(ResponseError::UnknownMemberId)
    );
}

/// The groups' catalog, except that once `block` is called, storing the group
/// `stuck` waits until `release`: a catalog stalled for one group's save.
struct StallingSaves {
    inner: SqlCatalog,
    stuck: &'static str,
    blocked: std::sync::atomic::AtomicBool,
    gate: Semaphore,
}

impl StallingSaves {
    fn block(&self) {
        self.blocked
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn release(&self) {
        self.blocked
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait]
impl GroupCatalog for StallingSaves {
    async fn commit_offsets(
        &self,
        group_id: &str,
        fence: GroupFence,
        commits: &[OffsetCommit],
    ) -> streamhouse_metadata::Result<()> {
        self.inner.commit_offsets(group_id, fence, commits).await
    }

    async fn committed_offsets(
        &self,
        group_id: &str,
    ) -> streamhouse_metadata::Result<Vec<CommittedOffset>> {
        self.inner.committed_offsets(group_id).await
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        fence: GroupFence,
        partitions: &[(String, i32)],
    ) -> streamhouse_metadata::Result<()> {
        self.inner.delete_offsets(group_id, fence, partitions).await
    }

    async fn store_group(
        &self,
        group: &StoredGroup,
        fence: GroupFence,
    ) -> streamhouse_metadata::Result<()> {
        if group.group_id == self.stuck && self.blocked.load(std::sync::atomic::Ordering::SeqCst) {
            let _pass = self.gate.acquire().await;
        }
        self.inner.store_group(group, fence).await
    }

    async fn load_group(
        &self,
        group_id: &str,
    ) -> streamhouse_metadata::Result<Option<StoredGroup>> {
        self.inner.load_group(group_id).await
    }

    async fn load_groups(&self) -> streamhouse_metadata::Result<Vec<StoredGroup>> {
        self.inner.load_groups().await
    }

    async fn delete_group(
        &self,
        group_id: &str,
        fence: GroupFence,
    ) -> streamhouse_metadata::Result<()> {
        self.inner.delete_group(group_id, fence).await
    }

    async fn group_leases(
        &self,
        group_ids: &[String],
    ) -> streamhouse_metadata::Result<Vec<GroupLease>> {
        self.inner.group_leases(group_ids).await
    }

    async fn acquire_group(
        &self,
        group_id: &str,
        node_id: i32,
        incarnation: &str,
    ) -> streamhouse_metadata::Result<Acquisition> {
        self.inner
            .acquire_group(group_id, node_id, incarnation)
            .await
    }

    async fn release_group(
        &self,
        group_id: &str,
        epoch: i64,
    ) -> streamhouse_metadata::Result<bool> {
        self.inner.release_group(group_id, epoch).await
    }

    async fn group_configs(
        &self,
        group_id: &str,
    ) -> streamhouse_metadata::Result<std::collections::BTreeMap<String, String>> {
        self.inner.group_configs(group_id).await
    }

    async fn update_group_configs(
        &self,
        group_id: &str,
        update: streamhouse_metadata::ConfigUpdate<'_>,
    ) -> streamhouse_metadata::Result<std::collections::BTreeMap<String, String>> {
        self.inner.update_group_configs(group_id, update).await
    }

    async fn groups_with_configs(&self) -> streamhouse_metadata::Result<Vec<String>> {
        self.inner.groups_with_configs().await
    }
}

/// A save stalled in the catalog holds up its own group only: the timer goes on
/// expiring the sessions of the others, and the stalled save lands once the
/// catalog answers.
#[tokio::test]
async fn a_stalled_save_of_one_group_does_not_stop_the_timers_of_the_others() {
    let catalog = Arc::new(StallingSaves {
        inner: SqlCatalog::connect("sqlite::memory:").await.unwrap(),
        stuck: "stuck",
        blocked: Default::default(),
        gate: Semaphore::new(0),
    });
    let clock = ManualClock::new();
    let coordinator = solo(Arc::clone(&catalog) as Arc<dyn GroupCatalog>, clock.clone());
    // Kafka's group.min.session.timeout.ms.
    let short = Duration::from_secs(6);
    stable_group(&coordinator, "stuck", short).await;
    stable_group(&coordinator, "live", SESSION).await;

    // The member of `stuck` expires first, and saving its group stalls.
    catalog.block();
    clock.advance(short);
    a_few_ticks().await;

    clock.advance(SESSION - short);
    a_few_ticks().await;
    assert_eq!(
        members_of(&coordinator, "live").await,
        (0, GroupState::Empty)
    );

    catalog.release();
    a_few_ticks().await;
    assert_eq!(
        members_of(&coordinator, "stuck").await,
        (0, GroupState::Empty)
    );
    let stored = catalog.load_groups().await.unwrap();
    let members: Vec<(&str, usize)> = stored
        .iter()
        .map(|group| (group.group_id.as_str(), group.members.len()))
        .collect();
    assert_eq!(members, vec![("live", 0), ("stuck", 0)]);
}
