//! Kafka's internal topics over the wire, on both backends: `__consumer_offsets`
//! exists from an agent's start, compacted, and Metadata (every version with
//! the field) and DescribeTopicPartitions mark it internal; it reads as an
//! empty topic and refuses produce, creation and deletion. `__transaction_state`
//! stays reserved and absent. Agents starting together on one fresh catalog
//! all come up, with one `__consumer_offsets` between them.

mod common;

use common::admin::{self, TOPIC};
use common::{
    create_topic, fetch, fetch_request, list_offset, name, on_both_backends, produce, record_batch,
    unique_topic, versions, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const OFFSETS: &str = "__consumer_offsets";
const TRANSACTIONS: &str = "__transaction_state";

on_both_backends!(
    metadata_marks_consumer_offsets_internal_at_every_version,
    consumer_offsets_reads_empty_and_refuses_writes_and_deletion,
    agents_starting_together_all_come_up_with_one_consumer_offsets,
);

/// Metadata for every topic (v0 asks with an empty list, later versions with
/// a null one): (name, error, partitions, is_internal) of each.
async fn all_topics(client: &mut TestClient, version: i16) -> Vec<(String, i16, usize, bool)> {
    let request = MetadataRequest::default().with_topics((version == 0).then(Vec::new));
    let ResponseKind::Metadata(response) = client.call(ApiKey::Metadata, version, &request).await
    else {
        panic!("not a Metadata response")
    };
    response
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
                t.partitions.len(),
                t.is_internal,
            )
        })
        .collect()
}

/// The error code of looking up `topic` by name with auto-creation on.
async fn auto_creating_lookup(client: &mut TestClient, topic: &str) -> i16 {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(true);
    let ResponseKind::Metadata(response) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    response.topics[0].error_code
}

async fn metadata_marks_consumer_offsets_internal_at_every_version(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let user = unique_topic("user");
    create_topic(&mut client, &user, 2).await;

    for version in versions(ApiKey::Metadata) {
        let topics = all_topics(&mut client, version).await;
        // v0 has no is_internal: it decodes as false.
        let internal = version >= 1;
        assert!(
            topics.contains(&(OFFSETS.to_string(), 0, 1, internal)),
            "v{version}: {topics:?}"
        );
        assert!(
            topics.contains(&(user.clone(), 0, 2, false)),
            "v{version}: {topics:?}"
        );
        assert_eq!(topics.len(), 2, "v{version}: {topics:?}");
    }

    // DescribeTopicPartitions, of every topic and of the two by name.
    for topics in [vec![], vec![OFFSETS, user.as_str()]] {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| TopicRequest::default().with_name(name(t)))
                    .collect(),
            )
            .with_response_partition_limit(100);
        let ResponseKind::DescribeTopicPartitions(r) = client
            .call(ApiKey::DescribeTopicPartitions, 0, &request)
            .await
        else {
            panic!("not a DescribeTopicPartitions response")
        };
        let described: Vec<_> = r
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.is_internal))
            .collect();
        assert_eq!(
            described,
            vec![(OFFSETS.to_string(), true), (user.clone(), false)]
        );
    }

    // Kafka's topic config of it.
    let configs = admin::describe(&mut client, 4, TOPIC, OFFSETS, Some(&["cleanup.policy"])).await;
    assert_eq!(configs.error_code, 0);
    assert_eq!(admin::config(&configs, "cleanup.policy").0, "compact");
}

async fn consumer_offsets_reads_empty_and_refuses_writes_and_deletion(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;

    let batch = record_batch(1, 0, 1_000, Compression::None);
    assert_eq!(
        produce(&mut client, OFFSETS, 0, batch).await.0,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    let read = fetch(&mut client, &fetch_request(OFFSETS, 0, 0, 0)).await;
    assert_eq!(read.error_code, 0);
    assert_eq!((read.high_watermark, read.log_start_offset), (0, 0));
    assert!(read.records.as_ref().is_none_or(|r| r.is_empty()));
    assert_eq!(list_offset(&mut client, OFFSETS, -2).await, (0, 0));
    assert_eq!(list_offset(&mut client, OFFSETS, -1).await, (0, 0));

    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(OFFSETS))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let ResponseKind::CreateTopics(created) = client.call(ApiKey::CreateTopics, 7, &create).await
    else {
        panic!("not a CreateTopics response")
    };
    assert_eq!(created.topics[0].error_code, 42, "INVALID_REQUEST");

    let id = {
        let ResponseKind::Metadata(m) = client
            .call(
                ApiKey::Metadata,
                12,
                &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default(
                )
                .with_name(Some(name(OFFSETS)))])),
            )
            .await
        else {
            panic!("not a Metadata response")
        };
        m.topics[0].topic_id
    };
    let by_name = DeleteTopicsRequest::default().with_topic_names(vec![name(OFFSETS)]);
    let by_id = DeleteTopicsRequest::default().with_topics(vec![
        delete_topics_request::DeleteTopicState::default().with_topic_id(id),
    ]);
    for (version, request) in [(4, by_name), (6, by_id)] {
        let ResponseKind::DeleteTopics(deleted) =
            client.call(ApiKey::DeleteTopics, version, &request).await
        else {
            panic!("not a DeleteTopics response")
        };
        assert_eq!(
            deleted.responses[0].error_code, 42,
            "v{version}: INVALID_REQUEST"
        );
    }

    // An auto-creating lookup finds `__consumer_offsets` and still never
    // creates `__transaction_state`.
    assert_eq!(auto_creating_lookup(&mut client, OFFSETS).await, 0);
    assert_eq!(
        auto_creating_lookup(&mut client, TRANSACTIONS).await,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let names: Vec<String> = all_topics(&mut client, 12)
        .await
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(names, vec![OFFSETS.to_string()]);
}

async fn agents_starting_together_all_come_up_with_one_consumer_offsets(backend: Backend) {
    let agents = TestBroker::start_together(backend, 3)
        .await
        .expect("every agent starts");
    for agent in &agents {
        let mut client = agent.client().await;
        let topics = all_topics(&mut client, 12).await;
        assert_eq!(topics, vec![(OFFSETS.to_string(), 0, 1, true)]);
    }
    let catalog = streamhouse_metadata::open(&agents[0].catalog_url)
        .await
        .unwrap();
    let listed = catalog.list_topics().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}
