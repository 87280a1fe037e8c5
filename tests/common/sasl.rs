//! The SASL requests of the SASL and TLS tests, over any stream.

use bytes::Bytes;
use kafka_protocol::messages::*;

use super::{s, Stream, TestClient};

pub async fn handshake(
    client: &mut TestClient<impl Stream>,
    version: i16,
    mechanism: &str,
) -> SaslHandshakeResponse {
    let request = SaslHandshakeRequest::default().with_mechanism(s(mechanism));
    let ResponseKind::SaslHandshake(response) =
        client.call(ApiKey::SaslHandshake, version, &request).await
    else {
        panic!("not a SaslHandshake response")
    };
    response
}

/// SaslAuthenticate v2 carrying `token`.
pub async fn authenticate(
    client: &mut TestClient<impl Stream>,
    token: &[u8],
) -> SaslAuthenticateResponse {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    let ResponseKind::SaslAuthenticate(response) =
        client.call(ApiKey::SaslAuthenticate, 2, &request).await
    else {
        panic!("not a SaslAuthenticate response")
    };
    response
}

/// Whether the connection is served: Metadata answered, naming one broker.
pub async fn metadata_works(client: &mut TestClient<impl Stream>) -> bool {
    let ResponseKind::Metadata(response) = client
        .call(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await
    else {
        return false;
    };
    response.brokers.len() == 1
}
