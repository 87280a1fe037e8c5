//! OffsetCommit and OffsetFetch v10, which name topics by id: commits and
//! fetches by id, UNKNOWN_TOPIC_ID for an id no topic has (also the id of a
//! topic deleted and created again under its name), and ids in the answers
//! to a fetch of every committed offset, on both backends.

mod common;

use common::groups::{join_new, sync, Join, ILLEGAL_GENERATION, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use common::TestClient;
use common::{create_topic, name, on_both_backends, s, unique_topic, Backend, TestBroker};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use streamhouse_protocol::topic_id_offsets::ByTopicId;
use uuid::Uuid;

on_both_backends!(offsets_are_committed_and_fetched_by_topic_id);

const UNKNOWN_TOPIC_ID: i16 = 100;

async fn topic_id(client: &mut TestClient, topic: &str) -> Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let ResponseKind::Metadata(response) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    response.topics[0].topic_id
}

/// A commit of (partition, offset) pairs of one topic by id, outside group
/// management (generation -1); the answered (topic id, partition, error).
async fn commit(
    client: &mut TestClient,
    group: &str,
    id: Uuid,
    offsets: &[(i32, i64)],
) -> Vec<(Uuid, i32, i16)> {
    commit_as(client, group, (-1, ""), id, offsets).await
}

/// A commit by a member: (generation, member id).
async fn commit_as(
    client: &mut TestClient,
    group: &str,
    (generation, member): (i32, &str),
    id: Uuid,
    offsets: &[(i32, i64)],
) -> Vec<(Uuid, i32, i16)> {
    let mut topic = OffsetCommitRequestTopic::default().with_partitions(
        offsets
            .iter()
            .map(|(p, o)| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
            })
            .collect(),
    );
    topic.topic_id = id;
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![topic]);
    let ResponseKind::OffsetCommit(response) = client
        .call(ApiKey::OffsetCommit, 10, &ByTopicId(&request))
        .await
    else {
        panic!("not an OffsetCommit response")
    };
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic_id, p.partition_index, p.error_code))
        })
        .collect()
}

/// One group's offsets by id (None: every committed one); the answered
/// (topic id, partition, offset, error).
async fn fetch(
    client: &mut TestClient,
    group: &str,
    wanted: Option<&[(Uuid, &[i32])]>,
) -> Vec<(Uuid, i32, i64, i16)> {
    let topics = wanted.map(|topics| {
        topics
            .iter()
            .map(|(id, partitions)| {
                let mut topic =
                    OffsetFetchRequestTopics::default().with_partition_indexes(partitions.to_vec());
                topic.topic_id = *id;
                topic
            })
            .collect()
    });
    let request =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_member_epoch(-1)
            .with_topics(topics)]);
    let ResponseKind::OffsetFetch(response) = client
        .call(ApiKey::OffsetFetch, 10, &ByTopicId(&request))
        .await
    else {
        panic!("not an OffsetFetch response")
    };
    let group = &response.groups[0];
    assert_eq!(group.error_code, NONE);
    group
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.topic_id,
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )
            })
        })
        .collect()
}

async fn offsets_are_committed_and_fetched_by_topic_id(backend: Backend) {
    let broker =
        TestBroker::start_with(backend, |cli| cli.group_initial_rebalance_delay_ms = 0).await;
    let mut client = broker.client().await;
    let topic = unique_topic("by-id");
    create_topic(&mut client, &topic, 2).await;
    let id = topic_id(&mut client, &topic).await;
    let group = unique_topic("g");

    assert_eq!(
        commit(&mut client, &group, id, &[(0, 17), (1, 4), (2, 1)]).await,
        vec![
            (id, 0, NONE),
            (id, 1, NONE),
            (id, 2, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    let stranger = Uuid::new_v4();
    assert_eq!(
        commit(&mut client, &group, stranger, &[(0, 5)]).await,
        vec![(stranger, 0, UNKNOWN_TOPIC_ID)]
    );
    assert_eq!(
        fetch(
            &mut client,
            &group,
            Some(&[(id, &[0, 1]), (stranger, &[0])])
        )
        .await,
        vec![
            (id, 0, 17, NONE),
            (id, 1, 4, NONE),
            (stranger, 0, -1, UNKNOWN_TOPIC_ID)
        ]
    );
    // Every committed offset, each topic named by its id.
    assert_eq!(
        fetch(&mut client, &group, None).await,
        vec![(id, 0, 17, NONE), (id, 1, 4, NONE)]
    );
    // The v9 form still names topics: the same offsets.
    let request =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(&group)))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(name(&topic))
                .with_partition_indexes(vec![0])]))]);
    let ResponseKind::OffsetFetch(response) = client.call(ApiKey::OffsetFetch, 9, &request).await
    else {
        panic!()
    };
    assert_eq!(
        response.groups[0].topics[0].partitions[0].committed_offset,
        17
    );

    // A topic deleted and created again under its name has a new id: the old
    // one is unknown, never taken for the new topic.
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)]);
    client.call(ApiKey::DeleteTopics, 4, &delete).await;
    create_topic(&mut client, &topic, 1).await;
    let new_id = topic_id(&mut client, &topic).await;
    assert_ne!(new_id, id);
    assert_eq!(
        commit(&mut client, &group, id, &[(0, 99)]).await,
        vec![(id, 0, UNKNOWN_TOPIC_ID)]
    );
    assert_eq!(
        commit(&mut client, &group, new_id, &[(0, 3)]).await,
        vec![(new_id, 0, NONE)]
    );
    assert_eq!(
        fetch(&mut client, &group, Some(&[(new_id, &[0])])).await,
        vec![(new_id, 0, 3, NONE)]
    );

    // A member of a group commits by id too; its generation is checked.
    let managed = unique_topic("managed");
    let joined = join_new(&mut client, Join::consumer(&managed, "", &[&topic])).await;
    let member = joined.member_id.to_string();
    let synced = sync(&mut client, &managed, 1, &member, &[(&member, b"a")]).await;
    assert_eq!(synced.error_code, NONE);
    assert_eq!(
        commit_as(&mut client, &managed, (1, &member), new_id, &[(0, 8)]).await,
        vec![(new_id, 0, NONE)]
    );
    assert_eq!(
        commit_as(&mut client, &managed, (2, &member), new_id, &[(0, 9)]).await,
        vec![(new_id, 0, ILLEGAL_GENERATION)]
    );
    assert_eq!(
        fetch(&mut client, &managed, None).await,
        vec![(new_id, 0, 8, NONE)]
    );
}
