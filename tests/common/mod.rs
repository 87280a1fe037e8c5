//! The integration-test harness, shared by every wire test file: a broker
//! started in-process on a free port ([`TestBroker`]) on either backend pair,
//! [`on_both_backends!`] to run a case on both, and the client and request
//! helpers of the submodules.
//!
//! - `client`: the wire client ([`TestClient`]).
//! - `wire`: what most files send: topics created, record batches built,
//!   produced, fetched and listed.
//! - `admin`: the config APIs (DescribeConfigs, AlterConfigs,
//!   IncrementalAlterConfigs).
//! - `groups`: the consumer-group APIs.
//! - `certs`: a CA and certificates for the TLS tests, made with openssl.
//! - `sasl`: SaslHandshake, SaslAuthenticate, and a check that a connection
//!   is served.

#![allow(dead_code)]

pub mod admin;
pub mod certs;
mod client;
pub mod groups;
pub mod sasl;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;

use streamhouse::{Broker, Config, Server, Settings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::{Stream, TestClient};
pub use wire::*;

/// Runs each `async fn(Backend)` case as two tests, `embedded::CASE` (SQLite
/// and a folder) and `postgres_s3::CASE` (PostgreSQL and S3). Not every test
/// file has such cases, hence the allows.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(crate::common::Backend::Embedded).await })*
        }
        mod postgres_s3 {
            $(#[tokio::test] async fn $case() { super::$case(crate::common::Backend::PostgresS3).await })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// Which catalog and store a test broker uses.
#[derive(Clone, Debug)]
pub enum Backend {
    /// SQLite in the temp dir, objects in a folder of it.
    Embedded,
    /// PostgreSQL and S3 from the environment the README's test command sets up.
    PostgresS3,
}

pub struct TestBroker {
    /// The first listener's address.
    pub addr: std::net::SocketAddr,
    /// Each listener's protocol and address, when the agent was started with
    /// several ([`TestBroker::start_with_listeners`]).
    pub listeners: Vec<(String, std::net::SocketAddr)>,
    pub dir: Arc<tempfile::TempDir>,
    pub catalog_url: String,
    pub store_url: String,
    /// The agent's shared state while it runs (weak: a stopped agent's
    /// catalog and store are let go as in a real restart).
    broker: std::sync::Weak<Broker>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with ./scripts/test.sh, which starts PostgreSQL and an S3 server and sets it")
    })
}

/// A fresh PostgreSQL database for one test.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url = required_env("STREAMHOUSE_TEST_POSTGRES_URL");
    let name = format!("sh_it_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    format!("{base}/{name}")
}

/// A temp dir, and a catalog and a store no other test uses.
async fn fresh_backends(backend: Backend) -> (Arc<tempfile::TempDir>, String, String) {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let (catalog_url, store_url) = match backend {
        Backend::Embedded => (
            format!("sqlite://{}", dir.path().join("catalog.db").display()),
            format!("file://{}", dir.path().join("objects").display()),
        ),
        Backend::PostgresS3 => {
            let s3 = required_env("STREAMHOUSE_TEST_S3_URL");
            let sep = if s3.contains('?') { '&' } else { '?' };
            let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
            (
                fresh_postgres_database().await,
                format!("{s3}{sep}prefix={prefix}"),
            )
        }
    };
    (dir, catalog_url, store_url)
}

impl TestBroker {
    pub async fn start(backend: Backend) -> TestBroker {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestBroker {
        let (dir, catalog_url, store_url) = fresh_backends(backend).await;
        Self::start_on(dir, catalog_url, store_url, None, tweak).await
    }

    /// A broker with one listener per protocol of `protocols` (PLAINTEXT,
    /// SASL_PLAINTEXT, ...), each on a free port, advertised as bound unless
    /// `tweak` says otherwise.
    pub async fn start_with_listeners(
        backend: Backend,
        protocols: &[&str],
        tweak: impl FnOnce(&mut Settings),
    ) -> TestBroker {
        let (dir, catalog_url, store_url) = fresh_backends(backend).await;
        Self::try_start_listening(dir, catalog_url, store_url, None, protocols, tweak)
            .await
            .expect("open broker")
    }

    /// The address of this agent's `protocol` listener.
    pub fn listener(&self, protocol: &str) -> std::net::SocketAddr {
        self.listeners
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("the agent has no {protocol} listener"))
    }

    /// [`TestBroker::another_agent`] with one listener per protocol of
    /// `protocols`.
    pub async fn another_agent_with_listeners(
        &self,
        protocols: &[&str],
        tweak: impl FnOnce(&mut Settings),
    ) -> TestBroker {
        Self::try_start_listening(
            Arc::clone(&self.dir),
            self.catalog_url.clone(),
            self.store_url.clone(),
            None,
            protocols,
            tweak,
        )
        .await
        .expect("open broker")
    }

    /// `count` agents on one fresh catalog and store, all started at once (as
    /// a cluster's agents come up together after a deploy): their
    /// `Broker::open`s run concurrently.
    pub async fn start_together(backend: Backend, count: usize) -> anyhow::Result<Vec<TestBroker>> {
        let (dir, catalog_url, store_url) = fresh_backends(backend).await;
        let starts = (0..count).map(|_| {
            Self::try_start_on(
                Arc::clone(&dir),
                catalog_url.clone(),
                store_url.clone(),
                None,
                |_| {},
            )
        });
        futures::future::join_all(starts)
            .await
            .into_iter()
            .collect()
    }

    /// Starts a broker on the same catalog and store as `self` (which must be
    /// stopped), on the same port.
    pub async fn restart(mut self) -> TestBroker {
        self.stop().await;
        let dir = Arc::clone(&self.dir);
        Self::start_on(
            dir,
            self.catalog_url.clone(),
            self.store_url.clone(),
            Some(self.addr.port()),
            |_| {},
        )
        .await
    }

    /// [`TestBroker::another_agent`], returning why the agent did not start.
    pub async fn try_another_agent(
        &self,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<TestBroker> {
        Self::try_start_on(
            Arc::clone(&self.dir),
            self.catalog_url.clone(),
            self.store_url.clone(),
            None,
            tweak,
        )
        .await
    }

    async fn start_on(
        dir: Arc<tempfile::TempDir>,
        catalog_url: String,
        store_url: String,
        port: Option<u16>,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestBroker {
        Self::try_start_on(dir, catalog_url, store_url, port, tweak)
            .await
            .expect("open broker")
    }

    async fn try_start_on(
        dir: Arc<tempfile::TempDir>,
        catalog_url: String,
        store_url: String,
        port: Option<u16>,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<TestBroker> {
        Self::try_start_listening(dir, catalog_url, store_url, port, &[], tweak).await
    }

    /// Starts an agent on `--listen` when `protocols` is empty, else with one
    /// `--listener` per protocol.
    async fn try_start_listening(
        dir: Arc<tempfile::TempDir>,
        catalog_url: String,
        store_url: String,
        port: Option<u16>,
        protocols: &[&str],
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<TestBroker> {
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .expect("bind test port");
        let addr = listener.local_addr().unwrap();
        let mut sockets = vec![listener];
        for _ in 1..protocols.len() {
            sockets.push(
                TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .expect("bind test port"),
            );
        }
        let listeners: Vec<(String, std::net::SocketAddr)> = protocols
            .iter()
            .zip(&sockets)
            .map(|(p, s)| (p.to_string(), s.local_addr().unwrap()))
            .collect();
        let mut settings = Settings {
            listen: if protocols.is_empty() {
                addr.to_string()
            } else {
                Settings::default().listen
            },
            listener: listeners
                .iter()
                .map(|(p, a)| format!("{p}://{a}"))
                .collect(),
            data_dir: PathBuf::from(dir.path()),
            catalog: Some(catalog_url.clone()),
            store: Some(store_url.clone()),
            flush_interval_ms: Some(5),
            // Many tests produce records stamped 1 ms after the epoch, which
            // the default retention (7 days) would delete at its first check:
            // none comes during a test unless it asks (tests of retention do).
            retention_check_interval_ms: 3_600_000,
            ..Settings::default()
        };
        tweak(&mut settings);
        let config = Config::resolve(settings).expect("valid test config");
        let bound = config
            .listeners
            .iter()
            .map(|l| l.protocol)
            .zip(sockets)
            .collect();
        let broker = Broker::open(config).await?;
        let server = Server::with_listeners(Arc::clone(&broker), bound);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Ok(TestBroker {
            addr,
            listeners,
            dir,
            catalog_url,
            store_url,
            broker: Arc::downgrade(&broker),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Starts another agent on the catalog and store of `self`, on a port of
    /// its own: a cluster of agents in one process.
    pub async fn another_agent(&self, tweak: impl FnOnce(&mut Settings)) -> TestBroker {
        self.try_another_agent(tweak).await.expect("open broker")
    }

    /// Stops the agent the way a SIGKILL would as far as others can tell: it
    /// stops serving and renewing its lease, and never leaves the cluster.
    pub fn kill(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// The running agent's shared state, for what the wire does not show
    /// (its metrics).
    #[allow(dead_code)]
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.upgrade().expect("the agent is running")
    }

    pub async fn client(&self) -> TestClient {
        TestClient::connect(self.addr).await
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}
