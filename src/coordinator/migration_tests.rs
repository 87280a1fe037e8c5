//! A live group moving between the protocols: a classic group upgraded by a
//! consumer-protocol member's first heartbeat, and turned back once only
//! classic members are left.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::consumer::{self, HeartbeatRequest, Topics};
use super::group::{Group, GroupRules, GroupState};
use super::member::{JoinRequest, Member};
use super::subscription::{assigned_partitions, encode_assignment};

const T: Uuid = Uuid::from_u128(9);

fn topics() -> Topics {
    consumer::tests::topics(&[("t", T, 4)])
}

/// A v0 subscription to "t".
fn subscription() -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(1);
    out.put_i16(1);
    out.put_slice(b"t");
    out.put_i32(-1);
    out.freeze()
}

/// A classic group at generation 3 whose members "m1" and "m2" hold two
/// partitions of "t" each.
fn stable_classic_group(now: Instant) -> Group {
    let mut group = Group::new("g", GroupRules::default());
    for (id, partitions) in [("m1", vec![0, 1]), ("m2", vec![2, 3])] {
        let request = JoinRequest {
            member_id: id.into(),
            instance_id: None,
            client_id: "classic".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription())],
            require_known_member_id: true,
        };
        let mut member = Member::new(id.into(), &request, now);
        member.assignment = encode_assignment(0, &vec![("t".to_owned(), partitions)]);
        group.members.insert(id.into(), member);
    }
    group.state = GroupState::Stable;
    group.generation = 3;
    group.protocol_type = Some("consumer".into());
    group.protocol_name = Some("range".into());
    group.leader = Some("m1".into());
    group
}

#[test]
fn a_consumer_protocol_member_upgrades_a_classic_group_and_its_leaving_downgrades_it() {
    let now = Instant::now();
    let rules = GroupRules::default();
    let mut group = stable_classic_group(now);
    assert!(group.is_live_classic());
    group.upgrade(&topics(), now).unwrap();
    assert!(
        group.members.is_empty(),
        "its members are the consumer group's now"
    );
    let consumer = group.consumer.as_mut().unwrap();
    assert_eq!((consumer.epoch, consumer.assignment_epoch), (3, 3));
    assert_eq!(consumer.members["m1"].epoch, 3);
    assert_eq!(consumer.members["m1"].assigned[&T], [0, 1].into());
    assert_eq!(consumer.members["m2"].assigned[&T], [2, 3].into());
    assert!(consumer.only_classic_members());

    // The new member joins: the classic ones are asked to rejoin, and keep
    // their generation meanwhile.
    let n = consumer
        .heartbeat(consumer::tests::join("n", &["t"]), &topics(), &rules, now)
        .unwrap();
    assert_eq!(n.member_epoch, 4);
    assert_eq!(
        group.heartbeat("m1", None, 3, now),
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        group.heartbeat("m1", None, 2, now),
        Some(ResponseError::IllegalGeneration)
    );

    // n leaves: the group is classic again, at the group epoch, rebalancing,
    // each member still holding what it held.
    let consumer = group.consumer.as_mut().unwrap();
    consumer
        .heartbeat(
            HeartbeatRequest {
                member_id: "n".into(),
                member_epoch: -1,
                ..HeartbeatRequest::default()
            },
            &topics(),
            &rules,
            now,
        )
        .unwrap();
    group.downgrade_if_only_classic(now);
    assert!(group.consumer.is_none());
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert_eq!(group.generation, 3, "the members' newest epoch");
    assert_eq!(
        group.check_commit("m1", None, 3, &[("t", 0)], now),
        None,
        "a member at that epoch commits during the rebalance"
    );
    assert_eq!(group.protocol_name.as_deref(), Some("range"));
    assert_eq!(group.members.len(), 2);
    let m1 = assigned_partitions(&group.members["m1"].assignment).unwrap();
    assert_eq!(m1, vec![("t".to_owned(), vec![0, 1])]);
}

#[test]
fn a_group_of_another_protocol_type_or_bad_metadata_is_not_upgraded() {
    let now = Instant::now();
    let mut connect = stable_classic_group(now);
    connect.protocol_type = Some("connect".into());
    let refused = connect.upgrade(&topics(), now).unwrap_err();
    assert!(
        refused.contains("does not use the consumer embedded protocol"),
        "{refused}"
    );
    assert!(connect.consumer.is_none() && connect.members.len() == 2);

    let mut garbled = stable_classic_group(now);
    garbled.members.get_mut("m2").unwrap().assignment = Bytes::from_static(&[0, 0, 0]);
    let refused = garbled.upgrade(&topics(), now).unwrap_err();
    assert!(refused.contains("malformed"), "{refused}");
    assert!(garbled.consumer.is_none() && garbled.members.len() == 2);
}
