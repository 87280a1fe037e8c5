//! SaslHandshake and SaslAuthenticate once a connection is past
//! authentication (or on a plain-text listener, which has none): Kafka's
//! ILLEGAL_SASL_STATE. The exchange itself runs before requests reach the
//! handlers (`crate::sasl`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

pub fn handshake() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

pub fn authenticate() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_static_str(
            "SaslAuthenticate request received after successful authentication",
        )))
}
