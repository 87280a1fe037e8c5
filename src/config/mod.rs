//! Everything called a config, one file per meaning:
//!
//! - [`listeners`]: `PROTOCOL://HOST:PORT` listeners and their security
//!   protocols.
//! - [`settings`]: the agent's own settings (flags, environment variables, the
//!   config file) and [`Config`], the settings it runs with.
//! - [`topic`]: topic configs as Kafka defines them (names, types, defaults,
//!   validation) and the rules for topic names.
//! - [`broker`]: the broker configs DescribeConfigs reports: the agent's
//!   settings under Kafka's names, read-only.
//! - [`group`]: group configs (the GROUP resource): which are served and how
//!   they are checked.
//! - [`alter`]: the IncrementalAlterConfigs operations (SET, DELETE, APPEND,
//!   SUBTRACT) applied to a topic's config set.
//!
//! This module holds what topic and broker configs share: a config as
//! DescribeConfigs reports it ([`ConfigEntry`]). Turning entries into Kafka's
//! messages is the handler's (`handlers::configs`).

pub mod alter;
pub mod broker;
pub mod group;
pub mod listeners;
pub mod settings;
pub mod topic;

pub use settings::{AclMode, Config, Settings};

/// Config sources of DescribeConfigs and CreateTopics (Kafka's `ConfigSource`).
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;

pub const SOURCE_DEFAULT: i8 = 5;

/// How DescribeConfigs v3+ types a config (`config_type`); codes are Kafka's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    /// Kafka's STRING.
    Str = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One config as DescribeConfigs reports it.
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// One of the `SOURCE_` codes.
    pub source: i8,
    /// Kafka's default, listed as a synonym when the value overrides it.
    pub default: Option<String>,
    pub read_only: bool,
    pub kind: ConfigType,
    pub doc: &'static str,
}
