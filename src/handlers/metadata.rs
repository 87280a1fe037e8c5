//! Metadata: this agent as the cluster's only broker and controller, the topics
//! asked for (or all), and auto-creation of unknown topics when enabled.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::{CatalogError, NewTopic, Topic};

use super::cluster;
use crate::config::topic::invalid_topic_name;
use crate::{errors, Broker};

pub async fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let mut response = handle_topics(broker, &request, version).await;
    // Authorized operations, only when asked (v8+; the cluster's only to v10).
    // Without an authorizer every supported operation is allowed, as in Kafka.
    if version >= 8 && request.include_topic_authorized_operations {
        for topic in &mut response.topics {
            topic.topic_authorized_operations = cluster::TOPIC_OPERATIONS;
        }
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = cluster::CLUSTER_OPERATIONS;
    }
    response
}

async fn handle_topics(
    broker: &Broker,
    request: &MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = BrokerId(broker.node_id());
    let response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(broker.config.advertise_host.clone()))
            .with_port(i32::from(broker.config.advertise_port))])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(node);
    // v0 asks for every topic with an empty list; v1+ with a null one.
    let requested = match request.topics.clone() {
        Some(topics) if !(version == 0 && topics.is_empty()) => topics,
        _ => {
            let topics = match broker.catalog.list_topics().await {
                Ok(topics) => topics,
                Err(e) => {
                    tracing::error!(error = %e, "cannot list topics");
                    return response.with_error_code(errors::catalog(&e).code());
                }
            };
            let topics = topics.iter().map(|t| described(broker, t)).collect();
            return response.with_topics(topics);
        }
    };
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::with_capacity(requested.len());
    for wanted in requested {
        let topic = match &wanted.name {
            Some(name) => lookup_by_name(broker, &name.0, auto_create).await,
            None => match broker.catalog.topic_by_id(wanted.topic_id).await {
                Ok(Some(topic)) => Ok(topic),
                Ok(None) => Err(ResponseError::UnknownTopicId),
                Err(e) => Err(errors::catalog(&e)),
            },
        };
        topics.push(match topic {
            Ok(topic) => described(broker, &topic),
            Err(error) => MetadataResponseTopic::default()
                .with_name(wanted.name.clone())
                .with_topic_id(wanted.topic_id)
                .with_error_code(error.code()),
        });
    }
    response.with_topics(topics)
}

async fn lookup_by_name(
    broker: &Broker,
    name: &StrBytes,
    auto_create: bool,
) -> Result<Topic, ResponseError> {
    if invalid_topic_name(name).is_some() {
        return Err(ResponseError::InvalidTopicException);
    }
    match broker.catalog.topic_by_name(name).await {
        Ok(Some(topic)) => return Ok(topic),
        Ok(None) if !auto_create => return Err(ResponseError::UnknownTopicOrPartition),
        Ok(None) => {}
        Err(e) => return Err(errors::catalog(&e)),
    }
    let new_topic = NewTopic {
        name: name.to_string(),
        partition_count: broker.config.default_partitions,
        configs: Default::default(),
    };
    match broker.catalog.create_topic(&new_topic).await {
        Ok(topic) => {
            tracing::info!(topic = %topic.name, partitions = topic.partition_count, "auto-created topic");
            Ok(topic)
        }
        // Another client created it meanwhile.
        Err(CatalogError::TopicAlreadyExists(_)) => {
            match broker.catalog.topic_by_name(name).await {
                Ok(Some(topic)) => Ok(topic),
                Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
                Err(e) => Err(errors::catalog(&e)),
            }
        }
        Err(e) => Err(errors::catalog(&e)),
    }
}

fn described(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id());
    let partitions = (0..topic.partition_count)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
}
