//! What the agent counts of the Kafka requests it serves: requests, errors and
//! handling time per API, bytes and records in and out per topic, and open
//! client connections. The families are registered once in the agent's
//! registry; the handlers record into them.
//!
//! Label values are the API and error names clients and Kafka's own metrics
//! use (`api="Produce"`, `error="NOT_COORDINATOR"`). Keys hold the API key
//! and the error code, not strings, so recording allocates nothing: the names
//! are written only when a scrape encodes them.

mod error_codes;

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use streamhouse_protocol::batches::Batches;

pub use error_codes::error_codes;

/// `api="NAME"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ApiLabel(pub ApiKey);

impl EncodeLabelSet for ApiLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("api", format!("{:?}", self.0))].encode(encoder)
    }
}

/// `api="NAME",error="ERROR_NAME"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ApiErrorLabels {
    pub api: ApiKey,
    pub code: i16,
}

impl EncodeLabelSet for ApiErrorLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [
            ("api", format!("{:?}", self.api)),
            ("error", error_name(self.code)),
        ]
        .encode(encoder)
    }
}

/// Kafka's name of an error code, as its `Errors` enum spells it
/// (`NOT_COORDINATOR`); `UNKNOWN_<code>` for a code it has no name for.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_{code}"),
        Some(error) => screaming_snake(&format!("{error:?}")),
    }
}

/// `NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.char_indices() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `topic="NAME"`.
pub type TopicLabel = [(&'static str, String); 1];

fn topic_label(topic: &str) -> TopicLabel {
    [("topic", topic.to_owned())]
}

fn new_duration_histogram() -> Histogram {
    // 0.5 ms to about 16 s: a local request to a long-polled fetch.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The request-level metric families (see the module doc).
#[derive(Debug)]
pub struct RequestMetrics {
    requests: Family<ApiLabel, Counter>,
    errors: Family<ApiErrorLabels, Counter>,
    durations: Family<ApiLabel, Histogram, fn() -> Histogram>,
    bytes_in: Family<TopicLabel, Counter>,
    records_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    records_out: Family<TopicLabel, Counter>,
    connections: Gauge,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            requests: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(new_duration_histogram),
            bytes_in: Family::default(),
            records_in: Family::default(),
            bytes_out: Family::default(),
            records_out: Family::default(),
            connections: Gauge::default(),
        }
    }
}

impl RequestMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "streamhouse_requests",
            "Kafka requests answered, by API",
            self.requests.clone(),
        );
        registry.register(
            "streamhouse_request_errors",
            "Error codes in Kafka responses, one per partition, group or resource that carries one, by API and error",
            self.errors.clone(),
        );
        registry.register(
            "streamhouse_request_duration_seconds",
            "Time from a request's arrival to its response being ready (a fetch's wait included), by API",
            self.durations.clone(),
        );
        let topic_counters = [
            (
                "streamhouse_topic_bytes_in",
                "Bytes of record batches appended by produce requests, by topic",
                &self.bytes_in,
            ),
            (
                "streamhouse_topic_records_in",
                "Records appended by produce requests, by topic",
                &self.records_in,
            ),
            (
                "streamhouse_topic_bytes_out",
                "Bytes of record batches returned to fetch requests, by topic",
                &self.bytes_out,
            ),
            (
                "streamhouse_topic_records_out",
                "Records in the batches returned to fetch requests, by topic",
                &self.records_out,
            ),
        ];
        for (name, help, family) in topic_counters {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "streamhouse_connections",
            "Open client connections",
            self.connections.clone(),
        );
    }

    /// One answered request: its handling time and the error codes its
    /// response carries.
    pub fn answered(&self, api: ApiKey, elapsed: Duration, response: Option<&ResponseKind>) {
        let label = ApiLabel(api);
        self.requests.get_or_create(&label).inc();
        self.durations
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
        if let Some(response) = response {
            for code in error_codes(response) {
                self.errors
                    .get_or_create(&ApiErrorLabels { api, code })
                    .inc();
            }
        }
    }

    /// Batches of `topic` a produce request appended.
    pub fn produced(&self, topic: &str, bytes: usize, records: u64) {
        let label = topic_label(topic);
        self.bytes_in.get_or_create(&label).inc_by(bytes as u64);
        self.records_in.get_or_create(&label).inc_by(records);
    }

    /// Batches of `topic` a fetch response returns.
    pub fn fetched(&self, topic: &str, batches: &Batches) {
        if batches.is_empty() {
            return;
        }
        let label = topic_label(topic);
        self.bytes_out
            .get_or_create(&label)
            .inc_by(batches.len() as u64);
        let records = batches
            .iter()
            .map(|batch| u64::try_from(batch.header().records_count).unwrap_or(0))
            .sum();
        self.records_out.get_or_create(&label).inc_by(records);
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }
}

/// Decrements the connection gauge when dropped.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
    use streamhouse_protocol::batch;

    fn render(metrics: &RequestMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(16), "NOT_COORDINATOR");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "UNKNOWN_9999");
    }

    #[test]
    fn requests_errors_and_durations_are_labelled_by_api_and_error() {
        let metrics = RequestMetrics::default();
        let failed = ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(ResponseError::RebalanceInProgress.code()),
        );
        metrics.answered(ApiKey::Heartbeat, Duration::from_millis(3), Some(&failed));
        let fine = ResponseKind::Heartbeat(HeartbeatResponse::default());
        metrics.answered(ApiKey::Heartbeat, Duration::from_millis(1), Some(&fine));
        metrics.answered(ApiKey::Produce, Duration::from_millis(1), None);
        let text = render(&metrics);
        assert!(
            text.contains("streamhouse_requests_total{api=\"Heartbeat\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("streamhouse_requests_total{api=\"Produce\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "streamhouse_request_errors_total{api=\"Heartbeat\",error=\"REBALANCE_IN_PROGRESS\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("streamhouse_request_duration_seconds_count{api=\"Heartbeat\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "streamhouse_request_duration_seconds_bucket{le=\"0.002\",api=\"Heartbeat\"} 1\n"
            ) || text.contains(
                "streamhouse_request_duration_seconds_bucket{api=\"Heartbeat\",le=\"0.002\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn connections_count_while_their_guards_live() {
        let metrics = RequestMetrics::default();
        let first = metrics.connection_opened();
        let second = metrics.connection_opened();
        drop(first);
        assert!(render(&metrics).contains("\nstreamhouse_connections 1\n"));
        drop(second);
        assert!(render(&metrics).contains("\nstreamhouse_connections 0\n"));
    }

    /// A batch of `records` empty records (header fields only matter here).
    fn batch_of(records: i32) -> Vec<u8> {
        let mut bytes = vec![0u8; batch::HEADER_BYTES];
        let length = (batch::HEADER_BYTES - 12) as i32;
        bytes[8..12].copy_from_slice(&length.to_be_bytes());
        bytes[57..61].copy_from_slice(&records.to_be_bytes());
        bytes
    }

    #[test]
    fn topic_traffic_is_labelled_by_topic() {
        let metrics = RequestMetrics::default();
        metrics.produced("orders", 120, 4);
        let mut two_batches = batch_of(2);
        two_batches.extend(batch_of(3));
        let batches = Batches::from_contiguous(&two_batches.into()).unwrap();
        metrics.fetched("orders", &batches);
        metrics.fetched("empty", &Batches::default());
        let text = render(&metrics);
        assert!(
            text.contains("streamhouse_topic_bytes_in_total{topic=\"orders\"} 120\n"),
            "{text}"
        );
        assert!(
            text.contains("streamhouse_topic_records_in_total{topic=\"orders\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("streamhouse_topic_records_out_total{topic=\"orders\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("streamhouse_topic_bytes_out_total{topic=\"orders\"} 122\n"),
            "{text}"
        );
        assert!(!text.contains("topic=\"empty\""), "{text}");
    }
}
