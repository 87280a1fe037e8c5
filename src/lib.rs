//! StreamHouse: a Kafka wire-protocol compatible broker whose records live in
//! object storage and whose catalog lives in SQL.
//!
//! - [`config`]: the agent's settings (flags, environment, config file), and
//!   topic and broker configs as Kafka defines them.
//! - [`server`]: the listener, the connection limit and graceful shutdown.
//! - [`connection`]: one client connection: frames in, responses out, in order.
//! - [`tls`]: SSL and SASL_SSL listeners: certificates, handshakes, principals.
//! - [`transport`]: a connection's stream, TCP or TLS, split into halves.
//! - [`fetch_memory`]: the memory budget of fetch responses across connections.
//! - [`broker`]: the agent's shared state.
//! - [`cluster`]: membership of the cluster of agents, and placement on it.
//! - [`coordinator`]: consumer groups: membership, rebalances, committed offsets.
//! - [`handlers`]: one module per Kafka API family.
//! - [`internal_topics`]: `__consumer_offsets`, ensured at start.
//! - [`errors`]: the one place internal errors become Kafka error codes.

pub mod acl;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod errors;
pub mod fetch_memory;
pub mod group_lag;
pub mod handlers;
pub mod health;
pub mod internal_topics;
pub mod metrics_http;
pub mod quotas;
pub mod request_metrics;
pub mod sasl;
pub mod server;
pub mod share;
pub mod stable_read;
pub mod tls;
pub mod transactions;
pub mod transport;

/// mimalloc reserves huge allocations lazily (MAP_NORESERVE), so a request that
/// declares an array of two billion elements in a few bytes — which the protocol
/// decoder pre-sizes before it finds the bytes missing — costs address space,
/// not memory, and is refused as malformed instead of aborting the process.
/// `tests/malformed.rs` sends exactly such a request.
///
/// It is built with `no_thp`: otherwise mimalloc asks for transparent huge
/// pages on its arenas (`madvise(MADV_HUGEPAGE)`), each partly used 2 MiB page
/// stays resident whole, and freeing 64 KiB pieces inside it returns nothing.
/// Measured in the end-to-end benchmark, the embedded agent's peak went from
/// 412-480 MiB to 320-409 MiB with a 256 MiB read cache. On a machine whose
/// THP setting is `always` rather than `madvise`, `MIMALLOC_ALLOW_THP=0` in the
/// environment turns them off for the process too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use broker::Broker;
pub use config::{Config, Settings};
pub use server::Server;
