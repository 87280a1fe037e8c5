//! StreamHouse: a Kafka wire-protocol compatible broker whose records live in
//! object storage and whose catalog lives in SQL.
//!
//! - [`config`]: flags, environment and config file.
//! - [`server`]: the listener, the connection limit and graceful shutdown.
//! - [`connection`]: one client connection: frames in, responses out, in order.
//! - [`broker`]: the agent's shared state.
//! - [`coordinator`]: consumer groups: membership, rebalances, committed offsets.
//! - [`handlers`]: one module per Kafka API family.
//! - [`errors`]: the one place internal errors become Kafka error codes.

pub mod broker;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod errors;
pub mod handlers;
pub mod metrics_http;
pub mod server;
pub mod topic_config;

/// mimalloc reserves huge allocations lazily (MAP_NORESERVE), so a request that
/// declares an array of two billion elements in a few bytes — which the protocol
/// decoder pre-sizes before it finds the bytes missing — costs address space,
/// not memory, and is refused as malformed instead of aborting the process.
/// `tests/malformed.rs` sends exactly such a request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use broker::Broker;
pub use config::{Cli, Config};
pub use server::Server;
