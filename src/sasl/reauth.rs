//! Re-authentication (KIP-368, Kafka's `connections.max.reauth.ms`): a
//! client told a session lifetime when it authenticated runs the exchange
//! again on the same connection before the lifetime ends, between its other
//! requests, with the same mechanism and as the same user. Once the
//! lifetime has passed, any request but the SASL ones closes the
//! connection, as on Kafka. Clients told no lifetime (handshake v0,
//! SaslAuthenticate v0, or `--connections-max-reauth-ms 0`) keep their
//! session for the connection's life.

use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::{Exchange, Mechanism, Step, MECHANISMS};
use crate::Broker;

/// How a connection authenticated, and until when.
pub struct SaslSession {
    user: String,
    mechanism: Mechanism,
    /// None: no re-authentication (the session lasts as long as the
    /// connection).
    lifetime: Option<Duration>,
    state: Mutex<State>,
}

struct State {
    expires_at: Option<Instant>,
    /// A re-authentication under way (after its SaslHandshake).
    exchange: Option<Exchange>,
}

impl SaslSession {
    pub fn new(user: String, mechanism: Mechanism, lifetime: Option<Duration>) -> SaslSession {
        SaslSession {
            user,
            mechanism,
            lifetime,
            state: Mutex::new(State {
                expires_at: lifetime.map(|lifetime| Instant::now() + lifetime),
                exchange: None,
            }),
        }
    }

    /// The authenticated user.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the session's lifetime has passed: only the SASL requests of
    /// a re-authentication may come now.
    pub fn expired(&self) -> bool {
        // Checked before every request: a session without a lifetime (the
        // default) answers without taking the lock.
        self.lifetime.is_some()
            && self
                .state()
                .expires_at
                .is_some_and(|expires_at| Instant::now() >= expires_at)
    }

    /// A SaslHandshake on the authenticated connection: the start of a
    /// re-authentication, if the client was told a lifetime (else Kafka's
    /// ILLEGAL_SASL_STATE).
    pub fn handshake(&self, mechanism: &str, version: i16) -> SaslHandshakeResponse {
        let response = SaslHandshakeResponse::default().with_mechanisms(
            MECHANISMS
                .iter()
                .map(|m| StrBytes::from_static_str(m))
                .collect(),
        );
        if self.lifetime.is_none() || version == 0 {
            return SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code());
        }
        if mechanism != self.mechanism.name() {
            // A session keeps its mechanism (KIP-368); the failed attempt
            // leaves the session to expire.
            tracing::info!(user = %self.user, from = self.mechanism.name(), to = mechanism, "re-authentication refused: another mechanism");
            self.state().exchange = None;
            return response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
        }
        self.state().exchange = Some(Exchange::new(self.mechanism));
        response
    }

    /// A SaslAuthenticate of a re-authentication: the exchange's next step.
    /// On success the session is renewed; as another user, or refused, it
    /// is ended, so that the connection's next request closes it.
    pub async fn authenticate(&self, broker: &Broker, token: &[u8]) -> SaslAuthenticateResponse {
        let Some(mut exchange) = self.state().exchange.take() else {
            return SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate request received after successful authentication",
                )));
        };
        let refuse = |message: String| {
            tracing::info!(user = %self.user, reason = %message, "re-authentication failed");
            self.state().expires_at = Some(Instant::now());
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        match exchange.step(broker.catalog.as_ref(), token).await {
            Ok(Step::Continue(challenge)) => {
                self.state().exchange = Some(exchange);
                SaslAuthenticateResponse::default().with_auth_bytes(challenge.into())
            }
            Ok(Step::Authenticated { user, .. }) if user != self.user => refuse(format!(
                "Cannot change principals during re-authentication from User:{}: User:{user}",
                self.user
            )),
            Ok(Step::Authenticated { response, .. }) => {
                let lifetime = self.lifetime.unwrap_or_default();
                self.state().expires_at = Some(Instant::now() + lifetime);
                tracing::debug!(user = %self.user, "re-authenticated");
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(response.into())
                    .with_session_lifetime_ms(lifetime_ms(lifetime))
            }
            Err(refused) => refuse(refused.message),
        }
    }
}

/// A lifetime as SaslAuthenticate's `session_lifetime_ms`.
pub fn lifetime_ms(lifetime: Duration) -> i64 {
    i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)
}
