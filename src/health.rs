//! Health and readiness, as orchestrators probe them on the metrics listener:
//! `/healthz` answers while the process serves HTTP at all; `/readyz` only
//! while this agent can serve Kafka clients: its listener accepting, the
//! catalog answering, the object store answering, and (in a cluster) its
//! membership lease valid, so that no other agent may have taken over its
//! work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::Broker;

/// How long one probe of the catalog or the store may take before it counts
/// as failed: well inside orchestrators' default probe timeouts (1 s for
/// Kubernetes is the lowest common one; probes run in parallel).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(900);

/// One check of a readiness probe: its name and, when it failed, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub failure: Option<String>,
}

impl Check {
    fn ok(name: &'static str) -> Check {
        Check {
            name,
            failure: None,
        }
    }

    fn failed(name: &'static str, why: impl Into<String>) -> Check {
        Check {
            name,
            failure: Some(why.into()),
        }
    }
}

/// What `/readyz` asks; the agent implements it, tests fake it.
pub trait Readiness: Send + Sync + 'static {
    fn checks(&self) -> BoxFuture<'_, Vec<Check>>;
}

/// Whether the Kafka listener is accepting connections: set when the accept
/// loop starts, cleared when shutdown begins (so an orchestrator stops sending
/// traffic while connections drain).
#[derive(Debug, Default)]
pub struct Accepting(AtomicBool);

impl Accepting {
    pub fn set(&self, accepting: bool) {
        self.0.store(accepting, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Readiness for Broker {
    fn checks(&self) -> BoxFuture<'_, Vec<Check>> {
        self.check_readiness().boxed()
    }
}

impl Broker {
    async fn check_readiness(&self) -> Vec<Check> {
        let listener = if self.accepting.get() {
            Check::ok("listener")
        } else {
            Check::failed("listener", "not accepting connections")
        };
        let catalog = async {
            match tokio::time::timeout(PROBE_TIMEOUT, self.catalog.counters()).await {
                Ok(Ok(_)) => Check::ok("catalog"),
                Ok(Err(e)) => Check::failed("catalog", e.to_string()),
                Err(_) => Check::failed("catalog", format!("no answer within {PROBE_TIMEOUT:?}")),
            }
        };
        let store = async {
            match tokio::time::timeout(PROBE_TIMEOUT, self.log.probe_store()).await {
                Ok(Ok(())) => Check::ok("store"),
                Ok(Err(e)) => Check::failed("store", e.to_string()),
                Err(_) => Check::failed("store", format!("no answer within {PROBE_TIMEOUT:?}")),
            }
        };
        let (catalog, store) = tokio::join!(catalog, store);
        let membership = if self.membership.lease_valid() {
            Check::ok("membership")
        } else {
            Check::failed(
                "membership",
                "this agent's lease is not valid: it may not serve",
            )
        };
        vec![listener, catalog, store, membership]
    }
}
