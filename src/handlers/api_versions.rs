//! ApiVersions: the versions this broker serves, and the one feature it
//! finalizes: `transaction.version` 2 (KIP-890 part 2), which tells Kafka 4
//! clients to add partitions with their Produce requests and take a new epoch
//! from every EndTxn, the flow the transaction APIs serve from Produce v12,
//! EndTxn v5 and TxnOffsetCommit v5.

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use streamhouse_protocol::response::advertised_api_versions;

/// The first ApiVersions version with features (tagged fields).
const FIRST_FEATURES_VERSION: i16 = 3;

const TRANSACTION_VERSION: &str = "transaction.version";
const TRANSACTION_VERSION_SERVED: i16 = 2;

/// The epoch of the finalized features: they never change while an agent
/// runs, and every agent of a version finalizes the same ones.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

pub fn handle(_request: &ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    let response = ApiVersionsResponse::default().with_api_keys(advertised_api_versions());
    // Before v3 there is nowhere to put features. (Tagged fields left at
    // their defaults are omitted, which old librdkafka versions need.)
    if version < FIRST_FEATURES_VERSION {
        return response;
    }
    let name = StrBytes::from_static_str(TRANSACTION_VERSION);
    response
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(name.clone())
            .with_min_version(0)
            .with_max_version(TRANSACTION_VERSION_SERVED)])
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(name)
            .with_min_version_level(TRANSACTION_VERSION_SERVED)
            .with_max_version_level(TRANSACTION_VERSION_SERVED)])
}
