//! One module per Kafka API family. Each handler takes a decoded request body and
//! returns a response body; none touches the socket.
//!
//! [`dispatch`] runs the part of a handler that must happen in arrival order
//! (for Produce: validating and queueing the batches) and returns the rest as a
//! [`PendingResponse`] that the connection awaits and writes in order.
//!
//! A request of a client under a request-time quota comes with its
//! [`RequestMeter`]: its response is checked against the quota as it is
//! encoded, and carries the throttle (`crate::quotas::request_time`).

mod acls;
pub(crate) mod api_versions;
mod cluster;
mod configs;
mod consumer_groups;
mod fetch;
mod group_admin;
mod groups;
mod implicit_add;
mod init_producer_id;
mod leader_epoch;
mod list_offsets;
mod log_dirs;
mod metadata;
mod offsets;
mod partitions;
mod placement_admin;
mod produce;
mod producers;
mod quotas;
mod read_committed;
mod sasl;
mod share_fetch;
mod share_groups;
mod share_offsets;
mod topic_partitions;
mod topics;
mod transactions;
mod user_credentials;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, TopicName};
use streamhouse_metadata::Topic;
use streamhouse_protocol::request::Request;
use streamhouse_protocol::response::{self, Frame};

use crate::acl::Access;
use crate::config::listeners::SecurityProtocol;
use crate::fetch_memory::{FetchHold, FetchTurns};
use crate::quotas::{raise_throttle, request_time, Mute, QuotaClient, RequestMeter};
use crate::request_metrics::RequestMetrics;
use crate::sasl::SaslSession;
use crate::share::sessions::ConnectionId;
use crate::Broker;

/// What the connection does once a request is answered.
pub enum Outcome {
    /// Write this frame. What a fetch response holds (its share of the fetch
    /// memory budget, its turn among the connection's fetches) comes with it
    /// and is let go once the frame is written.
    Respond(Frame, Option<FetchHold>),
    /// Nothing to write (Produce with acks=0).
    NoResponse,
    /// Close the connection (a request that cannot be served).
    Close,
}

/// A response that may still be waiting for something.
pub struct PendingResponse(BoxFuture<'static, Outcome>);

impl PendingResponse {
    pub fn ready(outcome: Outcome) -> Self {
        PendingResponse(futures::future::ready(outcome).boxed())
    }

    fn later(future: impl std::future::Future<Output = Outcome> + Send + 'static) -> Self {
        PendingResponse(future.boxed())
    }

    pub fn into_future(self) -> BoxFuture<'static, Outcome> {
        self.0
    }

    /// Times the rest of a metered request.
    fn metered(self, meter: Option<Arc<RequestMeter>>) -> Self {
        match meter {
            None => self,
            Some(meter) => PendingResponse(request_time::Metered::new(self.0, meter).boxed()),
        }
    }
}

/// Encodes a response body for the request it answers.
#[derive(Clone)]
struct Reply {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    /// When the request was taken off the socket, and where its handling
    /// time and errors are counted.
    received: Instant,
    metrics: Arc<RequestMetrics>,
    /// Present when the client is under a request-time quota.
    meter: Option<Arc<RequestMeter>>,
}

impl Reply {
    fn encode(self, mut body: ResponseKind) -> Outcome {
        self.settle(&mut body);
        let encoded = response::encode(self.correlation_id, self.api_key, self.version, &body);
        self.outcome(encoded.map(Frame::from), None)
    }

    /// A request answered with no response (Produce with acks=0).
    fn no_response(self, body: &ResponseKind) -> Outcome {
        self.metrics
            .answered(self.api_key, self.received.elapsed(), Some(body));
        Outcome::NoResponse
    }

    /// Encodes a fetch response with its records, which the frame holds by
    /// reference (see [`response::encode_fetch`]), and what it holds.
    fn encode_fetch(self, answer: fetch::Answer) -> Outcome {
        let mut body = ResponseKind::Fetch(answer.response);
        self.settle(&mut body);
        let encoded = match body {
            ResponseKind::Fetch(response) => {
                response::encode_fetch(self.correlation_id, self.version, response, &answer.records)
            }
            _ => Err(anyhow::anyhow!("a fetch answered with another response")),
        };
        // Once encoded, the frame holds the records; the answer's list of
        // them goes.
        drop(answer.records);
        self.outcome(encoded, Some(answer.hold))
    }

    /// Applies the request-time throttle and counts the answer.
    fn settle(&self, body: &mut ResponseKind) {
        if let Some(meter) = &self.meter {
            // Kafka reports the larger of a byte-rate throttle (already in
            // Produce's response) and the request-time one.
            raise_throttle(body, meter.settle());
        }
        self.metrics
            .answered(self.api_key, self.received.elapsed(), Some(body));
    }

    /// What an encoded response comes to: the frame, holding at most its
    /// size of the fetch memory.
    fn outcome(&self, encoded: anyhow::Result<Frame>, mut hold: Option<FetchHold>) -> Outcome {
        match encoded {
            Ok(frame) => {
                if let Some(held) = hold.as_mut().and_then(|hold| hold.memory.as_mut()) {
                    held.shrink_to(frame.len());
                }
                Outcome::Respond(frame, hold)
            }
            Err(e) => {
                tracing::error!(api = ?self.api_key, version = self.version, error = %e, "cannot encode response; closing connection");
                Outcome::Close
            }
        }
    }
}

/// The topic a request names: by id in the versions that name topics by id
/// (UNKNOWN_TOPIC_ID when no topic has it, so a topic deleted and re-created
/// under its name is never reached through the old one's id), by name before.
async fn named_topic(
    broker: &Broker,
    name: &TopicName,
    id: uuid::Uuid,
    by_id: bool,
) -> Result<Option<Topic>, (ResponseError, String)> {
    let found = if by_id {
        match broker.catalog.topic_by_id(id).await {
            Ok(None) => {
                return Err((
                    ResponseError::UnknownTopicId,
                    format!("No topic has the id {id}"),
                ))
            }
            found => found,
        }
    } else {
        broker.catalog.topic_by_name(&name.0).await
    };
    found.map_err(|e| (crate::errors::catalog(&e), e.to_string()))
}

/// What a request's connection tells about it.
pub struct Session<'a> {
    /// The client's address; group members report it as their host.
    pub peer: SocketAddr,
    /// The listener the client connected on: brokers are named to it by
    /// their endpoints on that listener.
    pub listener: SecurityProtocol,
    /// The authenticated principal's name (`ANONYMOUS` without
    /// authentication), as quotas name users.
    pub user: &'a Arc<str>,
    /// Orders the connection's fetches (dispatch is called in arrival order).
    pub fetch_turns: &'a Arc<FetchTurns>,
    /// The connection's throttle.
    pub mute: &'a Arc<Mute>,
    /// How the client authenticated, on a SASL listener: re-authentication
    /// runs through it.
    pub sasl: Option<&'a Arc<SaslSession>>,
    /// Names the connection (its share sessions end with it).
    pub connection: ConnectionId,
}

/// `meter` times a request of a client under a request-time quota; the
/// caller times this call with it ([`request_time::timed`]), the response
/// future is timed here.
pub async fn dispatch(
    broker: &Arc<Broker>,
    request: Request,
    session: Session<'_>,
    meter: Option<Arc<RequestMeter>>,
) -> PendingResponse {
    let reply = Reply {
        correlation_id: request.correlation_id(),
        api_key: request.api_key,
        version: request.version,
        received: Instant::now(),
        metrics: Arc::clone(&broker.request_metrics),
        meter: meter.clone(),
    };
    respond(broker, request, session, reply)
        .await
        .metered(meter)
}

async fn respond(
    broker: &Arc<Broker>,
    request: Request,
    session: Session<'_>,
    reply: Reply,
) -> PendingResponse {
    let Session {
        peer,
        listener,
        user,
        fetch_turns,
        mute,
        sasl: sasl_session,
        connection,
    } = session;
    let version = request.version;
    let broker = Arc::clone(broker);
    let access = Access::new(&broker.authorizer, user, peer.ip());
    match request.body {
        RequestKind::ApiVersions(body) => PendingResponse::ready(reply.encode(
            ResponseKind::ApiVersions(api_versions::handle(&body, version)),
        )),
        RequestKind::Produce(body) => {
            let acks = body.acks;
            let client = QuotaClient::of(user, &request.header.client_id);
            let waiting = produce::handle(&broker, body, version, &client, mute, &access).await;
            PendingResponse::later(async move {
                let response = waiting.await;
                let response = ResponseKind::Produce(response);
                if acks == 0 {
                    reply.no_response(&response)
                } else {
                    reply.encode(response)
                }
            })
        }
        RequestKind::InitProducerId(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::InitProducerId(
                init_producer_id::handle(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::AddPartitionsToTxn(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::AddPartitionsToTxn(
                transactions::add_partitions(&broker, body, &access).await,
            ))
        }),
        RequestKind::AddOffsetsToTxn(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::AddOffsetsToTxn(
                transactions::add_offsets(&broker, body, &access).await,
            ))
        }),
        RequestKind::TxnOffsetCommit(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::TxnOffsetCommit(
                transactions::commit_offsets(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::EndTxn(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::EndTxn(
                transactions::end(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::ListTransactions(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ListTransactions(
                transactions::list(&broker, body, &access).await,
            ))
        }),
        RequestKind::DescribeTransactions(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeTransactions(
                transactions::describe(&broker, body, &access).await,
            ))
        }),
        RequestKind::Fetch(body) => {
            let ticket = fetch_turns.ticket();
            let client = QuotaClient::of(user, &request.header.client_id);
            let mute = Arc::clone(mute);
            PendingResponse::later(async move {
                let limits = fetch::FetchLimits {
                    client: &client,
                    mute: &mute,
                    meter: reply.meter.as_deref(),
                    access: &access,
                };
                let answer = fetch::handle(&broker, body, version, ticket, limits).await;
                reply.encode_fetch(answer)
            })
        }
        RequestKind::ListOffsets(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ListOffsets(
                list_offsets::handle(&broker, &access, body).await,
            ))
        }),
        RequestKind::Metadata(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::Metadata(
                metadata::handle(
                    &broker,
                    body,
                    version,
                    request.header.client_id.as_deref(),
                    &access,
                    listener,
                )
                .await,
            ))
        }),
        RequestKind::CreateTopics(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::CreateTopics(
                topics::create(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::DeleteTopics(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DeleteTopics(
                topics::delete(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::FindCoordinator(body) => {
            PendingResponse::ready(reply.encode(ResponseKind::FindCoordinator(
                groups::find_coordinator(&broker, body, version, &access, listener).await,
            )))
        }
        RequestKind::JoinGroup(body) => {
            let client_id = request.header.client_id.as_deref().unwrap_or("").to_owned();
            // Kafka reports the host as Java's InetAddress prints it.
            let client_host = format!("/{}", peer.ip());
            PendingResponse::later(async move {
                let response =
                    groups::join(&broker, body, version, client_id, client_host, &access).await;
                reply.encode(ResponseKind::JoinGroup(response))
            })
        }
        RequestKind::ConsumerGroupHeartbeat(body) => {
            let client_id = request.header.client_id.as_deref().unwrap_or("").to_owned();
            let client_host = format!("/{}", peer.ip());
            PendingResponse::later(async move {
                let response = consumer_groups::heartbeat(
                    &broker,
                    body,
                    version,
                    client_id,
                    client_host,
                    &access,
                )
                .await;
                reply.encode(ResponseKind::ConsumerGroupHeartbeat(response))
            })
        }
        RequestKind::ShareGroupHeartbeat(body) => {
            let client_id = request.header.client_id.as_deref().unwrap_or("").to_owned();
            let client_host = format!("/{}", peer.ip());
            PendingResponse::later(async move {
                let response =
                    share_groups::heartbeat(&broker, body, client_id, client_host, &access).await;
                reply.encode(ResponseKind::ShareGroupHeartbeat(response))
            })
        }
        RequestKind::ShareGroupDescribe(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ShareGroupDescribe(
                share_groups::describe(&broker, body, &access).await,
            ))
        }),
        RequestKind::DescribeShareGroupOffsets(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeShareGroupOffsets(
                share_offsets::describe_offsets(&broker, body, &access).await,
            ))
        }),
        RequestKind::AlterShareGroupOffsets(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::AlterShareGroupOffsets(
                share_offsets::alter_offsets(&broker, body, &access).await,
            ))
        }),
        RequestKind::DeleteShareGroupOffsets(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DeleteShareGroupOffsets(
                share_offsets::delete_offsets(&broker, body, &access).await,
            ))
        }),
        RequestKind::ShareFetch(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ShareFetch(
                share_fetch::fetch(&broker, body, &access, connection).await,
            ))
        }),
        RequestKind::ShareAcknowledge(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ShareAcknowledge(
                share_fetch::acknowledge(&broker, body, &access, connection).await,
            ))
        }),
        RequestKind::ConsumerGroupDescribe(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ConsumerGroupDescribe(
                consumer_groups::describe(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::SyncGroup(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::SyncGroup(
                groups::sync(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::Heartbeat(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::Heartbeat(
                groups::heartbeat(&broker, body, &access).await,
            ))
        }),
        RequestKind::LeaveGroup(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::LeaveGroup(
                groups::leave(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::OffsetCommit(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::OffsetCommit(
                offsets::commit(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::OffsetFetch(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::OffsetFetch(
                offsets::fetch(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::OffsetDelete(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::OffsetDelete(
                offsets::delete(&broker, body, &access).await,
            ))
        }),
        RequestKind::ListGroups(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ListGroups(
                group_admin::list(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::DescribeGroups(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeGroups(
                group_admin::describe(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::DeleteGroups(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DeleteGroups(
                group_admin::delete(&broker, body, &access).await,
            ))
        }),
        RequestKind::DescribeConfigs(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeConfigs(
                configs::describe(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::AlterConfigs(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::AlterConfigs(
                configs::alter(&broker, body, &access).await,
            ))
        }),
        RequestKind::IncrementalAlterConfigs(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::IncrementalAlterConfigs(
                configs::incremental_alter(&broker, body, &access).await,
            ))
        }),
        RequestKind::ListConfigResources(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ListConfigResources(
                configs::list_resources(&broker, body, version, &access).await,
            ))
        }),
        RequestKind::CreatePartitions(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::CreatePartitions(
                partitions::create(&broker, body, &access).await,
            ))
        }),
        RequestKind::DeleteRecords(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DeleteRecords(
                partitions::delete_records(&broker, body, &access).await,
            ))
        }),
        // In arrival order, here: a re-authentication's steps must not
        // overtake each other.
        RequestKind::SaslHandshake(body) => PendingResponse::ready(reply.encode(
            ResponseKind::SaslHandshake(sasl::handshake(sasl_session, &body, version)),
        )),
        RequestKind::SaslAuthenticate(body) => {
            let response = sasl::authenticate(&broker, sasl_session, &body).await;
            PendingResponse::ready(reply.encode(ResponseKind::SaslAuthenticate(response)))
        }
        RequestKind::DescribeCluster(body) => PendingResponse::ready(reply.encode(
            ResponseKind::DescribeCluster(cluster::describe(
                &broker, body, version, &access, listener,
            )),
        )),
        RequestKind::DescribeProducers(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeProducers(
                producers::describe(&broker, body, &access).await,
            ))
        }),
        RequestKind::DescribeLogDirs(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeLogDirs(
                log_dirs::describe(&broker, body, request.header.client_id.as_deref(), &access)
                    .await,
            ))
        }),
        RequestKind::AlterReplicaLogDirs(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::AlterReplicaLogDirs(
                log_dirs::alter(&broker, body, request.header.client_id.as_deref(), &access).await,
            ))
        }),
        RequestKind::OffsetForLeaderEpoch(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::OffsetForLeaderEpoch(
                leader_epoch::handle(&broker, body, &access).await,
            ))
        }),
        RequestKind::ElectLeaders(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::ElectLeaders(
                placement_admin::elect_leaders(&broker, body, &access).await,
            ))
        }),
        RequestKind::ListPartitionReassignments(body) => {
            PendingResponse::ready(reply.encode(ResponseKind::ListPartitionReassignments(
                placement_admin::list_reassignments(body, &access),
            )))
        }
        RequestKind::AlterPartitionReassignments(body) => PendingResponse::later(async move {
            let client_id = request.header.client_id.as_deref();
            reply.encode(ResponseKind::AlterPartitionReassignments(
                placement_admin::alter_reassignments(&broker, body, client_id, &access).await,
            ))
        }),
        RequestKind::DescribeTopicPartitions(body) => PendingResponse::later(async move {
            let client_id = request.header.client_id.as_deref();
            reply.encode(ResponseKind::DescribeTopicPartitions(
                topic_partitions::describe(&broker, body, client_id, &access, listener).await,
            ))
        }),
        RequestKind::DescribeUserScramCredentials(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeUserScramCredentials(
                user_credentials::describe(&broker, body, &access).await,
            ))
        }),
        RequestKind::AlterUserScramCredentials(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::AlterUserScramCredentials(
                user_credentials::alter(&broker, body, &access).await,
            ))
        }),
        RequestKind::CreateAcls(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::CreateAcls(
                acls::create(&broker, &access, body).await,
            ))
        }),
        RequestKind::DescribeAcls(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeAcls(
                acls::describe(&broker, &access, body).await,
            ))
        }),
        RequestKind::DeleteAcls(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DeleteAcls(
                acls::delete(&broker, &access, body).await,
            ))
        }),
        RequestKind::DescribeClientQuotas(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::DescribeClientQuotas(
                quotas::describe(&broker, body, &access).await,
            ))
        }),
        RequestKind::AlterClientQuotas(body) => PendingResponse::later(async move {
            reply.encode(ResponseKind::AlterClientQuotas(
                quotas::alter(&broker, body, &access).await,
            ))
        }),
        other => {
            // `versions::accepts` lets through only the APIs matched above; reaching
            // here means the table and this match disagree.
            tracing::error!(api = ?reply.api_key, "request for an API without a handler; closing connection");
            reply
                .metrics
                .answered(reply.api_key, reply.received.elapsed(), None);
            drop(other);
            PendingResponse::ready(Outcome::Close)
        }
    }
}
