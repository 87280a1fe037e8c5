//! Group configs (Kafka's GROUP config resource, KIP-848/KIP-932): the ones
//! StreamHouse serves, their checks, and how DescribeConfigs reports them.
//!
//! Only configs the broker acts on are accepted: `share.auto.offset.reset`
//! (where a share group begins a partition it never read),
//! `share.isolation.level` (whether its members get records of open and
//! aborted transactions), `share.record.lock.duration.ms` (how long its
//! members hold the records they acquire), `share.delivery.count.limit`
//! (deliveries before a record is archived), and the session timeouts and
//! heartbeat intervals of consumer groups (KIP-848) and share groups.
//! Kafka's other group configs are refused with INVALID_CONFIG rather than
//! stored and ignored.
//!
//! The share path and the heartbeats read a group's configs through
//! [`GroupConfigCache`]: from the catalog at most once a second per group,
//! so a change made through another agent applies here within a second
//! (through this one, at once).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamhouse_metadata::{Catalog, CatalogError};

use super::{ConfigEntry, ConfigType, SOURCE_DEFAULT};
use crate::coordinator::GroupRules;
use crate::share::ShareStart;

/// DescribeConfigs' source of a config set on the group (Kafka's
/// `GROUP_CONFIG`).
pub const SOURCE_GROUP: i8 = 8;

pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const SHARE_RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
pub const SHARE_SESSION_TIMEOUT_MS: &str = "share.session.timeout.ms";
pub const SHARE_HEARTBEAT_INTERVAL_MS: &str = "share.heartbeat.interval.ms";
pub const SHARE_ISOLATION_LEVEL: &str = "share.isolation.level";
pub const SHARE_DELIVERY_COUNT_LIMIT: &str = "share.delivery.count.limit";

/// A served group config that is a number (milliseconds, or a count),
/// bounded as Kafka bounds it (by broker settings whose defaults are used
/// here).
struct IntConfig {
    name: &'static str,
    min: i32,
    max: i32,
    /// The Kafka broker settings that bound it, named in refusals.
    min_setting: &'static str,
    max_setting: &'static str,
    doc: &'static str,
    /// The agent-wide value in force when the group sets none, and how the
    /// group's replaces it.
    get: fn(&GroupRules) -> i32,
    set: fn(&mut GroupRules, i32),
}

const INT_CONFIGS: [IntConfig; 6] = [
    IntConfig {
        name: SHARE_RECORD_LOCK_DURATION_MS,
        min: 15_000,
        max: 60_000,
        min_setting: "group.share.min.record.lock.duration.ms",
        max_setting: "group.share.max.record.lock.duration.ms",
        doc: "How long a member of the share group holds the records it acquired before they go back to the group.",
        get: |rules| rules.share_record_lock_ms,
        set: |rules, value| rules.share_record_lock_ms = value,
    },
    IntConfig {
        name: CONSUMER_SESSION_TIMEOUT_MS,
        min: 45_000,
        max: 60_000,
        min_setting: "group.consumer.min.session.timeout.ms",
        max_setting: "group.consumer.max.session.timeout.ms",
        doc: "How long a member of the consumer group lives without a heartbeat.",
        get: |rules| rules.consumer_session_timeout_ms,
        set: |rules, value| rules.consumer_session_timeout_ms = value,
    },
    IntConfig {
        name: CONSUMER_HEARTBEAT_INTERVAL_MS,
        min: 5_000,
        max: 15_000,
        min_setting: "group.consumer.min.heartbeat.interval.ms",
        max_setting: "group.consumer.max.heartbeat.interval.ms",
        doc: "The heartbeat interval the consumer group's members are told.",
        get: |rules| rules.consumer_heartbeat_interval_ms,
        set: |rules, value| rules.consumer_heartbeat_interval_ms = value,
    },
    IntConfig {
        name: SHARE_SESSION_TIMEOUT_MS,
        min: 45_000,
        max: 60_000,
        min_setting: "group.share.min.session.timeout.ms",
        max_setting: "group.share.max.session.timeout.ms",
        doc: "How long a member of the share group lives without a heartbeat.",
        get: |rules| rules.share_session_timeout_ms,
        set: |rules, value| rules.share_session_timeout_ms = value,
    },
    IntConfig {
        name: SHARE_HEARTBEAT_INTERVAL_MS,
        min: 5_000,
        max: 15_000,
        min_setting: "group.share.min.heartbeat.interval.ms",
        max_setting: "group.share.max.heartbeat.interval.ms",
        doc: "The heartbeat interval the share group's members are told.",
        get: |rules| rules.share_heartbeat_interval_ms,
        set: |rules, value| rules.share_heartbeat_interval_ms = value,
    },
    IntConfig {
        name: SHARE_DELIVERY_COUNT_LIMIT,
        min: 2,
        max: 10,
        min_setting: "group.share.min.delivery.count.limit",
        max_setting: "group.share.max.delivery.count.limit",
        doc: "How many times a record is delivered to the share group before it is archived.",
        get: |rules| i32::from(rules.share_delivery_limit),
        // Validated to 2-10 before it is stored.
        set: |rules, value| rules.share_delivery_limit = i16::try_from(value).unwrap_or(i16::MAX),
    },
];

/// Session timeouts that must exceed their heartbeat intervals.
const SESSION_OVER_HEARTBEAT: [(&str, &str); 2] = [
    (CONSUMER_SESSION_TIMEOUT_MS, CONSUMER_HEARTBEAT_INTERVAL_MS),
    (SHARE_SESSION_TIMEOUT_MS, SHARE_HEARTBEAT_INTERVAL_MS),
];

/// Kafka's group configs StreamHouse does not serve per group.
const KNOWN_UNSERVED: &[&str] = &[
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

/// Whether a share group with these configs delivers only committed
/// records (`share.isolation.level=read_committed`; Kafka's default is
/// read_uncommitted).
pub fn share_read_committed(configs: &BTreeMap<String, String>) -> bool {
    configs.get(SHARE_ISOLATION_LEVEL).map(String::as_str) == Some("read_committed")
}

/// Where a share group with these configs begins a partition it never read.
pub fn share_start(configs: &BTreeMap<String, String>, default: ShareStart) -> ShareStart {
    match configs.get(SHARE_AUTO_OFFSET_RESET).map(String::as_str) {
        Some("earliest") => ShareStart::Earliest,
        Some("latest") => ShareStart::Latest,
        _ => default,
    }
}

/// The agent's group rules with the group's own times in force: its lock
/// duration, session timeouts and heartbeat intervals where it sets them.
pub fn rules_of(configs: &BTreeMap<String, String>, agent: GroupRules) -> GroupRules {
    let mut rules = agent;
    for config in &INT_CONFIGS {
        if let Some(value) = configs.get(config.name).and_then(|v| v.trim().parse().ok()) {
            (config.set)(&mut rules, value);
        }
    }
    rules
}

/// Kafka's message for a config set it would refuse, or Ok. `agent` gives
/// the values of the times the set does not name, as Kafka checks a
/// session timeout against the heartbeat interval in force.
pub fn validate_all(configs: &BTreeMap<String, String>, agent: GroupRules) -> Result<(), String> {
    for (key, value) in configs {
        if let Some(config) = INT_CONFIGS.iter().find(|c| c.name == key) {
            let Ok(ms) = value.trim().parse::<i32>() else {
                return Err(format!(
                    "Invalid value {value} for configuration {key}: Not a number of type INT"
                ));
            };
            if ms < config.min {
                return Err(format!(
                    "{key} must be greater than or equal to {} ({})",
                    config.min_setting, config.min
                ));
            }
            if ms > config.max {
                return Err(format!(
                    "{key} must be less than or equal to {} ({})",
                    config.max_setting, config.max
                ));
            }
            continue;
        }
        match key.as_str() {
            SHARE_AUTO_OFFSET_RESET => {
                if value != "latest" && value != "earliest" {
                    return Err(format!(
                        "Invalid value {value} for configuration {key}: must be latest or earliest"
                    ));
                }
            }
            SHARE_ISOLATION_LEVEL => {
                if value != "read_committed" && value != "read_uncommitted" {
                    return Err(format!(
                        "Invalid value {value} for configuration {key}: String must be one of: read_committed, read_uncommitted"
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
    let rules = rules_of(configs, agent);
    let value_of = |name: &str| {
        let config = INT_CONFIGS.iter().find(|c| c.name == name);
        config.map_or(0, |c| (c.get)(&rules))
    };
    for (session, heartbeat) in SESSION_OVER_HEARTBEAT {
        // Checked when the set names either: the agent's own defaults are
        // not the group's to answer for.
        let named = configs.contains_key(session) || configs.contains_key(heartbeat);
        if named && value_of(session) <= value_of(heartbeat) {
            return Err(format!("{session} must be greater than {heartbeat}"));
        }
    }
    Ok(())
}

/// The group's configs as DescribeConfigs reports them, with the agent's
/// values for those not set.
pub fn described(
    configs: &BTreeMap<String, String>,
    default: ShareStart,
    agent: GroupRules,
) -> Vec<ConfigEntry> {
    // The group's value if it set one (source GROUP_CONFIG), else the
    // agent's (DEFAULT_CONFIG), which is the default synonym either way.
    let entry = |name: &'static str, agent_value: String, kind, doc| {
        let set = configs.get(name);
        ConfigEntry {
            name: name.to_owned(),
            value: Some(set.cloned().unwrap_or_else(|| agent_value.clone())),
            source: if set.is_some() {
                SOURCE_GROUP
            } else {
                SOURCE_DEFAULT
            },
            default: Some(agent_value),
            read_only: false,
            kind,
            doc,
        }
    };
    let start = entry(
        SHARE_AUTO_OFFSET_RESET,
        start_name(default).to_owned(),
        ConfigType::Str,
        "Where a share group begins a partition it has never read: latest or earliest.",
    );
    let isolation = entry(
        SHARE_ISOLATION_LEVEL,
        "read_uncommitted".to_owned(),
        ConfigType::Str,
        "read_committed: the share group's members get only committed records; read_uncommitted: every record.",
    );
    let numbers = INT_CONFIGS.iter().map(|config| {
        let agent_value = (config.get)(&agent).to_string();
        entry(config.name, agent_value, ConfigType::Int, config.doc)
    });
    [start, isolation].into_iter().chain(numbers).collect()
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

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn validate(pairs: &[(&str, &str)]) -> Result<(), String> {
        validate_all(&set(pairs), GroupRules::default())
    }

    #[test]
    fn only_served_configs_with_valid_values_are_accepted() {
        assert!(validate(&[(SHARE_AUTO_OFFSET_RESET, "earliest")]).is_ok());
        assert!(validate(&[(SHARE_AUTO_OFFSET_RESET, "by_duration:PT1H")]).is_err());
        assert!(validate(&[(SHARE_RECORD_LOCK_DURATION_MS, "15000")]).is_ok());
        assert!(validate(&[(SHARE_RECORD_LOCK_DURATION_MS, "60000")]).is_ok());
        for (key, value, refusal) in [
            (
                SHARE_RECORD_LOCK_DURATION_MS,
                "14999",
                "greater than or equal to group.share.min.record.lock.duration.ms (15000)",
            ),
            (SHARE_RECORD_LOCK_DURATION_MS, "60001", "less than or equal"),
            (SHARE_RECORD_LOCK_DURATION_MS, "soon", "INT"),
            (
                CONSUMER_SESSION_TIMEOUT_MS,
                "44999",
                "greater than or equal to group.consumer.min.session.timeout.ms (45000)",
            ),
            (
                CONSUMER_SESSION_TIMEOUT_MS,
                "60001",
                "less than or equal to group.consumer.max.session.timeout.ms (60000)",
            ),
            (
                CONSUMER_HEARTBEAT_INTERVAL_MS,
                "4999",
                "group.consumer.min.heartbeat.interval.ms",
            ),
            (
                CONSUMER_HEARTBEAT_INTERVAL_MS,
                "15001",
                "group.consumer.max.heartbeat.interval.ms",
            ),
            (
                SHARE_SESSION_TIMEOUT_MS,
                "30000",
                "group.share.min.session.timeout.ms",
            ),
            (
                SHARE_HEARTBEAT_INTERVAL_MS,
                "20000",
                "group.share.max.heartbeat.interval.ms",
            ),
        ] {
            let refused = validate(&[(key, value)]).unwrap_err();
            assert!(refused.contains(refusal), "{key}={value}: {refused}");
        }
        for key in [CONSUMER_SESSION_TIMEOUT_MS, SHARE_SESSION_TIMEOUT_MS] {
            assert_eq!(validate(&[(key, "50000")]), Ok(()), "{key}");
        }
        assert_eq!(
            validate(&[(SHARE_ISOLATION_LEVEL, "read_committed")]),
            Ok(())
        );
        assert!(validate(&[(SHARE_ISOLATION_LEVEL, "serializable")])
            .unwrap_err()
            .contains("String must be one of: read_committed, read_uncommitted"));
        assert_eq!(validate(&[(SHARE_DELIVERY_COUNT_LIMIT, "3")]), Ok(()));
        for (value, refusal) in [
            (
                "1",
                "greater than or equal to group.share.min.delivery.count.limit (2)",
            ),
            (
                "11",
                "less than or equal to group.share.max.delivery.count.limit (10)",
            ),
        ] {
            let refused = validate(&[(SHARE_DELIVERY_COUNT_LIMIT, value)]).unwrap_err();
            assert!(refused.contains(refusal), "{value}: {refused}");
        }
        assert!(validate(&[("streams.num.standby.replicas", "1")])
            .unwrap_err()
            .contains("not served"));
        assert!(validate(&[("no.such", "1")])
            .unwrap_err()
            .contains("Unknown"));
    }

    #[test]
    fn a_session_timeout_must_exceed_the_heartbeat_interval_in_force() {
        // Kafka's minimum session is above its maximum heartbeat interval, so
        // only an agent whose own default interval is long can meet this.
        let agent = GroupRules {
            consumer_heartbeat_interval_ms: 50_000,
            share_heartbeat_interval_ms: 50_000,
            ..GroupRules::default()
        };
        let refused = validate_all(&set(&[(CONSUMER_SESSION_TIMEOUT_MS, "45000")]), agent);
        assert_eq!(
            refused,
            Err(
                "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
                    .into()
            )
        );
        let refused = validate_all(&set(&[(SHARE_SESSION_TIMEOUT_MS, "50000")]), agent);
        assert_eq!(
            refused,
            Err("share.session.timeout.ms must be greater than share.heartbeat.interval.ms".into())
        );
        // Setting the interval too makes the pair consistent.
        let pair = set(&[
            (CONSUMER_SESSION_TIMEOUT_MS, "45000"),
            (CONSUMER_HEARTBEAT_INTERVAL_MS, "15000"),
        ]);
        assert_eq!(validate_all(&pair, agent), Ok(()));
        // A set that names neither is not judged by the agent's own values.
        assert_eq!(
            validate_all(&set(&[(SHARE_AUTO_OFFSET_RESET, "latest")]), agent),
            Ok(())
        );
    }

    #[test]
    fn a_groups_times_override_the_agents() {
        let agent = GroupRules::default();
        let configs = set(&[
            (SHARE_RECORD_LOCK_DURATION_MS, "20000"),
            (CONSUMER_SESSION_TIMEOUT_MS, "50000"),
            (CONSUMER_HEARTBEAT_INTERVAL_MS, "7000"),
            (SHARE_SESSION_TIMEOUT_MS, "55000"),
            (SHARE_HEARTBEAT_INTERVAL_MS, "9000"),
            (SHARE_DELIVERY_COUNT_LIMIT, "3"),
        ]);
        let rules = rules_of(&configs, agent);
        assert_eq!(rules.share_delivery_limit, 3);
        assert_eq!(
            (
                rules.share_record_lock_ms,
                rules.consumer_session_timeout_ms,
                rules.consumer_heartbeat_interval_ms,
                rules.share_session_timeout_ms,
                rules.share_heartbeat_interval_ms,
            ),
            (20_000, 50_000, 7_000, 55_000, 9_000)
        );
        assert_eq!(
            GroupRules {
                share_record_lock_ms: agent.share_record_lock_ms,
                consumer_session_timeout_ms: agent.consumer_session_timeout_ms,
                consumer_heartbeat_interval_ms: agent.consumer_heartbeat_interval_ms,
                share_session_timeout_ms: agent.share_session_timeout_ms,
                share_heartbeat_interval_ms: agent.share_heartbeat_interval_ms,
                share_delivery_limit: agent.share_delivery_limit,
                ..rules
            },
            agent,
            "nothing else changes"
        );
        assert_eq!(rules_of(&BTreeMap::new(), agent), agent);
    }

    #[test]
    fn described_configs_name_their_source_and_the_agents_value() {
        let earliest = set(&[
            (SHARE_AUTO_OFFSET_RESET, "earliest"),
            (CONSUMER_SESSION_TIMEOUT_MS, "50000"),
        ]);
        assert_eq!(
            share_start(&earliest, ShareStart::Latest),
            ShareStart::Earliest
        );
        assert_eq!(
            share_start(&BTreeMap::new(), ShareStart::Latest),
            ShareStart::Latest
        );
        let entries = described(&earliest, ShareStart::Latest, GroupRules::default());
        let entry = |name: &str| entries.iter().find(|e| e.name == name).unwrap();
        assert_eq!(entries.len(), 8);
        let isolation = entry(SHARE_ISOLATION_LEVEL);
        assert_eq!(
            (isolation.value.as_deref(), isolation.source),
            (Some("read_uncommitted"), SOURCE_DEFAULT)
        );
        assert!(!share_read_committed(&earliest));
        assert!(share_read_committed(&set(&[(
            SHARE_ISOLATION_LEVEL,
            "read_committed"
        )])));
        assert_eq!(
            entry(SHARE_AUTO_OFFSET_RESET).value.as_deref(),
            Some("earliest")
        );
        assert_eq!(entry(SHARE_AUTO_OFFSET_RESET).source, SOURCE_GROUP);
        let lock = entry(SHARE_RECORD_LOCK_DURATION_MS);
        assert_eq!(
            (lock.value.as_deref(), lock.source),
            (Some("30000"), SOURCE_DEFAULT)
        );
        let session = entry(CONSUMER_SESSION_TIMEOUT_MS);
        assert_eq!(
            (
                session.value.as_deref(),
                session.source,
                session.default.as_deref()
            ),
            (Some("50000"), SOURCE_GROUP, Some("45000"))
        );
        let heartbeat = entry(SHARE_HEARTBEAT_INTERVAL_MS);
        assert_eq!(
            (heartbeat.value.as_deref(), heartbeat.source),
            (Some("5000"), SOURCE_DEFAULT)
        );
    }
}
