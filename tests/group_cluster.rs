//! Consumer groups on a cluster of agents, over the wire: every agent names the
//! same coordinator, only that agent serves the group, and when it stops or
//! dies the group goes on, at its generation, on another agent.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::groups::*;
use common::{on_both_backends, s, Backend, TestBroker, TestClient};
use kafka_protocol::messages::*;
use streamhouse::Settings;

on_both_backends!(
    every_agent_names_one_coordinator_and_only_it_serves_the_group,
    a_group_goes_on_at_its_generation_when_its_coordinator_stops,
    a_group_goes_on_at_its_generation_when_its_coordinator_is_killed,
);

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const LEASE_MS: u64 = 1000;

fn short_lease(settings: &mut Settings) {
    settings.agent_lease_ms = LEASE_MS;
    settings.group_initial_rebalance_delay_ms = 0;
}

/// FindCoordinator v4 for several groups: the node id named for each.
async fn coordinators(client: &mut TestClient, groups: &[String]) -> Vec<i32> {
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(groups.iter().map(|g| s(g)).collect());
    let ResponseKind::FindCoordinator(r) = client.call(ApiKey::FindCoordinator, 4, &request).await
    else {
        panic!("not a FindCoordinator response")
    };
    r.coordinators
        .iter()
        .map(|c| {
            assert_eq!(c.error_code, NONE);
            c.node_id.0
        })
        .collect()
}

/// FindCoordinator v3, one group: (node id, port).
async fn coordinator_v3(client: &mut TestClient, group: &str) -> (i32, i32) {
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_key(s(group));
    let ResponseKind::FindCoordinator(r) = client.call(ApiKey::FindCoordinator, 3, &request).await
    else {
        panic!("not a FindCoordinator response")
    };
    assert_eq!(r.error_code, NONE);
    (r.node_id.0, r.port)
}

async fn broker_count(client: &mut TestClient) -> usize {
    let ResponseKind::Metadata(r) = client
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await
    else {
        panic!("not a Metadata response")
    };
    r.brokers.len()
}

/// Two agents that see each other.
async fn two_agents(backend: Backend) -> [TestBroker; 2] {
    let a = TestBroker::start_with(backend, short_lease).await;
    let b = a.another_agent(short_lease).await;
    for agent in [&a, &b] {
        let mut client = agent.client().await;
        let started = Instant::now();
        while broker_count(&mut client).await != 2 {
            retry(started, Duration::from_secs(2), "both agents are seen").await;
        }
    }
    [a, b]
}

/// Waits a little before the next try, failing once `limit` has passed.
async fn retry(started: Instant, limit: Duration, what: &str) {
    assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A stable one-member group on `client`'s agent: (member id, generation).
async fn stable_group(client: &mut TestClient, group: &str) -> (String, i32) {
    let joined = join_new(client, Join::consumer(group, "", &["t"])).await;
    assert_eq!(joined.error_code, NONE);
    let member = joined.member_id.to_string();
    let synced = sync(
        client,
        group,
        joined.generation_id,
        &member,
        &[(&member, b"p0")],
    )
    .await;
    assert_eq!(synced.error_code, NONE);
    (member, joined.generation_id)
}

async fn every_agent_names_one_coordinator_and_only_it_serves_the_group(backend: Backend) {
    let agents = two_agents(backend).await;
    let groups: Vec<String> = (0..16).map(|i| format!("orders-{i}")).collect();
    let mut clients = [agents[0].client().await, agents[1].client().await];
    let named = coordinators(&mut clients[0], &groups).await;
    assert_eq!(named, coordinators(&mut clients[1], &groups).await);
    assert_eq!(
        named.iter().copied().collect::<BTreeSet<i32>>(),
        BTreeSet::from([0, 1]),
        "groups are spread over both agents: {named:?}"
    );
    let group = &groups[0];
    let owner = usize::try_from(named[0]).unwrap();
    let other = 1 - owner;
    assert_eq!(
        coordinator_v3(&mut clients[other], group).await,
        (named[0], i32::from(agents[owner].addr.port()))
    );

    let refused = join(&mut clients[other], &Join::consumer(group, "", &["t"])).await;
    assert_eq!(refused.error_code, NOT_COORDINATOR);
    let (member, generation) = stable_group(&mut clients[owner], group).await;
    assert_eq!(
        heartbeat(&mut clients[other], group, generation, &member).await,
        NOT_COORDINATOR
    );
    assert_eq!(
        describe(&mut clients[other], group).await.error_code,
        NOT_COORDINATOR
    );
    // OffsetFetch v1 has no top-level error: each partition asked for says it.
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![0, 1]),
        ]));
    let ResponseKind::OffsetFetch(fetched) =
        clients[other].call(ApiKey::OffsetFetch, 1, &request).await
    else {
        panic!("not an OffsetFetch response")
    };
    let errors: Vec<(i32, i16)> = fetched.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(errors, vec![(0, NOT_COORDINATOR), (1, NOT_COORDINATOR)]);
    assert_eq!(
        heartbeat(&mut clients[owner], group, generation, &member).await,
        NONE
    );
}

/// The group's coordinator stops (gracefully, or as if killed); the member
/// carries on with the other agent at its generation, without rejoining.
async fn goes_on_elsewhere(backend: Backend, graceful: bool, limit: Duration) {
    let mut agents = two_agents(backend).await;
    let group = "payments";
    let mut client = agents[0].client().await;
    let owner = usize::try_from(coordinators(&mut client, &[group.into()]).await[0]).unwrap();
    let other = 1 - owner;
    let mut on_owner = agents[owner].client().await;
    let (member, generation) = stable_group(&mut on_owner, group).await;

    if graceful {
        agents[owner].stop().await;
    } else {
        agents[owner].kill();
    }
    let mut on_other = agents[other].client().await;
    let started = Instant::now();
    while coordinators(&mut on_other, &[group.into()]).await != vec![other as i32] {
        retry(started, limit, "the other agent names itself").await;
    }
    loop {
        let error = heartbeat(&mut on_other, group, generation, &member).await;
        if error == NONE {
            break;
        }
        assert!(
            [NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE].contains(&error),
            "retriable until taken over: {error}"
        );
        retry(started, limit, "the other agent serves the group").await;
    }
    let described = describe(&mut on_other, group).await;
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].member_id.as_str(), member);
}

async fn a_group_goes_on_at_its_generation_when_its_coordinator_stops(backend: Backend) {
    // Leaving is seen at the next poll, well before a lease would lapse.
    goes_on_elsewhere(backend, true, Duration::from_millis(LEASE_MS / 2 + 500)).await;
}

async fn a_group_goes_on_at_its_generation_when_its_coordinator_is_killed(backend: Backend) {
    // Lapsed after a lease, reaped within a quarter more, seen in a poll.
    goes_on_elsewhere(backend, false, Duration::from_millis(3 * LEASE_MS)).await;
}
