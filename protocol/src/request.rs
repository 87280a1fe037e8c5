//! Decoding a request frame body into its header and typed body.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::Decodable;

use crate::counts::GuardedBuf;
use crate::topic_id_offsets;
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
    let header_version = api_key.request_header_version(version);
    // First with every count and length kept within the bytes left (see
    // `counts`), so that no lying count sizes an allocation.
    let mut guarded = GuardedBuf::new(frame.clone());
    let guarded_decode = RequestHeader::decode(&mut guarded, header_version)
        .and_then(|header| decode_body(api_key, &mut guarded, version).map(|body| (header, body)));
    let (header, body) = match (guarded_decode, guarded.lowered()) {
        (Ok(decoded), None) => decoded,
        // Only plain integers larger than the bytes left were lowered (a
        // lowered count cannot decode): decode again for their real values.
        (Ok(_), Some(_)) => {
            let mut buf = frame;
            let header = RequestHeader::decode(&mut buf, header_version).map_err(malformed)?;
            let body = decode_body(api_key, &mut buf, version).map_err(malformed)?;
            (header, body)
        }
        (Err(error), None) => return Err(malformed(error)),
        (Err(error), Some(lowered)) => {
            return Err(malformed(error.context(format!(
                "a count or length of {} with only {} bytes left",
                lowered.value, lowered.bytes_left
            ))))
        }
    };
    Ok(Request {
        header,
        api_key,
        version,
        body,
    })
}

/// Decodes the body of one of the requests the broker serves, from any
/// buffer (`RequestKind::decode` takes only `Bytes`, so it cannot read
/// through the [`GuardedBuf`]).
macro_rules! decode_served {
    ($api_key:expr, $buf:expr, $version:expr; $($kind:ident),* $(,)?) => {
        match $api_key {
            $(ApiKey::$kind => Ok(RequestKind::$kind(Decodable::decode($buf, $version)?)),)*
            other => Err(anyhow::anyhow!("{other:?} requests are not served")),
        }
    };
}

/// Every key of [`versions::ADVERTISED`] (a test holds the two together).
fn decode_body<B: ByteBuf>(
    api_key: ApiKey,
    buf: &mut B,
    version: i16,
) -> anyhow::Result<RequestKind> {
    if version >= topic_id_offsets::FIRST_TOPIC_ID_VERSION {
        match api_key {
            ApiKey::OffsetCommit => {
                return topic_id_offsets::decode_offset_commit(buf).map(RequestKind::OffsetCommit)
            }
            ApiKey::OffsetFetch => {
                return topic_id_offsets::decode_offset_fetch(buf).map(RequestKind::OffsetFetch)
            }
            _ => {}
        }
    }
    decode_served!(api_key, buf, version;
        Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator,
        JoinGroup, Heartbeat, LeaveGroup, SyncGroup, DescribeGroups, ListGroups, ApiVersions,
        CreateTopics, DeleteTopics, InitProducerId, DeleteGroups, OffsetDelete,
        OffsetForLeaderEpoch, DescribeConfigs, AlterConfigs, DeleteRecords, CreatePartitions,
        IncrementalAlterConfigs, DescribeCluster, DescribeProducers, ElectLeaders,
        AlterPartitionReassignments, ListPartitionReassignments, DescribeTopicPartitions,
        DescribeLogDirs, DescribeClientQuotas, AlterClientQuotas, ListConfigResources,
        SaslHandshake, SaslAuthenticate, DescribeUserScramCredentials, AlterUserScramCredentials,
        AlterReplicaLogDirs, CreateAcls, DescribeAcls, DeleteAcls, AddPartitionsToTxn,
        AddOffsetsToTxn, TxnOffsetCommit, EndTxn, ListTransactions, DescribeTransactions,
        ConsumerGroupHeartbeat, ConsumerGroupDescribe, ShareGroupHeartbeat, ShareGroupDescribe,
        ShareFetch, ShareAcknowledge, DescribeShareGroupOffsets, AlterShareGroupOffsets,
        DeleteShareGroupOffsets,
    )
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

    fn frame_with_body(api_key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        buf.put_slice(body);
        buf.freeze()
    }

    #[test]
    fn a_compact_array_count_past_the_bytes_left_is_malformed() {
        // Metadata v12: a compact topic array claiming 2^32 - 2 topics.
        let frame = frame_with_body(ApiKey::Metadata, 12, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0]);
        let Err(RequestError::Malformed { reason, .. }) = decode(frame) else {
            panic!("a lying count decoded");
        };
        assert!(reason.contains("count or length of 4294967295"), "{reason}");
    }

    #[test]
    fn an_array_count_past_the_bytes_left_is_malformed() {
        // Metadata v4: a topic array claiming 2^31 - 1 topics.
        let frame = frame_with_body(ApiKey::Metadata, 4, &[0x7f, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(decode(frame), Err(RequestError::Malformed { .. })));
    }

    #[test]
    fn integers_larger_than_the_bytes_left_keep_their_values() {
        use kafka_protocol::messages::{FetchRequest, JoinGroupRequest};
        // A fetch with no topics: its wait, sizes and epoch all exceed the
        // few bytes that follow them.
        let fetch = FetchRequest::default()
            .with_max_wait_ms(30_000)
            .with_min_bytes(1)
            .with_max_bytes(52_428_800)
            .with_session_epoch(-1);
        for version in [4, 12] {
            let request = decode(frame_for(ApiKey::Fetch, version, &fetch)).unwrap();
            let RequestKind::Fetch(decoded) = request.body else {
                panic!("not a fetch");
            };
            assert_eq!(decoded.max_wait_ms, 30_000);
            assert_eq!(decoded.max_bytes, 52_428_800);
        }
        let join = JoinGroupRequest::default()
            .with_group_id(kafka_protocol::protocol::StrBytes::from_static_str("g").into())
            .with_session_timeout_ms(45_000)
            .with_rebalance_timeout_ms(300_000)
            .with_protocol_type(kafka_protocol::protocol::StrBytes::from_static_str(
                "consumer",
            ));
        let request = decode(frame_for(ApiKey::JoinGroup, 5, &join)).unwrap();
        let RequestKind::JoinGroup(decoded) = request.body else {
            panic!("not a join");
        };
        assert_eq!(decoded.session_timeout_ms, 45_000);
        assert_eq!(decoded.rebalance_timeout_ms, 300_000);
    }

    #[test]
    fn every_advertised_request_kind_is_decoded() {
        for api in versions::ADVERTISED {
            // An empty body fails to decode, but as that kind, not as one
            // the broker does not serve.
            let Err(error) = decode_body(api.key, &mut Bytes::new(), api.max) else {
                continue;
            };
            assert!(
                !error.to_string().contains("not served"),
                "{:?} is advertised but not decoded",
                api.key
            );
        }
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
