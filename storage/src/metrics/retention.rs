//! What retention counts, and the retained size of each topic (see
//! `storage::compaction::retention`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the per-topic gauges: `topic="NAME"`.
pub type TopicLabels = Vec<(String, String)>;

#[derive(Default, Debug)]
pub struct RetentionMetrics {
    /// Bytes of index entries retention moved log starts past; the objects
    /// holding them go once nothing else points into them.
    pub bytes_deleted: Counter,
    /// Partitions whose log start retention moved, one per move.
    pub log_starts_moved: Counter,
    /// Retained bytes per topic, as of the last retention pass. Only the agent
    /// running the retention job reports them; the others report none, so a
    /// sum over agents counts each topic once.
    pub topic_bytes: Family<TopicLabels, Gauge>,
    /// Objects holding a topic's retained bytes (shared objects count for each
    /// of their topics), as of the last retention pass.
    pub topic_objects: Family<TopicLabels, Gauge>,
}

impl RetentionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "streamhouse_retention_bytes_deleted",
            "Bytes of index entries retention moved log starts past",
            self.bytes_deleted.clone(),
        );
        registry.register(
            "streamhouse_retention_log_starts_moved",
            "Partitions whose log start retention moved, one per move",
            self.log_starts_moved.clone(),
        );
        registry.register(
            "streamhouse_topic_retained_bytes",
            "Bytes a topic's partitions retain in the store, at the last retention pass",
            self.topic_bytes.clone(),
        );
        registry.register(
            "streamhouse_topic_retained_objects",
            "Objects holding a topic's retained bytes, at the last retention pass",
            self.topic_objects.clone(),
        );
    }
}
