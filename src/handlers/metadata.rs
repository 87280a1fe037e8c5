//! Metadata: the live agents as brokers (this one as the controller), the
//! topics asked for (or all) with each partition's leader placed on the view
//! and Kafka's internal topics marked `is_internal`, and auto-creation of
//! unknown topics when enabled. Brokers are named by their endpoints on the
//! listener the client came in on; as in Kafka, an agent without that
//! listener is left out and the partitions it leads have no leader.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use streamhouse_metadata::{CatalogError, NewTopic, Topic, TopicId};

use std::sync::Arc;

use super::cluster;
use crate::acl::{Access, CLUSTER_NAME, CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use crate::cluster::{client_zone, View};
use crate::config::listeners::SecurityProtocol;
use crate::config::topic::{invalid_topic_name, is_reserved_topic_name};
use crate::{errors, Broker};

pub async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
    client_id: Option<&str>,
    access: &Access,
    listener: SecurityProtocol,
) -> MetadataResponse {
    let placement = Placement::for_client(broker, client_id);
    let mut response = handle_topics(broker, &request, version, &placement, access, listener).await;
    // Authorized operations, only when asked (v8+; the cluster's only to v10).
    // Without ACLs every supported operation is allowed, as in Kafka without
    // an authorizer.
    if version >= 8 && request.include_topic_authorized_operations {
        for topic in &mut response.topics {
            if let (0, Some(name)) = (topic.error_code, &topic.name) {
                topic.topic_authorized_operations =
                    access.authorized_operations(ResourceType::Topic, name, TOPIC_OPERATIONS);
            }
        }
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            access.authorized_operations(ResourceType::Cluster, CLUSTER_NAME, CLUSTER_OPERATIONS);
    }
    response
}

/// Where this request's client is told partitions live.
pub(super) struct Placement<'a> {
    pub(super) view: Arc<View>,
    zone: Option<&'a str>,
}

impl<'a> Placement<'a> {
    pub(super) fn for_client(broker: &Broker, client_id: Option<&'a str>) -> Placement<'a> {
        Placement {
            view: broker.membership.view(),
            zone: client_zone(client_id),
        }
    }

    /// The agent this client is pointed at for a partition. Every agent
    /// serves every partition: the leader is only where this client is
    /// pointed. An empty view (this agent's own row reaped a moment ago)
    /// still points at this agent.
    pub(super) fn leader(&self, broker: &Broker, topic: TopicId, partition: i32) -> BrokerId {
        let leader = self
            .view
            .partition_leader(topic, partition, self.zone)
            .map_or(broker.node_id(), |a| a.node_id);
        BrokerId(leader)
    }

    /// Whether clients of `listener` can be told where `leader` is: whether
    /// it has an endpoint on that listener.
    pub(super) fn reachable(
        &self,
        broker: &Broker,
        leader: BrokerId,
        listener: SecurityProtocol,
    ) -> bool {
        if leader.0 == broker.node_id() {
            return broker.endpoint(listener).is_some();
        }
        self.view
            .agent(leader.0)
            .is_some_and(|a| a.endpoint(listener.name()).is_some())
    }
}

async fn handle_topics(
    broker: &Broker,
    request: &MetadataRequest,
    version: i16,
    placement: &Placement<'_>,
    access: &Access,
    listener: SecurityProtocol,
) -> MetadataResponse {
    let brokers = cluster::brokers(broker, &placement.view, listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        // Every agent serves admin requests; the one answering is surely alive.
        .with_controller_id(BrokerId(broker.node_id()));
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
            // As Kafka: the topics the client may not describe are left out.
            let topics = topics
                .iter()
                .filter(|t| access.allows_topic(AclOperation::Describe, &t.name))
                .map(|t| described(broker, t, placement, listener, version))
                .collect();
            return response.with_topics(topics);
        }
    };
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::with_capacity(requested.len());
    for wanted in requested {
        let topic = match &wanted.name {
            Some(name) if !access.allows_topic(AclOperation::Describe, name) => {
                Err(ResponseError::TopicAuthorizationFailed)
            }
            Some(name) => {
                // Kafka creates a topic for a client that may create it on
                // the cluster or the topic; for another it answers
                // TOPIC_AUTHORIZATION_FAILED.
                let create = auto_create.then(|| {
                    access.allows_cluster(AclOperation::Create)
                        || access.allows_topic(AclOperation::Create, name)
                });
                lookup_by_name(broker, &name.0, create).await
            }
            None => match broker.catalog.topic_by_id(wanted.topic_id).await {
                Ok(Some(topic)) if !access.allows_topic(AclOperation::Describe, &topic.name) => {
                    Err(ResponseError::TopicAuthorizationFailed)
                }
                Ok(Some(topic)) => Ok(topic),
                Ok(None) => Err(ResponseError::UnknownTopicId),
                Err(e) => Err(errors::catalog(&e)),
            },
        };
        topics.push(match topic {
            Ok(topic) => described(broker, &topic, placement, listener, version),
            Err(error) => MetadataResponseTopic::default()
                .with_name(wanted.name.clone())
                .with_topic_id(wanted.topic_id)
                .with_error_code(error.code()),
        });
    }
    response.with_topics(topics)
}

/// `create`: `None` without auto-creation, else whether the client may
/// create the topic.
async fn lookup_by_name(
    broker: &Broker,
    name: &StrBytes,
    create: Option<bool>,
) -> Result<Topic, ResponseError> {
    if invalid_topic_name(name).is_some() {
        return Err(ResponseError::InvalidTopicException);
    }
    match broker.catalog.topic_by_name(name).await {
        Ok(Some(topic)) => return Ok(topic),
        // Internal topics are never auto-created (see RESERVED_TOPIC_NAMES):
        // `__consumer_offsets` exists from the start, `__transaction_state` never.
        Ok(None) if create.is_none() || is_reserved_topic_name(name) => {
            return Err(ResponseError::UnknownTopicOrPartition)
        }
        Ok(None) if create == Some(false) => return Err(ResponseError::TopicAuthorizationFailed),
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

fn described(
    broker: &Broker,
    topic: &Topic,
    placement: &Placement,
    listener: SecurityProtocol,
    version: i16,
) -> MetadataResponseTopic {
    let epoch = placement.view.leader_epoch();
    let partitions = (0..topic.partition_count)
        .map(|index| {
            let leader = placement.leader(broker, topic.id, index);
            let partition = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(leader)
                .with_leader_epoch(epoch)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader]);
            if placement.reachable(broker, leader, listener) {
                return partition;
            }
            // Kafka's answer for a leader without the client's listener: no
            // leader, LISTENER_NOT_FOUND from v6, LEADER_NOT_AVAILABLE before;
            // the replicas stay as they are.
            let error = if version >= 6 {
                ResponseError::ListenerNotFound
            } else {
                ResponseError::LeaderNotAvailable
            };
            partition
                .with_leader_id(BrokerId(-1))
                .with_error_code(error.code())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(is_reserved_topic_name(&topic.name))
        .with_partitions(partitions)
}
