//! Decoding a request frame body into its header and typed body.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::versions;

/// The fixed start of every request header: api key, api version, correlation id.
const FIXED_HEADER_BYTES: usize = 8;

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: RequestKind,
}

impl Request {
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("{api_key:?} version {version} is not supported")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// Decodes one frame body (without its length prefix).
///
/// Versions outside [`versions::accepts`] are refused before the body is parsed,
/// so the broker never sees a request it does not fully serve.
pub fn decode(frame: Bytes) -> Result<Request, RequestError> {
    if frame.len() < FIXED_HEADER_BYTES {
        return Err(RequestError::TooShort(frame.len()));
    }
    let mut fixed = &frame[..FIXED_HEADER_BYTES];
    let raw_key = fixed.get_i16();
    let version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|()| RequestError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    if !versions::accepts(api_key, version) {
        return Err(RequestError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: anyhow::Error| RequestError::Malformed {
        api_key,
        version,
        correlation_id,
        reason: format!("{reason:#}"),
    };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut buf, version).map_err(malformed)?;
    Ok(Request {
        header,
        api_key,
        version,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::protocol::Encodable;

    fn frame_for(api_key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some("test".into()));
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_metadata_request() {
        let frame = frame_for(ApiKey::Metadata, 12, &MetadataRequest::default());
        let request = decode(frame).unwrap();
        assert_eq!(request.api_key, ApiKey::Metadata);
        assert_eq!(request.version, 12);
        assert_eq!(request.correlation_id(), 42);
        assert_eq!(request.client_id(), "test");
        assert!(matches!(request.body, RequestKind::Metadata(_)));
    }

    #[test]
    fn short_frame_is_rejected() {
        assert!(matches!(
            decode(Bytes::from_static(&[0, 3, 0])),
            Err(RequestError::TooShort(3))
        ));
    }

    #[test]
    fn unknown_api_key_is_rejected_with_its_correlation_id() {
        let mut buf = BytesMut::new();
        buf.put_i16(9999);
        buf.put_i16(0);
        buf.put_i32(7);
        assert!(matches!(
            decode(buf.freeze()),
            Err(RequestError::UnknownApiKey {
                api_key: 9999,
                correlation_id: 7
            })
        ));
    }

    #[test]
    fn unsupported_version_is_rejected_before_parsing() {
        let mut buf = BytesMut::new();
        buf.put_i16(ApiKey::Produce as i16);
        buf.put_i16(1);
        buf.put_i32(5);
        assert!(matches!(
            decode(buf.freeze()),
            Err(RequestError::UnsupportedVersion { version: 1, .. })
        ));
    }

    #[test]
    fn truncated_body_is_malformed() {
        let frame = frame_for(ApiKey::Metadata, 1, &MetadataRequest::default());
        // Metadata v1 with a null topic list is `ff ff ff ff`; cut it short.
        let truncated = frame.slice(..frame.len() - 2);
        assert!(matches!(
            decode(truncated),
            Err(RequestError::Malformed { .. })
        ));
    }
}
