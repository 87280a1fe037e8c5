//! Consumer groups of the new protocol (KIP-848) over the wire, on both
//! backend pairs: ConsumerGroupHeartbeat and ConsumerGroupDescribe at every
//! advertised version, partitions handed over incrementally between members,
//! commits and offset fetches checked against member epochs, the group's kind
//! seen by the classic APIs, and the group resumed from the catalog after a
//! restart.

mod common;

use common::groups::{commit, consumer_heartbeat_v};
use common::TestClient;
use common::{create_topic, on_both_backends, s, unique_topic, versions, Backend, TestBroker};
use kafka_protocol::messages::*;
use uuid::Uuid;

on_both_backends!(
    members_hand_partitions_over_incrementally_and_commit_at_their_epoch,
    the_group_is_resumed_from_the_catalog_after_a_restart,
);

const UNKNOWN_MEMBER_ID: i16 = 25;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const GROUP_ID_NOT_FOUND: i16 = 69;
const STALE_MEMBER_EPOCH: i16 = 113;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const INVALID_REQUEST: i16 = 42;

/// What a member owns, as heartbeats carry it.
type Owned = Vec<(Uuid, Vec<i32>)>;

fn owned_of(response: &ConsumerGroupHeartbeatResponse) -> Option<Owned> {
    response.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|t| (t.topic_id, t.partitions.clone()))
            .collect()
    })
}

fn count(owned: &Owned) -> usize {
    owned.iter().map(|(_, ps)| ps.len()).sum()
}

async fn heartbeat(
    client: &mut TestClient,
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
    owned: Option<&Owned>,
) -> ConsumerGroupHeartbeatResponse {
    consumer_heartbeat_v(
        client,
        1,
        group,
        member,
        epoch,
        topics,
        owned.map(Vec::as_slice),
    )
    .await
}

async fn join(
    client: &mut TestClient,
    group: &str,
    member: &str,
    topic: &str,
) -> ConsumerGroupHeartbeatResponse {
    let r = heartbeat(client, group, member, 0, Some(&[topic]), Some(&vec![])).await;
    assert_eq!(r.error_code, 0, "{member} joins: {:?}", r.error_message);
    r
}

async fn describe_v(
    client: &mut TestClient,
    version: i16,
    group: &str,
) -> consumer_group_describe_response::DescribedGroup {
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![s(group).into()])
        .with_include_authorized_operations(true);
    let ResponseKind::ConsumerGroupDescribe(mut r) = client
        .call(ApiKey::ConsumerGroupDescribe, version, &request)
        .await
    else {
        panic!("not a ConsumerGroupDescribe response")
    };
    r.groups.remove(0)
}

#[tokio::test]
async fn every_advertised_version_round_trips_and_bad_requests_are_refused() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("cgv");
    create_topic(&mut client, &topic, 2).await;
    for version in versions(ApiKey::ConsumerGroupHeartbeat) {
        let group = format!("{topic}-g{version}");
        // v0: the coordinator makes the member id; v1: the client does.
        let member = if version == 0 {
            String::new()
        } else {
            Uuid::new_v4().to_string()
        };
        let r = consumer_heartbeat_v(
            &mut client,
            version,
            &group,
            &member,
            0,
            Some(&[&topic]),
            Some(&[]),
        )
        .await;
        assert_eq!(r.error_code, 0, "v{version}: {:?}", r.error_message);
        let id = r.member_id.clone().unwrap().to_string();
        assert!(!id.is_empty());
        if version >= 1 {
            assert_eq!(id, member);
        }
        assert_eq!(count(&owned_of(&r).unwrap()), 2, "v{version}");
        assert_eq!(r.heartbeat_interval_ms, 5000);
        for describe in versions(ApiKey::ConsumerGroupDescribe) {
            let described = describe_v(&mut client, describe, &group).await;
            assert_eq!(described.error_code, 0);
            assert_eq!(described.group_state.as_str(), "Stable");
            assert_eq!(described.assignor_name.as_str(), "uniform");
            assert_eq!(described.members.len(), 1);
            let m = &described.members[0];
            assert_eq!(m.member_id.as_str(), id);
            assert_eq!(m.assignment.topic_partitions[0].topic_name.as_str(), topic);
            assert_eq!(m.member_type, if describe >= 1 { 1 } else { -1 });
        }
        let left = consumer_heartbeat_v(&mut client, version, &group, &id, -1, None, None).await;
        assert_eq!((left.error_code, left.member_epoch), (0, -1));
        let described = describe_v(&mut client, 0, &group).await;
        assert_eq!(described.group_state.as_str(), "Empty");
    }

    let group = format!("{topic}-bad");
    let no_id = heartbeat(&mut client, &group, "", 0, Some(&[&topic]), Some(&vec![])).await;
    assert_eq!(no_id.error_code, INVALID_REQUEST);
    assert!(no_id.error_message.is_some());
    let no_subscription = heartbeat(&mut client, &group, "m", 0, None, Some(&vec![])).await;
    assert_eq!(no_subscription.error_code, INVALID_REQUEST);
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(s(&group).into())
        .with_member_id(s("m"))
        .with_rebalance_timeout_ms(1000)
        .with_subscribed_topic_names(Some(vec![s(&topic).into()]))
        .with_server_assignor(Some(s("sticky")))
        .with_topic_partitions(Some(vec![]));
    let ResponseKind::ConsumerGroupHeartbeat(r) = client
        .call(ApiKey::ConsumerGroupHeartbeat, 1, &request)
        .await
    else {
        panic!()
    };
    assert_eq!(r.error_code, UNSUPPORTED_ASSIGNOR);
    let unknown = heartbeat(&mut client, &group, "m", 3, None, None).await;
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID);
    // Nothing above created the group.
    assert_eq!(
        describe_v(&mut client, 0, &group).await.error_code,
        GROUP_ID_NOT_FOUND
    );
}

async fn members_hand_partitions_over_incrementally_and_commit_at_their_epoch(backend: Backend) {
    let broker =
        TestBroker::start_with(backend, |cli| cli.group_initial_rebalance_delay_ms = 0).await;
    let mut client = broker.client().await;
    let topic = unique_topic("cg");
    create_topic(&mut client, &topic, 4).await;
    let group = format!("{topic}-group");

    let a = join(&mut client, &group, "a", &topic).await;
    let a_all = owned_of(&a).unwrap();
    assert_eq!(count(&a_all), 4);
    let b = join(&mut client, &group, "b", &topic).await;
    assert_eq!(count(&owned_of(&b).unwrap()), 0, "a still owns everything");

    // a is told to give two up; until it confirms, b gets nothing.
    let a2 = heartbeat(&mut client, &group, "a", a.member_epoch, None, Some(&a_all)).await;
    assert_eq!(
        a2.member_epoch, a.member_epoch,
        "not past its revocation yet"
    );
    let a_kept = owned_of(&a2).unwrap();
    assert_eq!(count(&a_kept), 2);
    let b2 = heartbeat(&mut client, &group, "b", b.member_epoch, None, None).await;
    assert!(owned_of(&b2).is_none_or(|o| count(&o) == 0));
    // A classic member of another protocol type cannot join it (one of the
    // consumer protocol joins as a classic member: tests/group_migration.rs).
    let classic = common::groups::join(
        &mut client,
        &common::groups::Join {
            protocol_type: "connect",
            ..common::groups::Join::consumer(&group, "", &[&topic])
        },
    )
    .await;
    assert_eq!(classic.error_code, INCONSISTENT_GROUP_PROTOCOL);

    let a3 = heartbeat(
        &mut client,
        &group,
        "a",
        a.member_epoch,
        None,
        Some(&a_kept),
    )
    .await;
    assert_eq!(a3.member_epoch, b.member_epoch, "a moved to the new epoch");
    let b3 = heartbeat(
        &mut client,
        &group,
        "b",
        b.member_epoch,
        None,
        Some(&vec![]),
    )
    .await;
    let b_owned = owned_of(&b3).unwrap();
    assert_eq!(count(&b_owned), 2);
    let mut all: Vec<i32> = a_kept
        .iter()
        .chain(&b_owned)
        .flat_map(|(_, ps)| ps.clone())
        .collect();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);
    assert_eq!(
        describe_v(&mut client, 1, &group)
            .await
            .group_state
            .as_str(),
        "Stable"
    );

    // Commits at the member's epoch; a stale epoch or a stranger is refused.
    let p = b_owned[0].1[0];
    let ok = commit(
        &mut client,
        &group,
        b3.member_epoch,
        "b",
        &[(&topic, p, 7, "")],
    )
    .await;
    assert_eq!(ok[0].2, 0);
    let stale = commit(
        &mut client,
        &group,
        b3.member_epoch - 1,
        "b",
        &[(&topic, p, 8, "")],
    )
    .await;
    assert_eq!(stale[0].2, STALE_MEMBER_EPOCH);
    let stranger = commit(&mut client, &group, -1, "", &[(&topic, p, 8, "")]).await;
    assert_eq!(stranger[0].2, UNKNOWN_MEMBER_ID);
    let committed = common::groups::fetch(&mut client, &group, None).await;
    assert_eq!(committed, vec![(topic.clone(), p, 7, String::new())]);
    // OffsetFetch v9 naming the member: only at its current epoch.
    assert_eq!(
        fetch_as(&mut client, &group, Some("b"), b3.member_epoch).await,
        (0, vec![7])
    );
    assert_eq!(
        fetch_as(&mut client, &group, Some("b"), b3.member_epoch - 1).await,
        (STALE_MEMBER_EPOCH, vec![])
    );
    assert_eq!(
        fetch_as(&mut client, &group, Some("stranger"), 1).await,
        (UNKNOWN_MEMBER_ID, vec![])
    );
    assert_eq!(fetch_as(&mut client, &group, None, -1).await, (0, vec![7]));

    // The classic APIs see a consumer-protocol group.
    let listed = list_groups(&mut client, "consumer").await;
    assert!(
        listed.contains(&(group.clone(), "Stable".to_owned())),
        "{listed:?}"
    );
    assert!(!list_groups(&mut client, "classic")
        .await
        .iter()
        .any(|(g, _)| *g == group));
    let described = common::groups::describe(&mut client, &group).await;
    assert_eq!(described.error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        delete_group(&mut client, &group).await,
        68,
        "NON_EMPTY_GROUP"
    );

    // Both leave: the group is empty, deletable, and a classic group may take its id.
    for (member, epoch) in [("a", a3.member_epoch), ("b", b3.member_epoch)] {
        let _ = epoch;
        let left = heartbeat(&mut client, &group, member, -1, None, None).await;
        assert_eq!(left.error_code, 0);
    }
    assert_eq!(
        describe_v(&mut client, 0, &group)
            .await
            .group_state
            .as_str(),
        "Empty"
    );
    assert_eq!(delete_group(&mut client, &group).await, 0);
}

/// OffsetFetch v9 of the group's every offset, as `member` at `epoch`: the
/// group's error and the offsets.
async fn fetch_as(
    client: &mut TestClient,
    group: &str,
    member: Option<&str>,
    epoch: i32,
) -> (i16, Vec<i64>) {
    let request = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(s(group).into())
            .with_member_id(member.map(s))
            .with_member_epoch(epoch)
            .with_topics(None),
    ]);
    let ResponseKind::OffsetFetch(r) = client.call(ApiKey::OffsetFetch, 9, &request).await else {
        panic!("not an OffsetFetch response")
    };
    let offsets = r.groups[0]
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.committed_offset)
        .collect();
    (r.groups[0].error_code, offsets)
}

async fn the_group_is_resumed_from_the_catalog_after_a_restart(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("cgr");
    create_topic(&mut client, &topic, 3).await;
    let group = format!("{topic}-group");
    let a = join(&mut client, &group, "a", &topic).await;
    let owned = owned_of(&a).unwrap();
    drop(client);

    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let again = heartbeat(&mut client, &group, "a", a.member_epoch, None, Some(&owned)).await;
    assert_eq!(again.error_code, 0, "{:?}", again.error_message);
    assert_eq!(again.member_epoch, a.member_epoch);
    assert_eq!(owned_of(&again), Some(owned));
    let stale = heartbeat(&mut client, &group, "a", a.member_epoch + 5, None, None).await;
    assert_eq!(stale.error_code, FENCED_MEMBER_EPOCH);
}

async fn list_groups(client: &mut TestClient, kind: &str) -> Vec<(String, String)> {
    let request = ListGroupsRequest::default().with_types_filter(vec![s(kind)]);
    let ResponseKind::ListGroups(r) = client.call(ApiKey::ListGroups, 5, &request).await else {
        panic!("not a ListGroups response")
    };
    r.groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect()
}

async fn delete_group(client: &mut TestClient, group: &str) -> i16 {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![s(group).into()]);
    let ResponseKind::DeleteGroups(r) = client.call(ApiKey::DeleteGroups, 2, &request).await else {
        panic!("not a DeleteGroups response")
    };
    r.results[0].error_code
}
