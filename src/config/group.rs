//! Group configs (Kafka's GROUP config resource, KIP-848/KIP-932): the ones
//! StreamHouse serves, their checks, and how DescribeConfigs reports them.
//!
//! Only configs the broker acts on are accepted: `share.auto.offset.reset`
//! (where a share group begins a partition it never read) and
//! `share.record.lock.duration.ms` (how long its members hold the records
//! they acquire). Kafka's other group configs (session timeouts, heartbeat
//! intervals) are refused with INVALID_CONFIG rather than stored and
//! ignored; their agent-wide settings apply to every group.
//!
//! The share path reads a group's configs on every fetch and
//! acknowledgement, through [`GroupConfigCache`]: from the catalog at most
//! once a second per group, so a change made through another agent applies
//! here within a second (through this one, at once).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamhouse_metadata::{Catalog, CatalogError};

use super::{ConfigEntry, ConfigType, SOURCE_DEFAULT};
use crate::share::ShareStart;

/// DescribeConfigs' source of a config set on the group (Kafka's
/// `GROUP_CONFIG`).
pub const SOURCE_GROUP: i8 = 8;

pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const SHARE_RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";

/// A group's lock duration bounds: the defaults of Kafka's
/// `group.share.min.record.lock.duration.ms` and
/// `group.share.max.record.lock.duration.ms`.
const MIN_LOCK_MS: i32 = 15_000;
const MAX_LOCK_MS: i32 = 60_000;

/// Kafka's group configs StreamHouse does not serve per group.
const KNOWN_UNSERVED: &[&str] = &[
    "consumer.session.timeout.ms",
    "consumer.heartbeat.interval.ms",
    "share.session.timeout.ms",
    "share.heartbeat.interval.ms",
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

/// How long a share group with these configs locks the records it delivers.
pub fn share_lock_ms(configs: &BTreeMap<String, String>, default: i32) -> i32 {
    configs
        .get(SHARE_RECORD_LOCK_DURATION_MS)
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
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
            SHARE_RECORD_LOCK_DURATION_MS => {
                let Ok(lock_ms) = value.trim().parse::<i32>() else {
                    return Err(format!(
                        "Invalid value {value} for configuration {key}: Not a number of type INT"
                    ));
                };
                if lock_ms < MIN_LOCK_MS {
                    return Err(format!(
                        "{key} must be greater than or equal to group.share.min.record.lock.duration.ms ({MIN_LOCK_MS})"
                    ));
                }
                if lock_ms > MAX_LOCK_MS {
                    return Err(format!(
                        "{key} must be less than or equal to group.share.max.record.lock.duration.ms ({MAX_LOCK_MS})"
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

/// The group's configs as DescribeConfigs reports them, with the agent's
/// defaults for those not set.
pub fn described(
    configs: &BTreeMap<String, String>,
    default: ShareStart,
    default_lock_ms: i32,
) -> Vec<ConfigEntry> {
    let default = start_name(default).to_owned();
    let set = configs.get(SHARE_AUTO_OFFSET_RESET);
    let lock_ms = configs.get(SHARE_RECORD_LOCK_DURATION_MS);
    let default_lock_ms = default_lock_ms.to_string();
    let lock_entry = ConfigEntry {
        name: SHARE_RECORD_LOCK_DURATION_MS.to_owned(),
        value: Some(lock_ms.cloned().unwrap_or_else(|| default_lock_ms.clone())),
        source: if lock_ms.is_some() {
            SOURCE_GROUP
        } else {
            SOURCE_DEFAULT
        },
        default: Some(default_lock_ms),
        read_only: false,
        kind: ConfigType::Int,
        doc: "How long a member of the share group holds the records it acquired before they go back to the group.",
    };
    let start_entry = ConfigEntry {
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
    };
    vec![start_entry, lock_entry]
}

/// How long a group's configs read from the catalog are used.
const CACHED_FOR: Duration = Duration::from_secs(1);

/// Entries kept before expired ones are dropped.
const CACHE_PRUNE_AT: usize = 10_000;

/// Groups' configs, read from the catalog at most once per [`CACHED_FOR`]
/// per group.
#[derive(Default)]
pub struct GroupConfigCache {
    entries: Mutex<HashMap<String, (Instant, Configs)>>,
}

type Configs = Arc<BTreeMap<String, String>>;

impl GroupConfigCache {
    pub async fn get(
        &self,
        catalog: &dyn Catalog,
        group_id: &str,
    ) -> Result<Configs, CatalogError> {
        if let Some((read, configs)) = self.lock().get(group_id) {
            if read.elapsed() < CACHED_FOR {
                return Ok(Arc::clone(configs));
            }
        }
        let configs = Arc::new(catalog.group_configs(group_id).await?);
        let mut entries = self.lock();
        if entries.len() >= CACHE_PRUNE_AT {
            entries.retain(|_, (read, _)| read.elapsed() < CACHED_FOR);
        }
        entries.insert(group_id.to_owned(), (Instant::now(), Arc::clone(&configs)));
        Ok(configs)
    }

    /// Forgets what was read of a group whose configs this agent changed.
    pub fn forget(&self, group_id: &str) {
        self.lock().remove(group_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Configs)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_configs_with_valid_values_are_accepted() {
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(validate_all(&set(SHARE_AUTO_OFFSET_RESET, "earliest")).is_ok());
        assert!(validate_all(&set(SHARE_AUTO_OFFSET_RESET, "by_duration:PT1H")).is_err());
        assert!(validate_all(&set(SHARE_RECORD_LOCK_DURATION_MS, "15000")).is_ok());
        assert!(validate_all(&set(SHARE_RECORD_LOCK_DURATION_MS, "60000")).is_ok());
        for (value, refusal) in [
            ("14999", "greater than or equal"),
            ("60001", "less than or equal"),
            ("soon", "INT"),
        ] {
            assert!(
                validate_all(&set(SHARE_RECORD_LOCK_DURATION_MS, value))
                    .unwrap_err()
                    .contains(refusal),
                "{value}"
            );
        }
        assert_eq!(
            share_lock_ms(&set(SHARE_RECORD_LOCK_DURATION_MS, "20000"), 30_000),
            20_000
        );
        assert_eq!(share_lock_ms(&BTreeMap::new(), 30_000), 30_000);
        assert!(validate_all(&set("share.session.timeout.ms", "15000"))
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
        let entries = described(&earliest, ShareStart::Latest, 30_000);
        assert_eq!(entries[0].value.as_deref(), Some("earliest"));
        assert_eq!(entries[0].source, SOURCE_GROUP);
        assert_eq!(entries[1].name, SHARE_RECORD_LOCK_DURATION_MS);
        assert_eq!(entries[1].value.as_deref(), Some("30000"));
        assert_eq!(entries[1].source, SOURCE_DEFAULT);
    }
}
