//! ApiVersions: the versions this broker serves.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use streamhouse_protocol::response::advertised_api_versions;

pub fn handle(_request: &ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    // Supported and finalized features stay empty: they are tagged fields left at
    // their defaults, which old librdkafka versions need omitted.
    ApiVersionsResponse::default().with_api_keys(advertised_api_versions())
}
