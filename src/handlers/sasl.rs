//! SaslHandshake and SaslAuthenticate once a connection is past
//! authentication: a re-authentication on a SASL listener
//! (`crate::sasl::reauth`), else Kafka's ILLEGAL_SASL_STATE (on a plain-text
//! or SSL listener, which has no SASL). The first exchange runs before
//! requests reach the handlers (`crate::sasl`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::sasl::SaslSession;
use crate::Broker;

pub fn handshake(
    session: Option<&Arc<SaslSession>>,
    request: &SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    match session {
        Some(session) => session.handshake(&request.mechanism, version),
        None => {
            SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
        }
    }
}

pub async fn authenticate(
    broker: &Broker,
    session: Option<&Arc<SaslSession>>,
    request: &SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    match session {
        Some(session) => session.authenticate(broker, &request.auth_bytes).await,
        None => SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate request received after successful authentication",
            ))),
    }
}
