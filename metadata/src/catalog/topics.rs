//! Topics, their configs and partition counts, and the cluster id.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{NewTopic, Result, Topic, TopicId};

/// Computes a topic's new config set from its current one, or says why not.
pub type ConfigUpdate<'a> = &'a (dyn Fn(&BTreeMap<String, String>) -> std::result::Result<BTreeMap<String, String>, String>
         + Send
         + Sync);

#[async_trait]
pub trait TopicCatalog: Send + Sync + 'static {
    /// The cluster's id, created by the first agent to ask and the same for every
    /// agent and every restart after that.
    async fn cluster_id(&self) -> Result<String>;

    /// Creates a topic with `partition_count` partitions, each starting at offset 0.
    /// Fails with [`crate::CatalogError::TopicAlreadyExists`] if the name is taken.
    async fn create_topic(&self, topic: &NewTopic) -> Result<Topic>;

    /// Deletes a topic, its partitions and its index entries. Objects shared with
    /// other topics stay; unreferenced ones are left for garbage collection.
    /// Fails with [`crate::CatalogError::UnknownTopic`] if there is no such topic.
    async fn delete_topic(&self, name: &str) -> Result<Topic>;

    async fn topic_by_name(&self, name: &str) -> Result<Option<Topic>>;

    async fn topic_by_id(&self, id: TopicId) -> Result<Option<Topic>>;

    /// All topics, ordered by name.
    async fn list_topics(&self) -> Result<Vec<Topic>>;

    /// Replaces a topic's configs with what `update` makes of the current ones, in
    /// one transaction (concurrent updates of the topic take turns). `update`
    /// refusing is [`crate::CatalogError::InvalidConfig`]; no topic,
    /// [`crate::CatalogError::UnknownTopic`].
    async fn update_topic_configs(&self, name: &str, update: ConfigUpdate<'_>) -> Result<Topic>;

    /// Grows a topic to `partition_count` partitions, the new ones empty.
    /// [`crate::CatalogError::PartitionCountNotIncreased`] unless it is an increase.
    async fn add_partitions(&self, name: &str, partition_count: i32) -> Result<Topic>;
}
