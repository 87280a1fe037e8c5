//! Kafka's internal topics as StreamHouse has them: `__consumer_offsets`
//! exists in the catalog, so that Metadata lists it as internal and clients
//! that leave internal topics out (regex subscriptions, tools) see what they
//! see on Kafka. It holds no records: group offsets stay in the catalog's
//! group tables. Every agent ensures it at start.
//!
//! `__transaction_state` stays reserved but is never created, as StreamHouse
//! has no transactions. Which names are reserved, and what is refused on them,
//! is [`crate::config::topic::is_reserved_topic_name`]'s.

use std::collections::BTreeMap;

use streamhouse_metadata::{Catalog, CatalogError, NewTopic};

/// The topic Kafka keeps group offsets in.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// One partition: nothing is ever written to it, and no client reads its
/// partition count (a group's coordinator is found by FindCoordinator, not
/// by hashing the group id onto these partitions as Kafka's brokers do).
pub const CONSUMER_OFFSETS_PARTITIONS: i32 = 1;

/// Kafka's config of `__consumer_offsets` that tools look at: compacted.
pub const CONSUMER_OFFSETS_CLEANUP_POLICY: &str = "compact";

/// Creates `__consumer_offsets` unless it exists. Agents starting together on
/// one catalog race here; the catalog lets one create it, and the others'
/// TOPIC_ALREADY_EXISTS is what they wanted.
pub async fn ensure(catalog: &dyn Catalog) -> Result<(), CatalogError> {
    if catalog.topic_by_name(CONSUMER_OFFSETS).await?.is_some() {
        return Ok(());
    }
    let new_topic = NewTopic {
        name: CONSUMER_OFFSETS.to_string(),
        partition_count: CONSUMER_OFFSETS_PARTITIONS,
        configs: BTreeMap::from([(
            "cleanup.policy".to_string(),
            CONSUMER_OFFSETS_CLEANUP_POLICY.to_string(),
        )]),
    };
    match catalog.create_topic(&new_topic).await {
        Ok(topic) => {
            tracing::info!(topic = %topic.name, partitions = topic.partition_count, "created internal topic");
            Ok(())
        }
        Err(CatalogError::TopicAlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
