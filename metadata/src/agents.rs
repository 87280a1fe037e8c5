//! The values of membership: an agent as registered, the endpoints it
//! advertises per listener, the set of live agents at one membership epoch,
//! and the catalog's change counters.

/// What an agent asks for when it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRegistration {
    /// The node id the operator chose (`--node-id`), or None to be given the
    /// smallest free one.
    pub node_id: Option<i32>,
    /// Unique per process start: tells this run's row from an earlier run's.
    pub incarnation: String,
    /// The address of the agent's first listener: what tells a restart of
    /// this agent from another agent.
    pub host: String,
    pub port: i32,
    /// Every listener's advertised address, the first one's included.
    pub endpoints: Vec<Endpoint>,
    pub zone: Option<String>,
    /// How long the row stays valid without a renewal.
    pub lease_ms: i64,
}

/// Where clients of one listener reach an agent, as Kafka's
/// `advertised.listeners` names it: `LISTENER://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener's name; StreamHouse names a listener by its security
    /// protocol (`PLAINTEXT`, `SASL_SSL`, ...).
    pub listener: String,
    pub host: String,
    pub port: i32,
}

impl Endpoint {
    /// Kafka's `LISTENER://HOST:PORT`.
    pub fn to_url(&self) -> String {
        format!("{}://{}:{}", self.listener, self.host, self.port)
    }

    /// Parses what [`Endpoint::to_url`] wrote; None for anything else.
    pub fn parse(text: &str) -> Option<Endpoint> {
        let (listener, address) = text.split_once("://")?;
        let (host, port) = address.rsplit_once(':')?;
        if listener.is_empty() || host.is_empty() {
            return None;
        }
        Some(Endpoint {
            listener: listener.to_owned(),
            host: host.to_owned(),
            port: port.parse().ok()?,
        })
    }
}

/// A registered agent, as others see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub node_id: i32,
    pub incarnation: String,
    /// The first listener's address.
    pub host: String,
    pub port: i32,
    pub zone: Option<String>,
    /// Every listener's advertised address. Empty for a row written by an
    /// agent of a version that did not record them: that agent had one
    /// listener, at `host`:`port` ([`Agent::endpoint`]).
    pub endpoints: Vec<Endpoint>,
}

impl Agent {
    /// Where clients of `listener` reach this agent; None when it has no such
    /// listener. An agent that did not record its listeners is reached at its
    /// one address whatever the listener, as every agent was before agents
    /// had several.
    pub fn endpoint(&self, listener: &str) -> Option<Endpoint> {
        if self.endpoints.is_empty() {
            return Some(Endpoint {
                listener: listener.to_owned(),
                host: self.host.clone(),
                port: self.port,
            });
        }
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .cloned()
    }
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
