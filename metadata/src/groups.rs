//! Plain values of consumer groups that cross the catalog boundary: committed
//! offsets and the persisted state of a classic-protocol group.
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
    /// In member-id order.
    pub members: Vec<StoredMember>,
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
