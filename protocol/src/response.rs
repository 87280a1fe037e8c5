//! Encoding responses into length-prefixed frames.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{
    api_versions_response::ApiVersion, ApiKey, ApiVersionsResponse, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::Encodable;

use crate::frame::LENGTH_PREFIX_BYTES;
use crate::versions::ADVERTISED;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// Encodes `body` as the response to a request of `api_key`/`version`, with the
/// length prefix, ready for the socket.
pub fn encode(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    let length = i32::try_from(buf.len() - LENGTH_PREFIX_BYTES)?;
    buf[..LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(buf)
}

/// The advertised API table as ApiVersions entries.
pub fn advertised_api_versions() -> Vec<ApiVersion> {
    ADVERTISED
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min)
                .with_max_version(api.max)
        })
        .collect()
}

/// The answer to an ApiVersions request of a version this broker does not know:
/// a v0 response carrying UNSUPPORTED_VERSION and the supported list, so the
/// client retries with a version from that list instead of giving up.
pub fn unsupported_api_versions(correlation_id: i32) -> anyhow::Result<BytesMut> {
    let body = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(advertised_api_versions());
    encode(
        correlation_id,
        ApiKey::ApiVersions,
        0,
        &ResponseKind::ApiVersions(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn unsupported_api_versions_is_a_v0_response_with_error_35() {
        let mut frame = unsupported_api_versions(9).unwrap().freeze();
        let length = frame.get_i32();
        assert_eq!(length as usize, frame.len());
        assert_eq!(frame.get_i32(), 9, "correlation id");
        assert_eq!(frame.get_i16(), UNSUPPORTED_VERSION);
        assert_eq!(frame.get_i32() as usize, ADVERTISED.len());
    }
}
