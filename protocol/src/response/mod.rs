//! Encoding responses into length-prefixed frames.

mod fetch;

pub use fetch::{encode_fetch, Frame};

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
    encode_message(
        correlation_id,
        api_key,
        version,
        capacity_for(body, version),
        |buf| body.encode(buf, version),
    )
}

/// A frame: the length prefix, the response header, and what `encode_body`
/// writes, in a buffer of `capacity` to start with.
fn encode_message(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    capacity: usize,
    encode_body: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))?;
    encode_body(&mut buf)?;
    let length = i32::try_from(buf.len() - LENGTH_PREFIX_BYTES)?;
    buf[..LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(buf)
}

/// Bytes to reserve for a response frame. A Fetch response carries megabytes of
/// records; growing its buffer by doubling from a small start copies them
/// about twice more and touches fresh pages at every step, so its exact size
/// is computed first (a walk over the message, not over the records).
fn capacity_for(body: &ResponseKind, version: i16) -> usize {
    const SMALL_RESPONSE_BYTES: usize = 256;
    /// Length prefix and the largest response header (correlation id and
    /// empty tagged fields), with room to spare.
    const HEADER_BYTES: usize = 16;
    match body {
        ResponseKind::Fetch(fetch) => fetch
            .compute_size(version)
            .map_or(SMALL_RESPONSE_BYTES, |size| size + HEADER_BYTES),
        _ => SMALL_RESPONSE_BYTES,
    }
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

    #[test]
    fn a_fetch_response_frame_is_allocated_once_at_its_size() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::FetchResponse;
        let records = bytes::Bytes::from(vec![7u8; 100_000]);
        let body = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_partitions(vec![PartitionData::default().with_records(Some(records))])]);
        for version in [4, 12] {
            let frame = encode(
                1,
                ApiKey::Fetch,
                version,
                &ResponseKind::Fetch(body.clone()),
            )
            .unwrap();
            assert!(frame.len() > 100_000);
            assert!(
                frame.capacity() - frame.len() <= 16,
                "v{version}: {} bytes reserved for {}",
                frame.capacity(),
                frame.len()
            );
        }
    }
}
