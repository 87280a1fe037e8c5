//! This agent's membership: registering, renewing the lease, following the
//! live set, and leaving.
//!
//! Two tasks run while the agent is a member. The lease task renews every
//! quarter lease and, once its own renewals have gone a whole lease without a
//! gap, reaps agents whose leases lapsed. The poll task reads the catalog's
//! change counters four times a second, reloads the view when the
//! membership epoch moved and drops the cached topics when the catalog
//! counter moved. Both hold the membership weakly, so dropping the
//! agent ends them.
//!
//! The agent never compares its clock with the catalog's: it trusts its lease
//! until the local instant at which it *sent* its last successful renewal plus
//! the lease minus a margin, which is before the catalog would let anyone else
//! take its place.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::agents::{AgentRegistration, Counters, Endpoint, Renewal};
use streamhouse_metadata::{Catalog, CatalogError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::View;

/// How often the change counters are read.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Who this agent says it is.
#[derive(Clone, Debug)]
pub struct AgentIdentity {
    /// The node id asked for (`--node-id`), or None for the smallest free one.
    pub node_id: Option<i32>,
    /// The first listener's advertised address, which tells this agent's
    /// row from another's.
    pub host: String,
    pub port: i32,
    /// Every listener's advertised address.
    pub endpoints: Vec<Endpoint>,
    pub zone: Option<String>,
    /// `--agent-lease-ms`.
    pub lease: Duration,
}

/// The agent's registration as it stands: re-registering after being reaped
/// gives a new incarnation and maybe a new node id.
#[derive(Clone, Debug)]
struct Registration {
    node_id: i32,
    incarnation: Arc<str>,
}

pub struct Membership {
    catalog: Arc<dyn Catalog>,
    identity: AgentIdentity,
    registration: Mutex<Registration>,
    view: watch::Sender<Arc<View>>,
    counters: watch::Sender<Counters>,
    valid_until: Mutex<Instant>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Membership {
    /// Registers the agent and starts renewing its lease and following the
    /// live set. Fails when the catalog refuses the registration (a node id
    /// held by a live agent, an address registered with another id).
    pub async fn join(
        catalog: Arc<dyn Catalog>,
        identity: AgentIdentity,
    ) -> Result<Arc<Membership>, CatalogError> {
        let sent = Instant::now();
        let registration = register(&*catalog, &identity).await?;
        let view = View::from(catalog.membership().await?);
        let counters = catalog.counters().await?;
        let lease = identity.lease;
        let membership = Arc::new(Membership {
            catalog,
            identity,
            registration: Mutex::new(registration),
            view: watch::channel(Arc::new(view)).0,
            counters: watch::channel(counters).0,
            valid_until: Mutex::new(sent + lease - margin(lease)),
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        });
        let lease_task = tokio::spawn(renew_forever(Arc::downgrade(&membership)));
        let poll_task = tokio::spawn(poll_forever(Arc::downgrade(&membership)));
        membership
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([lease_task, poll_task]);
        tracing::info!(
            node_id = membership.node_id(),
            epoch = membership.view().epoch,
            agents = membership.view().agents.len(),
            "joined the cluster"
        );
        Ok(membership)
    }

    pub fn node_id(&self) -> i32 {
        self.registration().node_id
    }

    /// Unique to this registration; group leases name it.
    pub fn incarnation(&self) -> Arc<str> {
        self.registration().incarnation
    }

    pub fn zone(&self) -> Option<&str> {
        self.identity.zone.as_deref()
    }

    /// The live agents as last seen.
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.borrow())
    }

    /// Every new view, as it is seen.
    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.view.subscribe()
    }

    /// The catalog's change counters, read four times a second.
    pub fn counters(&self) -> watch::Receiver<Counters> {
        self.counters.subscribe()
    }

    /// Whether the lease is surely still valid in the catalog. While it is not,
    /// the agent must not act as the owner of anything (groups, background
    /// work): another agent may already have taken over.
    pub fn lease_valid(&self) -> bool {
        Instant::now() < *self.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the live set now and publishes it if it is newer than the view.
    pub async fn refresh(&self) -> Result<Arc<View>, CatalogError> {
        let fresh = self.catalog.membership().await?;
        self.view.send_if_modified(|view| {
            if fresh.epoch > view.epoch {
                *view = Arc::new(View::from(fresh));
                true
            } else {
                false
            }
        });
        Ok(self.view())
    }

    /// Leaves the cluster: stops renewing and removes the agent's row, so the
    /// others move its partitions and groups at once instead of after the lease.
    pub async fn leave(&self) {
        self.stop.send_replace(true);
        // From now on it owns nothing, whatever its last view says.
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
        let registration = self.registration();
        match tokio::time::timeout(
            self.identity.lease,
            self.catalog
                .deregister_agent(registration.node_id, &registration.incarnation),
        )
        .await
        {
            Ok(Ok(())) => tracing::info!(node_id = registration.node_id, "left the cluster"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot leave the cluster; the lease will lapse")
            }
            Err(_) => tracing::warn!("leaving the cluster timed out; the lease will lapse"),
        }
    }

    fn registration(&self) -> Registration {
        self.registration
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// One renewal; `reap` when this agent may remove lapsed ones.
    async fn renew(&self, reap: bool) -> Result<(), CatalogError> {
        let sent = Instant::now();
        let registration = self.registration();
        let lease_ms = i64::try_from(self.identity.lease.as_millis()).unwrap_or(i64::MAX);
        let renewal = self
            .catalog
            .renew_agent(
                registration.node_id,
                &registration.incarnation,
                lease_ms,
                reap,
            )
            .await?;
        match renewal {
            Renewal::Renewed { reaped } => {
                self.extend(sent);
                if !reaped.is_empty() {
                    tracing::info!(?reaped, "removed agents whose leases lapsed");
                    self.refresh().await?;
                }
            }
            Renewal::Gone => self.rejoin(sent).await?,
        }
        Ok(())
    }

    /// Our row is gone: reaped after a lapse (we were cut off or paused), or
    /// replaced by another process advertising our address.
    async fn rejoin(&self, sent: Instant) -> Result<(), CatalogError> {
        let registration = self.registration();
        let live = self.catalog.membership().await?;
        let usurper = live.agents.iter().find(|a| {
            a.host == self.identity.host
                && a.port == self.identity.port
                && *a.incarnation != *registration.incarnation
        });
        if let Some(usurper) = usurper {
            // Re-registering would evict it, and it would evict us in turn.
            tracing::error!(
                node_id = usurper.node_id,
                "another agent now advertises {}:{}; stopping",
                self.identity.host,
                self.identity.port
            );
            std::process::exit(2);
        }
        tracing::warn!(
            node_id = registration.node_id,
            "this agent's lease lapsed and it was removed from the cluster; registering again"
        );
        let fresh = register(&*self.catalog, &self.identity).await?;
        *self.registration.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.extend(sent);
        self.refresh().await?;
        Ok(())
    }

    fn extend(&self, sent: Instant) {
        let lease = self.identity.lease;
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = sent + lease - margin(lease);
    }
}

async fn register(
    catalog: &dyn Catalog,
    identity: &AgentIdentity,
) -> Result<Registration, CatalogError> {
    let incarnation: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let registered = catalog
        .register_agent(&AgentRegistration {
            node_id: identity.node_id,
            incarnation: incarnation.to_string(),
            host: identity.host.clone(),
            port: identity.port,
            endpoints: identity.endpoints.clone(),
            zone: identity.zone.clone(),
            lease_ms: i64::try_from(identity.lease.as_millis()).unwrap_or(i64::MAX),
        })
        .await?;
    Ok(Registration {
        node_id: registered.node_id,
        incarnation,
    })
}

/// How much earlier than the catalog an agent stops trusting its lease: covers
/// clock rates differing by up to a tenth.
fn margin(lease: Duration) -> Duration {
    (lease / 10).max(Duration::from_millis(500)).min(lease / 2)
}

async fn renew_forever(membership: Weak<Membership>) {
    let Some(strong) = membership.upgrade() else {
        return;
    };
    let lease = strong.identity.lease;
    let mut stopped = strong.stopped();
    drop(strong);
    // Reaping is allowed only after renewals have succeeded for a whole lease
    // without a gap: after a catalog outage every lease has lapsed, and the
    // first agent back must not evict all the others.
    let mut gapless_since = Some(Instant::now());
    static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease / 4) => {}
            _ = stopped.changed() => return,
        }
        let Some(membership) = membership.upgrade() else {
            return;
        };
        let reap = gapless_since.is_some_and(|since| since.elapsed() >= lease);
        let attempt = Instant::now();
        match tokio::time::timeout(lease / 4, membership.renew(reap)).await {
            Ok(Ok(())) => {
                gapless_since.get_or_insert(attempt);
            }
            failed => {
                gapless_since = None;
                if let Some(suppressed) = WARNINGS.allow() {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tracing::warn!(%error, suppressed, lease_valid = membership.lease_valid(), "cannot renew this agent's lease");
                }
            }
        }
    }
}

async fn poll_forever(membership: Weak<Membership>) {
    let Some(strong) = membership.upgrade() else {
        return;
    };
    let mut stopped = strong.stopped();
    drop(strong);
    static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
        let Some(membership) = membership.upgrade() else {
            return;
        };
        let polled = async {
            let counters = membership.catalog.counters().await?;
            if counters.catalog != membership.counters.borrow().catalog {
                // Another agent changed topics or configs: before anyone
                // reacting to the counter reads a topic back from the cache.
                membership.catalog.forget_cached_topics().await;
            }
            membership.counters.send_if_modified(|seen| {
                let changed = *seen != counters;
                *seen = counters;
                changed
            });
            if counters.membership != membership.view().epoch {
                membership.refresh().await?;
            }
            Ok::<(), CatalogError>(())
        };
        if let Err(e) = polled.await {
            if let Some(suppressed) = WARNINGS.allow() {
                tracing::warn!(error = %e, suppressed, "cannot read the catalog's change counters");
            }
        }
    }
}
