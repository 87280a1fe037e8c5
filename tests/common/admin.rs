//! The config APIs for the wire tests: DescribeConfigs, AlterConfigs and
//! IncrementalAlterConfigs as typed calls, and Kafka's resource types and
//! alter operations as constants.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::*;

use super::{s, TestClient};

pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;
pub const GROUP: i8 = 3;
pub const SET: i8 = 0;
pub const DELETE: i8 = 1;
pub const APPEND: i8 = 2;
pub const SUBTRACT: i8 = 3;

pub async fn describe(
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
pub fn config(result: &DescribeConfigsResult, name: &str) -> (String, i8) {
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

pub async fn alter(
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

pub async fn incremental(
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

pub async fn describe_configs_reported(
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
