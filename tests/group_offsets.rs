//! Committed offsets and group administration over the wire: OffsetCommit and
//! OffsetFetch (both forms), ListGroups, DescribeGroups, DeleteGroups,
//! OffsetDelete, group state and offsets across a restart on both backends.

mod common;

use common::groups::*;
use common::{create_topic, on_both_backends, s, unique_topic, Backend, TestBroker, TestClient};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;

on_both_backends!(group_state_and_offsets_survive_a_restart);

async fn broker(backend: Backend) -> TestBroker {
    TestBroker::start_with(backend, |cli| cli.group_initial_rebalance_delay_ms = 0).await
}

/// One member joined and synced; returns its id (generation 1).
async fn stable_member(client: &mut TestClient, group: &str, topic: &str) -> String {
    let joined = join_new(client, Join::consumer(group, "", &[topic])).await;
    let id = joined.member_id.to_string();
    // Between the join and the leader's SyncGroup, commits wait for the assignment.
    assert_eq!(
        commit(client, group, 1, &id, &[(topic, 0, 1, "")]).await,
        vec![(topic.to_owned(), 0, REBALANCE_IN_PROGRESS)]
    );
    let synced = sync(client, group, 1, &id, &[(&id, b"assignment")]).await;
    assert_eq!(synced.error_code, NONE);
    id
}

#[tokio::test]
async fn committed_offsets_are_fetched_back_with_their_metadata() {
    let broker = broker(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("t");
    create_topic(&mut client, &topic, 3).await;
    let group = unique_topic("g");
    let id = stable_member(&mut client, &group, &topic).await;
    let committed = commit(
        &mut client,
        &group,
        1,
        &id,
        &[
            (&topic, 0, 42, "meta"),
            (&topic, 2, 7, ""),
            (&topic, 3, 1, ""),
            ("missing", 0, 1, ""),
        ],
    )
    .await;
    assert_eq!(
        committed,
        vec![
            (topic.clone(), 0, NONE),
            (topic.clone(), 2, NONE),
            (topic.clone(), 3, UNKNOWN_TOPIC_OR_PARTITION),
            ("missing".to_owned(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    let fetched = fetch(&mut client, &group, Some(&[(&topic, &[0, 1, 2])])).await;
    assert_eq!(
        fetched,
        vec![
            (topic.clone(), 0, 42, "meta".to_owned()),
            (topic.clone(), 1, -1, String::new()),
            (topic.clone(), 2, 7, String::new()),
        ]
    );
    // A null topic list means every committed offset.
    assert_eq!(fetch(&mut client, &group, None).await.len(), 2);
    // Errors of the member and generation apply to every partition.
    assert_eq!(
        commit(&mut client, &group, 5, &id, &[(&topic, 0, 1, "")]).await,
        vec![(topic.clone(), 0, ILLEGAL_GENERATION)]
    );
    assert_eq!(
        commit(&mut client, &group, 1, "stranger", &[(&topic, 0, 1, "")]).await,
        vec![(topic.clone(), 0, UNKNOWN_MEMBER_ID)]
    );
    assert_eq!(
        commit(
            &mut client,
            &unique_topic("never"),
            3,
            "x",
            &[(&topic, 0, 1, "")]
        )
        .await,
        vec![(topic.clone(), 0, ILLEGAL_GENERATION)]
    );
    // A group outside group management (generation -1) commits freely.
    let simple = unique_topic("simple");
    assert_eq!(
        commit(&mut client, &simple, -1, "", &[(&topic, 1, 9, "m")]).await,
        vec![(topic.clone(), 1, NONE)]
    );
    assert_eq!(
        fetch(&mut client, &simple, None).await,
        vec![(topic.clone(), 1, 9, "m".to_owned())]
    );
    // The multi-group form (v8+).
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(&group)))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s(&topic)))
                .with_partition_indexes(vec![0])])),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(&simple)))
            .with_topics(None),
    ]);
    let ResponseKind::OffsetFetch(r) = client.call(ApiKey::OffsetFetch, 9, &request).await else {
        panic!()
    };
    let offsets: Vec<(String, i64)> = r
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.topics[0].partitions[0].committed_offset,
            )
        })
        .collect();
    assert_eq!(offsets, vec![(group.clone(), 42), (simple.clone(), 9)]);
}

#[tokio::test]
async fn groups_are_listed_described_and_deleted_only_when_empty() {
    let broker = broker(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("t");
    create_topic(&mut client, &topic, 2).await;
    let group = unique_topic("g");
    let id = stable_member(&mut client, &group, &topic).await;
    let simple = unique_topic("simple");
    commit(&mut client, &simple, -1, "", &[(&topic, 0, 3, "")]).await;
    let list = |states: Vec<&str>| {
        ListGroupsRequest::default().with_states_filter(states.into_iter().map(s).collect())
    };
    let ResponseKind::ListGroups(r) = client.call(ApiKey::ListGroups, 5, &list(vec![])).await
    else {
        panic!()
    };
    let mut listed: Vec<(String, String, String, String)> = r
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            group.clone(),
            "consumer".to_owned(),
            "Stable".to_owned(),
            "classic".to_owned(),
        ),
        (
            simple.clone(),
            String::new(),
            "Empty".to_owned(),
            "classic".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    let ResponseKind::ListGroups(r) = client
        .call(ApiKey::ListGroups, 4, &list(vec!["empty"]))
        .await
    else {
        panic!()
    };
    assert_eq!(
        r.groups
            .iter()
            .map(|g| g.group_id.to_string())
            .collect::<Vec<_>>(),
        vec![simple.clone()]
    );
    let described = describe(&mut client, &group).await;
    assert_eq!(described.members.len(), 1);
    assert_eq!(
        described.members[0].member_metadata,
        subscription(&[&topic])
    );
    assert_eq!(&described.members[0].member_assignment[..], b"assignment");
    assert_eq!(
        described.members[0].client_host.as_str(),
        "/127.0.0.1",
        "the member's address as Kafka prints it"
    );
    assert_eq!(
        describe(&mut client, "unknown")
            .await
            .group_state
            .to_string(),
        "Dead"
    );
    // OffsetDelete: the subscribed topic is refused while the group has members.
    commit(&mut client, &group, 1, &id, &[(&topic, 0, 5, "")]).await;
    let other = unique_topic("other");
    create_topic(&mut client, &other, 1).await;
    commit(&mut client, &group, 1, &id, &[(&other, 0, 6, "")]).await;
    let delete_offsets = |topics: Vec<&str>| {
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_topics(
                topics
                    .into_iter()
                    .map(|t| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(vec![
                                OffsetDeleteRequestPartition::default().with_partition_index(0)
                            ])
                    })
                    .collect(),
            )
    };
    let ResponseKind::OffsetDelete(r) = client
        .call(
            ApiKey::OffsetDelete,
            0,
            &delete_offsets(vec![&topic, &other]),
        )
        .await
    else {
        panic!()
    };
    assert_eq!(r.error_code, NONE);
    let errors: Vec<i16> = r
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(errors, vec![GROUP_SUBSCRIBED_TO_TOPIC, NONE]);
    assert_eq!(
        fetch(&mut client, &group, None).await,
        vec![(topic.clone(), 0, 5, String::new())]
    );
    // DeleteGroups: not while members remain.
    let delete = |g: &str| DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(g))]);
    let ResponseKind::DeleteGroups(r) = client.call(ApiKey::DeleteGroups, 2, &delete(&group)).await
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, NON_EMPTY_GROUP);
    assert_eq!(leave(&mut client, &group, &id).await, NONE);
    let ResponseKind::OffsetDelete(r) = client
        .call(ApiKey::OffsetDelete, 0, &delete_offsets(vec![&topic]))
        .await
    else {
        panic!()
    };
    assert_eq!(
        r.topics[0].partitions[0].error_code, NONE,
        "an empty group may delete any offset"
    );
    let ResponseKind::DeleteGroups(r) = client.call(ApiKey::DeleteGroups, 2, &delete(&group)).await
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, NONE);
    let ResponseKind::DeleteGroups(r) = client.call(ApiKey::DeleteGroups, 2, &delete(&group)).await
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        fetch(&mut client, &group, None).await,
        vec![],
        "offsets went with the group"
    );
}

async fn group_state_and_offsets_survive_a_restart(backend: Backend) {
    let broker = broker(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("t");
    create_topic(&mut client, &topic, 1).await;
    let group = unique_topic("g");
    let id = stable_member(&mut client, &group, &topic).await;
    commit(
        &mut client,
        &group,
        1,
        &id,
        &[(&topic, 0, 11, "before restart")],
    )
    .await;
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    // The member carries on with its generation: no error a client would surface.
    assert_eq!(heartbeat(&mut client, &group, 1, &id).await, NONE);
    let synced = sync(&mut client, &group, 1, &id, &[]).await;
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (NONE, &b"assignment"[..])
    );
    assert_eq!(
        fetch(&mut client, &group, None).await,
        vec![(topic.clone(), 0, 11, "before restart".to_owned())]
    );
    let described = describe(&mut client, &group).await;
    assert_eq!(described.group_state.to_string(), "Stable");
    assert_eq!(described.protocol_type.to_string(), "consumer");
    assert_eq!(described.protocol_data.to_string(), "range");
    assert_eq!(
        described.members[0].member_metadata,
        subscription(&[&topic])
    );
    assert_eq!(
        commit(&mut client, &group, 1, &id, &[(&topic, 0, 12, "")]).await,
        vec![(topic.clone(), 0, NONE)]
    );
    assert_eq!(
        heartbeat(&mut client, &group, 0, &id).await,
        ILLEGAL_GENERATION
    );
}
