//! Share groups (KIP-932): the state of each partition a share group reads,
//! as one document the broker encodes and the catalog keeps without reading.

use async_trait::async_trait;

use crate::{Result, TopicId};

/// Makes a share partition's new state document of its current one (None
/// when none is stored yet); None leaves the row as it is. Called inside the
/// transaction that holds the row, possibly more than once (a transaction
/// retried), so it must not keep effects of an earlier call.
pub type ShareUpdate<'a> = &'a (dyn Fn(Option<&str>) -> Option<String> + Send + Sync);

/// One stored share partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSharePartition {
    pub topic: TopicId,
    pub partition: i32,
    pub state: String,
}

#[async_trait]
pub trait ShareCatalog: Send + Sync + 'static {
    /// Rewrites a share partition's state with what `update` makes of it, in
    /// one transaction holding its row: updates of one partition take turns.
    /// Returns the state as it is afterwards.
    async fn update_share_partition(
        &self,
        group_id: &str,
        topic: TopicId,
        partition: i32,
        update: ShareUpdate<'_>,
    ) -> Result<Option<String>>;

    /// One share partition's state, if stored.
    async fn share_partition(
        &self,
        group_id: &str,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<String>>;

    /// Every stored partition of a share group, by topic id and partition.
    async fn share_partitions(&self, group_id: &str) -> Result<Vec<StoredSharePartition>>;

    /// Forgets the state of every partition of `topic` the share group read
    /// (it begins the topic anew, as `share.auto.offset.reset` says); how
    /// many partitions had one.
    async fn delete_share_topic(&self, group_id: &str, topic: TopicId) -> Result<u64>;
}
