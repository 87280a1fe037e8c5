//! Group configs (Kafka's GROUP config resource, KIP-848/KIP-932): the ones
//! StreamHouse serves, their checks, and how DescribeConfigs reports them.
//!
//! Only configs the broker acts on are accepted: `share.auto.offset.reset`
//! (where a share group begins a partition it never read). Kafka's other
//! group configs (session timeouts, heartbeat intervals, lock durations per
//! group) are refused with INVALID_CONFIG rather than stored and ignored;
//! their agent-wide settings apply to every group.

use std::collections::BTreeMap;

use super::{ConfigEntry, ConfigType, SOURCE_DEFAULT};
use crate::share::ShareStart;

/// DescribeConfigs' source of a config set on the group (Kafka's
/// `GROUP_CONFIG`).
pub const SOURCE_GROUP: i8 = 8;

pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";

/// Kafka's group configs StreamHouse does not serve per group.
const KNOWN_UNSERVED: &[&str] = &[
    "consumer.session.timeout.ms",
    "consumer.heartbeat.interval.ms",
    "share.session.timeout.ms",
    "share.heartbeat.interval.ms",
    "share.record.lock.duration.ms",
    "share.isolation.level",
    "share.delivery.count.limit",
    "streams.session.timeout.ms",
    "streams.heartbeat.interval.ms",
    "streams.num.standby.replicas",
];

fn start_name(start: ShareStart) -> &'static str {
    match start {
        ShareStart::Latest => "latest",
        ShareStart::Earliest => "earliest",
    }
}

/// Where a share group with these configs begins a partition it never read.
pub fn share_start(configs: &BTreeMap<String, String>, default: ShareStart) -> ShareStart {
    match configs.get(SHARE_AUTO_OFFSET_RESET).map(String::as_str) {
        Some("earliest") => ShareStart::Earliest,
        Some("latest") => ShareStart::Latest,
        _ => default,
    }
}

/// Kafka's message for a config set it would refuse, or Ok.
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in configs {
        match key.as_str() {
            SHARE_AUTO_OFFSET_RESET => {
                if value != "latest" && value != "earliest" {
                    return Err(format!(
                        "Invalid value {value} for configuration {key}: must be latest or earliest"
                    ));
                }
            }
            known if KNOWN_UNSERVED.contains(&known) => {
                return Err(format!(
                    "Group config {key} is not served by StreamHouse; its agent-wide setting applies to every group"
                ))
            }
            _ => return Err(format!("Unknown group config name: {key}")),
        }
    }
    Ok(())
}

/// The group's configs as DescribeConfigs reports them.
pub fn described(configs: &BTreeMap<String, String>, default: ShareStart) -> Vec<ConfigEntry> {
    let default = start_name(default).to_owned();
    let set = configs.get(SHARE_AUTO_OFFSET_RESET);
    vec![ConfigEntry {
        name: SHARE_AUTO_OFFSET_RESET.to_owned(),
        value: Some(set.cloned().unwrap_or_else(|| default.clone())),
        source: if set.is_some() {
            SOURCE_GROUP
        } else {
            SOURCE_DEFAULT
        },
        default: Some(default),
        read_only: false,
        kind: ConfigType::Str,
        doc: "Where a share group begins a partition it has never read: latest or earliest.",
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_configs_with_valid_values_are_accepted() {
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(validate_all(&set(SHARE_AUTO_OFFSET_RESET, "earliest")).is_ok());
        assert!(validate_all(&set(SHARE_AUTO_OFFSET_RESET, "by_duration:PT1H")).is_err());
        assert!(validate_all(&set("share.record.lock.duration.ms", "15000"))
            .unwrap_err()
            .contains("not served"));
        assert!(validate_all(&set("no.such", "1"))
            .unwrap_err()
            .contains("Unknown"));
        let earliest = set(SHARE_AUTO_OFFSET_RESET, "earliest");
        assert_eq!(
            share_start(&earliest, ShareStart::Latest),
            ShareStart::Earliest
        );
        assert_eq!(
            share_start(&BTreeMap::new(), ShareStart::Latest),
            ShareStart::Latest
        );
        let entries = described(&earliest, ShareStart::Latest);
        assert_eq!(entries[0].value.as_deref(), Some("earliest"));
        assert_eq!(entries[0].source, SOURCE_GROUP);
    }
}
