//! Retention by time and size (`retention.ms`, `retention.bytes`) for topics
//! whose `cleanup.policy` includes `delete`, as Kafka applies them, and the
//! per-topic size gauges.
//!
//! One agent of the cluster runs it ([`WorkShare::retention`]), every
//! `check_interval` (Kafka's `log.retention.check.interval.ms`, 5 minutes
//! there, 30 s here by default). A pass asks the catalog, topic by topic, to
//! move each partition's log start past the index entries the rules no longer
//! keep, in one transaction per topic
//! ([`streamhouse_metadata::RetentionCatalog::apply_retention`]); the catalog
//! decides on the rows it has locked, so a pass running on a stale view (two
//! agents both believing the job theirs for a moment) moves nothing back and
//! loses no append. Garbage collection then drops the entries below the log
//! start and frees the objects nothing points into any more.
//!
//! Precision: whole index entries (one per partition per object, merged by
//! compaction), where Kafka deletes whole segments (1 GiB or 7 days by
//! default). Like Kafka, retention may take everything up to the high
//! watermark (Kafka rolls the active segment to do so).
//!
//! [`WorkShare::retention`]: super::WorkShare::retention

use std::collections::BTreeMap;
use std::time::Duration;

use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::retention::RetentionRule;
use streamhouse_metadata::Topic;
use tokio::time::Instant;

use super::CompactionWorker;
use crate::StorageError;

/// The broker-wide retention: the interval and the defaults of topics that do
/// not set `retention.ms` / `retention.bytes` (Kafka's `log.retention.ms`,
/// `log.retention.bytes`, `log.retention.check.interval.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    pub check_interval: Duration,
    /// Negative: no time limit.
    pub default_ms: i64,
    /// Negative: no size limit.
    pub default_bytes: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            check_interval: Duration::from_secs(30),
            default_ms: 7 * 24 * 60 * 60 * 1000,
            default_bytes: -1,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Topics whose rules were applied.
    pub topics: u64,
    /// Partitions whose log start moved.
    pub partitions_moved: u64,
    /// Bytes of the entries left below the new log starts.
    pub bytes: u64,
}

/// The rule of a topic at `now_ms`, or `None` when retention leaves it alone:
/// a plain `compact` topic, or no limit set anywhere. A value that does not
/// parse (the catalog holds only validated ones) falls back to the default.
pub fn rule_for(topic: &Topic, config: &RetentionConfig, now_ms: i64) -> Option<RetentionRule> {
    let configs = &topic.configs;
    let deletes = configs
        .get("cleanup.policy")
        .is_none_or(|policy| policy.split(',').any(|p| p.trim() == "delete"));
    if !deletes {
        return None;
    }
    let number = |name: &str, default: i64| {
        configs
            .get(name)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let ms = number("retention.ms", config.default_ms);
    let bytes = number("retention.bytes", config.default_bytes);
    let rule = RetentionRule {
        topic: topic.id,
        delete_before_timestamp: (ms >= 0).then(|| now_ms.saturating_sub(ms)),
        retain_bytes: (bytes >= 0).then_some(bytes),
    };
    (rule.delete_before_timestamp.is_some() || rule.retain_bytes.is_some()).then_some(rule)
}

pub(super) async fn pass(worker: &CompactionWorker) -> Result<RetentionPass, StorageError> {
    let catalog = &worker.catalog;
    let metrics = &worker.metrics.retention;
    let config = &worker.config.retention;
    let topics = catalog.list_topics().await?;
    let mut outcome = RetentionPass::default();
    for topic in &topics {
        // The time is read per topic: a long pass must not judge late topics
        // by a stale clock.
        let Some(rule) = rule_for(topic, config, worker.clock.now_ms()) else {
            continue;
        };
        outcome.topics += 1;
        for moved in catalog.apply_retention(&rule).await? {
            let bytes = u64::try_from(moved.bytes).unwrap_or(0);
            outcome.partitions_moved += 1;
            outcome.bytes += bytes;
            metrics.bytes_deleted.inc_by(bytes);
            metrics.log_starts_moved.inc();
            if let Some(heads) = &worker.heads {
                heads
                    .set_log_start(moved.topic, moved.partition, moved.to)
                    .await;
            }
        }
    }
    refresh_gauges(worker, &topics).await?;
    Ok(outcome)
}

/// Sets the per-topic gauges from the catalog; topics with nothing retained
/// report 0, deleted ones disappear.
async fn refresh_gauges(worker: &CompactionWorker, topics: &[Topic]) -> Result<(), StorageError> {
    let usage: BTreeMap<_, _> = worker
        .catalog
        .topic_usage()
        .await?
        .into_iter()
        .map(|u| (u.topic, u))
        .collect();
    let metrics = &worker.metrics.retention;
    metrics.topic_bytes.clear();
    metrics.topic_objects.clear();
    for topic in topics {
        let labels = vec![("topic".to_string(), topic.name.clone())];
        let (bytes, objects) = usage
            .get(&topic.id)
            .map_or((0, 0), |u| (u.bytes, u.objects));
        metrics.topic_bytes.get_or_create(&labels).set(bytes);
        metrics.topic_objects.get_or_create(&labels).set(objects);
    }
    Ok(())
}

/// When the worker's loop runs the next pass.
pub(super) struct Schedule {
    interval: Duration,
    next: Instant,
}

impl Schedule {
    /// The first pass one interval after the start, as the other jobs'.
    pub(super) fn new(interval: Duration) -> Schedule {
        Schedule {
            interval,
            next: Instant::now() + interval,
        }
    }

    pub(super) fn next_at(&self) -> Instant {
        self.next
    }

    /// Runs a pass if one is due and the job is this agent's. An agent that
    /// is not running it reports no per-topic gauges, so that only one agent
    /// of the cluster does.
    pub(super) async fn tick(&mut self, worker: &CompactionWorker) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + self.interval;
        if !worker.share.current().retention {
            worker.metrics.retention.topic_bytes.clear();
            worker.metrics.retention.topic_objects.clear();
            return;
        }
        if let Err(e) = worker.apply_retention().await {
            static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
            if let Some(suppressed) = WARNINGS.allow() {
                tracing::warn!(error = %e, suppressed, "retention pass failed; retrying later");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(configs: &[(&str, &str)]) -> Topic {
        Topic {
            id: uuid::Uuid::nil(),
            name: "t".into(),
            partition_count: 1,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at_ms: 0,
        }
    }

    const CONFIG: RetentionConfig = RetentionConfig {
        check_interval: Duration::from_secs(30),
        default_ms: 1000,
        default_bytes: -1,
    };

    fn limits(rule: Option<RetentionRule>) -> Option<(Option<i64>, Option<i64>)> {
        rule.map(|r| (r.delete_before_timestamp, r.retain_bytes))
    }

    #[test]
    fn a_topics_own_limits_beat_the_defaults() {
        assert_eq!(
            limits(rule_for(&topic(&[]), &CONFIG, 5000)),
            Some((Some(4000), None))
        );
        let own = topic(&[("retention.ms", "100"), ("retention.bytes", "2048")]);
        assert_eq!(
            limits(rule_for(&own, &CONFIG, 5000)),
            Some((Some(4900), Some(2048)))
        );
        let unlimited = topic(&[("retention.ms", "-1")]);
        assert_eq!(limits(rule_for(&unlimited, &CONFIG, 5000)), None);
    }

    #[test]
    fn only_topics_whose_policy_deletes_are_retained() {
        assert_eq!(
            limits(rule_for(
                &topic(&[("cleanup.policy", "compact")]),
                &CONFIG,
                5000
            )),
            None
        );
        for policy in ["delete", "compact,delete", "delete, compact"] {
            assert_eq!(
                limits(rule_for(
                    &topic(&[("cleanup.policy", policy)]),
                    &CONFIG,
                    5000
                )),
                Some((Some(4000), None)),
                "{policy}"
            );
        }
    }
}
