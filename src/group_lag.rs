//! Consumer-group lag as a metric: for each group this agent coordinates, how
//! many records each partition with a committed offset is behind its high
//! watermark (`streamhouse_consumer_group_lag{group,topic,partition}`).
//!
//! Lag is not kept up to date as offsets and heads move: each scrape first
//! asks the catalog ([`GroupLag::refresh`]) and the encoded samples are that
//! answer. Each agent reports only the groups it coordinates, so a sum over
//! agents counts every group once. A refresh that fails or times out leaves
//! the previous samples, so a slow catalog delays a scrape by at most
//! [`REFRESH_TIMEOUT`] and never fails it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use streamhouse_metadata::{Catalog, CatalogError, TopicId};

use crate::metrics_http::BeforeScrape;
use crate::Broker;

/// How long a scrape waits for the catalog's answer.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// One group's lag on one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LagSample {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
}

/// The samples of the last refresh; clones share them.
#[derive(Clone, Default, Debug)]
pub struct GroupLag(Arc<Mutex<Vec<LagSample>>>);

impl GroupLag {
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }

    pub fn samples(&self) -> Vec<LagSample> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the samples with the lag of `groups`, read from the catalog.
    pub async fn refresh(&self, catalog: &dyn Catalog, groups: &[String]) {
        match tokio::time::timeout(REFRESH_TIMEOUT, measure(catalog, groups)).await {
            Ok(Ok(samples)) => {
                *self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = samples;
            }
            // Logged at debug: the catalog's own failures are reported where
            // requests meet them, and a scrape every few seconds would repeat
            // them.
            Ok(Err(e)) => tracing::debug!(error = %e, "consumer lag not refreshed"),
            Err(_) => tracing::debug!("consumer lag not refreshed: the catalog timed out"),
        }
    }
}

/// Lag of every committed offset of `groups`, in group, topic and partition
/// order. Offsets of topics that no longer exist are left out.
async fn measure(catalog: &dyn Catalog, groups: &[String]) -> Result<Vec<LagSample>, CatalogError> {
    let mut committed = Vec::new();
    for group in groups {
        for offset in catalog.committed_offsets(group).await? {
            committed.push((group.clone(), offset.topic, offset.partition, offset.offset));
        }
    }
    let mut topic_ids: HashMap<String, Option<TopicId>> = HashMap::new();
    for (_, topic, _, _) in &committed {
        if !topic_ids.contains_key(topic) {
            let id = catalog.topic_by_name(topic).await?.map(|t| t.id);
            topic_ids.insert(topic.clone(), id);
        }
    }
    let mut partitions: Vec<(TopicId, i32)> = committed
        .iter()
        .filter_map(|(_, topic, partition, _)| Some((topic_ids[topic]?, *partition)))
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    let high_watermarks: HashMap<(TopicId, i32), i64> = catalog
        .heads(&partitions)
        .await?
        .into_iter()
        .map(|head| ((head.topic, head.partition), head.offsets.high_watermark))
        .collect();
    let mut samples: Vec<LagSample> = committed
        .into_iter()
        .filter_map(|(group, topic, partition, offset)| {
            let id = topic_ids[&topic]?;
            let high_watermark = *high_watermarks.get(&(id, partition))?;
            Some(LagSample {
                group,
                topic,
                partition,
                lag: (high_watermark - offset).max(0),
            })
        })
        .collect();
    samples
        .sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    Ok(samples)
}

impl Collector for GroupLag {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "streamhouse_consumer_group_lag",
            "Records between a group's committed offset and the partition's high watermark, for the groups this agent coordinates",
            None,
            MetricType::Gauge,
        )?;
        for sample in self.samples() {
            let partition = sample.partition.to_string();
            let labels = [
                ("group", sample.group.as_str()),
                ("topic", sample.topic.as_str()),
                ("partition", partition.as_str()),
            ];
            family.encode_family(&labels)?.encode_gauge(&sample.lag)?;
        }
        Ok(())
    }
}

impl BeforeScrape for Broker {
    fn refresh(&self) -> BoxFuture<'_, ()> {
        async move {
            let groups = self.coordinator.group_ids();
            self.group_lag.refresh(self.catalog.as_ref(), &groups).await;
        }
        .boxed()
    }
}
