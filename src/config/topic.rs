//! Topic configs as Kafka defines them: the table of every config's name, type,
//! default and validator, the checks on a whole config set, and the configs
//! Produce acts on. Also the rules for topic names.

use std::collections::BTreeMap;

use super::{
    Config, ConfigEntry, ConfigType, SOURCE_DEFAULT, SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER,
};

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;

/// Why a topic name is refused, or `None` if it is legal. Kafka allows ASCII
/// letters, digits, '.', '_' and '-', and not the names "." and "..".
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("Topic name cannot be \"{name}\""));
    }
    if name.len() > MAX_TOPIC_NAME_CHARS {
        return Some(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_CHARS} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Some(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    None
}

/// Names of Kafka's internal topics, which Metadata marks `is_internal`.
/// StreamHouse keeps what they hold (group offsets, transaction state) in its
/// catalog: no client request creates, auto-creates, writes to or deletes a
/// topic of these names. Only the agent itself creates `__consumer_offsets`,
/// empty, at start (see [`crate::internal_topics`]).
pub const RESERVED_TOPIC_NAMES: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

pub fn is_reserved_topic_name(name: &str) -> bool {
    RESERVED_TOPIC_NAMES.contains(&name)
}

/// What values a config accepts, beyond parsing as its type.
#[derive(Clone, Copy, Debug)]
enum Check {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    /// A double in [0, 1].
    Ratio,
    OneOf(&'static [&'static str]),
    /// Comma-separated, each item one of these.
    ListOf(&'static [&'static str]),
    /// -1 or 1..=9 (Kafka's gzip level validator).
    GzipLevel,
    /// Empty, `*`, or `partition:broker` pairs (throttled replica lists).
    Replicas,
}

/// One topic config as Kafka 4.4 defines it (`LogConfig`).
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka's default, reported with source DEFAULT_CONFIG when unset.
    pub default: &'static str,
    check: Check,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    check: Check,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        kind,
        default,
        check,
        doc,
    }
}

use Check::*;
use ConfigType::*;

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config Kafka 4.4 knows, by name: its `LogConfig` less the internal
/// ones (the pre-4.0 `message.downconversion.enable`,
/// `message.timestamp.difference.max.ms` and `message.format.version` are gone
/// from Kafka, so they are unknown here too). `max.message.bytes`,
/// `message.timestamp.type` and the compaction configs (`cleanup.policy` with
/// `compact`, `min.cleanable.dirty.ratio`, `min.compaction.lag.ms`,
/// `max.compaction.lag.ms`, `delete.retention.ms`: the log cleaner in
/// `storage::compaction::cleaner` reads them) change what StreamHouse does; the
/// rest are validated, stored and reported (see the README's status table).
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", List, "delete", ListOf(&["compact", "delete"]), "What happens to old segments: delete, compact, or both."),
    def("compression.gzip.level", Int, "-1", GzipLevel, "Compression level for gzip."),
    def("compression.lz4.level", Int, "9", Between(1, 17), "Compression level for lz4."),
    def("compression.type", Str, "producer", OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), "Final compression of the topic's data; producer keeps the producer's codec."),
    def("compression.zstd.level", Int, "3", Between(-131072, 22), "Compression level for zstd."),
    def("delete.retention.ms", Long, "86400000", AtLeast(0), "How long delete tombstones are kept on compacted topics."),
    def("errors.deadletterqueue.group.enable", Boolean, "false", Any, "Whether share groups may use this topic as a dead-letter queue."),
    def("file.delete.delay.ms", Long, "60000", AtLeast(0), "Time to wait before deleting a file."),
    def("flush.messages", Long, LONG_MAX, AtLeast(1), "Messages between forced flushes."),
    def("flush.ms", Long, LONG_MAX, AtLeast(0), "Time between forced flushes."),
    def("follower.replication.throttled.replicas", List, "", Replicas, "Replicas whose follower replication is throttled."),
    def("index.interval.bytes", Int, "4096", AtLeast(0), "Bytes between offset index entries."),
    def("leader.replication.throttled.replicas", List, "", Replicas, "Replicas whose leader replication is throttled."),
    def("local.retention.bytes", Long, "-2", AtLeast(-2), "Local bytes kept before tiering (-2: retention.bytes)."),
    def("local.retention.ms", Long, "-2", AtLeast(-2), "Local time kept before tiering (-2: retention.ms)."),
    def("max.compaction.lag.ms", Long, LONG_MAX, AtLeast(1), "Longest time a message stays uncompacted."),
    def("max.decompressed.message.bytes", Int, "2147483639", Between(1, 2147483639), "Largest decompressed record batch."),
    def("max.message.bytes", Int, "1048588", AtLeast(0), "Largest record batch the topic accepts."),
    def("message.timestamp.after.max.ms", Long, "3600000", AtLeast(0), "How far ahead of the broker's clock a timestamp may be."),
    def("message.timestamp.before.max.ms", Long, LONG_MAX, AtLeast(0), "How far behind the broker's clock a timestamp may be."),
    def("message.timestamp.type", Str, "CreateTime", OneOf(&["CreateTime", "LogAppendTime"]), "Whether record timestamps are the producer's or the append time."),
    def("min.cleanable.dirty.ratio", Double, "0.5", Ratio, "Dirty share of the log that triggers compaction."),
    def("min.compaction.lag.ms", Long, "0", AtLeast(0), "Shortest time a message stays uncompacted."),
    def("min.insync.replicas", Int, "1", AtLeast(1), "Replicas that must acknowledge an acks=all write."),
    def("preallocate", Boolean, "false", Any, "Whether to preallocate segment files."),
    def("remote.copy.lag.bytes", Long, "-1", AtLeast(-1), "Bytes a segment may wait before it is copied to tiered storage."),
    def("remote.copy.lag.ms", Long, "0", AtLeast(-1), "Time a segment may wait before it is copied to tiered storage."),
    def("remote.log.copy.disable", Boolean, "false", Any, "Whether copying to tiered storage is paused."),
    def("remote.log.delete.on.disable", Boolean, "false", Any, "Whether tiered data is deleted when tiering is disabled."),
    def("remote.storage.enable", Boolean, "false", Any, "Whether the topic uses tiered storage."),
    def("retention.bytes", Long, "-1", Any, "Bytes kept per partition before old data is deleted (-1: no limit)."),
    def("retention.ms", Long, "604800000", AtLeast(-1), "Time data is kept before deletion (-1: no limit)."),
    def("segment.bytes", Int, "1073741824", AtLeast(1_048_576), "Segment file size."),
    def("segment.index.bytes", Int, "10485760", AtLeast(4), "Offset index size."),
    def("segment.jitter.ms", Long, "0", AtLeast(0), "Random jitter subtracted from segment.ms."),
    def("segment.ms", Long, "604800000", AtLeast(1), "Time after which a segment is rolled."),
    def("unclean.leader.election.enable", Boolean, "false", Any, "Whether an out-of-sync replica may become leader."),
];

/// The definition of a topic config, if Kafka has one of that name.
pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The agent settings that stand in for Kafka's defaults of topic configs, as
/// Kafka's broker configs do (`log.retention.ms`, `log.retention.bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerDefaults {
    pub retention_ms: i64,
    pub retention_bytes: i64,
}

impl BrokerDefaults {
    pub fn of(config: &Config) -> BrokerDefaults {
        BrokerDefaults {
            retention_ms: config.compaction.retention.default_ms,
            retention_bytes: config.compaction.retention.default_bytes,
        }
    }

    /// The default a topic that does not set `def` has, and its source: the
    /// agent's setting where it has one that differs from Kafka's default
    /// (STATIC_BROKER_CONFIG, as a `server.properties` value), else Kafka's.
    fn of_config(&self, def: &TopicConfigDef) -> (String, i8) {
        let setting = match def.name {
            "retention.ms" => Some(self.retention_ms),
            "retention.bytes" => Some(self.retention_bytes),
            _ => None,
        };
        match setting.map(|v| v.to_string()) {
            Some(value) if value != def.default => (value, SOURCE_STATIC_BROKER),
            _ => (def.default.to_string(), SOURCE_DEFAULT),
        }
    }
}

/// Every config of a topic set to `configs`, as DescribeConfigs reports it: the
/// topic's own value, else the agent's default for it, else Kafka's.
pub fn described(configs: &BTreeMap<String, String>, broker: &BrokerDefaults) -> Vec<ConfigEntry> {
    let mut entries: Vec<ConfigEntry> = TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let set = configs.get(def.name);
            let (default, default_source) = broker.of_config(def);
            ConfigEntry {
                name: def.name.to_string(),
                value: Some(set.cloned().unwrap_or_else(|| default.clone())),
                source: if set.is_some() {
                    SOURCE_DYNAMIC_TOPIC
                } else {
                    default_source
                },
                default: Some(default),
                read_only: false,
                kind: def.kind,
                doc: def.doc,
            }
        })
        .collect();
    // Keys stored before validation existed are still the topic's: show them.
    for (key, value) in configs {
        if definition(key).is_none() {
            entries.push(ConfigEntry {
                name: key.clone(),
                value: Some(value.clone()),
                source: SOURCE_DYNAMIC_TOPIC,
                default: None,
                read_only: false,
                kind: ConfigType::Str,
                doc: "",
            });
        }
    }
    entries
}

/// Checks one config, with Kafka's wording for what is wrong.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(def) = definition(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let invalid = |why: String| {
        Err(format!(
            "Invalid value {value} for configuration {name}: {why}"
        ))
    };
    let trimmed = value.trim();
    let number: Option<i64> = match def.kind {
        Int => match trimmed.parse::<i32>() {
            Ok(n) => Some(i64::from(n)),
            Err(_) => return invalid("Not a number of type INT".into()),
        },
        Long => match trimmed.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return invalid("Not a number of type LONG".into()),
        },
        Boolean
            if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") =>
        {
            return invalid("Expected value to be either true or false".into())
        }
        _ => None,
    };
    match (def.check, number) {
        (AtLeast(min), Some(n)) if n < min => invalid(format!("Value must be at least {min}")),
        (Between(min, _), Some(n)) if n < min => invalid(format!("Value must be at least {min}")),
        (Between(_, max), Some(n)) if n > max => {
            invalid(format!("Value must be no more than {max}"))
        }
        (GzipLevel, Some(n)) if n != -1 && !(1..=9).contains(&n) => {
            invalid("Value must be one of [1,...,9] or -1".into())
        }
        (Ratio, _) => match trimmed.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            Ok(r) if r < 0.0 => invalid("Value must be at least 0".into()),
            Ok(_) => invalid("Value must be no more than 1".into()),
            Err(_) => invalid("Not a number of type DOUBLE".into()),
        },
        (OneOf(allowed), _) if !allowed.contains(&trimmed) => {
            invalid(format!("String must be one of: {}", allowed.join(", ")))
        }
        (ListOf(allowed), _) => {
            let items = list_items(value);
            match items.iter().find(|item| !allowed.contains(item)) {
                Some(_) => invalid(format!("String must be one of: {}", allowed.join(", "))),
                None if items.is_empty() => invalid("Empty list is not allowed".into()),
                None => Ok(()),
            }
        }
        (Replicas, _) => {
            let pair = |item: &str| {
                item.split_once(':').is_some_and(|(p, b)| {
                    p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
                })
            };
            let items = list_items(value);
            if items == ["*"] || items.iter().all(|item| pair(item)) {
                Ok(())
            } else {
                invalid("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".into())
            }
        }
        _ => Ok(()),
    }
}

/// The items of a list config: comma-separated, trimmed, empty items dropped.
pub fn list_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// Checks a topic's whole config set: every key and value, the combinations
/// Kafka refuses, and the settings StreamHouse cannot honour (refused rather than
/// stored and silently ignored).
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        validate(name, value)?;
    }
    let get = |name: &str| configs.get(name).map(|v| v.trim());
    if get("remote.storage.enable").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err("Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into());
    }
    let lag = |name: &str, default: i64| get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (min_lag, max_lag) = (
        lag("min.compaction.lag.ms", 0),
        lag("max.compaction.lag.ms", i64::MAX),
    );
    if min_lag > max_lag {
        return Err(format!("conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"));
    }
    Ok(())
}

/// Whether the topic is compacted (`cleanup.policy` lists `compact`, alone or
/// with `delete`): Produce then refuses records without a key and the log
/// cleaner keeps the latest record per key. The broker default
/// (`log.cleanup.policy`) is `delete`.
pub fn compacted(configs: &BTreeMap<String, String>) -> bool {
    configs
        .get("cleanup.policy")
        .is_some_and(|v| list_items(v).contains(&"compact"))
}

/// Whether Produce stamps the topic's batches with the append time
/// (`message.timestamp.type=LogAppendTime`).
pub fn log_append_time(configs: &BTreeMap<String, String>) -> bool {
    configs
        .get("message.timestamp.type")
        .is_some_and(|v| v.trim() == "LogAppendTime")
}

/// Largest record batch a topic accepts (`max.message.bytes`).
pub fn max_message_bytes(configs: &BTreeMap<String, String>) -> usize {
    configs
        .get("max.message.bytes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_048_588)
}

/// How far behind and ahead of the broker's clock a `CreateTime` record's
/// timestamp may be (`message.timestamp.before.max.ms`,
/// `message.timestamp.after.max.ms`; Kafka 4's defaults: unbounded, one hour).
pub fn timestamp_window(configs: &BTreeMap<String, String>) -> (i64, i64) {
    let get = |name: &str, default: i64| {
        configs
            .get(name)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    (
        get("message.timestamp.before.max.ms", i64::MAX),
        get("message.timestamp.after.max.ms", 3_600_000),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_names_pass() {
        assert_eq!(invalid_topic_name("orders.v1_eu-west"), None);
    }

    #[test]
    fn illegal_names_are_explained() {
        assert!(invalid_topic_name("").is_some());
        assert!(invalid_topic_name("..").is_some());
        assert!(invalid_topic_name("a/b").unwrap().contains("illegal"));
        assert!(invalid_topic_name(&"x".repeat(250)).is_some());
        assert_eq!(invalid_topic_name(&"x".repeat(249)), None);
    }

    #[test]
    fn values_are_checked_with_kafkas_wording() {
        assert_eq!(validate("retention.ms", "-1"), Ok(()));
        assert_eq!(
            validate("retention.ms", "abc"),
            Err(
                "Invalid value abc for configuration retention.ms: Not a number of type LONG"
                    .into()
            )
        );
        assert_eq!(
            validate("retention.ms", "-2"),
            Err(
                "Invalid value -2 for configuration retention.ms: Value must be at least -1".into()
            )
        );
        assert_eq!(
            validate("no.such.key", "1"),
            Err("Unknown topic config name: no.such.key".into())
        );
        assert_eq!(validate("cleanup.policy", "compact, delete"), Ok(()));
        assert!(validate("cleanup.policy", "compact,shred").is_err());
        assert!(
            validate("max.message.bytes", "2147483648").is_err(),
            "beyond INT"
        );
        assert_eq!(validate("min.cleanable.dirty.ratio", "0.9"), Ok(()));
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("preallocate", "yes").is_err());
        assert_eq!(
            validate("leader.replication.throttled.replicas", "0:0,1:0"),
            Ok(())
        );
        assert!(validate("leader.replication.throttled.replicas", "0-0").is_err());
        assert!(validate("compression.gzip.level", "0").is_err());
    }

    #[test]
    fn unsupported_settings_are_refused_not_ignored() {
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(validate_all(&set("remote.storage.enable", "true"))
            .unwrap_err()
            .contains("Tiered Storage"));
        assert_eq!(validate_all(&set("remote.storage.enable", "false")), Ok(()));
        assert_eq!(
            validate_all(&set("message.timestamp.type", "LogAppendTime")),
            Ok(())
        );
        assert!(log_append_time(&set(
            "message.timestamp.type",
            "LogAppendTime"
        )));
        assert!(!log_append_time(&BTreeMap::new()));
    }

    #[test]
    fn every_default_is_valid_and_names_are_sorted() {
        for def in TOPIC_CONFIGS {
            assert_eq!(validate(def.name, def.default), Ok(()), "{}", def.name);
        }
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn the_agents_retention_settings_are_the_defaults_topics_report() {
        let kafka = BrokerDefaults {
            retention_ms: 604_800_000,
            retention_bytes: -1,
        };
        let agent = BrokerDefaults {
            retention_ms: 20_000,
            retention_bytes: -1,
        };
        let reported = |configs: &BTreeMap<String, String>, broker: &BrokerDefaults| {
            let entries = described(configs, broker);
            let entry = entries.iter().find(|e| e.name == "retention.ms").unwrap();
            (entry.value.clone().unwrap(), entry.source)
        };
        let unset = BTreeMap::new();
        assert_eq!(
            reported(&unset, &kafka),
            ("604800000".to_string(), SOURCE_DEFAULT)
        );
        assert_eq!(
            reported(&unset, &agent),
            ("20000".to_string(), SOURCE_STATIC_BROKER)
        );
        let own = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        assert_eq!(
            reported(&own, &agent),
            ("5".to_string(), SOURCE_DYNAMIC_TOPIC)
        );
    }

    #[test]
    fn max_message_bytes_defaults_like_kafka() {
        assert_eq!(max_message_bytes(&BTreeMap::new()), 1_048_588);
        let set = BTreeMap::from([("max.message.bytes".to_string(), "100".to_string())]);
        assert_eq!(max_message_bytes(&set), 100);
    }

    #[test]
    fn the_log_cleaners_defaults_are_the_tables() {
        let rules = streamhouse_storage::compaction::cleaner::plan::CleaningRules::DEFAULT;
        let default = |name: &str| definition(name).unwrap().default;
        assert_eq!(
            default("min.cleanable.dirty.ratio").parse(),
            Ok(rules.min_dirty_ratio)
        );
        assert_eq!(
            default("min.compaction.lag.ms").parse(),
            Ok(rules.min_lag_ms)
        );
        assert_eq!(
            default("max.compaction.lag.ms").parse(),
            Ok(rules.max_lag_ms)
        );
        assert_eq!(
            default("delete.retention.ms").parse(),
            Ok(rules.delete_retention_ms)
        );
        assert!(compacted(&BTreeMap::from([(
            "cleanup.policy".into(),
            "delete,compact".into()
        )])));
        assert!(!compacted(&BTreeMap::new()));
    }
}
