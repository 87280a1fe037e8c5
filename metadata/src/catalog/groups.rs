//! Consumer groups: committed offsets, the stored state of classic groups, and
//! the leases that say which agent coordinates each group.
//!
//! Writes take a [`GroupFence`]: in a cluster the lease epoch the group was
//! loaded under, checked in the write's own transaction (docs/ARCHITECTURE.md,
//! "Group coordinators in a cluster").

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::ConfigUpdate;

use crate::groups::{
    Acquisition, CommittedOffset, GroupFence, GroupLease, OffsetCommit, StoredGroup,
};
use crate::Result;

#[async_trait]
pub trait GroupCatalog: Send + Sync + 'static {
    /// Stores committed offsets of a group, overwriting earlier ones of the same
    /// partitions, in one transaction. Callers check that the partitions exist.
    async fn commit_offsets(
        &self,
        group_id: &str,
        fence: GroupFence,
        commits: &[OffsetCommit],
    ) -> Result<()>;

    /// Every committed offset of a group, ordered by topic and partition.
    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>>;

    /// Forgets the committed offsets of these (topic, partition) pairs.
    async fn delete_offsets(
        &self,
        group_id: &str,
        fence: GroupFence,
        partitions: &[(String, i32)],
    ) -> Result<()>;

    /// Replaces the stored state of a group (its row and all its members).
    async fn store_group(&self, group: &StoredGroup, fence: GroupFence) -> Result<()>;

    /// One stored group, members ordered by member id.
    async fn load_group(&self, group_id: &str) -> Result<Option<StoredGroup>>;

    /// Every stored group, ordered by id, members ordered by member id.
    async fn load_groups(&self) -> Result<Vec<StoredGroup>>;

    /// Deletes a group's stored state, all its committed offsets, its configs
    /// and (a share group's) partition states. Its lease
    /// row stays, so that a lease epoch never repeats.
    async fn delete_group(&self, group_id: &str, fence: GroupFence) -> Result<()>;

    /// The leases of these groups that exist, ordered by group id, each with
    /// whether its owner's agents row still exists.
    async fn group_leases(&self, group_ids: &[String]) -> Result<Vec<GroupLease>>;

    /// Takes the group's lease for the agent (node id, incarnation), bumping its
    /// epoch (1 for a group never leased), unless an agent whose row exists
    /// holds it; holding it already counts as free (the epoch is bumped anyway,
    /// fencing writes of the earlier acquisition). One transaction: of agents
    /// acquiring together, one wins and the others see it as the holder.
    async fn acquire_group(
        &self,
        group_id: &str,
        node_id: i32,
        incarnation: &str,
    ) -> Result<Acquisition>;

    /// A group's configs (Kafka's GROUP config resource), as set.
    async fn group_configs(&self, group_id: &str) -> Result<BTreeMap<String, String>>;

    /// Replaces a group's configs with what `update` makes of the current
    /// ones, in one transaction; `update` refusing is
    /// [`crate::CatalogError::InvalidConfig`]. Returns the new set.
    async fn update_group_configs(
        &self,
        group_id: &str,
        update: ConfigUpdate<'_>,
    ) -> Result<BTreeMap<String, String>>;

    /// Ids of the groups that have configs, in order.
    async fn groups_with_configs(&self) -> Result<Vec<String>>;

    /// Gives the lease up (no owner, the epoch kept) if it is still at `epoch`;
    /// returns whether it was.
    async fn release_group(&self, group_id: &str, epoch: i64) -> Result<bool>;
}
