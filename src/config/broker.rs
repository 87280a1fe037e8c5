//! The broker configs DescribeConfigs reports for resource type BROKER: the
//! Kafka names of the settings StreamHouse has, with the values this agent runs
//! with. All are read-only (they come from flags, the environment or the config
//! file); the Kafka defaults StreamHouse behaves by are reported as DEFAULT_CONFIG.

use super::{Config, ConfigEntry, ConfigType, SOURCE_DEFAULT, SOURCE_STATIC_BROKER};

/// The configs of broker `name` for agent `node_id` running with `config`:
/// `name` is its node id, or "" for the cluster-wide dynamic defaults
/// (StreamHouse has none). Err: why `name` is not this agent, in Kafka's words.
pub fn entries(config: &Config, node_id: i32, name: &str) -> Result<Vec<ConfigEntry>, String> {
    if name.is_empty() {
        return Ok(Vec::new());
    }
    if name.trim().parse::<i32>().ok() != Some(node_id) {
        return Err(format!(
            "Unexpected broker id, expected {node_id} or empty string, but received {name}"
        ));
    }
    let set = |name: &str, value: String, kind: ConfigType, doc: &'static str| ConfigEntry {
        name: name.to_string(),
        value: Some(value),
        source: SOURCE_STATIC_BROKER,
        default: None,
        read_only: true,
        kind,
        doc,
    };
    let fixed =
        |name: &str, value: &'static str, kind: ConfigType, doc: &'static str| ConfigEntry {
            name: name.to_string(),
            value: Some(value.to_string()),
            source: SOURCE_DEFAULT,
            default: Some(value.to_string()),
            read_only: true,
            kind,
            doc,
        };
    use ConfigType::*;
    let retention = &config.compaction.retention;
    let mut entries = vec![
        set(
            "advertised.listeners",
            config
                .listeners
                .iter()
                .map(|l| format!("{}://{}", l.protocol.name(), l.advertised()))
                .collect::<Vec<_>>()
                .join(","),
            List,
            "Addresses clients of each listener are told to use (--advertised-listener, --advertise).",
        ),
        set(
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            Boolean,
            "Whether Metadata creates unknown topics (--auto-create-topics).",
        ),
        set(
            "broker.id",
            node_id.to_string(),
            Int,
            "This agent's id (--node-id).",
        ),
        fixed(
            "compression.type",
            "producer",
            Str,
            "Batches are stored in the producer's codec.",
        ),
        set(
            "connections.max.idle.ms",
            config.connections_max_idle.as_millis().to_string(),
            Long,
            "Idle connections are closed after this long (--connections-max-idle-ms).",
        ),
        fixed(
            "default.replication.factor",
            "1",
            Int,
            "Replication is the object store's job; topics report one replica.",
        ),
        fixed(
            "group.consumer.assignors",
            "uniform,range",
            List,
            "The server-side assignors of consumer-protocol groups; uniform is the default.",
        ),
        set(
            "group.consumer.heartbeat.interval.ms",
            config.group_rules.consumer_heartbeat_interval_ms.to_string(),
            Int,
            "How often consumer-protocol members heartbeat (--group-consumer-heartbeat-interval-ms).",
        ),
        set(
            "group.consumer.session.timeout.ms",
            config.group_rules.consumer_session_timeout_ms.to_string(),
            Int,
            "How long a consumer-protocol member lives without a heartbeat (--group-consumer-session-timeout-ms).",
        ),
        set(
            "group.initial.rebalance.delay.ms",
            config.group_rules.initial_delay.as_millis().to_string(),
            Int,
            "How long a new group waits for more members before its first rebalance.",
        ),
        set(
            "group.max.session.timeout.ms",
            config.group_rules.max_session_timeout_ms.to_string(),
            Int,
            "The longest session a group member may ask for (--group-max-session-timeout-ms).",
        ),
        set(
            "group.max.size",
            config.group_rules.max_size.to_string(),
            Int,
            "The most members a consumer group may have (--group-max-size).",
        ),
        set(
            "group.min.session.timeout.ms",
            config.group_rules.min_session_timeout_ms.to_string(),
            Int,
            "The shortest session a group member may ask for (--group-min-session-timeout-ms).",
        ),
        set(
            "group.share.delivery.count.limit",
            config.group_rules.share_delivery_limit.to_string(),
            Int,
            "Deliveries of a record before a share group archives it (--group-share-delivery-count-limit).",
        ),
        set(
            "group.share.heartbeat.interval.ms",
            config.group_rules.share_heartbeat_interval_ms.to_string(),
            Int,
            "How often share group members heartbeat (--group-share-heartbeat-interval-ms).",
        ),
        set(
            "group.share.record.lock.duration.ms",
            config.group_rules.share_record_lock_ms.to_string(),
            Int,
            "How long a delivered record stays locked to its consumer (--group-share-record-lock-duration-ms).",
        ),
        set(
            "group.share.session.timeout.ms",
            config.group_rules.share_session_timeout_ms.to_string(),
            Int,
            "How long a share group member lives without a heartbeat (--group-share-session-timeout-ms).",
        ),
        set(
            "listeners",
            config
                .listeners
                .iter()
                .map(|l| format!("{}://{}", l.protocol.name(), l.bind))
                .collect::<Vec<_>>()
                .join(","),
            List,
            "Addresses this agent listens on (--listener, --listen).",
        ),
        set(
            "fetch.max.bytes",
            config.fetch_max_bytes.to_string(),
            Int,
            "Most record bytes one fetch response returns (--fetch-max-bytes).",
        ),
        fixed(
            "log.cleanup.policy",
            "delete",
            List,
            "Default cleanup.policy of topics.",
        ),
        set(
            "log.retention.bytes",
            retention.default_bytes.to_string(),
            Long,
            "Default retention.bytes of topics (--log-retention-bytes).",
        ),
        set(
            "log.retention.check.interval.ms",
            retention.check_interval.as_millis().to_string(),
            Long,
            "How often retention is applied (--retention-check-interval-ms).",
        ),
        // Kafka reports the hours too; log.retention.ms takes precedence.
        set(
            "log.retention.hours",
            if retention.default_ms < 0 {
                "-1".to_string()
            } else {
                (retention.default_ms / 3_600_000).to_string()
            },
            Int,
            "Default retention of topics, in hours (from --log-retention-ms).",
        ),
        set(
            "log.retention.ms",
            retention.default_ms.to_string(),
            Long,
            "Default retention.ms of topics (--log-retention-ms).",
        ),
        set(
            "max.connections",
            config.max_connections.to_string(),
            Int,
            "Connections served at once (--max-connections).",
        ),
        set(
            "max.connections.per.ip",
            config.max_connections_per_ip.to_string(),
            Int,
            "Connections served at once from one IP address (--max-connections-per-ip).",
        ),
        fixed(
            "message.max.bytes",
            "1048588",
            Int,
            "Default max.message.bytes of topics.",
        ),
        fixed(
            "min.insync.replicas",
            "1",
            Int,
            "Default min.insync.replicas of topics.",
        ),
        set(
            "node.id",
            node_id.to_string(),
            Int,
            "This agent's id (--node-id).",
        ),
        set(
            "num.partitions",
            config.default_partitions.to_string(),
            Int,
            "Partitions of auto-created topics (--default-partitions).",
        ),
        set(
            "producer.id.expiration.check.interval.ms",
            config
                .compaction
                .producer_expiry_interval
                .as_millis()
                .to_string(),
            Int,
            "How often idle producers' state is looked for (--producer-id-expiration-check-interval-ms).",
        ),
        set(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            config
                .transaction_abort_check_interval
                .as_millis()
                .to_string(),
            Int,
            "How often timed-out transactions are aborted (--transaction-abort-check-interval-ms).",
        ),
        set(
            "transaction.max.timeout.ms",
            config.transaction_max_timeout_ms.to_string(),
            Int,
            "The longest transaction timeout a producer may ask for (--transaction-max-timeout-ms).",
        ),
        set(
            "producer.id.expiration.ms",
            config
                .compaction
                .producer_id_expiration
                .as_millis()
                .to_string(),
            Int,
            "A producer's state on a partition is forgotten this long after its last append there (--producer-id-expiration-ms).",
        ),
        set(
            "socket.request.max.bytes",
            config.max_frame_bytes.to_string(),
            Int,
            "Largest request accepted (--max-frame-bytes).",
        ),
    ];
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}
