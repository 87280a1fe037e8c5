//! Classic members in a consumer group: Kafka's answers to their JoinGroup,
//! SyncGroup, Heartbeat and OffsetCommit, and their reconciliation.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::coordinator::member::JoinRequest;
use crate::coordinator::subscription::assigned_partitions;
use crate::coordinator::GroupRules;

const T: Uuid = Uuid::from_u128(7);

fn topics() -> Topics {
    tests::topics(&[("t", T, 4)])
}

/// A v1 subscription to "t" owning `owned` of it, as the Java client writes it.
fn metadata(owned: &[i32]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(1);
    out.put_i32(1);
    out.put_i16(1);
    out.put_slice(b"t");
    out.put_i32(-1);
    if owned.is_empty() {
        out.put_i32(0);
    } else {
        out.put_i32(1);
        out.put_i16(1);
        out.put_slice(b"t");
        out.put_i32(owned.len() as i32);
        for p in owned {
            out.put_i32(*p);
        }
    }
    out.freeze()
}

fn classic_join(member: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        member_id: member.to_owned(),
        instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 45_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("cooperative-sticky".into(), metadata(owned))],
        require_known_member_id: true,
    }
}

/// The partitions of "t" a SyncGroup answer assigns.
fn synced(group: &mut ConsumerGroup, member: &str, generation: i32, now: Instant) -> Vec<i32> {
    let result = group.classic_sync(member, None, generation, (Some("consumer"), None), now);
    assert_eq!(result.error, None, "sync of {member} at {generation}");
    assert_eq!(result.protocol_name.as_deref(), Some("cooperative-sticky"));
    let assigned = assigned_partitions(&result.assignment).expect("an assignment that parses");
    assigned
        .into_iter()
        .flat_map(|(topic, ps)| {
            assert_eq!(topic, "t");
            ps
        })
        .collect()
}

fn held(partitions: &Partitions) -> BTreeSet<i32> {
    partitions.get(&T).cloned().unwrap_or_default()
}

#[test]
fn a_classic_member_joins_a_consumer_group_and_gets_what_the_other_releases() {
    let now = Instant::now();
    let rules = GroupRules::default();
    let mut group = ConsumerGroup::default();
    let a = group
        .heartbeat(tests::join("a", &["t"]), &topics(), &rules, now)
        .unwrap();
    let a_owned = a.assignment.unwrap();
    assert_eq!(held(&a_owned).len(), 4);

    // A new classic member is first given its id, as JoinGroup v4+ asks.
    let first = group.classic_join(&classic_join("", &[]), &topics(), &rules, now);
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(
        group.members.len() == 1,
        "not a member before it comes back"
    );
    let c = first.member_id;
    let joined = group.classic_join(&classic_join(&c, &[]), &topics(), &rules, now);
    assert_eq!(joined.error, None);
    assert_eq!(
        joined.generation, 2,
        "its epoch: the group epoch it joined at"
    );
    assert_eq!(joined.leader, "", "no leader: the coordinator assigns");
    assert_eq!(joined.protocol_name.as_deref(), Some("cooperative-sticky"));
    assert!(joined.members.is_empty());
    assert_eq!(group.members[&c].state, MemberState::UnreleasedPartitions);
    assert!(
        synced(&mut group, &c, 2, now).is_empty(),
        "a holds everything yet"
    );
    assert_eq!(group.classic_heartbeat(&c, None, 2, now), None);

    // a gives two up; then c is told to rejoin, and gets them.
    let a = group
        .heartbeat(tests::beat("a", 1, &a_owned), &topics(), &rules, now)
        .unwrap();
    let kept = a.assignment.unwrap();
    assert_eq!(held(&kept).len(), 2);
    group
        .heartbeat(tests::beat("a", 1, &kept), &topics(), &rules, now)
        .unwrap();
    assert_eq!(
        group.classic_heartbeat(&c, None, 2, now),
        Some(ResponseError::RebalanceInProgress)
    );
    let rejoined = group.classic_join(&classic_join(&c, &[]), &topics(), &rules, now);
    assert_eq!(rejoined.generation, 2);
    let got = synced(&mut group, &c, 2, now);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| !held(&kept).contains(p)));
    assert_eq!(group.classic_heartbeat(&c, None, 2, now), None);
    assert_eq!(group.state(), ConsumerGroupState::Stable);

    // Its generation is its epoch, exactly.
    assert_eq!(
        group.classic_heartbeat(&c, None, 1, now),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.check_commit(&c, 1, &[("t", got[0])]),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(group.check_commit(&c, 2, &[("t", got[0])]), None);
    // A member of the other protocol is unknown to the classic calls, and the
    // other way round.
    assert_eq!(
        group.classic_heartbeat("a", None, 2, now),
        Some(ResponseError::UnknownMemberId)
    );
    let refused = group
        .heartbeat(
            tests::beat(&c, 2, &Partitions::new()),
            &topics(),
            &rules,
            now,
        )
        .unwrap_err();
    assert_eq!(refused.0, ResponseError::UnknownMemberId);

    // The consumer-protocol member leaves: only classic members are left.
    assert!(!group.only_classic_members());
    group
        .heartbeat(
            tests::beat("a", -1, &Partitions::new()),
            &topics(),
            &rules,
            now,
        )
        .unwrap();
    assert!(group.only_classic_members());
}

#[test]
fn a_classic_member_revokes_through_its_rejoin_before_it_moves_on() {
    let now = Instant::now();
    let rules = GroupRules::default();
    let mut group = ConsumerGroup::default();
    let c = "c".to_owned();
    let joined = group.classic_join(&classic_join(&c, &[]), &topics(), &rules, now);
    assert_eq!(joined.generation, 1);
    assert_eq!(synced(&mut group, &c, 1, now), vec![0, 1, 2, 3]);

    // A member of the new protocol arrives: c must rejoin.
    let a = group
        .heartbeat(tests::join("a", &["t"]), &topics(), &rules, now)
        .unwrap();
    assert_eq!(a.member_epoch, 2);
    assert!(held(a.assignment.as_ref().unwrap()).is_empty());
    assert_eq!(
        group.classic_heartbeat(&c, None, 1, now),
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        group.classic_sync(&c, None, 1, (None, None), now).error,
        Some(ResponseError::RebalanceInProgress),
        "a sync of the old generation is refused until it rejoins"
    );

    // Rejoining owning all four, it keeps two and stays at its epoch until
    // it has given the others up (a cooperative client rejoins at once).
    let rejoined = group.classic_join(&classic_join(&c, &[0, 1, 2, 3]), &topics(), &rules, now);
    assert_eq!(rejoined.generation, 1);
    let kept = synced(&mut group, &c, 1, now);
    assert_eq!(kept.len(), 2);
    assert_eq!(group.members[&c].state, MemberState::UnrevokedPartitions);
    assert_eq!(
        group.classic_heartbeat(&c, None, 1, now),
        Some(ResponseError::RebalanceInProgress)
    );
    let moved = group.classic_join(&classic_join(&c, &kept), &topics(), &rules, now);
    assert_eq!(moved.generation, 2);
    assert_eq!(synced(&mut group, &c, 2, now), kept);

    // a now gets the other two.
    let a = group
        .heartbeat(
            tests::beat("a", 2, &Partitions::new()),
            &topics(),
            &rules,
            now,
        )
        .unwrap();
    let a_held = held(a.assignment.as_ref().unwrap());
    assert_eq!(a_held.len(), 2);
    assert!(kept.iter().all(|p| !a_held.contains(p)));
    assert_eq!(group.state(), ConsumerGroupState::Stable);

    // The stored form keeps the classic member's protocols and session.
    let loaded = ConsumerGroup::from_json(&group.to_json(), 45_000, now).unwrap();
    assert_eq!(loaded.members[&c].classic, group.members[&c].classic);
    assert_eq!(loaded.to_json(), group.to_json());

    assert_eq!(group.classic_leave(&c, None), None);
    assert_eq!(
        group.classic_leave("a", None),
        Some(ResponseError::UnknownMemberId)
    );
    assert!(!group.members.contains_key(&c));
}

#[test]
fn a_classic_member_with_protocols_the_others_lack_is_refused() {
    let now = Instant::now();
    let rules = GroupRules::default();
    let mut group = ConsumerGroup::default();
    group.classic_join(&classic_join("c", &[]), &topics(), &rules, now);
    let mut other = classic_join("d", &[]);
    other.protocols = vec![("range".into(), metadata(&[]))];
    assert_eq!(
        group.classic_join(&other, &topics(), &rules, now).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut garbage = classic_join("e", &[]);
    garbage.protocols = vec![("cooperative-sticky".into(), Bytes::from_static(&[0, 1, 0]))];
    assert_eq!(
        group.classic_join(&garbage, &topics(), &rules, now).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
}

#[test]
fn a_static_classic_member_comes_back_under_a_new_id_with_its_partitions() {
    let now = Instant::now();
    let rules = GroupRules::default();
    let mut group = ConsumerGroup::default();
    let first = JoinRequest {
        instance_id: Some("i1".into()),
        ..classic_join("old", &[])
    };
    assert_eq!(
        group
            .classic_join(&first, &topics(), &rules, now)
            .generation,
        1
    );
    assert_eq!(synced(&mut group, "old", 1, now), vec![0, 1, 2, 3]);

    // The instance restarts: a join without a member id takes its place.
    let again = JoinRequest {
        member_id: String::new(),
        ..first.clone()
    };
    let back = group.classic_join(&again, &topics(), &rules, now);
    assert_eq!(
        back.error, None,
        "a static member needs no MEMBER_ID_REQUIRED"
    );
    let new_id = back.member_id.clone();
    assert_ne!(new_id, "old");
    assert_eq!(back.generation, 1, "nothing changed: no new epoch");
    assert_eq!(synced(&mut group, &new_id, 1, now), vec![0, 1, 2, 3]);
    assert!(!group.members.contains_key("old"));
    assert_eq!(
        group.classic_heartbeat("old", Some("i1"), 1, now),
        Some(ResponseError::FencedInstanceId)
    );
    // A known member id that is not the instance's holder is fenced too.
    let stranger = JoinRequest {
        member_id: "other".into(),
        ..first.clone()
    };
    assert_eq!(
        group.classic_join(&stranger, &topics(), &rules, now).error,
        Some(ResponseError::FencedInstanceId)
    );
    // It leaves by its instance id.
    assert_eq!(
        group.classic_leave("other", Some("i1")),
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(group.classic_leave("", Some("i1")), None);
    assert!(group.members.is_empty());
}
