//! A live group moving between the classic protocol and KIP-848's over the
//! wire, on both backend pairs: a classic group upgraded by a
//! ConsumerGroupHeartbeat, its classic member reconciled through JoinGroup,
//! SyncGroup and Heartbeat, and the group turned back into a classic group
//! once the consumer-protocol member leaves. The Java clients do the same in
//! the compat runner's `newgroups` java/migration scenario.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::groups::{self, Join};
use common::{create_topic, on_both_backends, s, unique_topic, Backend, TestBroker, TestClient};
use kafka_protocol::messages::*;
use uuid::Uuid;

on_both_backends!(
    a_classic_group_is_upgraded_reconciled_and_downgraded,
    a_group_of_another_protocol_type_is_not_upgraded,
);

/// A ConsumerProtocolSubscription v1 to `topic` owning `owned` of it.
fn subscription(topic: &str, owned: &[i32]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(1);
    out.put_i32(1);
    out.put_i16(topic.len() as i16);
    out.put_slice(topic.as_bytes());
    out.put_i32(-1);
    out.put_i32(1);
    out.put_i16(topic.len() as i16);
    out.put_slice(topic.as_bytes());
    out.put_i32(owned.len() as i32);
    for p in owned {
        out.put_i32(*p);
    }
    out.freeze()
}

/// A ConsumerProtocolAssignment v0 of `partitions` of `topic`.
fn assignment(topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(1);
    out.put_i16(topic.len() as i16);
    out.put_slice(topic.as_bytes());
    out.put_i32(partitions.len() as i32);
    for p in partitions {
        out.put_i32(*p);
    }
    out.put_i32(-1);
    out.to_vec()
}

/// The partitions of a SyncGroup answer's assignment (one topic).
fn assigned(bytes: &[u8]) -> Vec<i32> {
    let topics = i32::from_be_bytes(bytes[2..6].try_into().unwrap());
    if topics == 0 {
        return Vec::new();
    }
    let name_len = i16::from_be_bytes(bytes[6..8].try_into().unwrap()) as usize;
    let at = 8 + name_len;
    let count = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    (0..count)
        .map(|i| {
            let o = at + 4 + 4 * i;
            i32::from_be_bytes(bytes[o..o + 4].try_into().unwrap())
        })
        .collect()
}

fn classic_join<'a>(group: &'a str, member: &'a str, topic: &str, owned: &[i32]) -> Join<'a> {
    Join {
        protocols: vec![("range", subscription(topic, owned))],
        ..Join::consumer(group, member, &[])
    }
}

/// What a member owns, as heartbeats carry it: (topic id, partitions).
type Owned = Vec<(Uuid, Vec<i32>)>;

/// A ConsumerGroupHeartbeat v1 of `member` subscribed to `topic`, owning nothing.
async fn consumer_heartbeat(
    client: &mut TestClient,
    group: &str,
    member: &str,
    epoch: i32,
    topic: &str,
) -> ConsumerGroupHeartbeatResponse {
    let topics = [topic];
    let subscribed = (epoch == 0).then_some(&topics[..]);
    groups::consumer_heartbeat_v(client, 1, group, member, epoch, subscribed, Some(&[])).await
}

fn owned_of(response: &ConsumerGroupHeartbeatResponse) -> Owned {
    response
        .assignment
        .iter()
        .flat_map(|a| &a.topic_partitions)
        .map(|t| (t.topic_id, t.partitions.clone()))
        .collect()
}

fn partitions(owned: &Owned) -> Vec<i32> {
    let mut all: Vec<i32> = owned.iter().flat_map(|(_, ps)| ps.clone()).collect();
    all.sort();
    all
}

async fn a_classic_group_is_upgraded_reconciled_and_downgraded(backend: Backend) {
    let broker =
        TestBroker::start_with(backend, |cli| cli.group_initial_rebalance_delay_ms = 0).await;
    let mut client = broker.client().await;
    let topic = unique_topic("migrate");
    create_topic(&mut client, &topic, 4).await;
    let group = format!("{topic}-group");

    // A classic group of one member, which assigned itself all four.
    let joined = groups::join_new(&mut client, classic_join(&group, "", &topic, &[])).await;
    assert_eq!(joined.error_code, groups::NONE);
    let c = joined.member_id.to_string();
    let generation = joined.generation_id;
    let all = assignment(&topic, &[0, 1, 2, 3]);
    let synced = groups::sync(&mut client, &group, generation, &c, &[(&c, &all)]).await;
    assert_eq!(synced.error_code, groups::NONE);

    // A member of the consumer protocol joins: the group is upgraded, and c
    // still holds everything, at its generation as its epoch.
    let n = consumer_heartbeat(&mut client, &group, "n", 0, &topic).await;
    assert_eq!(n.error_code, 0, "{:?}", n.error_message);
    assert_eq!(n.member_epoch, generation + 1);
    assert!(partitions(&owned_of(&n)).is_empty());
    assert_eq!(
        groups::heartbeat(&mut client, &group, generation, &c).await,
        groups::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        groups::heartbeat(&mut client, &group, generation - 1, &c).await,
        groups::ILLEGAL_GENERATION
    );

    // c rejoins owning all four: it keeps two, at its old generation, and
    // moves on once it rejoins without the others.
    let rejoined = groups::join(
        &mut client,
        &classic_join(&group, &c, &topic, &[0, 1, 2, 3]),
    )
    .await;
    assert_eq!(rejoined.error_code, groups::NONE);
    assert_eq!(rejoined.generation_id, generation);
    assert_eq!(rejoined.leader.as_str(), "", "the coordinator assigns");
    assert!(rejoined.members.is_empty());
    let kept = groups::sync(&mut client, &group, generation, &c, &[]).await;
    assert_eq!(kept.error_code, groups::NONE);
    let kept = assigned(&kept.assignment);
    assert_eq!(kept.len(), 2);
    let moved = groups::join(&mut client, &classic_join(&group, &c, &topic, &kept)).await;
    assert_eq!(moved.generation_id, generation + 1);
    let synced = groups::sync(&mut client, &group, generation + 1, &c, &[]).await;
    assert_eq!(assigned(&synced.assignment), kept);
    assert_eq!(
        groups::heartbeat(&mut client, &group, generation + 1, &c).await,
        groups::NONE
    );

    // n gets the other two; c commits at its epoch.
    let n2 = consumer_heartbeat(&mut client, &group, "n", n.member_epoch, &topic).await;
    let n_owned = owned_of(&n2);
    let n_partitions = partitions(&n_owned);
    assert_eq!(n_partitions.len(), 2);
    assert!(n_partitions.iter().all(|p| !kept.contains(p)));
    let commit = groups::commit(
        &mut client,
        &group,
        generation + 1,
        &c,
        &[(&topic, kept[0], 5, "")],
    )
    .await;
    assert_eq!(commit[0].2, groups::NONE);
    let stale = groups::commit(
        &mut client,
        &group,
        generation,
        &c,
        &[(&topic, kept[0], 6, "")],
    )
    .await;
    assert_eq!(stale[0].2, groups::ILLEGAL_GENERATION);

    // ConsumerGroupDescribe v1 shows both, c as a classic member (type 0).
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![s(&group).into()]);
    let ResponseKind::ConsumerGroupDescribe(described) = client
        .call(ApiKey::ConsumerGroupDescribe, 1, &request)
        .await
    else {
        panic!("not a ConsumerGroupDescribe response")
    };
    let described = &described.groups[0];
    assert_eq!(described.group_state.as_str(), "Stable");
    let mut types: Vec<(String, i8)> = described
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_type))
        .collect();
    types.sort();
    let mut want = vec![(c.clone(), 0), ("n".to_owned(), 1)];
    want.sort();
    assert_eq!(types, want);

    // n leaves: the group is classic again and rebalances; c, rejoining, is
    // its leader and assigns.
    let left = consumer_heartbeat(&mut client, &group, "n", -1, &topic).await;
    assert_eq!(left.error_code, 0);
    assert_eq!(
        groups::describe(&mut client, &group)
            .await
            .group_state
            .as_str(),
        "PreparingRebalance"
    );
    let classic_again = groups::join(&mut client, &classic_join(&group, &c, &topic, &[])).await;
    assert_eq!(classic_again.error_code, groups::NONE);
    assert_eq!(classic_again.leader.as_str(), c, "a classic leader again");
    assert_eq!(classic_again.members.len(), 1);
    let synced = groups::sync(
        &mut client,
        &group,
        classic_again.generation_id,
        &c,
        &[(&c, &all)],
    )
    .await;
    assert_eq!(assigned(&synced.assignment), vec![0, 1, 2, 3]);
    let described = groups::describe(&mut client, &group).await;
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_type.as_str(), "consumer");
    // The commit made while it was a consumer group stands.
    let committed = groups::fetch(&mut client, &group, None).await;
    assert_eq!(committed, vec![(topic.clone(), kept[0], 5, String::new())]);
}

async fn a_group_of_another_protocol_type_is_not_upgraded(backend: Backend) {
    let broker =
        TestBroker::start_with(backend, |cli| cli.group_initial_rebalance_delay_ms = 0).await;
    let mut client = broker.client().await;
    let topic = unique_topic("no-upgrade");
    create_topic(&mut client, &topic, 1).await;
    let group = format!("{topic}-group");
    let connect = Join {
        protocol_type: "connect",
        ..Join::consumer(&group, "", &[&topic])
    };
    let joined = groups::join_new(&mut client, connect).await;
    assert_eq!(joined.error_code, groups::NONE);
    let n = consumer_heartbeat(&mut client, &group, "n", 0, &topic).await;
    assert_eq!(n.error_code, groups::GROUP_ID_NOT_FOUND);
    assert!(
        n.error_message
            .as_deref()
            .is_some_and(|m| m.contains("does not use the consumer embedded protocol")),
        "{:?}",
        n.error_message
    );
    // Still the classic group it was.
    let described = groups::describe(&mut client, &group).await;
    assert_eq!(described.protocol_type.as_str(), "connect");
    assert_eq!(described.members.len(), 1);
}
