//! `streamctl cluster info`: the cluster id, its agents (address, zone) and
//! how many partitions each leads, from Metadata.

use std::collections::BTreeMap;

use serde_json::json;

use crate::client::{ClientError, Cluster};
use crate::output::{self, Format};

pub async fn info(cluster: &mut Cluster, format: Format) -> Result<(), ClientError> {
    let metadata = cluster.metadata(None).await?;
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for topic in &metadata.topics {
        for partition in &topic.partitions {
            *led.entry(partition.leader_id.0).or_default() += 1;
        }
    }
    let mut agents: Vec<_> = metadata.brokers.iter().collect();
    agents.sort_by_key(|b| b.node_id.0);
    let cluster_id = metadata
        .cluster_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|b| {
            vec![
                b.node_id.0.to_string(),
                format!("{}:{}", b.host, b.port),
                b.rack
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |r| r.to_string()),
                led.get(&b.node_id.0).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    match format {
        Format::Table => {
            println!(
                "cluster {cluster_id}  agents {}  topics {}  controller {}",
                agents.len(),
                metadata.topics.len(),
                metadata.controller_id.0
            );
            output::table(format, &["AGENT", "ADDRESS", "ZONE", "LEADS"], &rows);
        }
        Format::Json => {
            let agents: Vec<_> = rows
                .iter()
                .zip(&agents)
                .map(|(r, b)| {
                    json!({
                        "id": b.node_id.0,
                        "address": r[1],
                        "zone": b.rack.as_ref().map(|z| z.to_string()),
                        "leads": led.get(&b.node_id.0).copied().unwrap_or(0),
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "cluster_id": cluster_id,
                    "controller": metadata.controller_id.0,
                    "topics": metadata.topics.len(),
                    "agents": agents,
                    "streamctl_version": env!("CARGO_PKG_VERSION"),
                })
            );
        }
    }
    Ok(())
}
