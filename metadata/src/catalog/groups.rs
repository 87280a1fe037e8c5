//! Consumer groups: committed offsets and the stored state of classic groups.

use async_trait::async_trait;

use crate::groups::{CommittedOffset, OffsetCommit, StoredGroup};
use crate::Result;

#[async_trait]
pub trait GroupCatalog: Send + Sync + 'static {
    /// Stores committed offsets of a group, overwriting earlier ones of the same
    /// partitions, in one transaction. Callers check that the partitions exist.
    async fn commit_offsets(&self, group_id: &str, commits: &[OffsetCommit]) -> Result<()>;

    /// Every committed offset of a group, ordered by topic and partition.
    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>>;

    /// Forgets the committed offsets of these (topic, partition) pairs.
    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()>;

    /// Replaces the stored state of a group (its row and all its members).
    async fn store_group(&self, group: &StoredGroup) -> Result<()>;

    /// Every stored group, ordered by id, members ordered by member id.
    async fn load_groups(&self) -> Result<Vec<StoredGroup>>;

    /// Deletes a group's stored state and all its committed offsets.
    async fn delete_group(&self, group_id: &str) -> Result<()>;
}
