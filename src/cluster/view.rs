//! One agent's view of the cluster: the live agents at one membership epoch,
//! and where each partition, group and background job belongs in it.

use streamhouse_metadata::agents::{Agent, Membership};
use streamhouse_metadata::TopicId;

use super::rendezvous::{job_key, partition_key, winner, KeyKind};

/// The agents of one membership epoch. Immutable: a change makes a new view.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub epoch: i64,
    /// Sorted by node id.
    pub agents: Vec<Agent>,
}

impl From<Membership> for View {
    fn from(membership: Membership) -> View {
        View {
            epoch: membership.epoch,
            agents: membership.agents,
        }
    }
}

impl View {
    pub fn agent(&self, node_id: i32) -> Option<&Agent> {
        self.agents
            .binary_search_by_key(&node_id, |a| a.node_id)
            .ok()
            .map(|i| &self.agents[i])
    }

    /// Every partition's leader epoch: the membership epoch, which moves
    /// whenever any leader may have moved (docs/ARCHITECTURE.md, "Placement").
    pub fn leader_epoch(&self) -> i32 {
        i32::try_from(self.epoch).unwrap_or(i32::MAX)
    }

    /// The agent clients of `zone` are told leads the partition: the rendezvous
    /// winner among the agents of that zone, or among all if the zone has none.
    pub fn partition_leader(
        &self,
        topic: TopicId,
        partition: i32,
        zone: Option<&str>,
    ) -> Option<&Agent> {
        let key = partition_key(topic, partition);
        let in_zone = |a: &&Agent| zone.is_some() && a.zone.as_deref() == zone;
        let zoned = self.agents.iter().filter(in_zone).map(|a| a.node_id);
        let node = winner(KeyKind::PartitionLeader, &key, zoned)
            .or_else(|| winner(KeyKind::PartitionLeader, &key, self.node_ids()))?;
        self.agent(node)
    }

    /// The agent that should coordinate `group` when no live agent holds it.
    pub fn group_coordinator(&self, group: &str) -> Option<&Agent> {
        let node = winner(KeyKind::GroupCoordinator, group.as_bytes(), self.node_ids())?;
        self.agent(node)
    }

    /// Whether `node_id` runs shard `shard` of background job `job`.
    pub fn runs_job(&self, node_id: i32, job: &str, shard: u32) -> bool {
        winner(
            KeyKind::BackgroundWork,
            &job_key(job, shard),
            self.node_ids(),
        ) == Some(node_id)
    }

    fn node_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.agents.iter().map(|a| a.node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(node_id: i32, zone: Option<&str>) -> Agent {
        Agent {
            node_id,
            incarnation: format!("i{node_id}"),
            host: "127.0.0.1".into(),
            port: 9000 + node_id,
            zone: zone.map(String::from),
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn a_client_of_a_zone_is_given_leaders_in_its_zone() {
        let view = View {
            epoch: 3,
            agents: vec![
                agent(0, Some("a")),
                agent(1, Some("b")),
                agent(2, Some("b")),
            ],
        };
        let topic = TopicId::from_u128(7);
        for partition in 0..50 {
            let leader = view.partition_leader(topic, partition, Some("b")).unwrap();
            assert_eq!(leader.zone.as_deref(), Some("b"));
            let leader = view.partition_leader(topic, partition, Some("a")).unwrap();
            assert_eq!(leader.node_id, 0);
            // A zone with no agents falls back to all of them, as does no zone.
            assert_eq!(
                view.partition_leader(topic, partition, Some("c"))
                    .map(|a| a.node_id),
                view.partition_leader(topic, partition, None)
                    .map(|a| a.node_id),
            );
        }
    }

    #[test]
    fn an_empty_view_places_nothing() {
        let view = View::default();
        assert!(view.partition_leader(TopicId::nil(), 0, None).is_none());
        assert!(view.group_coordinator("g").is_none());
        assert!(!view.runs_job(0, "gc", 0));
    }

    #[test]
    fn each_job_shard_runs_on_exactly_one_agent() {
        let view = View {
            epoch: 1,
            agents: vec![agent(0, None), agent(1, None), agent(4, None)],
        };
        for shard in 0..16 {
            let runners = [0, 1, 4]
                .into_iter()
                .filter(|&n| view.runs_job(n, "compaction", shard))
                .count();
            assert_eq!(runners, 1);
        }
    }
}
