//! The API versions StreamHouse advertises in ApiVersions, and the narrower set it
//! accepts at request time.
//!
//! Every (api, version) listed here is fully handled by the broker; an API that is
//! not implemented is not listed. The ranges are chosen for the clients, not only
//! for the protocol:
//! - Produce is advertised from v0 because librdkafka before 2.11.1 (Debian's kcat
//!   1.7.1 carries 2.0.2) enables gzip/snappy/lz4 only when the broker's range
//!   contains Produce 0, and record format v2 only with Produce 3 and Fetch 4.
//!   Like Apache Kafka 4.x, versions 0-2 (the old message formats) are refused
//!   when actually sent; no client that negotiates sends them.
//! - Produce 7 and Fetch 10 must be inside the ranges for librdkafka to use zstd.
//! - Produce 13 and Fetch 13 and later name topics by id (Metadata returns
//!   real, stable ids from v10); a client that has ids uses them, so a topic
//!   deleted and re-created under its name is never confused with the old one.
//!   Produce 12 differs from 11 only for transactional producers, which are not
//!   served (InitProducerId refuses a transactional id). Fetch 15 and later add
//!   fields only followers fill in; 16 adds the new leader's endpoint to
//!   NOT_LEADER_OR_FOLLOWER answers, which this broker gives without one (the
//!   client refreshes its metadata, as for earlier versions).

use kafka_protocol::messages::ApiKey;

/// One advertised API: its key and the inclusive version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertisedApi {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    /// Lowest version served when actually sent; below it the request is refused.
    pub min_accepted: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> AdvertisedApi {
    AdvertisedApi {
        key,
        min,
        max,
        min_accepted: min,
    }
}

/// The table sent in ApiVersions responses, in api-key order.
pub const ADVERTISED: &[AdvertisedApi] = &[
    AdvertisedApi {
        key: ApiKey::Produce,
        min: 0,
        max: 13,
        min_accepted: 3,
    },
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 6),
    api(ApiKey::Metadata, 0, 12),
    // Consumer groups. Old librdkafka enables them only with FindCoordinator 0,
    // JoinGroup/SyncGroup/Heartbeat/LeaveGroup 0, OffsetCommit 1-2 and OffsetFetch 1
    // overlapping these ranges. OffsetCommit 0-1 and OffsetFetch 0 are gone from
    // Kafka 4 and from the codec. OffsetCommit/OffsetFetch 10 name topics by id
    // (read by `topic_id_offsets`). DescribeGroups 6 is not served (v6 error
    // messages).
    api(ApiKey::OffsetCommit, 2, 10),
    api(ApiKey::OffsetFetch, 1, 10),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    // Served before authentication on a SASL listener; after it (or on a
    // plain-text listener) answered ILLEGAL_SASL_STATE, as Kafka does.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    // v6 adds two-phase commit for transactions, which are not served.
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    // Admin. DescribeConfigs v0 is gone from Kafka 4 and the codec;
    // OffsetForLeaderEpoch v0-1 likewise.
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    // ACLs in the catalog, enforced with --acls on (SECURITY_DISABLED with it
    // off, as a Kafka broker without an authorizer). v0 is gone from Kafka 4.
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    // Placement is automatic: no election is ever needed, nothing is being
    // reassigned, a reassignment is refused (see the handler).
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    // v0 is ListClientMetricsResources (none exist here); v1 lists topics and
    // brokers, the resources DescribeConfigs serves.
    api(ApiKey::ListConfigResources, 0, 1),
    // Byte-rate quotas of users and client ids (see the handler).
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
    // SCRAM credentials of SASL users, in the catalog.
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    // One log dir per agent, the object store: nothing can move between dirs.
    api(ApiKey::AlterReplicaLogDirs, 1, 2),
    // Sizes from the catalog, the object store as the one log dir.
    api(ApiKey::DescribeLogDirs, 1, 4),
    // Transactions (KIP-98) with the client-side AddPartitionsToTxn (v0-3;
    // v4+ is the brokers' verification form), and transaction version 2
    // (KIP-890 part 2: partitions added by Produce v12+, an epoch bump at
    // every EndTxn v5, groups added by TxnOffsetCommit v5), which ApiVersions
    // finalizes so that Kafka 4 clients use it; older clients keep version 1.
    api(ApiKey::AddPartitionsToTxn, 0, 3),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::EndTxn, 0, 5),
    api(ApiKey::ListTransactions, 0, 1),
    api(ApiKey::DescribeTransactions, 0, 0),
    // Consumer groups of the new protocol (KIP-848): v1 has the client make
    // its member id (KIP-1082) and ConsumerGroupDescribe v1 the member type.
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    // Share groups (KIP-932, queues): v1, the first version of Kafka 4.1's
    // production-ready protocol (v0 was the early-access one).
    api(ApiKey::ShareGroupHeartbeat, 1, 1),
    api(ApiKey::ShareGroupDescribe, 1, 1),
    api(ApiKey::ShareFetch, 1, 1),
    api(ApiKey::ShareAcknowledge, 1, 1),
    api(ApiKey::DescribeShareGroupOffsets, 0, 0),
    // kafka-share-groups --reset-offsets and --delete-offsets (Kafka 4.1).
    api(ApiKey::AlterShareGroupOffsets, 0, 0),
    api(ApiKey::DeleteShareGroupOffsets, 0, 0),
];

/// The advertised entry for `key`, if the API is served at all.
pub fn advertised(key: ApiKey) -> Option<&'static AdvertisedApi> {
    ADVERTISED.iter().find(|api| api.key == key)
}

/// Whether a request of this key and version is served.
pub fn accepts(key: ApiKey, version: i16) -> bool {
    advertised(key).is_some_and(|api| (api.min_accepted..=api.max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_librdkafka_feature_probes_are_inside_the_ranges() {
        let contains = |key, version| {
            let api = advertised(key).expect("advertised");
            (api.min..=api.max).contains(&version)
        };
        assert!(contains(ApiKey::Produce, 0));
        assert!(contains(ApiKey::Produce, 3));
        assert!(contains(ApiKey::Produce, 7));
        assert!(contains(ApiKey::Fetch, 4));
        assert!(contains(ApiKey::Fetch, 10));
        assert!(contains(ApiKey::ListOffsets, 1));
        for key in [
            ApiKey::FindCoordinator,
            ApiKey::JoinGroup,
            ApiKey::SyncGroup,
            ApiKey::Heartbeat,
            ApiKey::LeaveGroup,
        ] {
            assert!(contains(key, 0), "{key:?}");
        }
        // librdkafka asks for a range overlapping 1-2.
        assert!(contains(ApiKey::OffsetCommit, 2));
        assert!(contains(ApiKey::OffsetFetch, 1));
    }

    #[test]
    fn produce_below_v3_is_advertised_but_refused() {
        assert!(!accepts(ApiKey::Produce, 2));
        assert!(accepts(ApiKey::Produce, 3));
    }

    #[test]
    fn every_range_is_within_what_the_codec_can_encode() {
        for api in ADVERTISED {
            let codec = api.key.valid_versions();
            assert!(api.min_accepted >= codec.min, "{:?}", api.key);
            assert!(api.max <= codec.max, "{:?}", api.key);
        }
    }
}
