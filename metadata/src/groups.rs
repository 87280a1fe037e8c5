//! Plain values of consumer groups that cross the catalog boundary: committed
//! offsets and the persisted state of a group (classic or KIP-848).
//!
//! The catalog stores what a coordinator needs to continue a group after a
//! restart (as Kafka reloads groups from `__consumer_offsets`); it does not
//! interpret any of it. The state machine lives in the broker's coordinator.

/// One partition's committed offset, as OffsetCommit sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 when the client sent none.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A committed offset read back, with the time it was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// A group as its coordinator last stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGroup {
    pub group_id: String,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader_id: Option<String>,
    /// In member-id order; empty for a group of the consumer protocol.
    pub members: Vec<StoredMember>,
    /// A group of the new consumer protocol (KIP-848): its whole state, as
    /// the coordinator encodes it. None for a classic group.
    pub consumer_state: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's chosen protocol.
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// What a group write is conditioned on.
///
/// In a cluster every write of a group carries the lease epoch its coordinator
/// loaded the group under, and the catalog refuses it (with
/// [`crate::CatalogError::NotCoordinator`]) in the same transaction when the
/// group's lease has moved on: an owner that lost the group without knowing it
/// (paused, cut off) cannot overwrite its successor's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupFence {
    /// Written whatever the lease says: an agent that coordinates every group
    /// by itself and takes no leases (tests, tools on a catalog of their own).
    Unfenced,
    /// Written only while the group's lease epoch is this one.
    Lease(i64),
}

/// A group's row in `group_leases`: who coordinates it, under which epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLease {
    pub group_id: String,
    /// +1 on every acquisition; kept when the lease is released.
    pub epoch: i64,
    /// None once released (a clean shutdown, a handoff).
    pub owner: Option<LeaseOwner>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseOwner {
    pub node_id: i32,
    pub incarnation: String,
    /// Whether the owner's agents row (this node id with this incarnation)
    /// still exists. A lease holds exactly as long as that row: once the owner
    /// is reaped or has left, another agent may take the group over.
    pub registered: bool,
}

impl GroupLease {
    /// The agent holding the lease, if it still holds it.
    pub fn live_owner(&self) -> Option<&LeaseOwner> {
        self.owner.as_ref().filter(|owner| owner.registered)
    }
}

/// The outcome of trying to acquire a group's lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquisition {
    /// The lease is ours under this epoch; every write of the group carries it.
    Acquired { epoch: i64 },
    /// Another agent holds the lease and its agents row exists.
    Held { node_id: i32 },
    /// The acquiring agent's own row is gone (reaped, replaced): it may not
    /// coordinate anything until it registers again.
    NotRegistered,
}
