//! The agent's own settings. Each is declared once, as a field of [`Settings`]:
//! its flag, environment variable, config-file key (the field name), default
//! and help text. [`Config`] is the settings resolved: addresses parsed,
//! defaults that depend on other settings filled in, limits checked.
//!
//! A flag beats its variable, which beats the file, which beats the default.
//! clap reads the flags, the variables and the defaults; the file then fills in
//! every setting clap took from its default ([`ArgMatches::value_source`]).
//!
//! Adding a setting is a field here plus its use in [`Config::resolve`]. Its
//! doc comment is both the `--help` text and the README's configuration table
//! row, which a test keeps in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};
use streamhouse_storage::compaction::RetentionConfig;
use streamhouse_storage::{CompactionConfig, HedgeConfig};

use super::listeners::{self, ListenerConfig, ListenerFlags, SecurityProtocol};
use crate::acl::AclSettings;
use crate::coordinator::GroupRules;
use crate::tls::TlsFiles;

/// The command line of `streamhouse`, which is also the schema of its config
/// file. With nothing set, the broker serves the embedded setup: a SQLite
/// catalog and a local object folder under `data`, on 127.0.0.1:9092.
//
// The fields' doc comments are their `--help` text. A default that depends on
// other settings is `None` here, worked out by `Config::resolve` and named in
// the field's help as `[default: ...]`.
/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Whether ACLs are enforced (`--acls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclMode {
    On,
    #[default]
    Off,
}

/// `--listen`'s default.
const DEFAULT_LISTEN: &str = "127.0.0.1:9092";

#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(name = "streamhouse", version, about)]
// Every key optional, so that old files keep working as settings are added;
// a misspelt key is an error rather than silently ignored.
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on for Kafka clients, IP:PORT
    #[arg(long, env = "STREAMHOUSE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// HOST:PORT clients are told to connect to; required when listening on
    /// 0.0.0.0 [default: the listen address]
    #[arg(long, env = "STREAMHOUSE_ADVERTISE")]
    pub advertise: Option<String>,
    /// A listener, PROTOCOL://IP:PORT, in place of --listen: PLAINTEXT,
    /// SASL_PLAINTEXT (clients authenticate with PLAIN, SCRAM-SHA-256 or
    /// SCRAM-SHA-512 first), SSL or SASL_SSL (the same over TLS, with
    /// --tls-cert and --tls-key) [default: PLAINTEXT on --listen]
    ///
    /// Repeated (or comma-separated) for several listeners, at most one per
    /// protocol; the first one's address identifies the agent in the catalog.
    #[arg(long, env = "STREAMHOUSE_LISTENER", value_delimiter = ',')]
    pub listener: Vec<String>,
    /// PROTOCOL://HOST:PORT clients of the listener of that protocol are told
    /// to connect to, in place of --advertise; repeated (or comma-separated)
    /// like --listener [default: each listener's address]
    #[arg(long, env = "STREAMHOUSE_ADVERTISED_LISTENER", value_delimiter = ',')]
    pub advertised_listener: Vec<String>,
    /// File of NAME:PASSWORD lines: each user gets SCRAM-SHA-256 and
    /// SCRAM-SHA-512 credentials in the catalog at start (PLAIN checks
    /// against them too) [default: none]
    #[arg(long, env = "STREAMHOUSE_SASL_USERS_FILE")]
    pub sasl_users_file: Option<PathBuf>,
    /// PEM file of the TLS listeners' certificate, then any intermediate
    /// CA certificates; re-read on SIGHUP [default: none]
    #[arg(long, env = "STREAMHOUSE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key (PKCS#8, RSA or EC);
    /// re-read on SIGHUP [default: none]
    #[arg(long, env = "STREAMHOUSE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CAs that issue client certificates: given, every
    /// client on a TLS listener must present one they issued (mTLS)
    /// [default: none]
    #[arg(long, env = "STREAMHOUSE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Enforce ACLs: on, every request is checked against the ACLs in the
    /// catalog (Kafka's authorizer); off, every client may do anything
    #[arg(long, env = "STREAMHOUSE_ACLS", default_value = "off")]
    pub acls: AclMode,
    /// A principal, User:NAME, allowed everything whatever the ACLs say
    /// (repeatable) [default: none]
    #[arg(long, env = "STREAMHOUSE_SUPER_USER", value_delimiter = ',')]
    pub super_user: Vec<String>,
    /// With --acls on, allow everyone on a resource that no ACL names
    /// (Kafka's allow.everyone.if.no.acl.found)
    #[arg(long, env = "STREAMHOUSE_ALLOW_EVERYONE_IF_NO_ACL_FOUND", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_everyone_if_no_acl_found: bool,
    /// On SASL listeners, the session lifetime clients that support
    /// re-authentication are told: they re-authenticate within it, or the
    /// connection closes at their next request; 0 for no limit (Kafka's
    /// connections.max.reauth.ms)
    #[arg(
        long,
        env = "STREAMHOUSE_CONNECTIONS_MAX_REAUTH_MS",
        default_value_t = 0
    )]
    pub connections_max_reauth_ms: u64,
    /// Folder of the embedded catalog and objects
    #[arg(long, env = "STREAMHOUSE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Catalog database: sqlite://PATH or postgres://USER@HOST:PORT/DB, over
    /// TLS with ?sslmode=verify-full&sslrootcert=CA.pem
    /// [default: sqlite://DATA_DIR/catalog.db]
    #[arg(long, env = "STREAMHOUSE_CATALOG")]
    pub catalog: Option<String>,
    /// Fail a catalog operation that has not finished after this long (a lock
    /// held elsewhere, a stalled database); the request gets REQUEST_TIMED_OUT
    ///
    /// Below clients' request.timeout.ms (30 s by default), so that the broker
    /// still answers. On PostgreSQL also each statement's statement_timeout.
    #[arg(long, env = "STREAMHOUSE_CATALOG_TIMEOUT_MS", default_value_t = 25_000)]
    pub catalog_timeout_ms: u64,
    /// Object store: file://PATH, memory:// or
    /// s3://BUCKET?endpoint=URL&region=R&allow_http=true&path_style=true&prefix=P
    /// (and &ca_file=CA.pem to trust a private CA over https)
    /// [default: file://DATA_DIR/objects]
    #[arg(long, env = "STREAMHOUSE_STORE")]
    pub store: Option<String>,
    /// TOML file with any of these settings, keyed by flag name with
    /// underscores (flush_interval_ms = 20) [default: none]
    #[arg(long, env = "STREAMHOUSE_CONFIG")]
    // Not a key of the file itself.
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Seal the open object once it holds this many bytes
    #[arg(long, env = "STREAMHOUSE_FLUSH_BYTES", default_value_t = 4 << 20)]
    pub flush_bytes: usize,
    /// Seal the open object once its oldest batch waited this long, while
    /// earlier objects are in flight (see --seal-when-idle) [default: 10, or
    /// 50 for s3:// stores]
    #[arg(long, env = "STREAMHOUSE_FLUSH_INTERVAL_MS")]
    pub flush_interval_ms: Option<u64>,
    /// Seal the open object at once when no earlier one is uploading or
    /// committing; false: only by size or interval, for the fewest PUTs
    ///
    /// With true a producer's round trip is one PUT plus one catalog commit,
    /// not the interval as well, for up to one PUT per (PUT + commit) time
    /// while idle. False suits stores billed per request, such as AWS S3.
    #[arg(long, env = "STREAMHOUSE_SEAL_WHEN_IDLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub seal_when_idle: bool,
    /// With --seal-when-idle, the write path counts as idle while fewer than
    /// this many objects are uploading or committing [default: 1, or 8 for
    /// s3:// stores]
    ///
    /// Above 1 the next object starts while others upload: a round trip of
    /// about one PUT instead of one and a half, for more PUTs while lightly
    /// loaded (the pipeline's own bound, four uploads queued behind the one
    /// committing, still applies).
    #[arg(long, env = "STREAMHOUSE_IDLE_BELOW_IN_FLIGHT")]
    pub idle_below_in_flight: Option<usize>,
    /// Send an object's PUT a second time when it has not answered by this
    /// quantile of recent PUT times (0 < q < 1; 0: never) [default: 0.7 for
    /// s3:// stores, else 0]
    ///
    /// Objects commit in order, so one straggling PUT holds back every
    /// acknowledgement behind it; a second request usually answers in a
    /// median time. At most half again as many PUTs, whatever the store does.
    #[arg(long, env = "STREAMHOUSE_PUT_HEDGE_QUANTILE")]
    pub put_hedge_quantile: Option<f64>,
    /// Create unknown topics when clients ask for them in Metadata
    #[arg(long, env = "STREAMHOUSE_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics asking for -1
    #[arg(long, env = "STREAMHOUSE_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,
    /// Most client connections served at once
    #[arg(long, env = "STREAMHOUSE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most connections served at once from one IP address (Kafka's
    /// max.connections.per.ip); further ones from it are closed at once
    #[arg(
        long,
        env = "STREAMHOUSE_MAX_CONNECTIONS_PER_IP",
        default_value_t = 2_147_483_647
    )]
    pub max_connections_per_ip: usize,
    /// Close a connection that sent no request for this long while no response
    /// was owed to it (Kafka's connections.max.idle.ms); also the most time
    /// one request's bytes may take to arrive once its first byte has
    ///
    /// A socket that never sends a byte is closed after this long too.
    #[arg(
        long,
        env = "STREAMHOUSE_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000
    )]
    pub connections_max_idle_ms: u64,
    /// Largest request accepted, in bytes
    #[arg(long, env = "STREAMHOUSE_MAX_FRAME_BYTES",
          default_value_t = streamhouse_protocol::frame::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// Most record bytes one fetch response returns, whatever the client asks
    /// (Kafka's fetch.max.bytes); the first batch is returned whole even if
    /// larger, so a consumer always makes progress
    #[arg(long, env = "STREAMHOUSE_FETCH_MAX_BYTES", default_value_t = 55 << 20)]
    pub fetch_max_bytes: usize,
    /// Memory for fetch responses across all connections, in bytes, held
    /// from their read until written; a fetch finding none free waits for it
    /// (at most its max wait), then answers without records
    ///
    /// Under load responses get smaller; one larger than this is served
    /// alone. While fetches wait for it, a connection holding some that has
    /// taken nothing for a second is closed.
    //
    // Responses are written within milliseconds of their read to clients that
    // read them, so this is rarely used at all; 256 MiB serves four of the
    // largest (fetch.max.bytes, 55 MiB) at once with room to spare, and a
    // client that stops reading can at most pin this much.
    #[arg(long, env = "STREAMHOUSE_FETCH_MEMORY_BYTES", default_value_t = 256 << 20)]
    pub fetch_memory_bytes: usize,
    /// Memory for recently written and read objects, in bytes
    ///
    /// It holds objects written, read, and read ahead for catch-up consumers,
    /// and is the largest part of the broker's memory.
    #[arg(long, env = "STREAMHOUSE_READ_CACHE_BYTES", default_value_t = 256 << 20)]
    pub read_cache_bytes: u64,
    /// This agent's broker id, reported to clients [default: the smallest id no
    /// live agent holds]
    ///
    /// Two live agents may not share one; an agent restarted on the same
    /// address keeps its id.
    #[arg(long, env = "STREAMHOUSE_NODE_ID")]
    pub node_id: Option<i32>,
    /// The zone (availability zone, rack) this agent runs in [default: none]
    ///
    /// Reported as the broker's rack. Clients that name a zone in their
    /// client.id (`streamhouse_zone=Z`) are given partition leaders in it.
    #[arg(long, env = "STREAMHOUSE_ZONE")]
    pub zone: Option<String>,
    /// How long this agent stays a member of the cluster without renewing its
    /// lease in the catalog
    ///
    /// It renews every quarter of this. An agent that dies is noticed by the
    /// others within about 1.3 times this; shorter notices deaths sooner and
    /// risks dropping agents on a slow catalog.
    #[arg(long, env = "STREAMHOUSE_AGENT_LEASE_MS", default_value_t = 10_000)]
    pub agent_lease_ms: u64,
    /// How long the first rebalance of an empty consumer group waits for more
    /// members (Kafka's group.initial.rebalance.delay.ms); 0 for tests and
    /// single consumers
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    pub group_initial_rebalance_delay_ms: u64,
    /// The shortest session a consumer group member may ask for (Kafka's
    /// group.min.session.timeout.ms); a shorter one is refused with
    /// INVALID_SESSION_TIMEOUT
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6000
    )]
    pub group_min_session_timeout_ms: u32,
    /// The longest session a consumer group member may ask for (Kafka's
    /// group.max.session.timeout.ms)
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    pub group_max_session_timeout_ms: u32,
    /// The most members a consumer group may have (Kafka's group.max.size); a
    /// member that would join beyond it is refused with GROUP_MAX_SIZE_REACHED
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_MAX_SIZE",
        default_value_t = 2_147_483_647
    )]
    pub group_max_size: u32,
    /// How long a member of a consumer group of the new protocol (KIP-848,
    /// `group.protocol=consumer`) stays without a heartbeat before it is
    /// removed (Kafka's group.consumer.session.timeout.ms)
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        default_value_t = 45_000
    )]
    pub group_consumer_session_timeout_ms: u32,
    /// How often members of consumer groups of the new protocol heartbeat
    /// (Kafka's group.consumer.heartbeat.interval.ms); below the session
    /// timeout
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5000
    )]
    pub group_consumer_heartbeat_interval_ms: u32,
    /// How long a member of a share group (KIP-932) stays without a heartbeat
    /// before it is removed (Kafka's group.share.session.timeout.ms)
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_SHARE_SESSION_TIMEOUT_MS",
        default_value_t = 45_000
    )]
    pub group_share_session_timeout_ms: u32,
    /// How often share group members heartbeat (Kafka's
    /// group.share.heartbeat.interval.ms); below the session timeout
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_SHARE_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5000
    )]
    pub group_share_heartbeat_interval_ms: u32,
    /// How long a record delivered to a share group member stays locked to it
    /// unacknowledged before it is delivered again (Kafka's
    /// group.share.record.lock.duration.ms); at least 1000
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_SHARE_RECORD_LOCK_DURATION_MS",
        default_value_t = 30_000
    )]
    pub group_share_record_lock_duration_ms: u32,
    /// How many times a share group delivers a record before archiving it
    /// unacknowledged (Kafka's group.share.delivery.count.limit), 2 to 10
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_SHARE_DELIVERY_COUNT_LIMIT",
        default_value_t = 5
    )]
    pub group_share_delivery_count_limit: u16,
    /// Where a share group begins a partition it has never read: `latest`
    /// (records produced from then on) or `earliest`; the default of the
    /// group config share.auto.offset.reset, which a group may set
    #[arg(
        long,
        env = "STREAMHOUSE_GROUP_SHARE_AUTO_OFFSET_RESET",
        default_value = "latest"
    )]
    pub group_share_auto_offset_reset: String,
    /// Serve Prometheus-format metrics over HTTP on this IP:PORT [default: off],
    /// with the health (/healthz) and readiness (/readyz) probes
    ///
    /// They count Kafka requests, errors and handling times per API, bytes and
    /// records in and out per topic, open connections, consumer-group lag,
    /// object-store requests, bytes and latencies, catalog commit latencies,
    /// compaction, retention and the fetch memory in use (docs/operations.md
    /// lists them). /readyz answers 503 while the
    /// listener is not accepting or the catalog, the store or the agent's lease
    /// fails.
    #[arg(long, env = "STREAMHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object a line: timestamp, level, target, message and fields) for log
    /// collectors
    ///
    /// STREAMHOUSE_LOG picks what is logged (`info` by default, e.g.
    /// `streamhouse=debug`).
    #[arg(
        long,
        env = "STREAMHOUSE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Compact live objects smaller than half this size into objects of about
    /// this size; 0 turns compaction off [default: twice the flush bytes]
    ///
    /// A catch-up read then costs about one GET per target size.
    #[arg(long, env = "STREAMHOUSE_COMPACTION_TARGET_BYTES")]
    pub compaction_target_bytes: Option<u64>,
    /// Leave objects younger than this to tailing readers, who read them from
    /// the cache
    #[arg(
        long,
        env = "STREAMHOUSE_COMPACTION_MIN_AGE_MS",
        default_value_t = 5000
    )]
    pub compaction_min_age_ms: u64,
    /// Compact small objects that add up to less than the target once the
    /// oldest is this old (slow topics)
    #[arg(
        long,
        env = "STREAMHOUSE_COMPACTION_MAX_AGE_MS",
        default_value_t = 60_000
    )]
    pub compaction_max_age_ms: u64,
    /// Keep compacted-away and unreferenced objects in the store this long
    /// before deleting them
    ///
    /// A fetch that read an object's index entry can still GET it meanwhile.
    #[arg(long, env = "STREAMHOUSE_GC_GRACE_MS", default_value_t = 60_000)]
    pub gc_grace_ms: u64,
    /// Forget an idempotent producer's state on a partition once it has not
    /// appended there for this long (Kafka's producer.id.expiration.ms); its
    /// next batch there is then taken as a new producer's
    ///
    /// A retry of a batch older than this is no longer recognised and is
    /// appended again. A producer id handed out or bumped this long ago is
    /// forgotten too (never handed out again).
    #[arg(
        long,
        env = "STREAMHOUSE_PRODUCER_ID_EXPIRATION_MS",
        default_value_t = 86_400_000
    )]
    pub producer_id_expiration_ms: u64,
    /// How often one agent of the cluster looks for producer state to forget
    /// (Kafka's producer.id.expiration.check.interval.ms, 600000 there)
    #[arg(
        long,
        env = "STREAMHOUSE_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub producer_id_expiration_check_interval_ms: u64,
    /// The largest transaction timeout a transactional producer may ask for
    /// (Kafka's transaction.max.timeout.ms); a longer one is refused with
    /// INVALID_TRANSACTION_TIMEOUT
    #[arg(
        long,
        env = "STREAMHOUSE_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000
    )]
    pub transaction_max_timeout_ms: u64,
    /// How often each agent aborts transactions open longer than their
    /// timeout, and completes those an agent that stopped left half-written
    /// (Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms)
    #[arg(
        long,
        env = "STREAMHOUSE_TRANSACTION_ABORT_CHECK_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub transaction_abort_check_interval_ms: u64,
    /// How long a topic keeps records when it does not set retention.ms
    /// (Kafka's log.retention.ms); -1 keeps them for ever
    ///
    /// Applies to topics whose cleanup.policy includes delete. Records go in
    /// whole index entries once their batches' largest timestamp is older.
    #[arg(
        long,
        env = "STREAMHOUSE_LOG_RETENTION_MS",
        default_value_t = 604_800_000,
        allow_negative_numbers = true
    )]
    pub log_retention_ms: i64,
    /// Bytes a partition keeps when its topic does not set retention.bytes
    /// (Kafka's log.retention.bytes); -1 is no limit
    #[arg(
        long,
        env = "STREAMHOUSE_LOG_RETENTION_BYTES",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    pub log_retention_bytes: i64,
    /// How often one agent of the cluster applies retention.ms and
    /// retention.bytes (Kafka's log.retention.check.interval.ms, 300000 there)
    #[arg(
        long,
        env = "STREAMHOUSE_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub retention_check_interval_ms: u64,
    /// Delete an object found in the store but not in the catalog (an upload
    /// whose commit failed or never came) once it has stayed unknown this long
    ///
    /// Must be at least twice --catalog-timeout-ms: an object being uploaded
    /// is unknown until its commit, which comes after the uploads queued
    /// before it and one catalog call.
    #[arg(long, env = "STREAMHOUSE_ORPHAN_GRACE_MS", default_value_t = 3_600_000)]
    pub orphan_grace_ms: u64,
    /// How often the agent that collects garbage lists the store for objects
    /// the catalog does not know (one LIST request per 1,000 objects)
    #[arg(
        long,
        env = "STREAMHOUSE_ORPHAN_SCAN_INTERVAL_MS",
        default_value_t = 600_000
    )]
    pub orphan_scan_interval_ms: u64,
    /// How often the log cleaner looks at the compacted topics' partitions
    /// placed on this agent (Kafka's log.cleaner.backoff.ms)
    ///
    /// A partition past its min.cleanable.dirty.ratio is cleaned at the next
    /// look.
    #[arg(
        long,
        env = "STREAMHOUSE_LOG_CLEANER_INTERVAL_MS",
        default_value_t = 15_000
    )]
    pub log_cleaner_interval_ms: u64,
    /// Most bytes of a partition's log one cleaning reads (the role of Kafka's
    /// log.cleaner.dedupe.buffer.size); 0 turns the log cleaner off
    ///
    /// A cleaning holds what it read and what it writes, about twice this,
    /// plus about 48 bytes per distinct key. A partition whose cleaned part
    /// alone is larger is not cleaned.
    #[arg(
        long,
        env = "STREAMHOUSE_LOG_CLEANER_MAX_PASS_BYTES",
        default_value_t = 134_217_728
    )]
    pub log_cleaner_max_pass_bytes: u64,
}

impl Default for Settings {
    /// The built-in defaults: an empty command line, the environment ignored.
    fn default() -> Settings {
        let command = Settings::command().mut_args(|arg| arg.env(None::<&'static str>));
        let matches = command
            .try_get_matches_from(["streamhouse"])
            .expect("every setting has a default");
        Settings::from_arg_matches(&matches).expect("every default parses")
    }
}

impl Settings {
    /// This process's settings: its command line and environment over the file
    /// `--config` names. Like clap, prints and exits on `--help`, `--version` or
    /// a malformed flag (status 2).
    pub fn load() -> anyhow::Result<Settings> {
        Settings::layered(&Settings::command().get_matches())
    }

    /// The settings clap parsed into `matches`, over the file they name.
    fn layered(matches: &ArgMatches) -> anyhow::Result<Settings> {
        let given = Settings::from_arg_matches(matches)?;
        let Some(path) = &given.config else {
            return Ok(given);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let invalid = || format!("config file {} is invalid", path.display());
        // Parsed straight from the text, so that errors carry the line.
        let file: Settings = toml::from_str(&text).with_context(invalid)?;
        let mut layered = toml::Table::try_from(&file).with_context(invalid)?;
        let flags = toml::Table::try_from(&given)
            .context("a flag or variable is beyond what a TOML file can hold")?;
        for (key, value) in flags {
            if matches!(
                matches.value_source(&key),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                layered.insert(key, value);
            }
        }
        let mut settings: Settings = layered.try_into().with_context(invalid)?;
        settings.config = given.config;
        Ok(settings)
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The listeners, at least one and at most one per protocol; the first is
    /// the one the catalog's `host` and `port` columns name.
    pub listeners: Vec<ListenerConfig>,
    pub sasl_users_file: Option<PathBuf>,
    /// The TLS files of the SSL and SASL_SSL listeners (None without one).
    pub tls: Option<TlsFiles>,
    /// `--acls`, `--super-user`, `--allow-everyone-if-no-acl-found`.
    pub acls: AclSettings,
    /// Kafka's `connections.max.reauth.ms`; None for 0 (no re-authentication).
    pub connections_max_reauth: Option<Duration>,
    pub data_dir: PathBuf,
    pub catalog_url: String,
    pub catalog_timeout: Duration,
    pub store_url: String,
    pub flush_bytes: usize,
    pub flush_interval: Duration,
    pub seal_when_idle: bool,
    pub idle_below_in_flight: usize,
    /// When to hedge late PUTs; `None` never.
    pub put_hedge: Option<HedgeConfig>,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub max_connections: usize,
    /// Kafka's `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// Kafka's `connections.max.idle.ms`, also the deadline of one request's
    /// bytes.
    pub connections_max_idle: Duration,
    pub max_frame_bytes: usize,
    /// Kafka's `fetch.max.bytes`: the cap on a fetch response's `max_bytes`.
    pub fetch_max_bytes: usize,
    /// The fetch memory budget across connections (`crate::fetch_memory`).
    pub fetch_memory_bytes: usize,
    pub read_cache_bytes: u64,
    /// `--node-id`: None to be given one by the catalog.
    pub node_id: Option<i32>,
    pub zone: Option<String>,
    pub agent_lease: Duration,
    /// Kafka's `group.initial.rebalance.delay.ms`, `group.min.session.timeout.ms`,
    /// `group.max.session.timeout.ms` and `group.max.size`.
    pub group_rules: GroupRules,
    /// Where share groups begin partitions they never read.
    pub share_start: crate::share::ShareStart,
    /// Kafka's `transaction.max.timeout.ms`.
    pub transaction_max_timeout_ms: i32,
    /// How often the timed-out transactions are aborted.
    pub transaction_abort_check_interval: Duration,
    pub metrics_listen: Option<SocketAddr>,
    /// Compaction of small objects and garbage collection of dead ones.
    pub compaction: CompactionConfig,
}

impl Config {
    /// The listener of `protocol`, if the agent has one.
    pub fn listener(&self, protocol: SecurityProtocol) -> Option<&ListenerConfig> {
        self.listeners.iter().find(|l| l.protocol == protocol)
    }

    /// Checks the settings and works out the defaults that depend on others.
    /// Errors name the flag, whichever layer the value came from.
    pub fn resolve(settings: Settings) -> anyhow::Result<Config> {
        let Settings {
            listen,
            advertise,
            listener,
            advertised_listener,
            sasl_users_file,
            tls_cert,
            tls_key,
            tls_client_ca,
            acls,
            super_user,
            allow_everyone_if_no_acl_found,
            connections_max_reauth_ms,
            data_dir,
            catalog,
            catalog_timeout_ms,
            store,
            config: _,
            flush_bytes,
            flush_interval_ms,
            seal_when_idle,
            idle_below_in_flight,
            put_hedge_quantile,
            auto_create_topics,
            default_partitions,
            max_connections,
            max_connections_per_ip,
            connections_max_idle_ms,
            max_frame_bytes,
            fetch_max_bytes,
            fetch_memory_bytes,
            read_cache_bytes,
            node_id,
            zone,
            agent_lease_ms,
            group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_max_size,
            group_consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms,
            group_share_session_timeout_ms,
            group_share_heartbeat_interval_ms,
            group_share_record_lock_duration_ms,
            group_share_delivery_count_limit,
            group_share_auto_offset_reset,
            metrics_listen,
            compaction_target_bytes,
            compaction_min_age_ms,
            compaction_max_age_ms,
            gc_grace_ms,
            producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms,
            transaction_max_timeout_ms,
            transaction_abort_check_interval_ms,
            log_retention_ms,
            log_retention_bytes,
            retention_check_interval_ms,
            orphan_grace_ms,
            orphan_scan_interval_ms,
            log_cleaner_interval_ms,
            log_cleaner_max_pass_bytes,
            // Applied by main before anything is logged.
            log_format: _,
        } = settings;
        let listeners = listeners::resolve(&ListenerFlags {
            listeners: &listener,
            advertised: &advertised_listener,
            listen: &listen,
            listen_is_default: listen == DEFAULT_LISTEN,
            advertise: advertise.as_deref(),
        })?;
        let protocols: Vec<SecurityProtocol> = listeners.iter().map(|l| l.protocol).collect();
        let tls = listeners::tls_files(&protocols, tls_cert, tls_key, tls_client_ca)?;
        let acls = AclSettings::new(
            acls == AclMode::On,
            &super_user,
            allow_everyone_if_no_acl_found,
        )?;
        let catalog_url = catalog
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display()));
        let store_url =
            store.unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        // A remote store's PUT takes tens of milliseconds: sealing more often
        // only multiplies requests without lowering latency much.
        let remote_store = store_url.starts_with("s3://");
        let default_interval = if remote_store { 50 } else { 10 };
        let idle_below_in_flight = idle_below_in_flight.unwrap_or(if remote_store { 8 } else { 1 });
        if idle_below_in_flight < 1 {
            bail!("--idle-below-in-flight must be at least 1 (--seal-when-idle false turns idle sealing off)");
        }
        let put_hedge_quantile = put_hedge_quantile.unwrap_or(if remote_store { 0.7 } else { 0.0 });
        if !(0.0..1.0).contains(&put_hedge_quantile) {
            bail!("--put-hedge-quantile must be at least 0 and below 1, not {put_hedge_quantile}");
        }
        let put_hedge = (put_hedge_quantile > 0.0).then(|| HedgeConfig {
            quantile: put_hedge_quantile,
            ..HedgeConfig::default()
        });
        if default_partitions < 1 {
            bail!("--default-partitions must be at least 1, not {default_partitions}");
        }
        if flush_bytes == 0 {
            bail!("--flush-bytes must be at least 1");
        }
        if max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        if max_connections_per_ip == 0 {
            bail!("--max-connections-per-ip must be at least 1");
        }
        if connections_max_idle_ms == 0 {
            bail!("--connections-max-idle-ms must be at least 1");
        }
        if max_frame_bytes < 1024 {
            bail!("--max-frame-bytes must be at least 1024");
        }
        // Kafka's own lower bound for fetch.max.bytes.
        if fetch_max_bytes < 1024 {
            bail!("--fetch-max-bytes must be at least 1024");
        }
        // The budget's permits are counted in u32.
        if !(1..=u32::MAX as usize).contains(&fetch_memory_bytes) {
            bail!("--fetch-memory-bytes must be from 1 to 4294967295");
        }
        if node_id.is_some_and(|id| id < 0) {
            bail!("--node-id must not be negative");
        }
        if let Some(zone) = zone
            .as_deref()
            .filter(|z| !crate::cluster::zone::valid_zone(z))
        {
            bail!("--zone '{zone}' must be 1 to 64 letters, digits, '.', '_' or '-'");
        }
        if agent_lease_ms < 1000 {
            bail!("--agent-lease-ms must be at least 1000");
        }
        // Kafka's bounds: INT configs; the minimum no larger than the maximum.
        if group_min_session_timeout_ms > i32::MAX as u32
            || group_max_session_timeout_ms > i32::MAX as u32
        {
            bail!("--group-min-session-timeout-ms and --group-max-session-timeout-ms must be at most 2147483647");
        }
        if group_min_session_timeout_ms > group_max_session_timeout_ms {
            bail!(
                "--group-min-session-timeout-ms ({group_min_session_timeout_ms}) must not exceed \
                 --group-max-session-timeout-ms ({group_max_session_timeout_ms})"
            );
        }
        if !(1..=i32::MAX as u32).contains(&group_max_size) {
            bail!("--group-max-size must be from 1 to 2147483647");
        }
        // Kafka's bounds: INT configs, the interval below the session.
        if !(1..=i32::MAX as u32).contains(&group_consumer_session_timeout_ms)
            || group_consumer_heartbeat_interval_ms == 0
            || group_consumer_heartbeat_interval_ms >= group_consumer_session_timeout_ms
        {
            bail!(
                "--group-consumer-heartbeat-interval-ms ({group_consumer_heartbeat_interval_ms}) \
                 must be at least 1 and below --group-consumer-session-timeout-ms \
                 ({group_consumer_session_timeout_ms}), which is at most 2147483647"
            );
        }
        if !(1..=i32::MAX as u32).contains(&group_share_session_timeout_ms)
            || group_share_heartbeat_interval_ms == 0
            || group_share_heartbeat_interval_ms >= group_share_session_timeout_ms
        {
            bail!(
                "--group-share-heartbeat-interval-ms ({group_share_heartbeat_interval_ms}) \
                 must be at least 1 and below --group-share-session-timeout-ms \
                 ({group_share_session_timeout_ms}), which is at most 2147483647"
            );
        }
        // Kafka's bounds.
        if !(1000..=3_600_000).contains(&group_share_record_lock_duration_ms) {
            bail!("--group-share-record-lock-duration-ms must be from 1000 to 3600000");
        }
        if !(2..=10).contains(&group_share_delivery_count_limit) {
            bail!("--group-share-delivery-count-limit must be from 2 to 10");
        }
        let share_start = match group_share_auto_offset_reset.as_str() {
            "latest" => crate::share::ShareStart::Latest,
            "earliest" => crate::share::ShareStart::Earliest,
            other => {
                bail!("--group-share-auto-offset-reset must be latest or earliest, not '{other}'")
            }
        };
        if catalog_timeout_ms == 0 {
            bail!("--catalog-timeout-ms must be at least 1");
        }
        // Kafka's bounds for both: INT configs of at least 1.
        if !(1..=i32::MAX as u64).contains(&producer_id_expiration_ms) {
            bail!("--producer-id-expiration-ms must be from 1 to 2147483647");
        }
        if !(1..=i32::MAX as u64).contains(&producer_id_expiration_check_interval_ms) {
            bail!("--producer-id-expiration-check-interval-ms must be from 1 to 2147483647");
        }
        if !(1..=i32::MAX as u64).contains(&transaction_max_timeout_ms) {
            bail!("--transaction-max-timeout-ms must be from 1 to 2147483647");
        }
        if !(1..=i32::MAX as u64).contains(&transaction_abort_check_interval_ms) {
            bail!("--transaction-abort-check-interval-ms must be from 1 to 2147483647");
        }
        // Kafka's bounds: a LONG of at least -1 for both limits, at least 1
        // for the interval.
        if log_retention_ms < -1 {
            bail!("--log-retention-ms must be at least -1");
        }
        if log_retention_bytes < -1 {
            bail!("--log-retention-bytes must be at least -1");
        }
        if retention_check_interval_ms == 0 {
            bail!("--retention-check-interval-ms must be at least 1");
        }
        if orphan_grace_ms < catalog_timeout_ms.saturating_mul(2) {
            bail!(
                "--orphan-grace-ms {orphan_grace_ms} must be at least twice --catalog-timeout-ms ({catalog_timeout_ms}): \
                 an upload is unknown to the catalog until its commit"
            );
        }
        if orphan_scan_interval_ms == 0 {
            bail!("--orphan-scan-interval-ms must be at least 1");
        }
        if log_cleaner_interval_ms == 0 {
            bail!("--log-cleaner-interval-ms must be at least 1");
        }
        let metrics_listen =
            match metrics_listen {
                Some(text) => Some(text.parse().with_context(|| {
                    format!("--metrics-listen '{text}' is not an IP:PORT address")
                })?),
                None => None,
            };
        let compaction = CompactionConfig {
            // Twice the flush size: a compacted object is a little smaller
            // than its sources (their headers and footers go), and catch-up
            // reads should cost well under one GET per flush size.
            target_bytes: compaction_target_bytes.unwrap_or(2 * flush_bytes as u64),
            min_age: Duration::from_millis(compaction_min_age_ms),
            max_age: Duration::from_millis(compaction_max_age_ms),
            gc_grace: Duration::from_millis(gc_grace_ms),
            producer_id_expiration: Duration::from_millis(producer_id_expiration_ms),
            producer_expiry_interval: Duration::from_millis(
                producer_id_expiration_check_interval_ms,
            ),
            retention: RetentionConfig {
                check_interval: Duration::from_millis(retention_check_interval_ms),
                default_ms: log_retention_ms,
                default_bytes: log_retention_bytes,
            },
            orphan_grace: Duration::from_millis(orphan_grace_ms),
            orphan_scan_interval: Duration::from_millis(orphan_scan_interval_ms),
            cleaner_interval: Duration::from_millis(log_cleaner_interval_ms),
            cleaner_max_pass_bytes: log_cleaner_max_pass_bytes,
            ..CompactionConfig::default()
        };
        Ok(Config {
            listeners,
            sasl_users_file,
            tls,
            acls,
            connections_max_reauth: (connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(connections_max_reauth_ms)),
            data_dir,
            catalog_url,
            catalog_timeout: Duration::from_millis(catalog_timeout_ms),
            store_url,
            flush_bytes,
            flush_interval: Duration::from_millis(flush_interval_ms.unwrap_or(default_interval)),
            seal_when_idle,
            idle_below_in_flight,
            put_hedge,
            auto_create_topics,
            default_partitions,
            max_connections,
            max_connections_per_ip,
            connections_max_idle: Duration::from_millis(connections_max_idle_ms),
            max_frame_bytes,
            fetch_max_bytes,
            fetch_memory_bytes,
            read_cache_bytes,
            node_id,
            zone,
            agent_lease: Duration::from_millis(agent_lease_ms),
            group_rules: GroupRules {
                initial_delay: Duration::from_millis(group_initial_rebalance_delay_ms),
                min_session_timeout_ms: group_min_session_timeout_ms as i32,
                max_session_timeout_ms: group_max_session_timeout_ms as i32,
                max_size: group_max_size as usize,
                consumer_session_timeout_ms: group_consumer_session_timeout_ms as i32,
                consumer_heartbeat_interval_ms: group_consumer_heartbeat_interval_ms as i32,
                share_session_timeout_ms: group_share_session_timeout_ms as i32,
                share_heartbeat_interval_ms: group_share_heartbeat_interval_ms as i32,
                share_record_lock_ms: group_share_record_lock_duration_ms as i32,
                share_delivery_limit: group_share_delivery_count_limit as i16,
            },
            share_start,
            transaction_max_timeout_ms: transaction_max_timeout_ms as i32,
            transaction_abort_check_interval: Duration::from_millis(
                transaction_abort_check_interval_ms,
            ),
            metrics_listen,
            compaction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of this command line (and the environment), over its file.
    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let matches = Settings::command()
            .try_get_matches_from(std::iter::once("streamhouse").chain(args.iter().copied()))?;
        Settings::layered(&matches)
    }

    fn file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_string();
        (dir, path)
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].bind.to_string(), "127.0.0.1:9092");
        assert_eq!(config.listeners[0].advertised(), "127.0.0.1:9092");
        assert_eq!(config.listeners[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(config.catalog_url, "sqlite://data/catalog.db");
        assert_eq!(
            config.catalog_timeout,
            streamhouse_metadata::DEFAULT_TIMEOUT
        );
        assert_eq!(config.store_url, "file://data/objects");
        assert_eq!(config.flush_bytes, 4 << 20);
        assert_eq!(config.flush_interval, Duration::from_millis(10));
        assert!(config.seal_when_idle);
        assert!(config.auto_create_topics);
        assert_eq!(config.default_partitions, 1);
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.max_connections_per_ip, 2_147_483_647);
        assert_eq!(config.connections_max_idle, Duration::from_secs(600));
        assert_eq!(config.max_frame_bytes, 100 << 20);
        assert_eq!(config.fetch_max_bytes, 57_671_680);
        assert_eq!(config.fetch_memory_bytes, 256 << 20);
        assert_eq!(config.read_cache_bytes, 256 << 20);
        assert_eq!(config.node_id, None);
        assert_eq!(config.group_rules, GroupRules::default());
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.compaction.target_bytes, 8 << 20);
        assert_eq!(config.compaction.min_age, Duration::from_secs(5));
        assert_eq!(config.compaction.max_age, Duration::from_secs(60));
        assert_eq!(config.compaction.gc_grace, Duration::from_secs(60));
        assert_eq!(
            config.compaction.producer_id_expiration,
            Duration::from_secs(86_400)
        );
        assert_eq!(
            config.compaction.producer_expiry_interval,
            Duration::from_secs(60)
        );
        assert_eq!(config.compaction.cleaner_interval, Duration::from_secs(15));
        assert_eq!(config.compaction.cleaner_max_pass_bytes, 128 << 20);
        assert_eq!(config.compaction.orphan_grace, Duration::from_secs(3600));
        assert_eq!(
            config.compaction.orphan_scan_interval,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn the_orphan_grace_outlasts_two_catalog_timeouts() {
        let err = Config::resolve(
            parse(&["--catalog-timeout-ms", "2000", "--orphan-grace-ms", "3999"]).unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--orphan-grace-ms"), "{err}");
        // The default catalog timeout (25 s) and the default grace agree.
        let err = Config::resolve(parse(&["--orphan-grace-ms", "10000"]).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("twice --catalog-timeout-ms"),
            "{err}"
        );
        let config = Config::resolve(
            parse(&[
                "--catalog-timeout-ms",
                "2000",
                "--orphan-grace-ms",
                "4000",
                "--orphan-scan-interval-ms",
                "500",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.compaction.orphan_grace, Duration::from_secs(4));
        assert_eq!(
            config.compaction.orphan_scan_interval,
            Duration::from_millis(500)
        );
        let err = Config::resolve(parse(&["--orphan-scan-interval-ms", "0"]).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("--orphan-scan-interval-ms"),
            "{err}"
        );
    }

    #[test]
    fn s3_stores_flush_less_often_by_default() {
        let config = Config::resolve(Settings {
            store: Some("s3://bucket?region=r".into()),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(config.flush_interval, Duration::from_millis(50));
        assert_eq!(config.put_hedge.map(|h| h.quantile), Some(0.7));
        assert_eq!(config.idle_below_in_flight, 8);
    }

    #[test]
    fn put_hedging_is_off_for_folders_and_checked() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.put_hedge, None);
        let config = Config::resolve(parse(&["--put-hedge-quantile", "0.8"]).unwrap()).unwrap();
        assert_eq!(config.put_hedge.map(|h| h.quantile), Some(0.8));
        let err = Config::resolve(parse(&["--put-hedge-quantile", "1"]).unwrap()).unwrap_err();
        assert!(err.to_string().contains("--put-hedge-quantile"), "{err}");
    }

    #[test]
    fn compaction_target_follows_the_flush_size_unless_set() {
        let config = Config::resolve(parse(&["--flush-bytes", "1048576"]).unwrap()).unwrap();
        assert_eq!(config.compaction.target_bytes, 2 << 20);
        let (_dir, path) = file("compaction_target_bytes = 0\ngc_grace_ms = 5\n");
        let config = Config::resolve(parse(&["--config", &path]).unwrap()).unwrap();
        assert_eq!(config.compaction.target_bytes, 0);
        assert_eq!(config.compaction.gc_grace, Duration::from_millis(5));
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_default() {
        let (_dir, path) = file("listen = \"127.0.0.1:1000\"\ndefault_partitions = 3\n");
        let settings = parse(&["--config", &path, "--listen", "127.0.0.1:2000"]).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:2000");
        assert_eq!(settings.default_partitions, 3);
        assert_eq!(settings.node_id, None);
        assert_eq!(settings.config.as_deref(), Some(path.as_ref()));
    }

    #[test]
    fn a_flag_set_to_its_default_still_beats_the_file() {
        let (_dir, path) = file("seal_when_idle = false\nflush_bytes = 10\n");
        let settings = parse(&[
            "--config",
            &path,
            "--seal-when-idle",
            "true",
            "--flush-bytes",
            "4194304",
        ])
        .unwrap();
        assert!(settings.seal_when_idle);
        assert_eq!(settings.flush_bytes, 4 << 20);
    }

    #[test]
    fn listeners_repeat_as_flags_or_come_as_a_list_from_the_file() {
        let protocols = |config: &Config| -> Vec<(SecurityProtocol, String)> {
            config
                .listeners
                .iter()
                .map(|l| (l.protocol, l.advertised()))
                .collect()
        };
        let expected = vec![
            (SecurityProtocol::Plaintext, "127.0.0.1:9092".to_string()),
            (SecurityProtocol::SaslPlaintext, "broker-1:9093".to_string()),
        ];
        let flags = parse(&[
            "--listener",
            "PLAINTEXT://127.0.0.1:9092",
            "--listener",
            "SASL_PLAINTEXT://127.0.0.1:9093",
            "--advertised-listener",
            "SASL_PLAINTEXT://broker-1:9093",
        ])
        .unwrap();
        assert_eq!(protocols(&Config::resolve(flags).unwrap()), expected);
        let (_dir, path) = file(
            "listener = [\"PLAINTEXT://127.0.0.1:9092\", \"SASL_PLAINTEXT://127.0.0.1:9093\"]\n\
             advertised_listener = [\"SASL_PLAINTEXT://broker-1:9093\"]\n",
        );
        let from_file = parse(&["--config", &path]).unwrap();
        let config = Config::resolve(from_file).unwrap();
        assert_eq!(protocols(&config), expected);
        assert_eq!(
            config
                .listener(SecurityProtocol::SaslPlaintext)
                .map(|l| l.bind.to_string()),
            Some("127.0.0.1:9093".into())
        );
        assert_eq!(config.listener(SecurityProtocol::Ssl), None);
        let comma = parse(&[
            "--listener",
            "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9093",
            "--advertised-listener",
            "SASL_PLAINTEXT://broker-1:9093",
        ])
        .unwrap();
        assert_eq!(protocols(&Config::resolve(comma).unwrap()), expected);
        let twice = parse(&[
            "--listener",
            "SASL_PLAINTEXT://127.0.0.1:9092",
            "--listener",
            "SASL_PLAINTEXT://127.0.0.1:9093",
        ])
        .unwrap();
        assert!(Config::resolve(twice)
            .unwrap_err()
            .to_string()
            .contains("at most one listener per security protocol"));
    }

    #[test]
    fn a_tls_listener_takes_its_files_from_flags_or_the_file() {
        let (_dir, path) =
            file("tls_key = \"/etc/sh/key.pem\"\ntls_client_ca = \"/etc/sh/ca.pem\"\n");
        let settings = parse(&[
            "--config",
            &path,
            "--listener",
            "SSL://127.0.0.1:9093",
            "--tls-cert",
            "/etc/sh/cert.pem",
        ])
        .unwrap();
        let config = Config::resolve(settings).unwrap();
        assert_eq!(config.listeners[0].protocol, SecurityProtocol::Ssl);
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert: "/etc/sh/cert.pem".into(),
                key: "/etc/sh/key.pem".into(),
                client_ca: Some("/etc/sh/ca.pem".into()),
            })
        );

        let resolve = |args: &[&str]| Config::resolve(parse(args).unwrap());
        let error = resolve(&["--listener", "SASL_SSL://127.0.0.1:9093"]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the SASL_SSL listener needs --tls-cert"),
            "{error}"
        );
        let error = resolve(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("but no listener is SSL or SASL_SSL (the listeners are PLAINTEXT)"),
            "{error}"
        );
    }

    /// The only test that sets variables, and the only one that asserts these
    /// two settings after parsing, so tests running in parallel are unaffected.
    #[test]
    fn variables_beat_the_file_and_flags_beat_variables() {
        let (_dir, path) = file("compaction_min_age_ms = 1\ncompaction_max_age_ms = 2\n");
        std::env::set_var("STREAMHOUSE_COMPACTION_MIN_AGE_MS", "10");
        std::env::set_var("STREAMHOUSE_COMPACTION_MAX_AGE_MS", "20");
        let settings = parse(&["--config", &path, "--compaction-min-age-ms", "100"]);
        std::env::remove_var("STREAMHOUSE_COMPACTION_MIN_AGE_MS");
        std::env::remove_var("STREAMHOUSE_COMPACTION_MAX_AGE_MS");
        let settings = settings.unwrap();
        assert_eq!(settings.compaction_min_age_ms, 100);
        assert_eq!(settings.compaction_max_age_ms, 20);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let (_dir, path) = file("listne = \"x\"\n");
        let err = parse(&["--config", &path]).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `listne`"),
            "{err:#}"
        );
        let (_dir, path) = file("config = \"other.toml\"\n");
        let err = parse(&["--config", &path]).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `config`"),
            "{err:#}"
        );
    }

    #[test]
    fn file_values_of_the_wrong_type_are_rejected_with_their_line() {
        let (_dir, path) = file("\nflush_bytes = \"big\"\n");
        let err = format!("{:#}", parse(&["--config", &path]).unwrap_err());
        assert!(err.contains("is invalid"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_flags_are_refused_by_clap_with_status_2() {
        let err = Settings::command()
            .try_get_matches_from(["streamhouse", "--flush-bytes", "lots"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--flush-bytes"), "{err}");
    }

    #[test]
    fn bad_listen_address_is_explained() {
        let err = Config::resolve(Settings {
            listen: "nowhere".into(),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--listen 'nowhere'"), "{err}");
    }

    #[test]
    fn producer_id_expiration_settings_are_kafka_ints_of_at_least_one() {
        for (flag, value) in [
            ("--producer-id-expiration-ms", "0"),
            ("--producer-id-expiration-ms", "2147483648"),
            ("--producer-id-expiration-check-interval-ms", "0"),
        ] {
            let err = Config::resolve(parse(&[flag, value]).unwrap()).unwrap_err();
            assert!(err.to_string().contains(flag), "{err}");
        }
        let config = Config::resolve(
            parse(&[
                "--producer-id-expiration-ms",
                "2147483647",
                "--producer-id-expiration-check-interval-ms",
                "1",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            config.compaction.producer_id_expiration,
            Duration::from_millis(2_147_483_647)
        );
        assert_eq!(
            config.compaction.producer_expiry_interval,
            Duration::from_millis(1)
        );
    }

    #[test]
    fn retention_settings_are_the_topics_defaults_and_the_interval() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.compaction.retention, RetentionConfig::default());
        let config = Config::resolve(
            parse(&[
                "--log-retention-ms",
                "-1",
                "--log-retention-bytes",
                "1048576",
                "--retention-check-interval-ms",
                "500",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            config.compaction.retention,
            RetentionConfig {
                check_interval: Duration::from_millis(500),
                default_ms: -1,
                default_bytes: 1_048_576,
            }
        );
        for (flag, value) in [
            ("--log-retention-ms", "-2"),
            ("--log-retention-bytes", "-2"),
            ("--retention-check-interval-ms", "0"),
        ] {
            let err = Config::resolve(parse(&[flag, value]).unwrap()).unwrap_err();
            assert!(err.to_string().contains(flag), "{err}");
        }
    }

    #[test]
    fn wildcard_listen_needs_advertise() {
        let err = Config::resolve(Settings {
            listen: "0.0.0.0:9092".into(),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--advertise"), "{err}");
    }

    #[test]
    fn the_log_format_is_text_unless_json_is_asked_for() {
        assert_eq!(Settings::default().log_format, LogFormat::Text);
        let json = parse(&["--log-format", "json"]).unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        assert!(parse(&["--log-format", "xml"]).is_err());
        let file: Settings = toml::from_str("log_format = \"json\"").unwrap();
        assert_eq!(file.log_format, LogFormat::Json);
    }

    /// The rows of the README's configuration table, from the declarations:
    /// flag, variable, default (clap's, or the help's `[default: ...]`) and the
    /// full help text.
    fn readme_table() -> String {
        let mut rows = String::from("| flag | variable | default | meaning |\n|---|---|---|---|\n");
        for arg in Settings::command().get_arguments() {
            let flag = arg.get_long().expect("every setting is a long flag");
            let variable = arg.get_env().expect("every setting has a variable");
            let help = arg.get_long_help().or(arg.get_help()).unwrap().to_string();
            let help = help.replace("\n\n", ". ").replace('\n', " ");
            let (meaning, default) = match arg.get_default_values() {
                [value] => (help, format!("`{}`", value.to_string_lossy())),
                _ => {
                    let start = help.find(" [default: ").unwrap_or_else(|| {
                        panic!("--{flag}: no default, so its help must say `[default: ...]`")
                    });
                    let end = start + help[start..].find(']').unwrap();
                    let default = help[start + " [default: ".len()..end].to_string();
                    (format!("{}{}", &help[..start], &help[end + 1..]), default)
                }
            };
            assert!(!meaning.contains('|'), "--{flag}: '|' would split the row");
            rows += &format!(
                "| `--{flag}` | `{}` | {default} | {meaning} |\n",
                variable.to_string_lossy()
            );
        }
        rows
    }

    #[test]
    fn readme_configuration_table_matches_the_declarations() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let start = readme
            .find("| flag | variable | default | meaning |")
            .expect("README has the configuration table");
        let end = readme[start..]
            .find("\n\n")
            .map_or(readme.len(), |n| start + n + 1);
        let expected = readme_table();
        if readme[start..end] == expected {
            return;
        }
        if std::env::var_os("STREAMHOUSE_UPDATE_README").is_some() {
            std::fs::write(
                path,
                format!("{}{expected}{}", &readme[..start], &readme[end..]),
            )
            .unwrap();
            return;
        }
        panic!(
            "README.md's configuration table differs from the settings declared in \
             src/config/settings.rs. Regenerate it with\n  STREAMHOUSE_UPDATE_README=1 cargo test \
             -p streamhouse --lib readme_configuration_table\nExpected:\n{expected}"
        );
    }
}
