//! Topic and broker configs over the wire: DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs and validation at CreateTopics, on both backends.

mod common;

use common::{record_batch, unique_topic, Backend, TestBroker, TestClient};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use streamhouse::topic_config::TOPIC_CONFIGS;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 3;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Runs an `async fn(Backend)` case on SQLite + files and on PostgreSQL + S3.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::Embedded).await })*
        }
        mod postgres_s3 {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::PostgresS3).await })*
        }
    };
}

on_both_backends!(
    describe_reports_every_topic_config_with_its_source,
    create_topics_refuses_invalid_configs,
    alter_configs_replaces_the_whole_set,
    incremental_alter_sets_deletes_appends_and_subtracts,
    a_new_max_message_bytes_applies_to_the_next_produce,
    broker_configs_are_described_read_only,
);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn create_topic(
    client: &mut TestClient,
    name: &str,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )]);
    let ResponseKind::CreateTopics(r) = client.call(ApiKey::CreateTopics, 7, &request).await else {
        panic!("not a CreateTopics response")
    };
    (
        r.topics[0].error_code,
        r.topics[0].error_message.as_ref().map(|m| m.to_string()),
    )
}

async fn describe(
    client: &mut TestClient,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(
                keys.map(|k| k.iter().map(|k| s(k)).collect()),
            )])
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3);
    let ResponseKind::DescribeConfigs(mut r) = client
        .call(ApiKey::DescribeConfigs, version, &request)
        .await
    else {
        panic!("not a DescribeConfigs response")
    };
    r.results.remove(0)
}

/// (value, source) of a config in a DescribeConfigs result.
fn config(result: &DescribeConfigsResult, name: &str) -> (String, i8) {
    let c = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} is described"));
    (
        c.value.as_deref().unwrap_or("<null>").to_string(),
        c.config_source,
    )
}

async fn alter(
    client: &mut TestClient,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> (i16, Option<String>) {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let request = AlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
        .with_validate_only(validate_only);
    let ResponseKind::AlterConfigs(r) = client.call(ApiKey::AlterConfigs, version, &request).await
    else {
        panic!("not an AlterConfigs response")
    };
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

async fn incremental(
    client: &mut TestClient,
    version: i16,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, &str)],
    validate_only: bool,
) -> (i16, Option<String>) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
        .with_validate_only(validate_only);
    let ResponseKind::IncrementalAlterConfigs(r) = client
        .call(ApiKey::IncrementalAlterConfigs, version, &request)
        .await
    else {
        panic!("not an IncrementalAlterConfigs response")
    };
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

async fn describe_configs_reported(
    client: &mut TestClient,
    topic: &str,
) -> Vec<(String, String, i8)> {
    let result = describe(client, 4, TOPIC, topic, None).await;
    let mut set: Vec<(String, String, i8)> = result
        .configs
        .iter()
        .filter(|c| c.config_source == 1)
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or("").to_string(),
                c.config_source,
            )
        })
        .collect();
    set.sort();
    set
}

async fn describe_reports_every_topic_config_with_its_source(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("describe");
    assert_eq!(
        create_topic(
            &mut client,
            &t,
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
        ("message.timestamp.type", "LogAppendTime", "message.timestamp.type=LogAppendTime is not supported by StreamHouse: records keep their producer's timestamps (CreateTime)"),
    ];
    for (key, value, message) in cases {
        assert_eq!(
            create_topic(&mut client, &t, &[(key, value)]).await,
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

async fn alter_configs_replaces_the_whole_set(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("alter");
    create_topic(&mut client, &t, &[("cleanup.policy", "compact")]).await;

    assert_eq!(
        alter(&mut client, 2, TOPIC, &t, &[("retention.ms", "1000")], true).await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![("cleanup.policy".into(), "compact".into(), 1)],
        "validate_only changes nothing"
    );

    assert_eq!(
        alter(
            &mut client,
            2,
            TOPIC,
            &t,
            &[("retention.ms", "1000")],
            false
        )
        .await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![("retention.ms".into(), "1000".into(), 1)],
        "cleanup.policy reset to its default"
    );

    let refused = alter(&mut client, 2, TOPIC, &t, &[("retention.ms", "-5")], false).await;
    assert_eq!(
        refused,
        (
            40,
            Some(
                "Invalid value -5 for configuration retention.ms: Value must be at least -1".into()
            )
        )
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![("retention.ms".into(), "1000".into(), 1)],
        "unchanged"
    );

    assert_eq!(
        alter(&mut client, 2, TOPIC, "never-created", &[], false)
            .await
            .0,
        3
    );
    assert_eq!(
        alter(
            &mut client,
            2,
            BROKER,
            "0",
            &[("num.partitions", "3")],
            false
        )
        .await
        .0,
        42
    );
    assert_eq!(alter(&mut client, 2, GROUP, "g", &[], false).await.0, 42);
}

async fn incremental_alter_sets_deletes_appends_and_subtracts(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("incremental");
    create_topic(&mut client, &t, &[("min.insync.replicas", "2")]).await;

    let ops = [
        ("retention.ms", SET, "1000"),
        ("cleanup.policy", APPEND, "compact"),
    ];
    assert_eq!(
        incremental(&mut client, 1, TOPIC, &t, &ops, false).await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![
            ("cleanup.policy".into(), "delete,compact".into(), 1),
            ("min.insync.replicas".into(), "2".into(), 1),
            ("retention.ms".into(), "1000".into(), 1),
        ],
        "APPEND starts from the default; untouched keys stay"
    );
    let ops = [
        ("cleanup.policy", SUBTRACT, "delete"),
        ("retention.ms", DELETE, ""),
    ];
    assert_eq!(
        incremental(&mut client, 1, TOPIC, &t, &ops, false).await,
        (0, None)
    );
    assert_eq!(
        describe_configs_reported(&mut client, &t).await,
        vec![
            ("cleanup.policy".into(), "compact".into(), 1),
            ("min.insync.replicas".into(), "2".into(), 1)
        ]
    );
    assert_eq!(
        config(
            &describe(&mut client, 4, TOPIC, &t, None).await,
            "retention.ms"
        ),
        ("604800000".into(), 5),
        "a deleted key is back to Kafka's default"
    );

    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("retention.ms", APPEND, "1")],
            false
        )
        .await,
        (
            42,
            Some("Config value append is not allowed for config key: retention.ms".into())
        )
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("retention.ms", SET, "1"), ("retention.ms", SET, "2")],
            false
        )
        .await,
        (42, Some("Error due to duplicate config keys".into()))
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("no.such.key", SET, "1")],
            false
        )
        .await,
        (40, Some("Unknown topic config name: no.such.key".into()))
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("retention.ms", SET, "5")],
            true
        )
        .await,
        (0, None)
    );
    assert_eq!(
        config(
            &describe(&mut client, 4, TOPIC, &t, None).await,
            "retention.ms"
        ),
        ("604800000".into(), 5),
        "validate_only changes nothing"
    );
    assert_eq!(
        incremental(&mut client, 1, TOPIC, "never-created", &ops, false)
            .await
            .0,
        3
    );
}

async fn produce_code(client: &mut TestClient, topic: &str) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(record_batch(5, 0, 1, Compression::None)))])]);
    let ResponseKind::Produce(r) = client.call(ApiKey::Produce, 9, &request).await else {
        panic!("not a Produce response")
    };
    r.responses[0].partition_responses[0].error_code
}

async fn a_new_max_message_bytes_applies_to_the_next_produce(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let t = unique_topic("limit");
    create_topic(&mut client, &t, &[]).await;
    assert_eq!(produce_code(&mut client, &t).await, 0);
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("max.message.bytes", SET, "100")],
            false
        )
        .await,
        (0, None)
    );
    assert_eq!(
        produce_code(&mut client, &t).await,
        10,
        "MESSAGE_TOO_LARGE at once, not after the cache expires"
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            TOPIC,
            &t,
            &[("max.message.bytes", DELETE, "")],
            false
        )
        .await,
        (0, None)
    );
    assert_eq!(produce_code(&mut client, &t).await, 0);
}

async fn broker_configs_are_described_read_only(backend: Backend) {
    let broker = TestBroker::start_with(backend, |cli| cli.default_partitions = Some(3)).await;
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
    use streamhouse_protocol::versions::advertised;
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let t = unique_topic("versions");
    create_topic(&mut client, &t, &[("cleanup.policy", "compact")]).await;
    let versions = |key| {
        let api = advertised(key).expect("advertised");
        api.min..=api.max
    };
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
