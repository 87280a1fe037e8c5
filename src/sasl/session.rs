//! A connection's life before it is authenticated, on a SASL listener: one
//! request at a time (clients do not pipeline here), and only ApiVersions,
//! SaslHandshake and SaslAuthenticate, or, after a v0 handshake, the raw
//! SASL tokens of Kafka's original framing. Anything else closes the
//! connection, as Kafka does; so does a failed exchange, after its answer.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_protocol::{frame, request, response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::reauth::{lifetime_ms, SaslSession};
use super::{Exchange, Mechanism, Refused, Step, MECHANISMS};
use crate::handlers::api_versions;
use crate::Broker;

/// The largest frame read before authentication: Kafka's default
/// `sasl.server.max.receive.size`, so an unauthenticated peer cannot make
/// the agent buffer a request of the full `--max-frame-bytes`.
const MAX_RECEIVE_BYTES: usize = 524_288;

/// Where the exchange stands.
enum State {
    /// No mechanism chosen yet.
    Handshake,
    /// Tokens come in SaslAuthenticate requests (handshake v1).
    Framed(Exchange),
    /// Tokens come as bare frames (handshake v0).
    Raw(Exchange),
}

/// Runs the connection until it is authenticated: the session, or None once
/// the connection must close. Bytes read past the last SASL frame stay in
/// `buf` for the connection's main loop.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    broker: &Broker,
    socket: &mut S,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> Option<SaslSession> {
    let mut state = State::Handshake;
    loop {
        let body = next_frame(broker, socket, buf, peer).await?;
        let (reply, outcome) = match state {
            State::Raw(mut exchange) => {
                let exchange_mechanism = exchange.mechanism();
                let stepped = exchange.step(broker.catalog.as_ref(), &body).await;
                state = State::Raw(exchange);
                match stepped {
                    Ok(Step::Continue(challenge)) => (raw_frame(&challenge), None),
                    // The original framing cannot carry a session
                    // lifetime: no re-authentication.
                    Ok(Step::Authenticated { user, response }) => (
                        raw_frame(&response),
                        Some(Some(SaslSession::new(user, exchange_mechanism, None))),
                    ),
                    // Kafka's original framing has no way to say why: the
                    // connection closes.
                    Err(refused) => {
                        log_refused(peer, &refused);
                        return None;
                    }
                }
            }
            current => {
                let request = match request::decode(body) {
                    Ok(request) => request,
                    // As on any listener (and Kafka): an ApiVersions newer
                    // than ours is answered with our versions, and the
                    // client asks again (franz-go opens with v5).
                    Err(request::RequestError::UnsupportedVersion {
                        api_key: ApiKey::ApiVersions,
                        correlation_id,
                        ..
                    }) => {
                        state = current;
                        let reply = response::unsupported_api_versions(correlation_id).ok()?;
                        if socket.write_all(&reply).await.is_err() || socket.flush().await.is_err()
                        {
                            return None;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "closing connection: bad request during SASL authentication");
                        return None;
                    }
                };
                let (body, next, outcome) = answer(broker, &request, current, peer).await?;
                state = next;
                let frame = response::encode(
                    request.correlation_id(),
                    request.api_key,
                    request.version,
                    &body,
                )
                .ok()?;
                (frame, outcome)
            }
        };
        // Flushed for TLS, which holds what was written until then.
        if socket.write_all(&reply).await.is_err() || socket.flush().await.is_err() {
            return None;
        }
        if let Some(user) = outcome {
            return user;
        }
    }
}

/// The response to one request, the state after it, and Some(outcome) when
/// the exchange ends with it (Some(session) authenticated, None refused).
/// None for a request that closes the connection unanswered.
async fn answer(
    broker: &Broker,
    request: &request::Request,
    state: State,
    peer: SocketAddr,
) -> Option<(ResponseKind, State, Option<Option<SaslSession>>)> {
    match (&request.body, state) {
        (RequestKind::ApiVersions(body), state) => Some((
            ResponseKind::ApiVersions(api_versions::handle(body, request.version)),
            state,
            None,
        )),
        (RequestKind::SaslHandshake(body), State::Handshake) => {
            let enabled = MECHANISMS
                .iter()
                .map(|m| StrBytes::from_static_str(m))
                .collect();
            let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
            match Mechanism::from_name(&body.mechanism) {
                Some(mechanism) => {
                    let exchange = Exchange::new(mechanism);
                    let next = if request.version == 0 {
                        State::Raw(exchange)
                    } else {
                        State::Framed(exchange)
                    };
                    Some((ResponseKind::SaslHandshake(response), next, None))
                }
                None => {
                    tracing::debug!(%peer, mechanism = %body.mechanism, "closing connection: unsupported SASL mechanism");
                    let response =
                        response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
                    Some((
                        ResponseKind::SaslHandshake(response),
                        State::Handshake,
                        Some(None),
                    ))
                }
            }
        }
        (RequestKind::SaslAuthenticate(body), State::Framed(mut exchange)) => {
            let stepped = exchange
                .step(broker.catalog.as_ref(), &body.auth_bytes)
                .await;
            let response = SaslAuthenticateResponse::default();
            Some(match stepped {
                Ok(Step::Continue(challenge)) => (
                    ResponseKind::SaslAuthenticate(response.with_auth_bytes(challenge.into())),
                    State::Framed(exchange),
                    None,
                ),
                Ok(Step::Authenticated {
                    user,
                    response: last,
                }) => {
                    tracing::debug!(%peer, user = %user, mechanism = exchange.mechanism().name(), "authenticated");
                    // Only v1+ carries a session lifetime; a v0 client is
                    // never asked to re-authenticate (a lifetime of 0).
                    let lifetime = broker
                        .config
                        .connections_max_reauth
                        .filter(|_| request.version >= 1);
                    let response = response
                        .with_auth_bytes(last.into())
                        .with_session_lifetime_ms(lifetime.map_or(0, lifetime_ms));
                    let session = SaslSession::new(user, exchange.mechanism(), lifetime);
                    (
                        ResponseKind::SaslAuthenticate(response),
                        State::Framed(exchange),
                        Some(Some(session)),
                    )
                }
                Err(refused) => {
                    log_refused(peer, &refused);
                    (
                        ResponseKind::SaslAuthenticate(
                            response
                                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                                .with_error_message(Some(StrBytes::from_string(refused.message))),
                        ),
                        State::Framed(exchange),
                        Some(None),
                    )
                }
            })
        }
        (RequestKind::SaslAuthenticate(_), State::Handshake) => {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "Unexpected Kafka request of type SASL_AUTHENTICATE during SASL handshake.",
                )));
            Some((
                ResponseKind::SaslAuthenticate(response),
                State::Handshake,
                Some(None),
            ))
        }
        _ => {
            tracing::debug!(%peer, api = ?request.api_key, "closing connection: request before SASL authentication");
            None
        }
    }
}

fn log_refused(peer: SocketAddr, refused: &Refused) {
    tracing::info!(%peer, reason = %refused.message, "SASL authentication failed");
}

/// A bare token frame: length and bytes (the v0 framing).
fn raw_frame(token: &[u8]) -> BytesMut {
    let mut frame = BytesMut::with_capacity(frame::LENGTH_PREFIX_BYTES + token.len());
    frame.put_i32(token.len() as i32);
    frame.put_slice(token);
    frame
}

/// The next whole frame's body; None when the peer is gone, too slow (the
/// idle timeout bounds each frame) or sent a bad frame (one larger than
/// [`MAX_RECEIVE_BYTES`] included).
async fn next_frame<S: AsyncRead + Unpin>(
    broker: &Broker,
    socket: &mut S,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> Option<Bytes> {
    let max_frame = broker.config.max_frame_bytes.min(MAX_RECEIVE_BYTES);
    let deadline = tokio::time::Instant::now() + broker.config.connections_max_idle;
    loop {
        match frame::check(buf, max_frame) {
            Ok(Some(length)) => {
                return Some(
                    buf.split_to(frame::LENGTH_PREFIX_BYTES + length)
                        .freeze()
                        .slice(frame::LENGTH_PREFIX_BYTES..),
                )
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(%peer, error = %e, "closing connection: bad frame during SASL authentication");
                return None;
            }
        }
        let read = tokio::time::timeout_at(
            deadline,
            crate::connection::read_more(socket, buf, max_frame),
        )
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::debug!(%peer, "closing connection: SASL authentication not completed in time");
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_frame_is_the_token_behind_its_length() {
        assert_eq!(&raw_frame(b"v=abc")[..], b"\0\0\0\x05v=abc");
        assert_eq!(&raw_frame(b"")[..], b"\0\0\0\0");
    }
}
