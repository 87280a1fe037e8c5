//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and
//! ListConfigResources: Kafka's requests
//! and responses translated to and from `crate::config` (what the configs are,
//! how they are checked and changed).
//!
//! Topic configs live in the catalog exactly as set; every change is validated
//! against Kafka's topic config table (`config::topic`) and written in one catalog
//! transaction, which also drops the topic from the lookup cache so Produce
//! applies a new `max.message.bytes` at once. The broker's own configs come from
//! its settings and are read-only: StreamHouse has no dynamic broker configs.
//! Group configs (`config::group`) live in the catalog too, checked the same way.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, list_config_resources_response,
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListConfigResourcesRequest,
    ListConfigResourcesResponse,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::{CatalogError, Topic};

use crate::acl::Access;
use crate::config::alter::{changed, Change, OP_DELETE};
use crate::config::topic::{self as topic_configs, invalid_topic_name};
use crate::config::{ConfigEntry, SOURCE_DEFAULT};
use crate::{errors, Broker};

/// Resource types of the config APIs (Kafka's `ConfigResource.Type`).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

type Failure = (ResponseError, String);

pub async fn describe(
    broker: &Broker,
    request: DescribeConfigsRequest,
    version: i16,
    access: &Access,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let entries = match resource.resource_type {
            kind if !may(
                access,
                AclOperation::DescribeConfigs,
                kind,
                &resource.resource_name,
            ) =>
            {
                Err(refused(kind))
            }
            RESOURCE_TOPIC => find_topic(broker, &resource.resource_name)
                .await
                .map(|topic| {
                    let defaults = topic_configs::BrokerDefaults::of(&broker.config);
                    topic_configs::described(&topic.configs, &defaults)
                }),
            RESOURCE_GROUP => group_configs(broker, &resource.resource_name)
                .await
                .map(|configs| {
                    crate::config::group::described(
                        &configs,
                        broker.config.share_start,
                        broker.config.group_rules,
                    )
                }),
            RESOURCE_BROKER => crate::config::broker::entries(
                &broker.config,
                broker.node_id(),
                &resource.resource_name,
            )
            .map_err(|message| (ResponseError::InvalidRequest, message)),
            other => Err(unsupported_type(other)),
        };
        let result = match entries {
            Ok(entries) => {
                let wanted = |e: &ConfigEntry| {
                    resource
                        .configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                };
                let configs = entries
                    .iter()
                    .filter(|e| wanted(e))
                    .map(|e| {
                        described(
                            e,
                            request.include_synonyms,
                            request.include_documentation,
                            version,
                        )
                    })
                    .collect();
                result.with_configs(configs)
            }
            Err((error, message)) => result
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        };
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}

fn described(
    entry: &ConfigEntry,
    synonyms: bool,
    documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let text = |s: &str| StrBytes::from_string(s.to_string());
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(text(&entry.name))
        .with_value(entry.value.as_deref().map(text))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source)
        .with_is_sensitive(false);
    if synonyms {
        // In order of precedence, as Kafka lists them: the value in force, then
        // the default it overrides.
        let mut list = vec![DescribeConfigsSynonym::default()
            .with_name(text(&entry.name))
            .with_value(entry.value.as_deref().map(text))
            .with_source(entry.source)];
        if let (true, Some(default)) = (entry.source != SOURCE_DEFAULT, entry.default.as_deref()) {
            list.push(
                DescribeConfigsSynonym::default()
                    .with_name(text(&entry.name))
                    .with_value(Some(text(default)))
                    .with_source(SOURCE_DEFAULT),
            );
        }
        result = result.with_synonyms(list);
    }
    // config_type and documentation exist from v3; the encoder refuses them below.
    if version >= 3 {
        result = result.with_config_type(entry.kind as i8);
        if documentation && !entry.doc.is_empty() {
            result = result.with_documentation(Some(text(entry.doc)));
        }
    }
    result
}

pub async fn alter(
    broker: &Broker,
    request: AlterConfigsRequest,
    access: &Access,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let outcome = async {
            check_alterable(access, resource.resource_type, &resource.resource_name)?;
            let mut configs = BTreeMap::new();
            for config in &resource.configs {
                let Some(value) = &config.value else {
                    return Err(null_value(&config.name));
                };
                if configs
                    .insert(config.name.to_string(), value.to_string())
                    .is_some()
                {
                    return Err(duplicate_keys());
                }
            }
            // AlterConfigs replaces the whole set: what is not named is reset.
            let validate = validator(broker, resource.resource_type);
            let update =
                move |_: &BTreeMap<String, String>| validate(&configs).map(|()| configs.clone());
            apply(
                broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                &update,
            )
            .await
        }
        .await;
        let (code, message) = outcome_code(outcome);
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
    access: &Access,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let outcome = async {
            check_alterable(access, resource.resource_type, &resource.resource_name)?;
            let mut changes: Vec<Change> = Vec::with_capacity(resource.configs.len());
            for config in &resource.configs {
                let name = config.name.to_string();
                if changes.iter().any(|c| c.name == name) {
                    return Err(duplicate_keys());
                }
                let value = match (&config.value, config.config_operation) {
                    (_, OP_DELETE) => String::new(),
                    (None, _) => return Err(null_value(&config.name)),
                    (Some(value), _) => value.to_string(),
                };
                let change = Change::new(name, config.config_operation, value)
                    .map_err(|message| (ResponseError::InvalidRequest, message))?;
                changes.push(change);
            }
            let validate = validator(broker, resource.resource_type);
            let update = move |current: &BTreeMap<String, String>| {
                let configs = changed(current, &changes);
                validate(&configs).map(|()| configs)
            };
            apply(
                broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                &update,
            )
            .await
        }
        .await;
        let (code, message) = outcome_code(outcome);
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// A resource type's check of a config set.
type Validator = Box<dyn Fn(&BTreeMap<String, String>) -> Result<(), String> + Send + Sync>;

/// How a resource type's config set is checked (a group's against the
/// agent's group rules, for the times it does not set).
fn validator(broker: &Broker, resource_type: i8) -> Validator {
    if resource_type == RESOURCE_GROUP {
        let agent = broker.config.group_rules;
        Box::new(move |configs| crate::config::group::validate_all(configs, agent))
    } else {
        Box::new(topic_configs::validate_all)
    }
}

/// A group's configs, for a valid group id.
async fn group_configs(
    broker: &Broker,
    group_id: &str,
) -> Result<BTreeMap<String, String>, Failure> {
    if group_id.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            "Group id must not be empty".into(),
        ));
    }
    broker
        .catalog
        .group_configs(group_id)
        .await
        .map_err(|e| (errors::catalog(&e), e.to_string()))
}

/// Runs `update` on the resource's configs (a topic's or a group's) and
/// stores the result, or with `validate_only` only checks that it would
/// succeed.
async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    update: streamhouse_metadata::ConfigUpdate<'_>,
) -> Result<(), Failure> {
    if resource_type == RESOURCE_GROUP {
        let current = group_configs(broker, name).await?;
        if validate_only {
            return update(&current)
                .map(|_| ())
                .map_err(|message| (ResponseError::InvalidConfig, message));
        }
        return match broker.catalog.update_group_configs(name, update).await {
            Ok(configs) => {
                broker.group_configs.forget(name);
                tracing::info!(group = %name, ?configs, "altered group configs");
                Ok(())
            }
            Err(CatalogError::InvalidConfig(message)) => {
                Err((ResponseError::InvalidConfig, message))
            }
            Err(e) => Err((errors::catalog(&e), e.to_string())),
        };
    }
    if validate_only {
        let topic = find_topic(broker, name).await?;
        return update(&topic.configs)
            .map(|_| ())
            .map_err(|message| (ResponseError::InvalidConfig, message));
    }
    if let Some(reason) = invalid_topic_name(name) {
        return Err((ResponseError::InvalidTopicException, reason));
    }
    match broker.catalog.update_topic_configs(name, update).await {
        Ok(topic) => {
            tracing::info!(topic = %name, configs = ?topic.configs, "altered topic configs");
            Ok(())
        }
        Err(CatalogError::UnknownTopic(_)) => Err(unknown_topic(name)),
        Err(CatalogError::InvalidConfig(message)) => Err((ResponseError::InvalidConfig, message)),
        Err(e) => Err((errors::catalog(&e), e.to_string())),
    }
}

pub async fn find_topic(broker: &Broker, name: &str) -> Result<Topic, Failure> {
    if let Some(reason) = invalid_topic_name(name) {
        return Err((ResponseError::InvalidTopicException, reason));
    }
    match broker.catalog.topic_by_name(name).await {
        Ok(Some(topic)) => Ok(topic),
        Ok(None) => Err(unknown_topic(name)),
        Err(e) => Err((errors::catalog(&e), e.to_string())),
    }
}

pub fn unknown_topic(name: &str) -> Failure {
    (
        ResponseError::UnknownTopicOrPartition,
        format!("The topic '{name}' does not exist."),
    )
}

/// Kafka's check for a config resource: the operation on the topic for a
/// topic, on the cluster for a broker or its loggers. Other types are
/// refused later as unsupported.
fn may(access: &Access, operation: AclOperation, resource_type: i8, name: &str) -> bool {
    match resource_type {
        RESOURCE_TOPIC => access.allows_topic(operation, name),
        RESOURCE_GROUP => access.allows_group(operation, name),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => access.allows_cluster(operation),
        _ => true,
    }
}

fn refused(resource_type: i8) -> Failure {
    if resource_type == RESOURCE_TOPIC {
        (
            ResponseError::TopicAuthorizationFailed,
            "Topic authorization failed.".to_owned(),
        )
    } else if resource_type == RESOURCE_GROUP {
        (
            ResponseError::GroupAuthorizationFailed,
            "Group authorization failed.".to_owned(),
        )
    } else {
        (
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_owned(),
        )
    }
}

/// Whether the client may alter this resource's configs (ALTER_CONFIGS,
/// checked first, as Kafka does), and whether they can be altered at all.
fn check_alterable(access: &Access, resource_type: i8, name: &str) -> Result<(), Failure> {
    if !may(access, AclOperation::AlterConfigs, resource_type, name) {
        return Err(refused(resource_type));
    }
    alterable(resource_type)
}

fn alterable(resource_type: i8) -> Result<(), Failure> {
    match resource_type {
        RESOURCE_TOPIC | RESOURCE_GROUP => Ok(()),
        RESOURCE_BROKER => Err((
            ResponseError::InvalidRequest,
            "StreamHouse broker configs are read-only: set them with flags, environment variables or the config file, and restart".into(),
        )),
        other => Err(unsupported_type(other)),
    }
}

fn unsupported_type(resource_type: i8) -> Failure {
    (
        ResponseError::InvalidRequest,
        format!("Configs of resource type {resource_type} are not supported; StreamHouse serves topic (2), broker (4) and group (32) configs"),
    )
}

fn null_value(name: &StrBytes) -> Failure {
    (
        ResponseError::InvalidConfig,
        format!("Null value not supported for topic configs: {name}"),
    )
}

fn duplicate_keys() -> Failure {
    (
        ResponseError::InvalidRequest,
        "Error due to duplicate config keys".into(),
    )
}

fn outcome_code(outcome: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
    }
}

/// Resource types no config of which exists here: listed as none.
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;
/// Groups' configs (`config::group`).
const RESOURCE_GROUP: i8 = 32;

/// ListConfigResources (KIP-1142): the names of the resources whose configs
/// DescribeConfigs serves, of the types asked for (all when none is named):
/// every topic, every live agent as a broker, and every group with configs.
/// v0 is the older ListClientMetricsResources, and no client metrics
/// resource exists here; neither do broker loggers, so those types list
/// nothing.
pub async fn list_resources(
    broker: &Broker,
    request: ListConfigResourcesRequest,
    version: i16,
    access: &Access,
) -> ListConfigResourcesResponse {
    if !access.allows_cluster(AclOperation::DescribeConfigs) {
        return list_error(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_owned(),
        );
    }
    let wanted: Vec<i8> = if version == 0 {
        vec![RESOURCE_CLIENT_METRICS]
    } else if request.resource_types.is_empty() {
        vec![RESOURCE_TOPIC, RESOURCE_BROKER]
    } else {
        request.resource_types.clone()
    };
    let mut resources = Vec::new();
    for resource_type in wanted {
        let names: Vec<String> = match resource_type {
            RESOURCE_TOPIC => match broker.catalog.list_topics().await {
                Ok(topics) => topics.into_iter().map(|t| t.name).collect(),
                Err(e) => return list_error(errors::catalog(&e), e.to_string()),
            },
            RESOURCE_BROKER => broker
                .membership
                .view()
                .agents
                .iter()
                .map(|agent| agent.node_id.to_string())
                .collect(),
            RESOURCE_GROUP => match broker.catalog.groups_with_configs().await {
                Ok(groups) => groups,
                Err(e) => return list_error(errors::catalog(&e), e.to_string()),
            },
            RESOURCE_BROKER_LOGGER | RESOURCE_CLIENT_METRICS => Vec::new(),
            other => {
                return list_error(
                    ResponseError::UnsupportedVersion,
                    format!("The resource type {other} is not supported"),
                )
            }
        };
        resources.extend(names.into_iter().map(|name| {
            list_config_resources_response::ConfigResource::default()
                .with_resource_name(StrBytes::from_string(name))
                .with_resource_type(resource_type)
        }));
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}

fn list_error(error: ResponseError, message: String) -> ListConfigResourcesResponse {
    tracing::debug!(%message, "ListConfigResources refused");
    ListConfigResourcesResponse::default().with_error_code(error.code())
}
