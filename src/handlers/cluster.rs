//! DescribeCluster, and the brokers it and Metadata report.
//!
//! Its authorized operations are the client's on the cluster (every one
//! Kafka supports with `--acls off`, as on a Kafka broker without an
//! authorizer). Kafka checks no ACL to answer it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use streamhouse_metadata::acls::ResourceType;

use crate::acl::{Access, CLUSTER_NAME, CLUSTER_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use crate::cluster::View;
use crate::config::listeners::SecurityProtocol;
use crate::Broker;

/// DescribeCluster v1+ `endpoint_type`: 1 is a broker, 2 a KRaft controller.
const ENDPOINT_BROKER: i8 = 1;

pub fn describe(
    broker: &Broker,
    request: DescribeClusterRequest,
    version: i16,
    access: &Access,
    listener: SecurityProtocol,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    if version >= 1 {
        response = response.with_endpoint_type(ENDPOINT_BROKER);
        if request.endpoint_type != ENDPOINT_BROKER {
            // Kafka's answer to a controller-only request sent to a broker.
            return response
                .with_error_code(ResponseError::MismatchedEndpointType.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
                )));
        }
    }
    response
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        // Every agent serves admin requests; the one answering is surely alive.
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(
            brokers(broker, &broker.membership.view(), listener)
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.node_id))
                        .with_host(StrBytes::from_string(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(StrBytes::from_string))
                })
                .collect(),
        )
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            access.authorized_operations(ResourceType::Cluster, CLUSTER_NAME, CLUSTER_OPERATIONS)
        } else {
            OPERATIONS_NOT_REQUESTED
        })
}

/// A broker as Metadata and DescribeCluster report it.
pub struct BrokerEntry {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The live agents of `view` that have a `listener` listener, each with its
/// endpoint on it; this agent always among them (its client came in on that
/// listener), also in the moment between its own row being reaped and its
/// registering again. Kafka leaves brokers without the client's listener
/// out in the same way.
pub fn brokers(broker: &Broker, view: &View, listener: SecurityProtocol) -> Vec<BrokerEntry> {
    let me = broker.node_id();
    let mut brokers: Vec<BrokerEntry> = view
        .agents
        .iter()
        .filter_map(|a| {
            let endpoint = if a.node_id == me {
                broker.endpoint(listener)
            } else {
                a.endpoint(listener.name())
            }?;
            Some(BrokerEntry {
                node_id: a.node_id,
                host: endpoint.host,
                port: endpoint.port,
                rack: a.zone.clone(),
            })
        })
        .collect();
    if view.agent(me).is_none() {
        if let Some(endpoint) = broker.endpoint(listener) {
            brokers.push(BrokerEntry {
                node_id: me,
                host: endpoint.host,
                port: endpoint.port,
                rack: broker.config.zone.clone(),
            });
        }
    }
    brokers
}
