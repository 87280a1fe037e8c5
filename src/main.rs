//! The `streamhouse` command: parse the configuration, open the catalog and the
//! object store, serve Kafka clients until SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::sync::Arc;

use streamhouse::config::settings::LogFormat;
use streamhouse::{Broker, Config, Server, Settings};
use streamhouse_metadata::CatalogError;
use tracing_subscriber::EnvFilter;

/// Log lines to stderr, as `--log-format` asks.
fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("STREAMHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only for a person at a terminal, not in log files.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> std::process::ExitCode {
    // Settings first: they say how to log (their errors go to stderr as is).
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("streamhouse: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    let mut config = match Config::resolve(settings) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("streamhouse: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    config.max_connections = match streamhouse::server::fit_descriptor_limit(config.max_connections)
    {
        Ok(max_connections) => max_connections,
        Err(e) => {
            eprintln!("streamhouse: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("streamhouse: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Another agent holds what this one was configured to be: as wrong a
        // configuration as a bad flag.
        Err(e) if e.chain().any(is_identity_conflict) => {
            eprintln!("streamhouse: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("streamhouse: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // The ports first: an agent that cannot listen must not register, or it
    // would replace the row of the agent that holds the port.
    let listeners = Server::bind(&config).await?;
    let broker = Broker::open(config).await?;
    let server = Server::with_listeners(broker.clone(), listeners);
    if let Some(addr) = broker.config.metrics_listen {
        let listener = streamhouse::metrics_http::bind(addr).await?;
        let endpoints = streamhouse::metrics_http::Endpoints {
            registry: Arc::clone(&broker.registry),
            readiness: broker.clone(),
            before_scrape: Some(broker.clone()),
        };
        tokio::spawn(streamhouse::metrics_http::serve(listener, endpoints));
    }
    #[cfg(unix)]
    tokio::spawn(reload_tls_on_hangup(broker.clone()));
    let listeners: Vec<String> = server
        .local_addrs()?
        .into_iter()
        .map(|(protocol, addr)| format!("{}://{addr}", protocol.name()))
        .collect();
    let advertised: Vec<String> = broker
        .config
        .listeners
        .iter()
        .map(|l| format!("{}://{}", l.protocol.name(), l.advertised()))
        .collect();
    tracing::info!(
        listeners = %listeners.join(","),
        advertised_listeners = %advertised.join(","),
        client_certificates = broker.config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        catalog = %streamhouse_metadata::redact_url(&broker.config.catalog_url),
        store = %broker.config.store_url,
        node_id = broker.node_id(),
        zone = broker.config.zone.as_deref().unwrap_or(""),
        metrics = %broker.config.metrics_listen.map(|a| a.to_string()).unwrap_or_default(),
        flush_bytes = broker.config.flush_bytes,
        flush_interval_ms = broker.config.flush_interval.as_millis() as u64,
        seal_when_idle = broker.config.seal_when_idle,
        idle_below_in_flight = broker.config.idle_below_in_flight,
        put_hedge_quantile = broker.config.put_hedge.as_ref().map_or(0.0, |h| h.quantile),
        read_cache_bytes = broker.config.read_cache_bytes,
        fetch_memory_bytes = broker.config.fetch_memory_bytes,
        max_connections = broker.config.max_connections,
        "StreamHouse is serving Kafka clients"
    );
    server.run(shutdown_signal()).await
}

fn is_identity_conflict(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<CatalogError>(),
        Some(CatalogError::NodeIdInUse { .. } | CatalogError::AddressHasOtherNodeId { .. })
    )
}

/// Re-reads the TLS certificate, key and client CA on each SIGHUP, as
/// certificates are renewed in place: new connections get the new ones, open
/// ones keep theirs. A reload that fails keeps what is in use. Without TLS
/// the signal is only logged: `systemctl reload` must not stop an agent.
#[cfg(unix)]
async fn reload_tls_on_hangup(broker: Arc<Broker>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: TLS files will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let Some(tls) = broker.tls.as_ref() else {
            tracing::info!("SIGHUP: no TLS files to reload");
            continue;
        };
        // A few small files: read in place rather than on a blocking thread.
        match tls.reload() {
            Ok(()) => {
                tracing::info!(cert = %tls.files().cert.display(), "TLS certificate and key reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; the certificate in use stays")
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
