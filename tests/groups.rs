//! Consumer groups over the wire: joining, the leader's assignment, rebalances on
//! leave and on session expiry, static membership, the initial rebalance delay,
//! and the errors Kafka gives. Offsets and administration are in
//! `group_offsets.rs`.

mod common;

use std::time::{Duration, Instant};

use common::groups::*;
use common::{s, unique_topic, Backend, TestBroker, TestClient};

async fn broker(delay_ms: u64) -> TestBroker {
    TestBroker::start_with(Backend::Embedded, |cli| {
        cli.group_initial_rebalance_delay_ms = delay_ms
    })
    .await
}

/// Two members join; returns (generation, leader id, follower id) after both
/// synced with the leader's assignment.
async fn two_member_group(
    a: &mut TestClient,
    b: &mut TestClient,
    group: &str,
) -> (i32, String, String) {
    let first = join_new(a, Join::consumer(group, "", &["t"])).await;
    assert_eq!(first.error_code, NONE);
    assert_eq!(first.generation_id, 1);
    let a_id = first.member_id.to_string();
    assert_eq!(first.leader.to_string(), a_id, "the only member leads");
    let sync_a = sync(a, group, 1, &a_id, &[(&a_id, b"all")]).await;
    assert_eq!(
        (sync_a.error_code, &sync_a.assignment[..]),
        (NONE, &b"all"[..])
    );
    // A second member joins: the leader learns of it by heartbeat and rejoins.
    let b_join = Join::consumer(group, "", &["t"]);
    let b_first = join(b, &b_join).await;
    assert_eq!(b_first.error_code, MEMBER_ID_REQUIRED);
    let b_id = b_first.member_id.to_string();
    let b_request = Join::consumer(group, &b_id, &["t"]);
    let (b_joined, a_joined) = tokio::join!(join(b, &b_request), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(heartbeat(a, group, 1, &a_id).await, REBALANCE_IN_PROGRESS);
        join(a, &Join::consumer(group, &a_id, &["t"])).await
    });
    assert_eq!((a_joined.error_code, b_joined.error_code), (NONE, NONE));
    assert_eq!((a_joined.generation_id, b_joined.generation_id), (2, 2));
    assert_eq!(a_joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(a_joined.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(a_joined.leader.to_string(), a_id);
    let mut members: Vec<String> = a_joined
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    members.sort();
    let mut expected = vec![a_id.clone(), b_id.clone()];
    expected.sort();
    assert_eq!(members, expected, "the leader sees every member");
    assert!(b_joined.members.is_empty(), "followers see no members");
    assert_eq!(a_joined.members[0].metadata, subscription(&["t"]));
    let (sync_b, sync_a) = tokio::join!(sync(b, group, 2, &b_id, &[]), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sync(a, group, 2, &a_id, &[(&a_id, b"p0"), (&b_id, b"p1")]).await
    });
    assert_eq!(
        (sync_a.error_code, &sync_a.assignment[..]),
        (NONE, &b"p0"[..])
    );
    assert_eq!(
        (sync_b.error_code, &sync_b.assignment[..]),
        (NONE, &b"p1"[..])
    );
    assert_eq!(sync_b.protocol_name.as_deref(), Some("range"));
    (2, a_id, b_id)
}

#[tokio::test]
async fn members_join_and_receive_the_leaders_assignment() {
    let broker = broker(0).await;
    let (mut a, mut b) = (broker.client().await, broker.client().await);
    let group = unique_topic("g");
    let (generation, a_id, b_id) = two_member_group(&mut a, &mut b, &group).await;
    assert_eq!(heartbeat(&mut a, &group, generation, &a_id).await, NONE);
    assert_eq!(heartbeat(&mut b, &group, generation, &b_id).await, NONE);
    let described = describe(&mut a, &group).await;
    assert_eq!(described.group_state.to_string(), "Stable");
    assert_eq!(described.protocol_data.to_string(), "range");
    let assignments: Vec<(String, Vec<u8>)> = described
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_assignment.to_vec()))
        .collect();
    assert!(assignments.contains(&(a_id, b"p0".to_vec())));
    assert!(assignments.contains(&(b_id, b"p1".to_vec())));
}

#[tokio::test]
async fn a_leaving_member_makes_the_rest_rebalance() {
    let broker = broker(0).await;
    let (mut a, mut b) = (broker.client().await, broker.client().await);
    let group = unique_topic("g");
    let (generation, a_id, b_id) = two_member_group(&mut a, &mut b, &group).await;
    assert_eq!(leave(&mut b, &group, &b_id).await, NONE);
    assert_eq!(leave(&mut b, &group, &b_id).await, UNKNOWN_MEMBER_ID);
    assert_eq!(
        heartbeat(&mut a, &group, generation, &a_id).await,
        REBALANCE_IN_PROGRESS
    );
    let rejoined = join(&mut a, &Join::consumer(&group, &a_id, &["t"])).await;
    assert_eq!((rejoined.error_code, rejoined.generation_id), (NONE, 3));
    assert_eq!(rejoined.members.len(), 1);
    // The old generation is over.
    assert_eq!(
        heartbeat(&mut a, &group, generation, &a_id).await,
        ILLEGAL_GENERATION
    );
    let synced = sync(&mut a, &group, 3, &a_id, &[(&a_id, b"both")]).await;
    assert_eq!(&synced.assignment[..], b"both");
    assert_eq!(leave(&mut a, &group, &a_id).await, NONE);
    let described = describe(&mut a, &group).await;
    assert_eq!(described.group_state.to_string(), "Empty");
    assert!(described.members.is_empty());
}

#[tokio::test]
async fn a_silent_member_expires_after_its_session_timeout() {
    let broker = broker(0).await;
    let (mut a, mut b) = (broker.client().await, broker.client().await);
    let group = unique_topic("g");
    let (generation, a_id, b_id) = two_member_group(&mut a, &mut b, &group).await;
    // b stops heartbeating; a keeps going past b's 10 s session.
    let started = Instant::now();
    let mut rebalancing = false;
    while started.elapsed() < Duration::from_secs(12) {
        match heartbeat(&mut a, &group, generation, &a_id).await {
            NONE => tokio::time::sleep(Duration::from_millis(500)).await,
            REBALANCE_IN_PROGRESS => {
                rebalancing = true;
                break;
            }
            other => panic!("heartbeat error {other}"),
        }
    }
    assert!(rebalancing, "b expired and the group rebalanced");
    assert!(
        started.elapsed() >= Duration::from_millis(9_000),
        "{:?}",
        started.elapsed()
    );
    let rejoined = join(&mut a, &Join::consumer(&group, &a_id, &["t"])).await;
    assert_eq!((rejoined.generation_id, rejoined.members.len()), (3, 1));
    assert_eq!(heartbeat(&mut b, &group, 3, &b_id).await, UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn a_static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
    let broker = broker(0).await;
    let (mut a, mut b) = (broker.client().await, broker.client().await);
    let group = unique_topic("g");
    let mut request = Join::consumer(&group, "", &["t"]);
    request.instance_id = Some("instance-1");
    // Static members get their id at once: no MEMBER_ID_REQUIRED.
    let first = join(&mut a, &request).await;
    assert_eq!((first.error_code, first.generation_id), (NONE, 1));
    let old_id = first.member_id.to_string();
    assert!(old_id.starts_with("instance-1-"), "{old_id}");
    sync(&mut a, &group, 1, &old_id, &[(&old_id, b"mine")]).await;
    // The instance restarts and joins again without its member id.
    let again = join(&mut b, &request).await;
    assert_eq!(again.error_code, NONE);
    assert_eq!(again.generation_id, 1, "no rebalance");
    assert!(
        again.skip_assignment,
        "the static leader need not assign again"
    );
    let new_id = again.member_id.to_string();
    assert_ne!(new_id, old_id);
    let synced = sync(&mut b, &group, 1, &new_id, &[]).await;
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (NONE, &b"mine"[..])
    );
    // The old id is fenced wherever it shows up with the instance id.
    let mut stale = Join::consumer(&group, &old_id, &["t"]);
    stale.instance_id = Some("instance-1");
    assert_eq!(join(&mut a, &stale).await.error_code, FENCED_INSTANCE_ID);
    let hb = kafka_protocol::messages::HeartbeatRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(s(&group)))
        .with_generation_id(1)
        .with_member_id(s(&old_id))
        .with_group_instance_id(Some(s("instance-1")));
    let kafka_protocol::messages::ResponseKind::Heartbeat(r) = a
        .call(kafka_protocol::messages::ApiKey::Heartbeat, 4, &hb)
        .await
    else {
        panic!()
    };
    assert_eq!(r.error_code, FENCED_INSTANCE_ID);
    assert_eq!(heartbeat(&mut b, &group, 1, &new_id).await, NONE);
}

#[tokio::test]
async fn errors_are_the_ones_kafka_gives() {
    let broker = broker(0).await;
    let (mut a, mut b) = (broker.client().await, broker.client().await);
    let group = unique_topic("g");
    // Unknown group.
    assert_eq!(
        heartbeat(&mut a, "no-such-group", 1, "m").await,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        sync(&mut a, "no-such-group", 1, "m", &[]).await.error_code,
        UNKNOWN_MEMBER_ID
    );
    let joined = join_new(&mut a, Join::consumer(&group, "", &["t"])).await;
    let id = joined.member_id.to_string();
    // Wrong generation, and an id the group never issued.
    assert_eq!(heartbeat(&mut a, &group, 7, &id).await, ILLEGAL_GENERATION);
    assert_eq!(
        sync(&mut a, &group, 7, &id, &[]).await.error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut a, &group, 1, "made-up").await,
        UNKNOWN_MEMBER_ID
    );
    let made_up = join(&mut b, &Join::consumer(&group, "made-up", &["t"])).await;
    assert_eq!(made_up.error_code, UNKNOWN_MEMBER_ID);
    // A member of another protocol type, or with no protocol in common.
    let mut connect = Join::consumer(&group, "", &["t"]);
    connect.protocol_type = "connect";
    assert_eq!(
        join(&mut b, &connect).await.error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let mut other = Join::consumer(&group, "", &["t"]);
    other.protocols = vec![("roundrobin", subscription(&["t"]))];
    assert_eq!(
        join(&mut b, &other).await.error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    // A refused first join leaves no group behind.
    let mut too_short = Join::consumer("never-formed", "", &["t"]);
    too_short.session_timeout_ms = 10;
    let refused = join(&mut b, &too_short).await;
    assert_eq!(refused.error_code, 26, "INVALID_SESSION_TIMEOUT");
    assert_eq!(
        describe(&mut b, "never-formed")
            .await
            .group_state
            .to_string(),
        "Dead"
    );
}

#[tokio::test]
async fn the_protocol_all_members_support_is_chosen_whatever_the_type() {
    let broker = broker(0).await;
    let (mut a, mut b) = (broker.client().await, broker.client().await);
    let group = unique_topic("g");
    let worker = |id: &'static str| Join {
        group: "",
        member_id: id,
        instance_id: None,
        protocol_type: "connect",
        protocols: vec![
            ("sessioned", bytes::Bytes::from_static(b"s")),
            ("default", bytes::Bytes::from_static(b"d")),
        ],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
    };
    let mut first = worker("");
    first.group = &group;
    let a_joined = join_new(&mut a, first).await;
    assert_eq!(a_joined.protocol_name.as_deref(), Some("sessioned"));
    assert_eq!(a_joined.protocol_type.as_deref(), Some("connect"));
    let a_id = a_joined.member_id.to_string();
    sync(&mut a, &group, 1, &a_id, &[]).await;
    // An older worker knows only "default": the group moves to it.
    let mut second = worker("");
    second.group = &group;
    second.protocols = vec![("default", bytes::Bytes::from_static(b"old"))];
    let b_first = join(&mut b, &second).await;
    let b_id = b_first.member_id.to_string();
    second.member_id = &b_id;
    let mut a_again = worker("");
    a_again.group = &group;
    a_again.member_id = &a_id;
    let (b_joined, a_rejoined) = tokio::join!(join(&mut b, &second), join(&mut a, &a_again));
    assert_eq!(b_joined.protocol_name.as_deref(), Some("default"));
    assert_eq!(a_rejoined.protocol_name.as_deref(), Some("default"));
    let metadata: Vec<Vec<u8>> = a_rejoined
        .members
        .iter()
        .map(|m| m.metadata.to_vec())
        .collect();
    assert!(metadata.contains(&b"d".to_vec()) && metadata.contains(&b"old".to_vec()));
}

/// Time from a lone consumer's first JoinGroup to its answer.
async fn first_join_takes(delay_ms: u64) -> Duration {
    let broker = broker(delay_ms).await;
    let mut client = broker.client().await;
    let group = unique_topic("g");
    let first = join(&mut client, &Join::consumer(&group, "", &["t"])).await;
    let id = first.member_id.to_string();
    let started = Instant::now();
    let joined = join(&mut client, &Join::consumer(&group, &id, &["t"])).await;
    let took = started.elapsed();
    assert_eq!((joined.error_code, joined.generation_id), (NONE, 1));
    eprintln!("first join with group.initial.rebalance.delay.ms={delay_ms}: {took:?}");
    took
}

#[tokio::test]
async fn the_initial_rebalance_delay_holds_the_first_join() {
    let immediate = first_join_takes(0).await;
    assert!(immediate < Duration::from_millis(500), "{immediate:?}");
    let delayed = first_join_takes(3000).await;
    assert!(delayed >= Duration::from_millis(3000), "{delayed:?}");
    assert!(delayed < Duration::from_millis(3500), "{delayed:?}");
}

/// `group.min.session.timeout.ms`, `group.max.session.timeout.ms` and
/// `group.max.size` are the agent's settings, reported as broker configs: a
/// test cluster's 3 s sessions are accepted once the minimum allows them, a
/// session past the maximum is refused, and a third member of a group of at
/// most two is refused while its members rejoin freely.
#[tokio::test]
async fn session_bounds_and_group_size_are_the_agents_settings() {
    const INVALID_SESSION_TIMEOUT: i16 = 26;
    const GROUP_MAX_SIZE_REACHED: i16 = 81;
    let default = broker(0).await;
    let mut client = default.client().await;
    let mut three_seconds = Join::consumer("short-sessions", "", &["t"]);
    three_seconds.session_timeout_ms = 3_000;
    assert_eq!(
        join(&mut client, &three_seconds).await.error_code,
        INVALID_SESSION_TIMEOUT,
        "Kafka's default minimum is 6 s"
    );

    let broker = TestBroker::start_with(Backend::Embedded, |cli| {
        cli.group_initial_rebalance_delay_ms = 0;
        cli.group_min_session_timeout_ms = 1_000;
        cli.group_max_session_timeout_ms = 20_000;
        cli.group_max_size = 2;
    })
    .await;
    let (mut a, mut b, mut c) = (
        broker.client().await,
        broker.client().await,
        broker.client().await,
    );
    let short = unique_topic("short");
    let mut first = Join::consumer(&short, "", &["t"]);
    first.session_timeout_ms = 3_000;
    assert_eq!(
        join_new(&mut c, first).await.error_code,
        NONE,
        "a 3 s session within 1-20 s"
    );
    let mut too_long = Join::consumer(&short, "", &["t"]);
    too_long.session_timeout_ms = 20_001;
    assert_eq!(
        join(&mut c, &too_long).await.error_code,
        INVALID_SESSION_TIMEOUT
    );

    let group = unique_topic("bounded");
    let (generation, _leader, follower) = two_member_group(&mut a, &mut b, &group).await;
    // A third member: refused before it is even given a member id.
    let third = join(&mut c, &Join::consumer(&group, "", &["t"])).await;
    assert_eq!(third.error_code, GROUP_MAX_SIZE_REACHED);
    assert_eq!(third.member_id.to_string(), "");
    assert_eq!(describe(&mut c, &group).await.members.len(), 2);
    // The members themselves still heartbeat and rejoin.
    assert_eq!(heartbeat(&mut b, &group, generation, &follower).await, NONE);

    let reported = common::admin::describe(&mut c, 4, common::admin::BROKER, "0", None).await;
    for (name, value) in [
        ("group.min.session.timeout.ms", "1000"),
        ("group.max.session.timeout.ms", "20000"),
        ("group.max.size", "2"),
    ] {
        assert_eq!(
            common::admin::config(&reported, name).0,
            value,
            "{name} reported by DescribeConfigs on the broker"
        );
    }
}
