//! The listeners: accepts connections on each of them up to the configured
//! limits (in all, and per IP address, across listeners), one task per
//! connection that knows the listener it came in on, and shuts down
//! gracefully: stop accepting, let every connection finish the requests it
//! has read, flush the write path so every waiting producer gets its answer,
//! then return.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::listeners::SecurityProtocol;
use crate::connection;
use crate::{Broker, Config};

/// How long shutdown waits for connections to deliver their last responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A bound socket and the security protocol its connections speak.
pub type Bound = (SecurityProtocol, TcpListener);

pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<Bound>,
}

impl Server {
    /// Binds every listener of `config`, before the agent registers: one that
    /// cannot listen must not take the place of the agent holding its port.
    pub async fn bind(config: &Config) -> anyhow::Result<Vec<Bound>> {
        let mut bound = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            let socket = TcpListener::bind(listener.bind).await.with_context(|| {
                format!(
                    "cannot listen on {} ({})",
                    listener.bind,
                    listener.protocol.name()
                )
            })?;
            bound.push((listener.protocol, socket));
        }
        Ok(bound)
    }

    /// Serves on listeners the caller bound (tests bind port 0 first to learn
    /// the ports they must advertise).
    pub fn with_listeners(broker: Arc<Broker>, listeners: Vec<Bound>) -> Server {
        Server { broker, listeners }
    }

    /// Serves on one listener the caller bound, speaking the protocol of the
    /// agent's first listener.
    pub fn with_listener(broker: Arc<Broker>, listener: TcpListener) -> Server {
        let protocol = broker.config.listeners[0].protocol;
        Server::with_listeners(broker, vec![(protocol, listener)])
    }

    /// The address each listener is bound to.
    pub fn local_addrs(&self) -> std::io::Result<Vec<(SecurityProtocol, SocketAddr)>> {
        self.listeners
            .iter()
            .map(|(protocol, l)| Ok((*protocol, l.local_addr()?)))
            .collect()
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(self.broker.config.max_connections));
        let addresses = Arc::new(PerAddress::new(self.broker.config.max_connections_per_ip));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        self.broker.accepting.set(true);
        // Where the next accept starts looking, so that a flood on one
        // listener does not starve the others.
        let mut next = 0;
        loop {
            let accept = std::future::poll_fn(|cx| {
                let count = self.listeners.len();
                for i in 0..count {
                    let index = (next + i) % count;
                    let (protocol, listener) = &self.listeners[index];
                    if let Poll::Ready(accepted) = listener.poll_accept(cx) {
                        next = (index + 1) % count;
                        return Poll::Ready((*protocol, accepted));
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                _ = &mut shutdown => break,
                (protocol, accepted) = accept => {
                    let (socket, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors and the like: back off rather
                            // than spin.
                            static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                            if let Some(suppressed) = WARNINGS.allow() {
                                tracing::warn!(error = %e, suppressed, "accept failed");
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    // Kafka closes a connection over its address's quota at
                    // once; logged at debug, as a flood of them would flood
                    // the log too.
                    let Some(slot) = addresses.take(peer.ip()) else {
                        tracing::debug!(%peer, limit = self.broker.config.max_connections_per_ip, "connection limit of this address reached; closing new connection");
                        drop(socket);
                        continue;
                    };
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                        if let Some(suppressed) = WARNINGS.allow() {
                            tracing::warn!(%peer, limit = self.broker.config.max_connections, suppressed, "connection limit reached; closing new connection");
                        }
                        drop(socket);
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    let broker = Arc::clone(&self.broker);
                    let stop = stop_rx.clone();
                    let counted = broker.request_metrics.connection_opened();
                    connections.spawn(async move {
                        connection::serve(broker, socket, peer, protocol, stop).await;
                        drop(counted);
                        drop(permit);
                        drop(slot);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!("shutting down: finishing in-flight requests");
        self.broker.accepting.set(false);
        drop(self.listeners);
        let _ = stop_tx.send(true);
        // Others take over this agent's partitions and groups now rather than
        // after its lease; what is still in flight here finishes meanwhile.
        // Groups are stored and their parked requests answered first; leaving
        // then releases their leases in the same transaction as our row.
        self.broker.coordinator.shutdown().await;
        self.broker.membership.leave().await;
        // Producers waiting on acks are answered once their objects commit.
        self.broker.log.shutdown().await;
        self.broker.compactor.shutdown().await;
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some connections did not finish within the grace period");
            connections.abort_all();
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Connections open per IP address, for `--max-connections-per-ip`.
struct PerAddress {
    limit: usize,
    /// A std mutex: held for a map update, never across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn new(limit: usize) -> PerAddress {
        PerAddress {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, released when dropped; `None`
    /// when `ip` has as many as the limit allows.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            addresses: Arc::clone(self),
            ip,
        })
    }
}

struct AddressSlot {
    addresses: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .addresses
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            // Forget addresses with no connection, so the map stays as small
            // as the connections open.
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Descriptors kept for everything but client connections: the listeners, the
/// catalog's connections, the files the folder store has open at once, the
/// metrics endpoint and the logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// What to do about the descriptor limit (`RLIMIT_NOFILE`) for
/// `--max-connections`.
#[derive(Debug, PartialEq, Eq)]
enum DescriptorPlan {
    /// The soft limit leaves room for every connection and the reserve.
    Fits,
    /// Raise the soft limit to this; then it fits.
    Raise(u64),
    /// Even the hard limit is short: raise the soft limit to it and serve
    /// this many connections.
    Lower { soft: u64, max_connections: usize },
    /// Not even the reserve fits.
    TooFew,
}

fn descriptor_plan(max_connections: usize, soft: u64, hard: u64) -> DescriptorPlan {
    let needed = (max_connections as u64).saturating_add(RESERVED_DESCRIPTORS);
    if needed <= soft {
        return DescriptorPlan::Fits;
    }
    if needed <= hard {
        // To the hard limit, as the JVM (MaxFDLimit) and Go's runtime do, so
        // the store has room to spare too; an unlimited hard limit is not a
        // valid soft one for descriptors, so then just what is needed.
        let raise = if hard == u64::MAX { needed } else { hard };
        return DescriptorPlan::Raise(raise);
    }
    match usize::try_from(hard.saturating_sub(RESERVED_DESCRIPTORS)) {
        Ok(max_connections) if max_connections > 0 => DescriptorPlan::Lower {
            soft: hard,
            max_connections,
        },
        _ => DescriptorPlan::TooFew,
    }
}

/// The connections this process can serve at once: `max_connections`, after
/// raising the soft descriptor limit if that is what it takes, or fewer, with
/// a warning, when even the hard limit is too low. An operator who left
/// `--max-connections` at its default on a host with a low limit expects a
/// broker that starts and serves what the host allows, not one that refuses
/// to start, and a connection over the limit is then closed at accept rather
/// than starving the object store of descriptors. Err when not even the
/// descriptors the broker needs besides connections are available.
pub fn fit_descriptor_limit(max_connections: usize) -> anyhow::Result<usize> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the descriptor limit; not checking --max-connections against it");
                return Ok(max_connections);
            }
        };
        let raise = |to: u64| setrlimit(Resource::RLIMIT_NOFILE, to, hard);
        match descriptor_plan(max_connections, soft, hard) {
            DescriptorPlan::Fits => Ok(max_connections),
            DescriptorPlan::Raise(to) => match raise(to) {
                Ok(()) => {
                    tracing::info!(
                        from = soft,
                        to,
                        "raised the soft descriptor limit for --max-connections"
                    );
                    Ok(max_connections)
                }
                Err(e) => lower(max_connections, soft, &e.to_string()),
            },
            DescriptorPlan::Lower {
                soft: to,
                max_connections: fewer,
            } => {
                let limit = match raise(to) {
                    Ok(()) => to,
                    Err(_) => soft,
                };
                lower(max_connections, limit, &format!("the hard limit is {hard}"))
                    .map(|n| n.min(fewer))
            }
            DescriptorPlan::TooFew => too_few(hard),
        }
    }
    #[cfg(not(unix))]
    Ok(max_connections)
}

/// `max_connections` lowered to what a descriptor limit of `limit` leaves.
#[cfg(unix)]
fn lower(max_connections: usize, limit: u64, why: &str) -> anyhow::Result<usize> {
    let Some(fewer) = limit
        .checked_sub(RESERVED_DESCRIPTORS)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
    else {
        return too_few(limit);
    };
    let fewer = fewer.min(max_connections);
    tracing::warn!(
        "--max-connections {max_connections} lowered to {fewer}: the descriptor limit is {limit} \
         ({why}) and {RESERVED_DESCRIPTORS} are kept for the catalog and the store; raise it \
         (ulimit -n, LimitNOFILE=) to serve more"
    );
    Ok(fewer)
}

#[cfg(unix)]
fn too_few(limit: u64) -> anyhow::Result<usize> {
    anyhow::bail!(
        "the descriptor limit of {limit} leaves no room for connections: the broker keeps \
         {RESERVED_DESCRIPTORS} for the catalog and the store; raise it (ulimit -n, LimitNOFILE=)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_within_the_soft_limit_fit() {
        assert_eq!(descriptor_plan(1000, 1256, 4096), DescriptorPlan::Fits);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one_when_that_fits() {
        assert_eq!(
            descriptor_plan(10_000, 1024, 524_288),
            DescriptorPlan::Raise(524_288)
        );
        assert_eq!(
            descriptor_plan(10_000, 1024, u64::MAX),
            DescriptorPlan::Raise(10_256)
        );
    }

    #[test]
    fn connections_are_lowered_to_what_the_hard_limit_leaves() {
        assert_eq!(
            descriptor_plan(10_000, 1024, 4096),
            DescriptorPlan::Lower {
                soft: 4096,
                max_connections: 3840
            }
        );
        assert_eq!(descriptor_plan(10, 100, 256), DescriptorPlan::TooFew);
    }

    #[test]
    fn a_limit_this_process_has_is_kept() {
        assert_eq!(fit_descriptor_limit(10).unwrap(), 10);
    }
}
