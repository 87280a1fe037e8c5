//! Reading configs over the wire: DescribeConfigs of topics and the broker,
//! config validation at CreateTopics, on both backends; and every advertised
//! version of the three config APIs.

mod common;

use common::admin::*;
use common::{
    create_topic, create_topic_with, on_both_backends, unique_topic, versions, Backend, TestBroker,
};
use kafka_protocol::messages::*;
use streamhouse::config::topic::TOPIC_CONFIGS;

on_both_backends!(
    describe_reports_every_topic_config_with_its_source,
    create_topics_refuses_invalid_configs,
    broker_configs_are_described_read_only,
);

async fn describe_reports_every_topic_config_with_its_source(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("describe");
    assert_eq!(
        create_topic_with(
            &mut client,
            &t,
            1,
            &[("cleanup.policy", "compact"), ("retention.ms", "1000")]
        )
        .await
        .0,
        0
    );

    let result = describe(&mut client, 4, TOPIC, &t, None).await;
    assert_eq!(
        (
            result.error_code,
            result.resource_type,
            result.resource_name.as_str()
        ),
        (0, TOPIC, t.as_str())
    );
    assert_eq!(
        result.configs.len(),
        TOPIC_CONFIGS.len(),
        "every Kafka topic config"
    );
    assert_eq!(config(&result, "cleanup.policy"), ("compact".into(), 1));
    assert_eq!(config(&result, "retention.ms"), ("1000".into(), 1));
    assert_eq!(config(&result, "segment.bytes"), ("1073741824".into(), 5));
    assert_eq!(config(&result, "max.message.bytes"), ("1048588".into(), 5));
    let retention = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(
        (
            retention.read_only,
            retention.is_sensitive,
            retention.config_type
        ),
        (false, false, 5),
        "LONG"
    );
    let synonyms: Vec<(String, Option<String>, i8)> = retention
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_ref().map(|v| v.to_string()),
                s.source,
            )
        })
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("retention.ms".into(), Some("1000".into()), 1),
            ("retention.ms".into(), Some("604800000".into()), 5)
        ]
    );
    assert!(retention.documentation.is_some());
    let policy = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(policy.config_type, 7, "LIST");

    let filtered = describe(
        &mut client,
        4,
        TOPIC,
        &t,
        Some(&["retention.ms", "no.such.key"]),
    )
    .await;
    assert_eq!(filtered.configs.len(), 1, "only the asked-for known keys");
    assert_eq!(config(&filtered, "retention.ms"), ("1000".into(), 1));

    let missing = describe(&mut client, 4, TOPIC, "never-created", None).await;
    assert_eq!(missing.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(
        missing.error_message.as_deref(),
        Some("The topic 'never-created' does not exist.")
    );
    let group = describe(&mut client, 4, GROUP, "g", None).await;
    assert_eq!(group.error_code, 42, "INVALID_REQUEST");
}

async fn create_topics_refuses_invalid_configs(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("invalid");
    let cases: [(&str, &str, &str); 4] = [
        ("retention.ms", "abc", "Invalid value abc for configuration retention.ms: Not a number of type LONG"),
        ("no.such.key", "1", "Unknown topic config name: no.such.key"),
        ("cleanup.policy", "shred", "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete"),
        ("remote.storage.enable", "true", "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."),
    ];
    for (key, value, message) in cases {
        assert_eq!(
            create_topic_with(&mut client, &t, 1, &[(key, value)]).await,
            (40, Some(message.into())),
            "{key}={value}"
        );
    }
    assert_eq!(
        describe(&mut client, 4, TOPIC, &t, None).await.error_code,
        3,
        "not created"
    );
}

async fn broker_configs_are_described_read_only(backend: Backend) {
    let broker = TestBroker::start_with(backend, |cli| cli.default_partitions = 3).await;
    let mut client = broker.client().await;
    let result = describe(&mut client, 4, BROKER, "0", None).await;
    assert_eq!(result.error_code, 0);
    assert_eq!(
        config(&result, "num.partitions"),
        ("3".into(), 4),
        "STATIC_BROKER_CONFIG"
    );
    assert_eq!(
        config(&result, "auto.create.topics.enable"),
        ("true".into(), 4)
    );
    assert_eq!(config(&result, "message.max.bytes"), ("1048588".into(), 5));
    assert_eq!(
        config(&result, "advertised.listeners").0,
        format!("PLAINTEXT://127.0.0.1:{}", broker.addr.port())
    );
    assert!(result.configs.iter().all(|c| c.read_only));
    let cluster_default = describe(&mut client, 4, BROKER, "", None).await;
    assert_eq!(
        (cluster_default.error_code, cluster_default.configs.len()),
        (0, 0),
        "no dynamic defaults"
    );
    let other = describe(&mut client, 4, BROKER, "7", None).await;
    assert_eq!(other.error_code, 42);
    assert_eq!(
        other.error_message.as_deref(),
        Some("Unexpected broker id, expected 0 or empty string, but received 7")
    );
}

/// Every advertised version of the three config APIs answers with a response the
/// client decodes (fields outside a version would make the encoder fail).
#[tokio::test]
async fn every_advertised_config_version_round_trips() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let t = unique_topic("versions");
    create_topic_with(&mut client, &t, 1, &[("cleanup.policy", "compact")]).await;
    for version in versions(ApiKey::DescribeConfigs) {
        for (kind, name) in [(TOPIC, t.as_str()), (BROKER, "0")] {
            let result = describe(&mut client, version, kind, name, None).await;
            assert_eq!(result.error_code, 0, "DescribeConfigs v{version}");
            assert!(!result.configs.is_empty());
            let expected_type = if version >= 3 { 7 } else { 0 };
            if kind == TOPIC {
                assert_eq!(result.configs[0].name.as_str(), "cleanup.policy");
                assert_eq!(result.configs[0].config_type, expected_type, "v{version}");
            }
        }
    }
    for version in versions(ApiKey::AlterConfigs) {
        assert_eq!(
            alter(
                &mut client,
                version,
                TOPIC,
                &t,
                &[("retention.ms", "1")],
                false
            )
            .await,
            (0, None),
            "AlterConfigs v{version}"
        );
        assert_eq!(
            alter(&mut client, version, BROKER, "0", &[], false).await.0,
            42,
            "AlterConfigs v{version}"
        );
    }
    for version in versions(ApiKey::IncrementalAlterConfigs) {
        assert_eq!(
            incremental(
                &mut client,
                version,
                TOPIC,
                &t,
                &[("retention.ms", SET, "2")],
                false
            )
            .await,
            (0, None),
            "IncrementalAlterConfigs v{version}"
        );
        assert_eq!(
            incremental(
                &mut client,
                version,
                TOPIC,
                &t,
                &[("retention.ms", SET, "x")],
                false
            )
            .await
            .0,
            40,
            "IncrementalAlterConfigs v{version}"
        );
    }
}

/// ListConfigResources: v1 names every topic and every live agent (as
/// brokers), by type or all together; types with no resources here list
/// nothing; v0 (ListClientMetricsResources) lists no client metrics.
#[tokio::test]
async fn list_config_resources_names_topics_and_every_agent() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let second = broker.another_agent(|_| {}).await;
    let mut client = broker.client().await;
    let topic = unique_topic("listed");
    create_topic(&mut client, &topic, 1).await;
    let list = |types: Vec<i8>| ListConfigResourcesRequest::default().with_resource_types(types);
    // Until the first agent has seen the second join.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (code, all) = loop {
        let (code, all) = list_resources(&mut client, 1, list(vec![])).await;
        if all.iter().filter(|(t, _)| *t == 4).count() == 2 || std::time::Instant::now() > deadline
        {
            break (code, all);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(code, 0);
    assert!(all.contains(&(2, topic.clone())), "{all:?}");
    let brokers: Vec<String> = all
        .iter()
        .filter(|(t, _)| *t == 4)
        .map(|(_, n)| n.clone())
        .collect();
    let first_id = broker.broker().node_id().to_string();
    let second_id = second.broker().node_id().to_string();
    assert_eq!(brokers.len(), 2, "{all:?}");
    assert!(
        brokers.contains(&first_id) && brokers.contains(&second_id),
        "{all:?}"
    );
    let (_, topics) = list_resources(&mut client, 1, list(vec![2])).await;
    assert!(topics.iter().all(|(t, _)| *t == 2) && topics.contains(&(2, topic.clone())));
    assert_eq!(
        list_resources(&mut client, 1, list(vec![32, 16, 8])).await,
        (0, vec![])
    );
    assert_eq!(
        list_resources(&mut client, 1, list(vec![99])).await.0,
        35,
        "UNSUPPORTED_VERSION"
    );
    assert_eq!(
        list_resources(&mut client, 0, ListConfigResourcesRequest::default()).await,
        (0, vec![])
    );
}

/// (error code, sorted (type, name) pairs) of a ListConfigResources.
async fn list_resources(
    client: &mut common::TestClient,
    version: i16,
    request: ListConfigResourcesRequest,
) -> (i16, Vec<(i8, String)>) {
    let ResponseKind::ListConfigResources(r) = client
        .call(ApiKey::ListConfigResources, version, &request)
        .await
    else {
        panic!("not a ListConfigResources response")
    };
    let mut names: Vec<(i8, String)> = r
        .config_resources
        .iter()
        .map(|c| (c.resource_type, c.resource_name.to_string()))
        .collect();
    names.sort();
    (r.error_code, names)
}
