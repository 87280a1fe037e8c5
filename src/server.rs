//! The listener: accepts connections up to the configured limit, one task per
//! connection, and shuts down gracefully: stop accepting, let every connection
//! finish the requests it has read, flush the write path so every waiting
//! producer gets its answer, then return.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::connection;
use crate::Broker;

/// How long shutdown waits for connections to deliver their last responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub struct Server {
    broker: Arc<Broker>,
    listener: TcpListener,
}

impl Server {
    /// Binds the listen address.
    pub async fn bind(broker: Arc<Broker>) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(broker.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", broker.config.listen))?;
        Ok(Server { broker, listener })
    }

    /// Serves on a listener the caller bound (tests bind port 0 first to learn
    /// the port they must advertise).
    pub fn with_listener(broker: Arc<Broker>, listener: TcpListener) -> Server {
        Server { broker, listener }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(self.broker.config.max_connections));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
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
                    connections.spawn(async move {
                        connection::serve(broker, socket, peer, stop).await;
                        drop(permit);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!("shutting down: finishing in-flight requests");
        drop(self.listener);
        let _ = stop_tx.send(true);
        // Producers waiting on acks are answered once their objects commit.
        self.broker.writer.shutdown().await;
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
