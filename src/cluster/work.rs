//! Which background work this agent does: the compaction shards, the garbage
//! collection, the retention, the producer state expiry and the log
//! cleaner's partition shards placed on it in its view, and
//! nothing while it cannot be sure it is still a member (another agent may
//! already have taken over).

use streamhouse_metadata::compaction::Shards;
use streamhouse_storage::{ShareOfWork, WorkShare};

use super::Membership;

/// Job names, part of the placement hash: changing one moves the job.
const COMPACTION: &str = "compaction";
const GARBAGE_COLLECTION: &str = "gc";
const PRODUCER_EXPIRY: &str = "producer-expiry";
const RETENTION: &str = "retention";
const LOG_CLEANER: &str = "log-cleaner";

impl ShareOfWork for Membership {
    fn current(&self) -> WorkShare {
        if !self.lease_valid() {
            return WorkShare::NONE;
        }
        let view = self.view();
        let me = self.node_id();
        if view.agent(me).is_none() {
            // Reaped, or not yet seen in the view: someone else may hold it all.
            return WorkShare::NONE;
        }
        WorkShare {
            compaction: Shards::from_fn(|shard| view.runs_job(me, COMPACTION, shard)),
            gc: view.runs_job(me, GARBAGE_COLLECTION, 0),
            producer_expiry: view.runs_job(me, PRODUCER_EXPIRY, 0),
            retention: view.runs_job(me, RETENTION, 0),
            cleaner: Shards::from_fn(|shard| view.runs_job(me, LOG_CLEANER, shard)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::cluster::AgentIdentity;

    async fn agents(n: i32, dir: &tempfile::TempDir) -> Vec<Arc<Membership>> {
        let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
        let mut agents = Vec::new();
        for port in 0..n {
            let catalog = streamhouse_metadata::open(&url).await.unwrap();
            let identity = AgentIdentity {
                node_id: None,
                host: "127.0.0.1".into(),
                port: 9000 + port,
                endpoints: Vec::new(),
                zone: None,
                lease: Duration::from_secs(5),
            };
            agents.push(Membership::join(catalog, identity).await.unwrap());
        }
        for agent in &agents {
            agent.refresh().await.unwrap();
        }
        agents
    }

    fn assert_disjoint_and_complete(shares: &[WorkShare]) {
        for shard in 0..Shards::COUNT {
            let owners = shares
                .iter()
                .filter(|s| s.compaction.contains(shard))
                .count();
            assert_eq!(owners, 1, "shard {shard}: {shares:?}");
        }
        assert_eq!(shares.iter().filter(|s| s.gc).count(), 1, "{shares:?}");
        assert_eq!(
            shares.iter().filter(|s| s.producer_expiry).count(),
            1,
            "{shares:?}"
        );
        assert_eq!(
            shares.iter().filter(|s| s.retention).count(),
            1,
            "{shares:?}"
        );
        for shard in 0..Shards::COUNT {
            let cleaners = shares.iter().filter(|s| s.cleaner.contains(shard)).count();
            assert_eq!(cleaners, 1, "cleaner shard {shard}: {shares:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_shard_the_collection_and_the_producer_expiry_run_on_exactly_one_agent() {
        let dir = tempfile::tempdir().unwrap();
        let agents = agents(3, &dir).await;
        let shares: Vec<WorkShare> = agents.iter().map(|a| a.current()).collect();
        assert_disjoint_and_complete(&shares);
        assert!(
            shares.iter().filter(|s| !s.compaction.is_empty()).count() >= 2,
            "16 shards spread over three agents: {shares:?}"
        );

        agents[1].leave().await;
        for agent in [&agents[0], &agents[2]] {
            agent.refresh().await.unwrap();
        }
        let left = agents[1].current();
        let shares = vec![agents[0].current(), agents[2].current()];
        assert_disjoint_and_complete(&shares);
        assert_eq!(left, WorkShare::NONE, "a departed agent does nothing");
    }
}
