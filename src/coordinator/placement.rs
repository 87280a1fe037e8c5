//! What the coordinator needs to know of the cluster: who this agent is, whether
//! its own lease holds, and which agent of the current view should coordinate
//! a group. The agent's membership answers it in a cluster; [`Solo`] answers
//! it for an agent that coordinates everything by itself.

/// Which agent a coordinator lives on. Where clients reach it depends on the
/// listener they use: FindCoordinator looks up its endpoint on theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorNode {
    pub node_id: i32,
}

/// This agent as the catalog's agents table names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentId {
    pub node_id: i32,
    /// Changes when the agent registers again after losing its row.
    pub incarnation: String,
}

pub trait Placement: Send + Sync + 'static {
    /// This agent's registration; None for an agent outside a cluster, which
    /// coordinates every group itself and takes no leases.
    fn this_agent(&self) -> Option<AgentId>;

    /// False while this agent cannot be sure its own lease holds (it
    /// self-fenced): it may coordinate nothing then.
    fn lease_valid(&self) -> bool;

    /// Names the current view of the live agents; moves whenever the set does.
    fn view_epoch(&self) -> i64;

    /// The agent of the current view that should coordinate the group (the
    /// rendezvous winner over all agents); None when the view is empty.
    fn winner(&self, group_id: &str) -> Option<CoordinatorNode>;

    /// The agent with this node id in the current view.
    fn agent(&self, node_id: i32) -> Option<CoordinatorNode>;
}

/// An agent alone, outside any cluster: every group is its own, always.
pub struct Solo(pub CoordinatorNode);

impl Placement for Solo {
    fn this_agent(&self) -> Option<AgentId> {
        None
    }

    fn lease_valid(&self) -> bool {
        true
    }

    fn view_epoch(&self) -> i64 {
        0
    }

    fn winner(&self, _group_id: &str) -> Option<CoordinatorNode> {
        Some(self.0.clone())
    }

    fn agent(&self, node_id: i32) -> Option<CoordinatorNode> {
        (node_id == self.0.node_id).then(|| self.0.clone())
    }
}

/// In a cluster: the agent's membership, whose view places groups by
/// rendezvous hashing over every live agent.
impl Placement for crate::cluster::Membership {
    fn this_agent(&self) -> Option<AgentId> {
        Some(AgentId {
            node_id: self.node_id(),
            incarnation: self.incarnation().to_string(),
        })
    }

    fn lease_valid(&self) -> bool {
        crate::cluster::Membership::lease_valid(self)
    }

    fn view_epoch(&self) -> i64 {
        self.view().epoch
    }

    fn winner(&self, group_id: &str) -> Option<CoordinatorNode> {
        self.view().group_coordinator(group_id).map(node)
    }

    fn agent(&self, node_id: i32) -> Option<CoordinatorNode> {
        self.view().agent(node_id).map(node)
    }
}

fn node(agent: &streamhouse_metadata::agents::Agent) -> CoordinatorNode {
    CoordinatorNode {
        node_id: agent.node_id,
    }
}
