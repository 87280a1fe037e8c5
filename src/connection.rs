//! One client connection: reads whole frames, hands each request to its handler
//! in arrival order, and writes the responses back in that same order.
//!
//! A handler's synchronous part (validation, queueing appends) runs in the read
//! loop, in order; what it must wait for (durable commits, fetch long-polls) runs
//! as a future, so a pipelining client keeps several requests in flight. At most
//! [`MAX_IN_FLIGHT`] responses are pending; past that the read loop stops reading.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use futures::stream::{FuturesOrdered, StreamExt};
use streamhouse_protocol::{frame, request, response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::handlers::{self, Outcome, PendingResponse};
use crate::Broker;

/// Requests read ahead of their responses. Kafka clients pipeline at most a
/// handful (max.in.flight.requests.per.connection defaults to 5).
const MAX_IN_FLIGHT: usize = 32;

/// Initial read buffer; grows only to the size of a validated frame.
const READ_BUFFER_BYTES: usize = 64 * 1024;

pub async fn serve(
    broker: Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let (mut read_half, write_half) = socket.into_split();
    let (pending_tx, pending_rx) = mpsc::channel::<PendingResponse>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(write_half, pending_rx, peer));
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let max_frame = broker.config.max_frame_bytes;
    'connection: loop {
        // Take every whole frame already buffered.
        loop {
            let length = match frame::check(&buf, max_frame) {
                Ok(Some(length)) => length,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                    break 'connection;
                }
            };
            let body = buf
                .split_to(frame::LENGTH_PREFIX_BYTES + length)
                .freeze()
                .slice(frame::LENGTH_PREFIX_BYTES..);
            let pending = match request::decode(body) {
                Ok(request) => {
                    let span = tracing::debug_span!(
                        "request",
                        api = ?request.api_key,
                        version = request.version,
                        correlation_id = request.correlation_id(),
                        client_id = request.client_id(),
                    );
                    handlers::dispatch(&broker, request, peer)
                        .instrument(span)
                        .await
                }
                Err(request::RequestError::UnsupportedVersion {
                    api_key: kafka_protocol::messages::ApiKey::ApiVersions,
                    correlation_id,
                    ..
                }) => {
                    let frame = response::unsupported_api_versions(correlation_id);
                    PendingResponse::ready(match frame {
                        Ok(frame) => Outcome::Respond(frame),
                        Err(_) => Outcome::Close,
                    })
                }
                Err(e) => {
                    // Kafka closes the connection on requests it cannot parse; the
                    // responses already owed are still delivered first.
                    tracing::warn!(%peer, error = %e, "closing connection: bad request");
                    PendingResponse::ready(Outcome::Close)
                }
            };
            if pending_tx.send(pending).await.is_err() {
                break 'connection;
            }
        }
        if let Ok(Some(length)) = frame::declared_length(&buf, max_frame) {
            buf.reserve(frame::LENGTH_PREFIX_BYTES + length - buf.len());
        }
        if buf.capacity() == buf.len() {
            buf.reserve(READ_BUFFER_BYTES);
        }
        tokio::select! {
            read = read_half.read_buf(&mut buf) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break;
                }
            },
            _ = stop.changed() => break,
            // The writer stopped (closed by a bad request, or the peer is gone).
            _ = pending_tx.closed() => break,
        }
    }
    drop(pending_tx);
    let _ = writer.await;
}

async fn write_responses(
    mut socket: OwnedWriteHalf,
    mut incoming: mpsc::Receiver<PendingResponse>,
    peer: SocketAddr,
) {
    let mut in_flight = FuturesOrdered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            next = incoming.recv(), if reading => match next {
                Some(pending) => in_flight.push_back(pending.into_future()),
                None => reading = false,
            },
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => match outcome {
                Outcome::Respond(frame) => {
                    if let Err(e) = socket.write_all(&frame).await {
                        tracing::debug!(%peer, error = %e, "write failed");
                        return;
                    }
                }
                Outcome::NoResponse => {}
                Outcome::Close => {
                    let _ = socket.shutdown().await;
                    return;
                }
            },
            else => break,
        }
    }
    let _ = socket.shutdown().await;
}
