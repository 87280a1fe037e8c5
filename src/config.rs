//! Broker configuration: command-line flags, each also settable by an environment
//! variable, over an optional TOML file, over defaults. A flag beats its variable,
//! which beats the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;
use streamhouse_storage::CompactionConfig;

/// Command line of `streamhouse`. Every flag is optional: with none, the broker
/// serves the embedded default (SQLite catalog and a local object folder under
/// `./data`, listening on 127.0.0.1:9092).
#[derive(Debug, Parser, Default)]
#[command(name = "streamhouse", version, about)]
pub struct Cli {
    /// Address to listen on for Kafka clients [default: 127.0.0.1:9092]
    #[arg(long, env = "STREAMHOUSE_LISTEN")]
    pub listen: Option<String>,
    /// host:port clients are told to connect to [default: the listen address]
    #[arg(long, env = "STREAMHOUSE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Folder for the embedded catalog and objects [default: ./data]
    #[arg(long, env = "STREAMHOUSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Catalog database: sqlite://PATH or postgres://USER@HOST:PORT/DB
    /// [default: sqlite://DATA_DIR/catalog.db]
    #[arg(long, env = "STREAMHOUSE_CATALOG")]
    pub catalog: Option<String>,
    /// Object store: file://PATH, memory:// or s3://BUCKET?endpoint=..&region=..
    /// [default: file://DATA_DIR/objects]
    #[arg(long, env = "STREAMHOUSE_STORE")]
    pub store: Option<String>,
    /// TOML file with any of these settings (flag names with underscores)
    #[arg(long, env = "STREAMHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seal an object once it holds this many bytes [default: 4194304]
    #[arg(long, env = "STREAMHOUSE_FLUSH_BYTES")]
    pub flush_bytes: Option<usize>,
    /// Seal an object once its oldest batch waited this long [default: 10, or 50 for s3://]
    #[arg(long, env = "STREAMHOUSE_FLUSH_INTERVAL_MS")]
    pub flush_interval_ms: Option<u64>,
    /// Seal the open object at once when no earlier one is uploading or
    /// committing; false: only by size or interval, for the fewest PUTs [default: true]
    #[arg(long, env = "STREAMHOUSE_SEAL_WHEN_IDLE")]
    pub seal_when_idle: Option<bool>,
    /// Create unknown topics when clients ask for them in Metadata [default: true]
    #[arg(long, env = "STREAMHOUSE_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics and of CreateTopics asking for -1 [default: 1]
    #[arg(long, env = "STREAMHOUSE_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<i32>,
    /// Most client connections served at once [default: 10000]
    #[arg(long, env = "STREAMHOUSE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest request accepted, in bytes [default: 104857600]
    #[arg(long, env = "STREAMHOUSE_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Memory for recently written and read objects, in bytes [default: 268435456]
    #[arg(long, env = "STREAMHOUSE_READ_CACHE_BYTES")]
    pub read_cache_bytes: Option<u64>,
    /// This agent's broker id [default: 0]
    #[arg(long, env = "STREAMHOUSE_NODE_ID")]
    pub node_id: Option<i32>,
    /// How long the first rebalance of an empty group waits for more members [default: 3000]
    #[arg(long, env = "STREAMHOUSE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Serve Prometheus-format metrics over HTTP on this address [default: off]
    #[arg(long, env = "STREAMHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Compact objects smaller than half this size into objects of about this
    /// size; 0 turns compaction off [default: twice the flush bytes]
    #[arg(long, env = "STREAMHOUSE_COMPACTION_TARGET_BYTES")]
    pub compaction_target_bytes: Option<u64>,
    /// Leave objects younger than this to tailing readers [default: 5000]
    #[arg(long, env = "STREAMHOUSE_COMPACTION_MIN_AGE_MS")]
    pub compaction_min_age_ms: Option<u64>,
    /// Compact small objects below the target once the oldest is this old [default: 60000]
    #[arg(long, env = "STREAMHOUSE_COMPACTION_MAX_AGE_MS")]
    pub compaction_max_age_ms: Option<u64>,
    /// Keep replaced and unreferenced objects in the store this long before
    /// deleting them [default: 60000]
    #[arg(long, env = "STREAMHOUSE_GC_GRACE_MS")]
    pub gc_grace_ms: Option<u64>,
}

/// The same settings as read from a TOML file; every field optional so that old
/// files keep working as settings are added.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    advertise: Option<String>,
    data_dir: Option<PathBuf>,
    catalog: Option<String>,
    store: Option<String>,
    flush_bytes: Option<usize>,
    flush_interval_ms: Option<u64>,
    seal_when_idle: Option<bool>,
    auto_create_topics: Option<bool>,
    default_partitions: Option<i32>,
    max_connections: Option<usize>,
    max_frame_bytes: Option<usize>,
    read_cache_bytes: Option<u64>,
    node_id: Option<i32>,
    group_initial_rebalance_delay_ms: Option<u64>,
    metrics_listen: Option<String>,
    compaction_target_bytes: Option<u64>,
    compaction_min_age_ms: Option<u64>,
    compaction_max_age_ms: Option<u64>,
    gc_grace_ms: Option<u64>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub advertise_host: String,
    pub advertise_port: u16,
    pub data_dir: PathBuf,
    pub catalog_url: String,
    pub store_url: String,
    pub flush_bytes: usize,
    pub flush_interval: Duration,
    pub seal_when_idle: bool,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub max_connections: usize,
    pub max_frame_bytes: usize,
    pub read_cache_bytes: u64,
    pub node_id: i32,
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay: Duration,
    pub metrics_listen: Option<SocketAddr>,
    /// Compaction of small objects and garbage collection of dead ones.
    pub compaction: CompactionConfig,
}

impl Config {
    /// Resolves the command line (and the file it may name) into settings.
    pub fn resolve(cli: Cli) -> anyhow::Result<Config> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9092".to_string());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("--listen '{listen_text}' is not an IP:PORT address"))?;
        let (advertise_host, advertise_port) = match cli.advertise.or(file.advertise) {
            Some(text) => parse_host_port(&text)
                .with_context(|| format!("--advertise '{text}' is not HOST:PORT"))?,
            None => {
                if listen.ip().is_unspecified() {
                    bail!("--listen {listen} binds every interface: also set --advertise HOST:PORT so clients know where to connect");
                }
                (listen.ip().to_string(), listen.port())
            }
        };
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let catalog_url = cli
            .catalog
            .or(file.catalog)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display()));
        let store_url = cli
            .store
            .or(file.store)
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        // A remote store's PUT takes tens of milliseconds: sealing more often
        // only multiplies requests without lowering latency much.
        let default_interval = if store_url.starts_with("s3://") {
            50
        } else {
            10
        };
        let flush_interval_ms = cli
            .flush_interval_ms
            .or(file.flush_interval_ms)
            .unwrap_or(default_interval);
        let default_partitions = cli
            .default_partitions
            .or(file.default_partitions)
            .unwrap_or(1);
        if default_partitions < 1 {
            bail!("--default-partitions must be at least 1, not {default_partitions}");
        }
        let flush_bytes = cli.flush_bytes.or(file.flush_bytes).unwrap_or(4 << 20);
        if flush_bytes == 0 {
            bail!("--flush-bytes must be at least 1");
        }
        let max_connections = cli
            .max_connections
            .or(file.max_connections)
            .unwrap_or(10_000);
        if max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        let max_frame_bytes = cli
            .max_frame_bytes
            .or(file.max_frame_bytes)
            .unwrap_or(streamhouse_protocol::frame::DEFAULT_MAX_FRAME_BYTES);
        if max_frame_bytes < 1024 {
            bail!("--max-frame-bytes must be at least 1024");
        }
        let node_id = cli.node_id.or(file.node_id).unwrap_or(0);
        if node_id < 0 {
            bail!("--node-id must not be negative");
        }
        let metrics_listen =
            match cli.metrics_listen.or(file.metrics_listen) {
                Some(text) => Some(text.parse().with_context(|| {
                    format!("--metrics-listen '{text}' is not an IP:PORT address")
                })?),
                None => None,
            };
        let millis = |flag: Option<u64>, file: Option<u64>, default: u64| {
            Duration::from_millis(flag.or(file).unwrap_or(default))
        };
        let compaction = CompactionConfig {
            target_bytes: cli
                .compaction_target_bytes
                .or(file.compaction_target_bytes)
                // Twice the flush size: a compacted object is a little smaller
                // than its sources (their headers and footers go), and catch-up
                // reads should cost well under one GET per flush size.
                .unwrap_or(2 * flush_bytes as u64),
            min_age: millis(cli.compaction_min_age_ms, file.compaction_min_age_ms, 5000),
            max_age: millis(
                cli.compaction_max_age_ms,
                file.compaction_max_age_ms,
                60_000,
            ),
            gc_grace: millis(cli.gc_grace_ms, file.gc_grace_ms, 60_000),
            ..CompactionConfig::default()
        };
        Ok(Config {
            metrics_listen,
            compaction,
            listen,
            advertise_host,
            advertise_port,
            data_dir,
            catalog_url,
            store_url,
            flush_bytes,
            flush_interval: Duration::from_millis(flush_interval_ms),
            seal_when_idle: cli.seal_when_idle.or(file.seal_when_idle).unwrap_or(true),
            auto_create_topics: cli
                .auto_create_topics
                .or(file.auto_create_topics)
                .unwrap_or(true),
            default_partitions,
            max_connections,
            max_frame_bytes,
            read_cache_bytes: cli
                .read_cache_bytes
                .or(file.read_cache_bytes)
                .unwrap_or(256 << 20),
            node_id,
            group_initial_rebalance_delay: Duration::from_millis(
                cli.group_initial_rebalance_delay_ms
                    .or(file.group_initial_rebalance_delay_ms)
                    .unwrap_or(3000),
            ),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))
}

fn parse_host_port(text: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = text.rsplit_once(':').context("missing ':PORT'")?;
    if host.is_empty() {
        bail!("missing host");
    }
    let port = port
        .parse()
        .context("port is not a number from 1 to 65535")?;
    if port == 0 {
        bail!("port must not be 0");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = Config::resolve(Cli::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.advertise_host, "127.0.0.1");
        assert_eq!(config.catalog_url, "sqlite://data/catalog.db");
        assert_eq!(config.store_url, "file://data/objects");
        assert_eq!(config.flush_interval, Duration::from_millis(10));
        assert!(config.seal_when_idle);
        assert_eq!(config.compaction.target_bytes, 8 << 20);
        assert_eq!(config.compaction.gc_grace, Duration::from_secs(60));
    }

    #[test]
    fn compaction_target_follows_the_flush_size_unless_set() {
        let config = Config::resolve(Cli {
            flush_bytes: Some(1 << 20),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(config.compaction.target_bytes, 2 << 20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "compaction_target_bytes = 0\ngc_grace_ms = 5\n").unwrap();
        let config = Config::resolve(Cli {
            config: Some(path),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(config.compaction.target_bytes, 0);
        assert_eq!(config.compaction.gc_grace, Duration::from_millis(5));
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1000\"\ndefault_partitions = 3\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path),
            listen: Some("127.0.0.1:2000".into()),
            ..Cli::default()
        };
        let config = Config::resolve(cli).unwrap();
        assert_eq!(config.listen.port(), 2000);
        assert_eq!(config.default_partitions, 3);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        let err = Config::resolve(Cli {
            config: Some(path),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn bad_listen_address_is_explained() {
        let err = Config::resolve(Cli {
            listen: Some("nowhere".into()),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--listen 'nowhere'"), "{err}");
    }

    #[test]
    fn wildcard_listen_needs_advertise() {
        let err = Config::resolve(Cli {
            listen: Some("0.0.0.0:9092".into()),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--advertise"), "{err}");
    }
}
