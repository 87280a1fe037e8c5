//! Topic administration over the wire: CreateTopics (each kind of error,
//! validate_only, configs), DeleteTopics, Metadata's topics and auto-creation,
//! and ApiVersions.

mod common;

use common::{name, unique_topic, Backend, TestBroker, TestClient};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

async fn metadata(
    client: &mut TestClient,
    topics: Option<Vec<&str>>,
    auto_create: bool,
) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|t| {
            t.into_iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(auto_create);
    let ResponseKind::Metadata(response) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    response
}

async fn create(
    client: &mut TestClient,
    version: i16,
    request: CreateTopicsRequest,
) -> Vec<(i16, Option<String>)> {
    let ResponseKind::CreateTopics(response) =
        client.call(ApiKey::CreateTopics, version, &request).await
    else {
        panic!("not a CreateTopics response")
    };
    response
        .topics
        .into_iter()
        .map(|t| (t.error_code, t.error_message.map(|m| m.to_string())))
        .collect()
}

fn topic(n: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(n))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

#[tokio::test]
async fn api_versions_lists_the_served_apis() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    for version in [0, 3, 4] {
        let ResponseKind::ApiVersions(response) = client
            .call(
                ApiKey::ApiVersions,
                version,
                &ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("t"))
                    .with_client_software_version(StrBytes::from_static_str("1")),
            )
            .await
        else {
            panic!()
        };
        assert_eq!(response.error_code, 0);
        let produce = response
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 13));
        // Transactions with the client's AddPartitionsToTxn (v4+ is the
        // brokers' form), and transaction version 2 finalized, which Kafka 4
        // clients look for before using its flow.
        let add = response
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::AddPartitionsToTxn as i16)
            .unwrap();
        assert_eq!((add.min_version, add.max_version), (0, 3));
        if version >= 3 {
            let finalized: Vec<(&str, i16, i16)> = response
                .finalized_features
                .iter()
                .map(|f| (f.name.as_str(), f.min_version_level, f.max_version_level))
                .collect();
            assert_eq!(finalized, vec![("transaction.version", 2, 2)]);
        }
    }
}

#[tokio::test]
async fn metadata_names_this_agent_and_stable_topic_ids() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let t = unique_topic("meta");
    let response = metadata(&mut client, Some(vec![&t]), true).await;
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, i32::from(broker.addr.port()));
    assert_eq!(response.controller_id, response.brokers[0].node_id);
    let cluster_id = response.cluster_id.clone().expect("cluster id");
    assert!(!cluster_id.is_empty());
    let first = &response.topics[0];
    assert_eq!(first.error_code, 0);
    assert_eq!(
        first.partitions.len(),
        1,
        "auto-created with the default partition count"
    );
    assert!(!first.topic_id.is_nil());
    let again = metadata(&mut client, None, false).await;
    let listed = again
        .topics
        .iter()
        .find(|x| x.name.as_ref().map(|n| n.0.as_str()) == Some(t.as_str()))
        .unwrap();
    assert_eq!(listed.topic_id, first.topic_id, "topic id is stable");
    assert_eq!(again.cluster_id, Some(cluster_id), "cluster id is stable");
}

#[tokio::test]
async fn metadata_without_auto_create_reports_unknown_topics() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let response = metadata(&mut client, Some(vec!["never-created"]), false).await;
    assert_eq!(
        response.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let response = metadata(&mut client, Some(vec!["bad/name"]), true).await;
    assert_eq!(response.topics[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");
}

#[tokio::test]
async fn auto_creation_can_be_disabled_on_the_broker() {
    let broker =
        TestBroker::start_with(Backend::Embedded, |cli| cli.auto_create_topics = false).await;
    let mut client = broker.client().await;
    let response = metadata(&mut client, Some(vec!["wanted"]), true).await;
    assert_eq!(response.topics[0].error_code, 3);
}

#[tokio::test]
async fn create_topics_reports_each_kind_of_error() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let existing = unique_topic("exists");
    assert_eq!(
        create(
            &mut client,
            7,
            CreateTopicsRequest::default().with_topics(vec![topic(&existing, 3)])
        )
        .await[0]
            .0,
        0
    );
    let dup = unique_topic("dup");
    let results = create(
        &mut client,
        7,
        CreateTopicsRequest::default().with_topics(vec![
            topic(&existing, 3),
            topic("bad name!", 1),
            topic(&unique_topic("zero"), 0),
            topic(&unique_topic("neg"), -5),
            topic(&dup, 1),
            topic(&dup, 1),
        ]),
    )
    .await;
    let codes: Vec<i16> = results.iter().map(|r| r.0).collect();
    assert_eq!(codes, vec![36, 17, 37, 37, 42, 42]);
    assert!(
        results.iter().all(|r| r.1.is_some()),
        "every error has a message"
    );
}

#[tokio::test]
async fn create_topics_validate_only_creates_nothing() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let t = unique_topic("dry");
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic(&t, 4)])
        .with_validate_only(true);
    assert_eq!(create(&mut client, 7, request).await[0].0, 0);
    let response = metadata(&mut client, Some(vec![&t]), false).await;
    assert_eq!(response.topics[0].error_code, 3, "not created");
}

#[tokio::test]
async fn create_topics_v5_reports_configs_and_partitions() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let t = unique_topic("configs");
    let request =
        CreateTopicsRequest::default().with_topics(vec![topic(&t, 2).with_configs(vec![
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_value(Some(StrBytes::from_static_str("compact"))),
        ])]);
    let ResponseKind::CreateTopics(response) = client.call(ApiKey::CreateTopics, 5, &request).await
    else {
        panic!()
    };
    let result = &response.topics[0];
    assert_eq!(result.num_partitions, 2);
    assert_eq!(result.error_message, None, "a success carries no message");
    let configs = result.configs.as_ref().unwrap();
    let policy = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(policy.value.as_deref(), Some("compact"));
    assert_eq!(policy.config_source, 1, "set on the topic");
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("604800000"), 5)
    );
}

#[tokio::test]
async fn delete_topics_then_recreate_starts_afresh() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let t = unique_topic("del");
    create(
        &mut client,
        7,
        CreateTopicsRequest::default().with_topics(vec![topic(&t, 1)]),
    )
    .await;
    let first_id = metadata(&mut client, Some(vec![&t]), false).await.topics[0].topic_id;
    let request =
        DeleteTopicsRequest::default().with_topic_names(vec![name(&t), name("never-existed")]);
    let ResponseKind::DeleteTopics(response) = client.call(ApiKey::DeleteTopics, 4, &request).await
    else {
        panic!()
    };
    let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 3]);
    assert_eq!(
        metadata(&mut client, Some(vec![&t]), false).await.topics[0].error_code,
        3
    );
    create(
        &mut client,
        7,
        CreateTopicsRequest::default().with_topics(vec![topic(&t, 1)]),
    )
    .await;
    let second_id = metadata(&mut client, Some(vec![&t]), false).await.topics[0].topic_id;
    assert_ne!(first_id, second_id, "a recreated topic gets a new id");
}

#[tokio::test]
async fn delete_topics_v6_by_unknown_id_is_unknown_topic_id() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let request =
        DeleteTopicsRequest::default()
            .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                .with_topic_id(uuid::Uuid::new_v4())]);
    let ResponseKind::DeleteTopics(response) = client.call(ApiKey::DeleteTopics, 6, &request).await
    else {
        panic!()
    };
    assert_eq!(response.responses[0].error_code, 100, "UNKNOWN_TOPIC_ID");
}

#[tokio::test]
async fn internal_topic_names_are_never_created_written_or_deleted() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    for internal in ["__consumer_offsets", "__transaction_state"] {
        let created = create(
            &mut client,
            7,
            CreateTopicsRequest::default().with_topics(vec![topic(internal, 3)]),
        )
        .await;
        assert_eq!(created[0].0, 42, "INVALID_REQUEST: {created:?}");
        assert!(
            created[0].1.as_deref().unwrap_or("").contains("prohibited"),
            "{created:?}"
        );
        // An auto-creating lookup does not create it either: the agent
        // created `__consumer_offsets` at start, `__transaction_state` never.
        let looked_up = metadata(&mut client, Some(vec![internal]), true).await;
        let exists = internal == "__consumer_offsets";
        assert_eq!(
            looked_up.topics[0].error_code,
            if exists { 0 } else { 3 },
            "UNKNOWN_TOPIC_OR_PARTITION unless created at start"
        );
        let request = DeleteTopicsRequest::default().with_topic_names(vec![name(internal)]);
        let ResponseKind::DeleteTopics(deleted) =
            client.call(ApiKey::DeleteTopics, 4, &request).await
        else {
            panic!("not a DeleteTopics response")
        };
        assert_eq!(deleted.responses[0].error_code, 42, "INVALID_REQUEST");
        let batch = common::record_batch(1, 0, 1_000, kafka_protocol::records::Compression::None);
        assert_eq!(
            common::produce(&mut client, internal, 0, batch).await.0,
            17,
            "INVALID_TOPIC_EXCEPTION"
        );
    }
    let all = metadata(&mut client, None, false).await;
    let listed: Vec<_> = all
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.as_str(), t.partitions.len()))
        .collect();
    assert_eq!(listed, vec![("__consumer_offsets", 1)]);
}

/// Produce v13 and Fetch v13+ name topics by id: an id of a deleted topic is
/// UNKNOWN_TOPIC_ID even once a topic of the same name exists again.
#[tokio::test]
async fn topic_ids_on_produce_and_fetch_never_reach_a_recreated_topic() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::records::Compression;

    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let t = unique_topic("by-id");
    let create_one = CreateTopicsRequest::default().with_topics(vec![topic(&t, 1)]);
    create(&mut client, 7, create_one.clone()).await;
    let old_id = metadata(&mut client, Some(vec![&t]), false).await.topics[0].topic_id;

    let produce = |id: uuid::Uuid| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_topic_id(id)
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(common::record_batch(
                        3,
                        0,
                        1,
                        Compression::None,
                    )))])])
    };
    let fetch = |id: uuid::Uuid| {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])])
    };
    let produce_code = |r: ResponseKind| match r {
        ResponseKind::Produce(r) => (
            r.responses[0].topic_id,
            r.responses[0].partition_responses[0].error_code,
        ),
        _ => panic!("not a Produce response"),
    };
    let fetch_answer = |r: ResponseKind| match r {
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            (r.responses[0].topic_id, p.error_code, p.high_watermark)
        }
        _ => panic!("not a Fetch response"),
    };

    let r = client.call(ApiKey::Produce, 13, &produce(old_id)).await;
    assert_eq!(produce_code(r), (old_id, 0));
    let r = client.call(ApiKey::Fetch, 17, &fetch(old_id)).await;
    assert_eq!(fetch_answer(r), (old_id, 0, 3));

    let request = DeleteTopicsRequest::default().with_topic_names(vec![name(&t)]);
    client.call(ApiKey::DeleteTopics, 4, &request).await;
    create(&mut client, 7, create_one).await;
    let new_id = metadata(&mut client, Some(vec![&t]), false).await.topics[0].topic_id;
    assert_ne!(old_id, new_id);

    // UNKNOWN_TOPIC_ID (100) for the old id, on both APIs and every version
    // that names topics by id.
    for version in 13..=18 {
        let r = client.call(ApiKey::Fetch, version, &fetch(old_id)).await;
        assert_eq!(fetch_answer(r), (old_id, 100, -1), "Fetch v{version}");
    }
    let r = client.call(ApiKey::Produce, 13, &produce(old_id)).await;
    assert_eq!(produce_code(r), (old_id, 100));
    // The new topic under the same name is empty, and is written by its own id.
    let r = client.call(ApiKey::Fetch, 18, &fetch(new_id)).await;
    assert_eq!(fetch_answer(r), (new_id, 0, 0));
    let r = client.call(ApiKey::Produce, 13, &produce(new_id)).await;
    assert_eq!(produce_code(r), (new_id, 0));
}
