//! `streamctl topic ...`: create, list, describe, delete, alter-config and
//! add-partitions, over CreateTopics, Metadata, ListOffsets,
//! DescribeConfigs, DeleteTopics, IncrementalAlterConfigs and
//! CreatePartitions.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, ListOffsetsRequest, ResponseKind,
};
use serde_json::json;

use crate::client::{
    check, name, partitions_of, text, unexpected, ClientError, Cluster, EARLIEST, LATEST,
};
use crate::output::{self, Format};

/// DescribeConfigs' resource type of a topic, and the source of a default.
const TOPIC_RESOURCE: i8 = 2;
const DEFAULT_CONFIG: i8 = 5;
const TIMEOUT_MS: i32 = 30_000;

/// `key=value` pairs of `--config`.
pub fn parse_configs(pairs: &[String]) -> Result<Vec<(String, String)>, ClientError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(ClientError::Usage(format!(
                "--config {pair}: expected NAME=VALUE"
            ))),
        })
        .collect()
}

pub async fn create(
    cluster: &mut Cluster,
    format: Format,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<(), ClientError> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(text(k))
                            .with_value(Some(text(v)))
                    })
                    .collect(),
            )]);
    let ResponseKind::CreateTopics(response) = cluster
        .any()
        .call(ApiKey::CreateTopics, 7, &request)
        .await?
    else {
        return Err(unexpected("CreateTopics"));
    };
    let result = response
        .topics
        .first()
        .ok_or_else(|| unexpected("CreateTopics"))?;
    check(
        || format!("creating topic {topic}"),
        result.error_code,
        result.error_message.as_ref(),
    )?;
    output::done(
        format,
        &format!(
            "created topic {topic} ({} partitions)",
            result.num_partitions
        ),
        json!({
            "topic": topic,
            "partitions": result.num_partitions,
            "topic_id": result.topic_id.to_string(),
        }),
    );
    Ok(())
}

pub async fn list(cluster: &mut Cluster, format: Format) -> Result<(), ClientError> {
    let response = cluster.metadata(None).await?;
    let mut rows: Vec<Vec<String>> = response
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .map(|t| {
            vec![
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.partitions.len().to_string(),
                t.topic_id.to_string(),
            ]
        })
        .collect();
    rows.sort();
    output::table(format, &["NAME", "PARTITIONS", "TOPIC ID"], &rows);
    Ok(())
}

pub async fn describe(
    cluster: &mut Cluster,
    format: Format,
    topic: &str,
) -> Result<(), ClientError> {
    let metadata = cluster.topic(topic).await?;
    let partitions = partitions_of(&metadata, None);
    let mut rows = Vec::new();
    for &partition in &partitions {
        let leader = metadata
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)
            .map_or(-1, |p| p.leader_id.0);
        let earliest = list_offset(cluster, &metadata, topic, partition, EARLIEST).await?;
        let latest = list_offset(cluster, &metadata, topic, partition, LATEST).await?;
        rows.push(vec![
            partition.to_string(),
            leader.to_string(),
            earliest.to_string(),
            latest.to_string(),
        ]);
    }
    let configs = configs(cluster, topic).await?;
    match format {
        Format::Table => {
            println!(
                "topic {topic}  id {}  partitions {}",
                metadata.topic_id,
                partitions.len()
            );
            output::table(
                format,
                &["PARTITION", "LEADER", "EARLIEST", "LATEST"],
                &rows,
            );
            if !configs.is_empty() {
                println!();
                let config_rows: Vec<Vec<String>> = configs
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone()])
                    .collect();
                output::table(format, &["CONFIG", "VALUE"], &config_rows);
            }
        }
        Format::Json => {
            let partitions: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "partition": r[0].parse::<i64>().unwrap_or(-1),
                        "leader": r[1].parse::<i64>().unwrap_or(-1),
                        "earliest": r[2].parse::<i64>().unwrap_or(-1),
                        "latest": r[3].parse::<i64>().unwrap_or(-1),
                    })
                })
                .collect();
            let configs: serde_json::Map<String, serde_json::Value> =
                configs.into_iter().map(|(k, v)| (k, v.into())).collect();
            println!(
                "{}",
                json!({
                    "topic": topic,
                    "topic_id": metadata.topic_id.to_string(),
                    "partitions": partitions,
                    "configs": configs,
                })
            );
        }
    }
    Ok(())
}

/// One partition's earliest or latest offset, from its leader.
pub async fn list_offset(
    cluster: &mut Cluster,
    metadata: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<i64, ClientError> {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let leader = cluster.leader(metadata, partition).await?;
    let ResponseKind::ListOffsets(response) = leader.call(ApiKey::ListOffsets, 6, &request).await?
    else {
        return Err(unexpected("ListOffsets"));
    };
    let answer = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| unexpected("ListOffsets"))?;
    check(|| format!("{topic}[{partition}]"), answer.error_code, None)?;
    Ok(answer.offset)
}

/// The topic's configs that are not defaults, sorted by name.
async fn configs(cluster: &mut Cluster, topic: &str) -> Result<Vec<(String, String)>, ClientError> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(topic))
            .with_configuration_keys(None)]);
    let ResponseKind::DescribeConfigs(response) = cluster
        .any()
        .call(ApiKey::DescribeConfigs, 4, &request)
        .await?
    else {
        return Err(unexpected("DescribeConfigs"));
    };
    let result = response
        .results
        .first()
        .ok_or_else(|| unexpected("DescribeConfigs"))?;
    check(
        || format!("configs of {topic}"),
        result.error_code,
        result.error_message.as_ref(),
    )?;
    let mut configs: Vec<(String, String)> = result
        .configs
        .iter()
        .filter(|c| c.config_source != DEFAULT_CONFIG)
        .map(|c| {
            let value = if c.is_sensitive {
                "(sensitive)".to_string()
            } else {
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()
            };
            (c.name.to_string(), value)
        })
        .collect();
    configs.sort();
    Ok(configs)
}

pub async fn delete(cluster: &mut Cluster, format: Format, topic: &str) -> Result<(), ClientError> {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(name(topic)))
        ]);
    let ResponseKind::DeleteTopics(response) = cluster
        .any()
        .call(ApiKey::DeleteTopics, 6, &request)
        .await?
    else {
        return Err(unexpected("DeleteTopics"));
    };
    let result = response
        .responses
        .first()
        .ok_or_else(|| unexpected("DeleteTopics"))?;
    check(
        || format!("deleting topic {topic}"),
        result.error_code,
        result.error_message.as_ref(),
    )?;
    output::done(
        format,
        &format!("deleted topic {topic}"),
        json!({ "topic": topic, "deleted": true }),
    );
    Ok(())
}

/// Sets `set` and removes `delete` (back to the default) in one request.
pub async fn alter_config(
    cluster: &mut Cluster,
    format: Format,
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), ClientError> {
    if set.is_empty() && delete.is_empty() {
        return Err(ClientError::Usage(
            "alter-config: give --set NAME=VALUE or --delete NAME".into(),
        ));
    }
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let configs = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(text(k))
                .with_config_operation(SET)
                .with_value(Some(text(v)))
        })
        .chain(delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(text(k))
                .with_config_operation(DELETE)
                .with_value(None)
        }))
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(topic))
            .with_configs(configs),
    ]);
    let ResponseKind::IncrementalAlterConfigs(response) = cluster
        .any()
        .call(ApiKey::IncrementalAlterConfigs, 1, &request)
        .await?
    else {
        return Err(unexpected("IncrementalAlterConfigs"));
    };
    let result = response
        .responses
        .first()
        .ok_or_else(|| unexpected("IncrementalAlterConfigs"))?;
    check(
        || format!("altering the configs of {topic}"),
        result.error_code,
        result.error_message.as_ref(),
    )?;
    output::done(
        format,
        &format!("altered the configs of topic {topic}"),
        json!({ "topic": topic, "set": set.len(), "deleted": delete.len() }),
    );
    Ok(())
}

/// Raises the topic's partition count to `total`.
pub async fn add_partitions(
    cluster: &mut Cluster,
    format: Format,
    topic: &str,
    total: i32,
) -> Result<(), ClientError> {
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name(topic))
            .with_count(total)
            .with_assignments(None)]);
    let ResponseKind::CreatePartitions(response) = cluster
        .any()
        .call(ApiKey::CreatePartitions, 3, &request)
        .await?
    else {
        return Err(unexpected("CreatePartitions"));
    };
    let result = response
        .results
        .first()
        .ok_or_else(|| unexpected("CreatePartitions"))?;
    check(
        || format!("adding partitions to {topic}"),
        result.error_code,
        result.error_message.as_ref(),
    )?;
    output::done(
        format,
        &format!("topic {topic} now has {total} partitions"),
        json!({ "topic": topic, "partitions": total }),
    );
    Ok(())
}
