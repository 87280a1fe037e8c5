//! A small Kafka client: one connection per agent, requests framed with the
//! kafka-protocol crate's message types at versions every StreamHouse agent
//! (and Kafka 4) serves, and the cluster's metadata to find each partition's
//! leader.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, MetadataRequest, MetadataResponse, RequestHeader,
    ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a connection attempt and a response may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest response frame accepted (a fetch asks for at most 32 MiB).
const MAX_FRAME_BYTES: usize = 64 << 20;

/// What can go wrong talking to the cluster; each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} failed: {reason}")]
    Io { addr: String, reason: String },
    #[error("{addr} sent a response that cannot be read: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("{what}: {error}")]
    Kafka { what: String, error: KafkaError },
    #[error("{0}")]
    Usage(String),
}

/// A Kafka error code, with the broker's message when it sent one.
#[derive(Debug)]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code.err() {
            Some(e) => write!(f, "{} (error {})", kafka_name(&format!("{e}")), self.code)?,
            None => write!(f, "error {}", self.code)?,
        }
        if let Some(message) = self.message.as_deref().filter(|m| !m.is_empty()) {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// Kafka's name of an error (`UNKNOWN_TOPIC_OR_PARTITION`) from the crate's
/// (`UnknownTopicOrPartition`).
fn kafka_name(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `Err` unless `code` is 0.
pub fn check(
    what: impl FnOnce() -> String,
    code: i16,
    message: Option<&StrBytes>,
) -> Result<(), ClientError> {
    if code == 0 {
        return Ok(());
    }
    Err(ClientError::Kafka {
        what: what(),
        error: KafkaError {
            code,
            message: message.map(|m| m.to_string()),
        },
    })
}

/// ListOffsets' timestamps for a partition's earliest and latest offset.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// An answer that is empty, or a response of another API.
pub fn unexpected(api: &str) -> ClientError {
    ClientError::Usage(format!(
        "the agent's {api} response is empty or of another API"
    ))
}

/// `partition`, or every partition of `topic`, in order.
pub fn partitions_of(topic: &MetadataResponseTopic, partition: Option<i32>) -> Vec<i32> {
    let mut partitions: Vec<i32> = match partition {
        Some(p) => vec![p],
        None => topic.partitions.iter().map(|p| p.partition_index).collect(),
    };
    partitions.sort_unstable();
    partitions
}

pub fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

pub fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One connection.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    pub async fn open(addr: &str) -> Result<Connection, ClientError> {
        let connect = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    addr: addr.into(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.into(),
                    reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            addr: addr.into(),
            stream,
            correlation_id: 0,
        })
    }

    /// Sends one request and reads its response.
    pub async fn call(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &impl Encodable,
    ) -> Result<ResponseKind, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(text("streamctl")));
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .and_then(|()| body.encode(&mut buf, version))
            .map_err(|e| self.protocol(format!("encoding the request: {e}")))?;
        let length =
            i32::try_from(buf.len() - 4).map_err(|_| self.protocol("request too large".into()))?;
        buf[..4].copy_from_slice(&length.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&buf).await?;
            let length = self.stream.read_i32().await?;
            Ok::<_, std::io::Error>(length)
        };
        let length = match tokio::time::timeout(RESPONSE_TIMEOUT, exchange).await {
            Ok(Ok(length)) => length,
            Ok(Err(e)) => return Err(self.io(e.to_string())),
            Err(_) => {
                return Err(self.io(format!(
                    "no response within {} s",
                    RESPONSE_TIMEOUT.as_secs()
                )))
            }
        };
        let length = usize::try_from(length)
            .ok()
            .filter(|&n| n <= MAX_FRAME_BYTES)
            .ok_or_else(|| self.protocol(format!("a frame of {length} bytes")))?;
        let mut body = vec![0u8; length];
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.stream.read_exact(&mut body)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(self.io(e.to_string())),
            Err(_) => return Err(self.io("the response stopped half way".into())),
        }
        let mut frame = Bytes::from(body);
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
            .map_err(|e| self.protocol(e.to_string()))?;
        if header.correlation_id != self.correlation_id {
            return Err(self.protocol("a response to another request".into()));
        }
        let response = ResponseKind::decode(api_key, &mut frame, version)
            .map_err(|e| self.protocol(e.to_string()))?;
        if frame.has_remaining() {
            return Err(self.protocol("trailing bytes".into()));
        }
        Ok(response)
    }

    fn io(&self, reason: String) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// The cluster as the bootstrap agent describes it, with a connection to it
/// and to each leader asked for.
pub struct Cluster {
    bootstrap: Connection,
    /// Agents by node id, "host:port".
    agents: HashMap<i32, String>,
    by_node: HashMap<i32, Connection>,
}

pub const METADATA_VERSION: i16 = 12;

impl Cluster {
    pub async fn connect(bootstrap: &str) -> Result<Cluster, ClientError> {
        let bootstrap = Connection::open(bootstrap).await?;
        Ok(Cluster {
            bootstrap,
            agents: HashMap::new(),
            by_node: HashMap::new(),
        })
    }

    /// The connection to the bootstrap agent, for requests any agent serves.
    pub fn any(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// Metadata of `topics` (all topics if `None`), never creating one.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let ResponseKind::Metadata(response) = self
            .bootstrap
            .call(ApiKey::Metadata, METADATA_VERSION, &request)
            .await?
        else {
            return Err(self.bootstrap.protocol("not a Metadata response".into()));
        };
        for broker in &response.brokers {
            self.agents
                .insert(broker.node_id.0, format!("{}:{}", broker.host, broker.port));
        }
        Ok(response)
    }

    /// Every agent's node id and "host:port", as of the last metadata.
    pub async fn agents(&mut self) -> Result<Vec<(i32, String)>, ClientError> {
        if self.agents.is_empty() {
            self.metadata(Some(&[])).await?;
        }
        let mut agents: Vec<(i32, String)> = self
            .agents
            .iter()
            .map(|(id, addr)| (*id, addr.clone()))
            .collect();
        agents.sort();
        Ok(agents)
    }

    /// The connection to agent `node` (one of [`Cluster::agents`]).
    pub async fn agent(&mut self, node: i32) -> Result<&mut Connection, ClientError> {
        if !self.by_node.contains_key(&node) {
            let addr = self.agents.get(&node).cloned().ok_or_else(|| {
                ClientError::Usage(format!("agent {node} is not in the metadata"))
            })?;
            let connection = Connection::open(&addr).await?;
            self.by_node.insert(node, connection);
        }
        Ok(self.by_node.get_mut(&node).expect("inserted above"))
    }

    /// The connection to `group`'s coordinator.
    pub async fn coordinator(&mut self, group: &str) -> Result<&mut Connection, ClientError> {
        let request = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![text(group)]);
        let ResponseKind::FindCoordinator(response) = self
            .bootstrap
            .call(ApiKey::FindCoordinator, 4, &request)
            .await?
        else {
            return Err(self
                .bootstrap
                .protocol("not a FindCoordinator response".into()));
        };
        let found = response.coordinators.first().ok_or_else(|| {
            self.bootstrap
                .protocol("FindCoordinator answered no coordinator".into())
        })?;
        check(
            || format!("finding the coordinator of group {group}"),
            found.error_code,
            found.error_message.as_ref(),
        )?;
        let node = found.node_id.0;
        self.agents
            .insert(node, format!("{}:{}", found.host, found.port));
        self.agent(node).await
    }

    /// One topic's metadata; an error if the topic does not exist.
    pub async fn topic(&mut self, topic: &str) -> Result<MetadataResponseTopic, ClientError> {
        let response = self.metadata(Some(&[topic.to_string()])).await?;
        let found = response
            .topics
            .into_iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| ClientError::Usage(format!("topic {topic}: not in the metadata")))?;
        check(|| format!("topic {topic}"), found.error_code, None)?;
        Ok(found)
    }

    /// The connection to the agent leading `partition` of `topic`.
    pub async fn leader(
        &mut self,
        topic: &MetadataResponseTopic,
        partition: i32,
    ) -> Result<&mut Connection, ClientError> {
        let topic_name = topic
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .unwrap_or_default();
        let found = topic
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                ClientError::Usage(format!(
                    "topic {topic_name} has no partition {partition} (it has {})",
                    topic.partitions.len()
                ))
            })?;
        check(
            || format!("{topic_name}[{partition}]"),
            found.error_code,
            None,
        )?;
        let leader = found.leader_id.0;
        if !self.by_node.contains_key(&leader) {
            let addr = self.agents.get(&leader).cloned().ok_or_else(|| {
                ClientError::Usage(format!(
                    "{topic_name}[{partition}]: its leader {leader} is not among the agents"
                ))
            })?;
            let connection = Connection::open(&addr).await?;
            self.by_node.insert(leader, connection);
        }
        Ok(self.by_node.get_mut(&leader).expect("inserted above"))
    }
}
