//! The values of membership: an agent as registered, the set of live agents at
//! one membership epoch, and the catalog's change counters.

/// What an agent asks for when it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRegistration {
    /// The node id the operator chose (`--node-id`), or None to be given the
    /// smallest free one.
    pub node_id: Option<i32>,
    /// Unique per process start: tells this run's row from an earlier run's.
    pub incarnation: String,
    pub host: String,
    pub port: i32,
    pub zone: Option<String>,
    /// How long the row stays valid without a renewal.
    pub lease_ms: i64,
}

/// A registered agent, as others see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub node_id: i32,
    pub incarnation: String,
    pub host: String,
    pub port: i32,
    pub zone: Option<String>,
}

/// The agents' row set and the membership epoch that names it, read in one
/// statement (so one epoch always comes with one set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub epoch: i64,
    /// Sorted by node id.
    pub agents: Vec<Agent>,
}

/// The result of a successful registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered {
    pub node_id: i32,
    /// The membership epoch the registration created.
    pub epoch: i64,
}

/// The result of a lease renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The row is still ours and now valid for another lease.
    Renewed {
        /// Agents whose leases had lapsed and that this renewal removed.
        reaped: Vec<i32>,
    },
    /// Our row is gone (reaped after a lapse, or replaced by an agent that
    /// advertises our address).
    Gone,
}

/// Monotonic counters every agent polls to learn of others' changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Moves with every change of the agents' row set.
    pub membership: i64,
    /// Moves with every change of topics, partition counts or configs.
    pub catalog: i64,
    /// SQLite's sequence of head changes.
    pub heads: i64,
}
