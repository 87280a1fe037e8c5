//! Topic names and topic configs as Kafka defines them.

use std::collections::BTreeMap;

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

/// Kafka's defaults for the topic configs clients read, reported when a topic
/// does not set them.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("unclean.leader.election.enable", "false"),
];

/// Largest record batch a topic accepts (`max.message.bytes`).
pub fn max_message_bytes(configs: &BTreeMap<String, String>) -> usize {
    configs
        .get("max.message.bytes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_048_588)
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
    fn max_message_bytes_defaults_like_kafka() {
        assert_eq!(max_message_bytes(&BTreeMap::new()), 1_048_588);
        let set = BTreeMap::from([("max.message.bytes".to_string(), "100".to_string())]);
        assert_eq!(max_message_bytes(&set), 100);
    }
}
