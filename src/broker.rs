//! The agent's shared state, built once at start and shared by every connection.

use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use streamhouse_clock::SharedClock;
use streamhouse_metadata::agents::Endpoint;
use streamhouse_metadata::Catalog;
use streamhouse_storage::instrumented::InstrumentedStore;
use streamhouse_storage::{
    CompactionWorker, Compactor, Log, LogConfig, Metrics, ReadCacheConfig, ShareOfWork,
    WriterConfig,
};

use crate::acl::Authorizer;
use crate::cluster::{AgentIdentity, Membership};
use crate::config::listeners::{ListenerConfig, SecurityProtocol};
use crate::coordinator::{Coordinator, CoordinatorNode, Placement};
use crate::fetch_memory::FetchMemory;
use crate::group_lag::GroupLag;
use crate::quotas::ClientQuotas;
use crate::request_metrics::RequestMetrics;
use crate::Config;

pub struct Broker {
    pub config: Config,
    pub catalog: Arc<dyn Catalog>,
    /// The partitions' logs: appends, reads, heads, the index.
    pub log: Log,
    /// Compacts small objects and deletes dead ones in the background.
    pub compactor: Compactor,
    pub cluster_id: String,
    pub coordinator: Arc<Coordinator>,
    /// This agent's place in the cluster: its node id, the live agents, and
    /// where partitions and groups belong among them.
    pub membership: Arc<Membership>,
    /// Request counts and latencies of the store and the catalog commits.
    pub metrics: Arc<Metrics>,
    /// Requests, errors and times per API; traffic per topic; connections.
    pub request_metrics: Arc<RequestMetrics>,
    /// Client quotas: those configured, and the rates they limit.
    pub quotas: Arc<ClientQuotas>,
    /// The ACLs this agent enforces (`--acls`), and who may bypass them.
    pub authorizer: Arc<Authorizer>,
    /// Consumer-group lag, refreshed from the catalog at each scrape.
    pub group_lag: GroupLag,
    /// Bytes of fetch responses in flight, across connections
    /// (`--fetch-memory-bytes`).
    pub fetch_memory: Arc<FetchMemory>,
    /// What every time-dependent part of the agent reads the time from.
    pub clock: SharedClock,
    /// Every metric family of the agent, as the metrics endpoint serves them.
    pub registry: Arc<Registry>,
    /// Whether the Kafka listeners are accepting connections (for `/readyz`).
    pub accepting: crate::health::Accepting,
    /// The TLS of the SSL and SASL_SSL listeners.
    pub tls: Option<crate::tls::Tls>,
    /// Share groups' fetch sessions with this agent (KIP-932).
    pub share_sessions: crate::share::sessions::ShareSessions,
    /// Groups' configs as the share path reads them.
    pub group_configs: crate::config::group::GroupConfigCache,
}

impl Broker {
    /// Opens the catalog and the object store the config names and starts the
    /// write path.
    pub async fn open(config: Config) -> anyhow::Result<Arc<Broker>> {
        Self::open_with_clock(config, streamhouse_clock::system()).await
    }

    /// [`Broker::open`] reading time from `clock` (tests drive a manual one).
    pub async fn open_with_clock(
        config: Config,
        clock: SharedClock,
    ) -> anyhow::Result<Arc<Broker>> {
        // Before the catalog: an agent whose certificate cannot be used must
        // not register.
        let tls = match &config.tls {
            Some(files) => Some(crate::tls::Tls::load(files.clone())?),
            None => None,
        };
        let catalog = streamhouse_metadata::open_with_timeout(
            &config.catalog_url,
            Arc::clone(&clock),
            config.catalog_timeout,
        )
        .await
        .with_context(|| {
            format!(
                "cannot open the catalog at {}",
                streamhouse_metadata::redact_url(&config.catalog_url)
            )
        })?;
        if let Some(path) = &config.sasl_users_file {
            let users = crate::sasl::users::bootstrap(catalog.as_ref(), path).await?;
            tracing::info!(users, file = %path.display(), "SASL users stored");
        }
        let store = streamhouse_storage::open_store(&config.store_url)
            .with_context(|| format!("cannot open the object store at {}", config.store_url))?;
        let metrics = Arc::new(Metrics::default());
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let fetch_memory = Arc::new(FetchMemory::new(config.fetch_memory_bytes));
        fetch_memory.register(&mut registry);
        let request_metrics = Arc::new(RequestMetrics::default());
        request_metrics.register(&mut registry);
        let quotas = Arc::new(ClientQuotas::default());
        quotas.refresh(catalog.as_ref()).await;
        ClientQuotas::refresh_in_background(&quotas, Arc::clone(&catalog));
        let authorizer = Arc::new(Authorizer::new(config.acls.clone()));
        if authorizer.enabled() {
            // Serving before the ACLs are known would refuse every client.
            authorizer.refresh(catalog.as_ref()).await?;
        }
        Authorizer::refresh_in_background(&authorizer, Arc::clone(&catalog));
        let group_lag = GroupLag::default();
        group_lag.register(&mut registry);
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(InstrumentedStore::new(store, Arc::clone(&metrics)));
        let cluster_id = catalog
            .cluster_id()
            .await
            .context("cannot read the cluster id from the catalog")?;
        crate::internal_topics::ensure(catalog.as_ref())
            .await
            .with_context(|| {
                format!(
                    "cannot create the internal topic {}",
                    crate::internal_topics::CONSUMER_OFFSETS
                )
            })?;
        let first = &config.listeners[0];
        let membership = Membership::join(
            Arc::clone(&catalog),
            AgentIdentity {
                node_id: config.node_id,
                host: first.advertised_host.clone(),
                port: i32::from(first.advertised_port),
                endpoints: endpoints(&config),
                zone: config.zone.clone(),
                lease: config.agent_lease,
            },
        )
        .await
        .context("cannot join the cluster")?;
        let log = Log::open(
            Arc::clone(&store),
            Arc::clone(&catalog),
            LogConfig {
                writer: WriterConfig {
                    flush_bytes: config.flush_bytes,
                    flush_interval: config.flush_interval,
                    seal_when_idle: config.seal_when_idle,
                    idle_below_in_flight: config.idle_below_in_flight,
                    put_hedge: config.put_hedge.clone(),
                    max_buffered_bytes: WriterConfig::BUFFERED_FLUSH_SIZES * config.flush_bytes,
                    ..WriterConfig::default()
                },
                read_cache: ReadCacheConfig {
                    capacity_bytes: config.read_cache_bytes,
                },
            },
            Arc::clone(&metrics),
        );
        log.follow(membership.node_id(), membership.counters());
        let compactor = Compactor::start(
            CompactionWorker::new(
                Arc::clone(&store),
                Arc::clone(&catalog),
                config.compaction.clone(),
                Arc::clone(&metrics),
            )
            .with_clock(Arc::clone(&clock))
            .with_share(Arc::clone(&membership) as Arc<dyn ShareOfWork>)
            .with_heads(log.heads())
            .with_cache(log.reader()),
        );
        let coordinator = Coordinator::start(
            catalog.clone(),
            Arc::clone(&membership) as Arc<dyn Placement>,
            CoordinatorNode {
                node_id: membership.node_id(),
            },
            config.group_rules,
            Arc::clone(&clock),
        );
        let interval = config.transaction_abort_check_interval;
        let broker = Arc::new(Broker {
            config,
            catalog,
            log,
            compactor,
            cluster_id,
            coordinator,
            membership,
            metrics,
            request_metrics,
            quotas,
            authorizer,
            group_lag,
            fetch_memory,
            clock,
            registry: Arc::new(registry),
            accepting: Default::default(),
            tls,
            share_sessions: Default::default(),
            group_configs: Default::default(),
        });
        crate::transactions::sweep_in_background(&broker, interval);
        Ok(broker)
    }

    /// This agent's broker id, as registered in the catalog.
    pub fn node_id(&self) -> i32 {
        self.membership.node_id()
    }

    /// Where clients of `listener` reach this agent; None when it has no
    /// such listener.
    pub fn endpoint(&self, listener: SecurityProtocol) -> Option<Endpoint> {
        self.config.listener(listener).map(advertised)
    }
}

/// The endpoints this agent registers: each listener's advertised address.
fn endpoints(config: &Config) -> Vec<Endpoint> {
    config.listeners.iter().map(advertised).collect()
}

/// A listener's advertised address, named by its protocol.
fn advertised(listener: &ListenerConfig) -> Endpoint {
    Endpoint {
        listener: listener.protocol.name().to_owned(),
        host: listener.advertised_host.clone(),
        port: i32::from(listener.advertised_port),
    }
}
