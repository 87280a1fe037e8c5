//! CreateTopics and DeleteTopics.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::{CatalogError, NewTopic};

use crate::acl::Access;
use crate::config::topic::{self as topic_configs, invalid_topic_name, is_reserved_topic_name};
use crate::config::SOURCE_DYNAMIC_TOPIC;
use crate::{errors, Broker};

/// Most partitions one topic may have. Each partition costs catalog rows, not
/// disks, but a typo like 1000000 should still be refused.
pub(super) const MAX_PARTITIONS: i32 = 100_000;

pub async fn create(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
    access: &Access,
) -> CreateTopicsResponse {
    // As Kafka: CREATE on the cluster, or else on each topic.
    let cluster_create = access.allows_cluster(AclOperation::Create);
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let defaults = topic_configs::BrokerDefaults::of(&broker.config);
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let fail = |result: CreatableTopicResult, error: ResponseError, message: String| {
            result
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        if duplicates.contains(&name) {
            results.push(fail(
                result,
                ResponseError::InvalidRequest,
                format!("Create topics request from client contains duplicate topic {name}"),
            ));
            continue;
        }
        if !(cluster_create || access.allows_topic(AclOperation::Create, &name)) {
            results.push(fail(
                result,
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".into(),
            ));
            continue;
        }
        // The configs in the answer are for clients that may describe them.
        let defaults = access
            .allows_topic(AclOperation::DescribeConfigs, &name)
            .then_some(&defaults);
        if let Some(reason) = invalid_topic_name(&name) {
            results.push(fail(result, ResponseError::InvalidTopicException, reason));
            continue;
        }
        // As Kafka refuses to create its metadata topic by request.
        if is_reserved_topic_name(&name) {
            results.push(fail(
                result,
                ResponseError::InvalidRequest,
                format!("Creation of internal topic {name} is prohibited: StreamHouse keeps its contents in the catalog."),
            ));
            continue;
        }
        let partitions = if !topic.assignments.is_empty() {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                results.push(fail(
                    result,
                    ResponseError::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                ));
                continue;
            }
            topic.assignments.len() as i32
        } else if topic.num_partitions == -1 {
            broker.config.default_partitions
        } else {
            topic.num_partitions
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            results.push(fail(
                result,
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}."),
            ));
            continue;
        }
        // Replication is the object store's job: any factor is accepted and the
        // topic reports the one replica every agent serves it from.
        if topic.replication_factor == 0 || topic.replication_factor < -1 {
            results.push(fail(
                result,
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for config in &topic.configs {
            match &config.value {
                Some(value) => {
                    configs.insert(config.name.to_string(), value.to_string());
                }
                None => null_config = Some(config.name.to_string()),
            }
        }
        if let Some(key) = null_config {
            results.push(fail(
                result,
                ResponseError::InvalidConfig,
                format!("Null value not supported for topic configs: {key}"),
            ));
            continue;
        }
        if let Err(message) = topic_configs::validate_all(&configs) {
            results.push(fail(result, ResponseError::InvalidConfig, message));
            continue;
        }
        let new_topic = NewTopic {
            name: name.clone(),
            partition_count: partitions,
            configs,
        };
        if request.validate_only {
            match broker.catalog.topic_by_name(&name).await {
                Ok(Some(_)) => results.push(fail(
                    result,
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{name}' already exists."),
                )),
                Ok(None) => results.push(described(result, &new_topic, None, version, defaults)),
                Err(e) => results.push(fail(result, errors::catalog(&e), e.to_string())),
            }
            continue;
        }
        match broker.catalog.create_topic(&new_topic).await {
            Ok(created) => {
                tracing::info!(topic = %name, partitions, "created topic");
                results.push(described(
                    result,
                    &new_topic,
                    Some(created.id),
                    version,
                    defaults,
                ));
            }
            Err(CatalogError::TopicAlreadyExists(_)) => results.push(fail(
                result,
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            )),
            Err(e) => {
                tracing::error!(topic = %name, error = %e, "cannot create topic");
                results.push(fail(result, errors::catalog(&e), e.to_string()));
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// A successful result, with the partition count and (v5+) the topic's configs
/// as DescribeConfigs would report them; `None` for a client that may not
/// describe them, told so in `topic_config_error_code` as Kafka does.
fn described(
    result: CreatableTopicResult,
    topic: &NewTopic,
    id: Option<uuid::Uuid>,
    version: i16,
    defaults: Option<&topic_configs::BrokerDefaults>,
) -> CreatableTopicResult {
    // Kafka answers a success with a null message; the codec's default is "".
    let result = result
        .with_error_message(None)
        .with_topic_id(id.unwrap_or_default())
        .with_num_partitions(topic.partition_count)
        .with_replication_factor(1);
    if version < 5 {
        return result;
    }
    let Some(defaults) = defaults else {
        return result
            .with_topic_config_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_configs(None);
    };
    let mut configs: Vec<CreatableTopicConfigs> =
        topic_configs::described(&topic.configs, defaults)
            .iter()
            .filter(|entry| !topic.configs.contains_key(&entry.name))
            .map(|entry| {
                config_entry(
                    &entry.name,
                    entry.value.as_deref().unwrap_or(""),
                    entry.source,
                )
            })
            .collect();
    configs.extend(
        topic
            .configs
            .iter()
            .map(|(key, value)| config_entry(key, value, SOURCE_DYNAMIC_TOPIC)),
    );
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    result.with_configs(Some(configs))
}

fn config_entry(key: &str, value: &str, source: i8) -> CreatableTopicConfigs {
    CreatableTopicConfigs::default()
        .with_name(StrBytes::from_string(key.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
        .with_config_source(source)
}

pub async fn delete(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
    access: &Access,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id in `topics`; earlier versions list names.
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|name| (Some(name.0.to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        let name = match name {
            Some(name) => Some(name),
            None => match broker.catalog.topic_by_id(id).await {
                Ok(found) => found.map(|t| t.name),
                Err(e) => {
                    responses.push(error_result(result, errors::catalog(&e), e.to_string()));
                    continue;
                }
            },
        };
        let Some(name) = name else {
            responses.push(error_result(
                result,
                ResponseError::UnknownTopicId,
                format!("Topic id {id} does not exist."),
            ));
            continue;
        };
        if !access.allows_topic(AclOperation::Delete, &name) {
            // Named as asked: an id does not reveal its topic's name.
            responses.push(error_result(
                result,
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".into(),
            ));
            continue;
        }
        result = result.with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        if is_reserved_topic_name(&name) {
            responses.push(error_result(
                result,
                ResponseError::InvalidRequest,
                format!("Deletion of internal topic {name} is prohibited."),
            ));
            continue;
        }
        match broker.catalog.delete_topic(&name).await {
            Ok(deleted) => {
                broker.log.forget_topic(deleted.id);
                tracing::info!(topic = %name, "deleted topic");
                responses.push(result.with_topic_id(if version >= 6 { deleted.id } else { id }));
            }
            Err(e) => {
                let message = match &e {
                    CatalogError::UnknownTopic(_) => {
                        "This server does not host this topic-partition.".to_string()
                    }
                    other => other.to_string(),
                };
                responses.push(error_result(result, errors::catalog(&e), message));
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

fn error_result(
    result: DeletableTopicResult,
    error: ResponseError,
    message: String,
) -> DeletableTopicResult {
    result
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}
