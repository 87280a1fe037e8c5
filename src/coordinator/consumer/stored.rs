//! The catalog's copy of a consumer-protocol group: one JSON document in
//! `consumer_groups.consumer_state`, written at every change of what the
//! members' next heartbeats depend on (epochs, subscriptions, assignments).
//! Timers are not stored: a coordinator that loads the group starts every
//! session anew, as Kafka does after loading `__consumer_offsets`.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Partitions;
use super::{after, topic_pattern, ClassicMember, ConsumerGroup, ConsumerMember, MemberState};
use super::{TopicShape, Topics};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct StoredState {
    epoch: i32,
    assignment_epoch: i32,
    members: Vec<StoredMember>,
    target: BTreeMap<String, Vec<StoredPartitions>>,
    subscribed_topics: Vec<StoredTopic>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct StoredMember {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    topics: Vec<String>,
    regex: Option<String>,
    assignor: Option<String>,
    rebalance_timeout_ms: i32,
    epoch: i32,
    previous_epoch: i32,
    state: String,
    assigned: Vec<StoredPartitions>,
    revoking: Vec<StoredPartitions>,
    departed: bool,
    /// (topic id, partition, epoch) for each partition held.
    #[serde(default)]
    assigned_epochs: Vec<(String, i32, i32)>,
    /// A classic member's session timeout and protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classic: Option<StoredClassic>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct StoredClassic {
    session_timeout_ms: i32,
    /// (name, metadata in base64).
    protocols: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct StoredPartitions {
    topic_id: String,
    partitions: Vec<i32>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct StoredTopic {
    name: String,
    id: String,
    partitions: i32,
}

fn store_partitions(partitions: &Partitions) -> Vec<StoredPartitions> {
    partitions
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| StoredPartitions {
            topic_id: id.to_string(),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn load_partitions(stored: Vec<StoredPartitions>) -> Result<Partitions, String> {
    stored
        .into_iter()
        .map(|s| Ok((uuid(&s.topic_id)?, s.partitions.into_iter().collect())))
        .collect()
}

fn uuid(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text).map_err(|e| format!("topic id '{text}': {e}"))
}

fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Stable => "stable",
        MemberState::UnrevokedPartitions => "unrevoked_partitions",
        MemberState::UnreleasedPartitions => "unreleased_partitions",
    }
}

impl ConsumerGroup {
    pub fn to_json(&self) -> String {
        let state = StoredState {
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    topics: m.subscribed_topic_names.clone(),
                    regex: m.subscribed_topic_regex.clone(),
                    assignor: m.server_assignor.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    state: state_name(m.state).to_owned(),
                    assigned: store_partitions(&m.assigned),
                    revoking: store_partitions(&m.revoking),
                    departed: m.departed,
                    assigned_epochs: m
                        .assigned_epochs
                        .iter()
                        .map(|((id, p), epoch)| (id.to_string(), *p, *epoch))
                        .collect(),
                    classic: m.classic.as_ref().map(|c| StoredClassic {
                        session_timeout_ms: c.session_timeout_ms,
                        protocols: c
                            .protocols
                            .iter()
                            .map(|(name, metadata)| (name.clone(), BASE64.encode(metadata)))
                            .collect(),
                    }),
                })
                .collect(),
            target: self
                .target
                .iter()
                .map(|(id, partitions)| (id.clone(), store_partitions(partitions)))
                .collect(),
            subscribed_topics: self
                .subscribed_topics
                .iter()
                .map(|(name, shape)| StoredTopic {
                    name: name.clone(),
                    id: shape.id.to_string(),
                    partitions: shape.partitions,
                })
                .collect(),
        };
        serde_json::to_string(&state).unwrap_or_default()
    }

    /// The group as stored, every session and revocation timer starting at
    /// `now`; an error names what the document got wrong.
    pub fn from_json(
        json: &str,
        session_timeout_ms: i32,
        now: Instant,
    ) -> Result<ConsumerGroup, String> {
        let stored: StoredState = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut members = BTreeMap::new();
        for m in stored.members {
            let state = match m.state.as_str() {
                "stable" => MemberState::Stable,
                "unrevoked_partitions" => MemberState::UnrevokedPartitions,
                "unreleased_partitions" => MemberState::UnreleasedPartitions,
                other => return Err(format!("member state '{other}'")),
            };
            let revoking = load_partitions(m.revoking)?;
            let mut assigned_epochs = BTreeMap::new();
            for (id, partition, epoch) in m.assigned_epochs {
                assigned_epochs.insert((uuid(&id)?, partition), epoch);
            }
            let revocation_deadline =
                (!revoking.is_empty()).then(|| after(now, m.rebalance_timeout_ms));
            let classic = match m.classic {
                Some(c) => {
                    let mut protocols = Vec::with_capacity(c.protocols.len());
                    for (name, metadata) in c.protocols {
                        let metadata = BASE64
                            .decode(&metadata)
                            .map_err(|e| format!("protocol {name} metadata: {e}"))?;
                        protocols.push((name, Bytes::from(metadata)));
                    }
                    Some(ClassicMember {
                        session_timeout_ms: c.session_timeout_ms,
                        protocols,
                    })
                }
                None => None,
            };
            // A classic member's session is its own.
            let session = classic
                .as_ref()
                .map_or(session_timeout_ms, |c| c.session_timeout_ms);
            members.insert(
                m.id.clone(),
                ConsumerMember {
                    id: m.id,
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    subscribed_topic_names: m.topics,
                    topic_pattern: m.regex.as_deref().and_then(topic_pattern),
                    subscribed_topic_regex: m.regex,
                    server_assignor: m.assignor,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    state,
                    assigned: load_partitions(m.assigned)?,
                    revoking,
                    assigned_epochs,
                    departed: m.departed,
                    session_deadline: after(now, session),
                    revocation_deadline,
                    classic,
                },
            );
        }
        let mut target = BTreeMap::new();
        for (id, partitions) in stored.target {
            target.insert(id, load_partitions(partitions)?);
        }
        let mut subscribed_topics = Topics::new();
        for t in stored.subscribed_topics {
            subscribed_topics.insert(
                t.name,
                TopicShape {
                    id: uuid(&t.id)?,
                    partitions: t.partitions,
                },
            );
        }
        Ok(ConsumerGroup {
            epoch: stored.epoch,
            assignment_epoch: stored.assignment_epoch,
            members,
            target,
            subscribed_topics,
        })
    }
}
