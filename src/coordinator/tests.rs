//! The coordinator's timers read the injected clock: sessions lapse when the
//! clock says so, not when the wall clock does.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use streamhouse_clock::ManualClock;

use super::{Coordinator, CoordinatorNode, GroupState, JoinRequest, SyncRequest, TICK};

const SESSION: Duration = Duration::from_secs(10);

fn join_request() -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION.as_millis() as i32,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

async fn members_of(coordinator: &Coordinator, group_id: &str) -> (usize, GroupState) {
    let group = coordinator.group(group_id).expect("the group exists");
    let group = group.lock().await;
    (group.members.len(), group.state)
}

/// Lets the timer task run a few ticks of real time.
async fn a_few_ticks() {
    tokio::time::sleep(TICK * 5).await;
}

#[tokio::test]
async fn a_session_lapses_when_the_clock_passes_its_deadline_and_not_before() {
    let catalog = streamhouse_metadata::open("sqlite::memory:").await.unwrap();
    let clock = ManualClock::new();
    let node = CoordinatorNode {
        node_id: 0,
        host: "127.0.0.1".into(),
        port: 9092,
    };
    let coordinator = Coordinator::start(catalog, node, Duration::ZERO, clock.clone())
        .await
        .unwrap();

    let joined = coordinator.join("g", join_request()).await;
    assert_eq!((joined.error, joined.generation), (None, 1));
    let synced = coordinator
        .sync(
            "g",
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
    assert_eq!(members_of(&coordinator, "g").await, (1, GroupState::Stable));

    // Real time passes but the clock does not: the member stays.
    clock.advance(SESSION - Duration::from_millis(1));
    a_few_ticks().await;
    assert_eq!(members_of(&coordinator, "g").await, (1, GroupState::Stable));

    // One more millisecond on the clock and the next tick expires the session.
    clock.advance(Duration::from_millis(1));
    a_few_ticks().await;
    assert_eq!(members_of(&coordinator, "g").await, (0, GroupState::Empty));
    assert_eq!(
        coordinator.heartbeat("g", &joined.member_id, None, 1).await,
        Some(ResponseError::UnknownMemberId)
    );
}
