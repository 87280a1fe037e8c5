//! Every advertised version of every consumer-group API is answered with a
//! response the client decodes: a field set outside its version would make the
//! encoder fail.

mod common;

use common::groups::*;
use common::{create_topic_with, s, unique_topic, versions, Backend, TestBroker};

/// Every advertised version of every group API, answered with a response the
/// client decodes (a field set outside its version would fail the encoder).
#[tokio::test]
async fn every_advertised_group_api_version_round_trips() {
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::*;

    let broker = TestBroker::start_with(Backend::Embedded, |cli| {
        cli.group_initial_rebalance_delay_ms = 0
    })
    .await;
    let mut client = broker.client().await;
    for version in versions(ApiKey::FindCoordinator) {
        let request = FindCoordinatorRequest::default()
            .with_key(if version < 4 { s("g") } else { s("") })
            .with_coordinator_keys(if version >= 4 {
                vec![s("g"), s("h")]
            } else {
                vec![]
            });
        let ResponseKind::FindCoordinator(r) = client
            .call(ApiKey::FindCoordinator, version, &request)
            .await
        else {
            panic!()
        };
        let ports: Vec<i32> = if version >= 4 {
            r.coordinators.iter().map(|c| c.port).collect()
        } else {
            vec![r.port]
        };
        let expected = if version >= 4 { 2 } else { 1 };
        assert_eq!(
            ports,
            vec![i32::from(broker.addr.port()); expected],
            "FindCoordinator v{version}"
        );
    }
    let bad_key_type = FindCoordinatorRequest::default()
        .with_key(s("g"))
        .with_key_type(5);
    let ResponseKind::FindCoordinator(r) =
        client.call(ApiKey::FindCoordinator, 3, &bad_key_type).await
    else {
        panic!()
    };
    assert_eq!(r.error_code, 42, "INVALID_REQUEST");

    let topic = unique_topic("t");
    create_topic_with(&mut client, &topic, 1, &[]).await;
    for version in versions(ApiKey::JoinGroup) {
        let group = format!("{topic}-g{version}");
        let mut joining = Join::consumer(&group, "", &[&topic]);
        let mut joined = join_v(&mut client, &joining, version).await;
        let id;
        if version >= 4 {
            assert_eq!(
                joined.error_code, MEMBER_ID_REQUIRED,
                "JoinGroup v{version}"
            );
            id = joined.member_id.to_string();
            joining.member_id = &id;
            joined = join_v(&mut client, &joining, version).await;
        } else {
            id = joined.member_id.to_string();
        }
        assert_eq!(
            (joined.error_code, joined.generation_id),
            (NONE, 1),
            "JoinGroup v{version}"
        );
        assert_eq!(joined.members.len(), 1, "JoinGroup v{version}");
        let sync_version = version.min(5);
        let synced = sync_v(&mut client, &group, 1, &id, &[(&id, b"a")], sync_version).await;
        assert_eq!(
            (synced.error_code, &synced.assignment[..]),
            (NONE, &b"a"[..]),
            "SyncGroup v{sync_version}"
        );
        let hb_version = version.min(4);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(1)
            .with_member_id(s(&id));
        let ResponseKind::Heartbeat(r) = client.call(ApiKey::Heartbeat, hb_version, &hb).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, NONE, "Heartbeat v{hb_version}");
        let commit_version = version.clamp(2, 9);
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id_or_member_epoch(1)
            .with_member_id(s(&id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(i64::from(version) + 100)])]);
        let ResponseKind::OffsetCommit(r) = client
            .call(ApiKey::OffsetCommit, commit_version, &commit)
            .await
        else {
            panic!()
        };
        assert_eq!(
            r.topics[0].partitions[0].error_code, NONE,
            "OffsetCommit v{commit_version}"
        );
        let fetch_version = version.clamp(1, 9);
        let fetched = if fetch_version >= 8 {
            let request =
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s(&topic)))
                        .with_partition_indexes(vec![0])]))]);
            let ResponseKind::OffsetFetch(r) = client
                .call(ApiKey::OffsetFetch, fetch_version, &request)
                .await
            else {
                panic!()
            };
            r.groups[0].topics[0].partitions[0].committed_offset
        } else {
            let request = OffsetFetchRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(&topic)))
                    .with_partition_indexes(vec![0])]));
            let ResponseKind::OffsetFetch(r) = client
                .call(ApiKey::OffsetFetch, fetch_version, &request)
                .await
            else {
                panic!()
            };
            r.topics[0].partitions[0].committed_offset
        };
        assert_eq!(
            fetched,
            i64::from(version) + 100,
            "OffsetFetch v{fetch_version}"
        );
        let describe_version = version.min(5);
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]);
        let ResponseKind::DescribeGroups(r) = client
            .call(ApiKey::DescribeGroups, describe_version, &request)
            .await
        else {
            panic!()
        };
        assert_eq!(
            r.groups[0].group_state.to_string(),
            "Stable",
            "DescribeGroups v{describe_version}"
        );
        let list_version = version.min(5);
        let ResponseKind::ListGroups(r) = client
            .call(
                ApiKey::ListGroups,
                list_version,
                &ListGroupsRequest::default(),
            )
            .await
        else {
            panic!()
        };
        assert!(
            r.groups.iter().any(|g| g.group_id.to_string() == group),
            "ListGroups v{list_version}"
        );
        let leave_version = version.min(5);
        let leave = if leave_version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&id))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(s(&id))
        };
        let ResponseKind::LeaveGroup(r) =
            client.call(ApiKey::LeaveGroup, leave_version, &leave).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, NONE, "LeaveGroup v{leave_version}");
        if version == 0 {
            let request = OffsetDeleteRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s(&topic)))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default(),
                        ]),
                ]);
            let ResponseKind::OffsetDelete(r) =
                client.call(ApiKey::OffsetDelete, 0, &request).await
            else {
                panic!()
            };
            assert_eq!(
                r.topics[0].partitions[0].error_code, NONE,
                "OffsetDelete v0"
            );
        }
        let delete_version = version.min(2);
        let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
        let ResponseKind::DeleteGroups(r) = client
            .call(ApiKey::DeleteGroups, delete_version, &request)
            .await
        else {
            panic!()
        };
        assert_eq!(
            r.results[0].error_code, NONE,
            "DeleteGroups v{delete_version}"
        );
    }
}
