use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::coordinator::GroupRules;

const T1: Uuid = Uuid::from_u128(1);
const T2: Uuid = Uuid::from_u128(2);

pub(in crate::coordinator) fn topics(shapes: &[(&str, Uuid, i32)]) -> Topics {
    shapes
        .iter()
        .map(|(name, id, partitions)| {
            let shape = TopicShape {
                id: *id,
                partitions: *partitions,
            };
            (name.to_string(), shape)
        })
        .collect()
}

pub(in crate::coordinator) fn join(member: &str, subscribed: &[&str]) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member.to_owned(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(subscribed.iter().map(|s| s.to_string()).collect()),
        owned: Some(Partitions::new()),
        ..HeartbeatRequest::default()
    }
}

/// A heartbeat of `member` at `epoch` reporting it owns `owned`.
pub(in crate::coordinator) fn beat(
    member: &str,
    epoch: i32,
    owned: &Partitions,
) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member.to_owned(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..HeartbeatRequest::default()
    }
}

fn count(partitions: &Partitions) -> usize {
    partitions.values().map(BTreeSet::len).sum()
}

fn rules() -> GroupRules {
    GroupRules::default()
}

#[test]
fn a_second_member_gets_partitions_only_after_the_first_revokes_them() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 4)]);
    let mut group = ConsumerGroup::default();
    let a = group
        .heartbeat(join("a", &["t"]), &topics, &rules(), now)
        .unwrap();
    assert_eq!(a.member_epoch, 1, "one bump for the member and its topic");
    let a_owned = a.assignment.clone().unwrap();
    assert_eq!(count(&a_owned), 4);
    assert_eq!(group.state(), ConsumerGroupState::Stable);

    let b = group
        .heartbeat(join("b", &["t"]), &topics, &rules(), now)
        .unwrap();
    assert_eq!(b.member_epoch, 2);
    assert_eq!(count(b.assignment.as_ref().unwrap()), 0, "all still a's");
    assert_eq!(group.members["b"].state, MemberState::UnreleasedPartitions);

    // a is told to keep two: it stays at its epoch until it confirms.
    let a = group
        .heartbeat(beat("a", 1, &a_owned), &topics, &rules(), now)
        .unwrap();
    assert_eq!(a.member_epoch, 1);
    let a_kept = a.assignment.clone().unwrap();
    assert_eq!(count(&a_kept), 2);
    assert_eq!(group.members["a"].state, MemberState::UnrevokedPartitions);
    assert_eq!(group.state(), ConsumerGroupState::Reconciling);

    // b asks again before a confirmed: still nothing.
    let b = group
        .heartbeat(beat("b", 2, &Partitions::new()), &topics, &rules(), now)
        .unwrap();
    assert_eq!(count(b.assignment.as_ref().unwrap()), 0);

    // a confirms; it moves to epoch 2, and b then gets the other two.
    let a = group
        .heartbeat(beat("a", 1, &a_kept), &topics, &rules(), now)
        .unwrap();
    assert_eq!(a.member_epoch, 2);
    let b = group
        .heartbeat(beat("b", 2, &Partitions::new()), &topics, &rules(), now)
        .unwrap();
    let b_owned = b.assignment.unwrap();
    assert_eq!(count(&b_owned), 2);
    let all: BTreeSet<i32> = a_kept[&T1].union(&b_owned[&T1]).copied().collect();
    assert_eq!(all, (0..4).collect());
    assert_eq!(group.state(), ConsumerGroupState::Stable);
}

#[test]
fn a_member_leaving_frees_its_partitions_for_the_others() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 3)]);
    let mut group = ConsumerGroup::default();
    for m in ["a", "b", "c"] {
        group
            .heartbeat(join(m, &["t"]), &topics, &rules(), now)
            .unwrap();
    }
    // Settle: everyone heartbeats until stable.
    settle(&mut group, &topics, now);
    assert_eq!(group.state(), ConsumerGroupState::Stable);
    let epoch = group.epoch;
    let left = group
        .heartbeat(beat("c", -1, &Partitions::new()), &topics, &rules(), now)
        .unwrap();
    assert_eq!(left.member_epoch, -1);
    assert_eq!(group.epoch, epoch + 1);
    settle(&mut group, &topics, now);
    let total: usize = group.members.values().map(|m| count(&m.assigned)).sum();
    assert_eq!(total, 3);
    assert!(group.members.values().all(|m| m.epoch == group.epoch));
}

/// Heartbeats every member with what it owns until nothing changes.
fn settle(group: &mut ConsumerGroup, topics: &Topics, now: Instant) {
    for _ in 0..10 {
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let member = &group.members[&id];
            let request = beat(&id, member.epoch, &member.assigned.clone());
            group.heartbeat(request, topics, &rules(), now).unwrap();
        }
    }
}

#[test]
fn stale_and_unknown_members_are_fenced_and_a_lost_answer_is_forgiven() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 2)]);
    let mut group = ConsumerGroup::default();
    let a = group
        .heartbeat(join("a", &["t"]), &topics, &rules(), now)
        .unwrap();
    let owned = a.assignment.unwrap();
    let refused = group
        .heartbeat(beat("a", 7, &owned), &topics, &rules(), now)
        .unwrap_err();
    assert_eq!(refused.0, ResponseError::FencedMemberEpoch);
    let refused = group
        .heartbeat(beat("zz", 2, &owned), &topics, &rules(), now)
        .unwrap_err();
    assert_eq!(refused.0, ResponseError::UnknownMemberId);
    // The topic grows: a moves from epoch 1 to 2, but the answer is lost.
    // At its previous epoch with what it was given, it is answered again.
    let grown = super::tests::topics(&[("t", T1, 3)]);
    let moved = group
        .heartbeat(beat("a", 1, &owned), &grown, &rules(), now)
        .unwrap();
    assert_eq!(moved.member_epoch, 2);
    let again = group
        .heartbeat(beat("a", 1, &owned), &grown, &rules(), now)
        .unwrap();
    assert_eq!(again.member_epoch, 2);
    let wrong = group
        .heartbeat(beat("a", 3, &owned), &grown, &rules(), now)
        .unwrap_err();
    assert_eq!(wrong.0, ResponseError::FencedMemberEpoch);
}

#[test]
fn sessions_lapse_and_the_group_epoch_grows() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 2)]);
    let mut group = ConsumerGroup::default();
    group
        .heartbeat(join("a", &["t"]), &topics, &rules(), now)
        .unwrap();
    let epoch = group.epoch;
    assert!(!group.tick("g", now + Duration::from_secs(44)));
    assert!(group.tick("g", now + Duration::from_secs(46)));
    assert!(group.members.is_empty());
    assert_eq!(group.epoch, epoch + 1);
    assert_eq!(group.state(), ConsumerGroupState::Empty);
}

#[test]
fn a_new_topic_partition_bumps_the_epoch_and_is_assigned() {
    let now = Instant::now();
    let mut group = ConsumerGroup::default();
    let before = topics(&[("t", T1, 1)]);
    let a = group
        .heartbeat(join("a", &["t", "u"]), &before, &rules(), now)
        .unwrap();
    let epoch = a.member_epoch;
    let after = topics(&[("t", T1, 2), ("u", T2, 1)]);
    let a = group
        .heartbeat(
            beat("a", epoch, &a.assignment.unwrap()),
            &after,
            &rules(),
            now,
        )
        .unwrap();
    assert_eq!(a.member_epoch, epoch + 1);
    let owned = a.assignment.unwrap();
    assert_eq!(count(&owned), 3);
}

#[test]
fn a_static_member_coming_back_takes_its_assignment_without_a_rebalance() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 2)]);
    let mut group = ConsumerGroup::default();
    let mut first = join("a", &["t"]);
    first.instance_id = Some("i".into());
    let a = group.heartbeat(first, &topics, &rules(), now).unwrap();
    let mut leave = beat("a", -2, &Partitions::new());
    leave.instance_id = Some("i".into());
    assert_eq!(
        group
            .heartbeat(leave, &topics, &rules(), now)
            .unwrap()
            .member_epoch,
        -2
    );
    let epoch = group.epoch;
    let mut back = join("a2", &["t"]);
    back.instance_id = Some("i".into());
    let a2 = group.heartbeat(back, &topics, &rules(), now).unwrap();
    assert_eq!(group.epoch, epoch, "no rebalance");
    assert_eq!(a2.assignment, a.assignment);
    assert!(!group.members.contains_key("a"));

    let mut clash = join("a3", &["t"]);
    clash.instance_id = Some("i".into());
    let refused = group.heartbeat(clash, &topics, &rules(), now).unwrap_err();
    assert_eq!(refused.0, ResponseError::UnreleasedInstanceId);
}

#[test]
fn commits_at_an_older_epoch_are_allowed_only_for_partitions_held_since_then() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 2)]);
    let mut group = ConsumerGroup::default();
    assert_eq!(group.check_commit("", -1, &[("t", 0)]), None);
    let a = group
        .heartbeat(join("a", &["t"]), &topics, &rules(), now)
        .unwrap();
    assert_eq!(a.member_epoch, 1);
    let all = a.assignment.unwrap();
    assert_eq!(group.check_commit("a", 1, &[("t", 0), ("t", 1)]), None);
    assert_eq!(
        group.check_commit("a", 2, &[("t", 0)]),
        Some(ResponseError::StaleMemberEpoch),
        "never a later epoch"
    );
    assert_eq!(
        group.check_commit("", -1, &[("t", 0)]),
        Some(ResponseError::UnknownMemberId)
    );
    // b joins (epoch 2): a gives one partition up and moves to epoch 2.
    group
        .heartbeat(join("b", &["t"]), &topics, &rules(), now)
        .unwrap();
    let a = group
        .heartbeat(beat("a", 1, &all), &topics, &rules(), now)
        .unwrap();
    let kept = a.assignment.unwrap();
    let a = group
        .heartbeat(beat("a", 1, &kept), &topics, &rules(), now)
        .unwrap();
    assert_eq!(a.member_epoch, 2);
    let kept_partition = *kept[&T1].iter().next().unwrap();
    let given_up = 1 - kept_partition;
    assert_eq!(group.check_commit("a", 1, &[("t", kept_partition)]), None);
    assert_eq!(
        group.check_commit("a", 1, &[("t", given_up)]),
        Some(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(group.check_commit("a", 2, &[("t", kept_partition)]), None);
}

#[test]
fn requests_are_checked_as_kafka_checks_them() {
    let mut request = join("a", &["t"]);
    assert!(validate(&request, 1).is_ok());
    request.server_assignor = Some("sticky".into());
    assert_eq!(
        validate(&request, 1).unwrap_err().0,
        ResponseError::UnsupportedAssignor
    );
    request.server_assignor = None;
    request.subscribed_topic_regex = Some("(".into());
    assert_eq!(
        validate(&request, 1).unwrap_err().0,
        ResponseError::InvalidRegularExpression
    );
    let mut request = join("", &["t"]);
    assert!(
        validate(&request, 0).is_ok(),
        "v0: the coordinator makes the id"
    );
    assert_eq!(
        validate(&request, 1).unwrap_err().0,
        ResponseError::InvalidRequest
    );
    request.member_id = "a".into();
    request.rebalance_timeout_ms = -1;
    assert_eq!(
        validate(&request, 1).unwrap_err().0,
        ResponseError::InvalidRequest
    );
}

#[test]
fn the_uniform_assignor_is_balanced_and_sticky_and_range_is_contiguous() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 6)]);
    let mut group = ConsumerGroup::default();
    for m in ["a", "b"] {
        group
            .heartbeat(join(m, &["t"]), &topics, &rules(), now)
            .unwrap();
    }
    settle(&mut group, &topics, now);
    let before = group.target.clone();
    group
        .heartbeat(join("c", &["t"]), &topics, &rules(), now)
        .unwrap();
    let after = &group.target;
    assert!(after.values().all(|p| count(p) == 2), "{after:?}");
    for m in ["a", "b"] {
        assert!(
            after[m][&T1].is_subset(&before[m][&T1]),
            "sticky: {m} keeps its own"
        );
    }

    let mut members = group.members.clone();
    for member in members.values_mut() {
        member.server_assignor = Some("range".into());
    }
    let ranged = Assignor::Range.assign(&members, &topics, &BTreeMap::new());
    let ranges: Vec<Vec<i32>> = ranged
        .values()
        .map(|p| p[&T1].iter().copied().collect())
        .collect();
    assert_eq!(ranges, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
}

#[test]
fn the_stored_document_brings_the_group_back() {
    let now = Instant::now();
    let topics = topics(&[("t", T1, 3)]);
    let mut group = ConsumerGroup::default();
    for m in ["a", "b"] {
        let mut request = join(m, &["t"]);
        request.subscribed_topic_regex = Some("t.*".into());
        group.heartbeat(request, &topics, &rules(), now).unwrap();
    }
    let json = group.to_json();
    let loaded = ConsumerGroup::from_json(&json, 45_000, now).unwrap();
    assert_eq!(loaded.to_json(), json);
    assert!(
        loaded.members["a"].subscribes("tx"),
        "the regex is compiled again"
    );
    assert!(ConsumerGroup::from_json("{", 45_000, now).is_err());
}
