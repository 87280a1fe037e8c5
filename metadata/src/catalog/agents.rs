//! Membership: the live agents, their leases, and the counters agents poll.
//!
//! Lease instants are the catalog's clock, computed and compared by the
//! database in the statement that uses them; an agent never compares its own
//! wall clock with one (docs/ARCHITECTURE.md, "Membership").

use async_trait::async_trait;

use crate::agents::{AgentRegistration, Counters, Membership, Registered, Renewal};
use crate::Result;

#[async_trait]
pub trait AgentCatalog: Send + Sync + 'static {
    /// Adds the agent to the live set and bumps the membership epoch.
    ///
    /// A row advertising the same address is this agent's previous run (it holds
    /// the listening port now) and is replaced, keeping its node id. With a node
    /// id asked for that a live agent holds elsewhere, fails with
    /// [`crate::CatalogError::NodeIdInUse`]; a lapsed holder is replaced.
    async fn register_agent(&self, registration: &AgentRegistration) -> Result<Registered>;

    /// Extends the agent's lease by `lease_ms` from now. With `reap`, also removes
    /// every agent whose lease has lapsed (bumping the epoch if any went).
    async fn renew_agent(
        &self,
        node_id: i32,
        incarnation: &str,
        lease_ms: i64,
        reap: bool,
    ) -> Result<Renewal>;

    /// Removes the agent's row (a clean shutdown) and releases the groups it
    /// coordinated; bumps the epoch if the row was there.
    async fn deregister_agent(&self, node_id: i32, incarnation: &str) -> Result<()>;

    /// The live agents and the epoch naming that set.
    async fn membership(&self) -> Result<Membership>;

    /// The change counters.
    async fn counters(&self) -> Result<Counters>;
}
