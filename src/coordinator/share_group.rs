//! Share groups (KIP-932, queues): membership by ShareGroupHeartbeat, and the
//! group's assignment by Kafka's `simple` assignor (`share_assignor.rs`),
//! computed again whenever the group epoch grows. Which records each member
//! gets is decided per record by the share-partition state (`crate::share`),
//! so members may share partitions and no partition has to be revoked before
//! another member gets it. Pure state, `now` passed in; a `Group` holds it in
//! `Group::share` while it is a share group.

use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use super::consumer::{after, Partitions, Refusal, Topics};
use super::share_assignor::{self, ShareMemberSpec};
use super::GroupRules;

#[derive(Clone, Debug, Default)]
pub struct ShareGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// The subscribed topics as they were when the epoch last grew.
    subscribed_topics: Topics,
}

#[derive(Clone, Debug)]
pub struct ShareMember {
    pub id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub epoch: i32,
    /// Its part of the group's assignment.
    pub assigned: Partitions,
    /// The assignment it was last sent by this agent (`None`: nothing yet,
    /// as after the group was loaded); a heartbeat carries the assignment
    /// when the two differ.
    told: Option<Partitions>,
    pub session_deadline: Instant,
}

/// One ShareGroupHeartbeat.
#[derive(Clone, Debug, Default)]
pub struct ShareHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareAnswer {
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Partitions>,
}

fn invalid(message: &str) -> Refusal {
    (ResponseError::InvalidRequest, message.to_owned())
}

/// Kafka's request checks, before the group is looked at.
pub fn validate_share(request: &ShareHeartbeat) -> Result<(), Refusal> {
    if request.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    if request.member_epoch < -1 {
        return Err(invalid("MemberEpoch is invalid."));
    }
    if request.rack_id.as_deref() == Some("") {
        return Err(invalid("RackId can't be empty."));
    }
    if request.member_epoch == 0 && request.subscribed_topic_names.is_none() {
        return Err(invalid(
            "SubscribedTopicNames must be set in first request.",
        ));
    }
    Ok(())
}

impl ShareGroup {
    /// "Empty" or "Stable", as Kafka names share groups' states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    pub fn heartbeat(
        &mut self,
        request: ShareHeartbeat,
        topics: &Topics,
        rules: &GroupRules,
        now: Instant,
    ) -> Result<ShareAnswer, Refusal> {
        let id = request.member_id.clone();
        let full_request = request.subscribed_topic_names.is_some();
        let unknown = || {
            (
                ResponseError::UnknownMemberId,
                format!("Member {id} is not a member of the group."),
            )
        };
        let mut bump = false;
        match request.member_epoch {
            -1 => {
                if self.members.remove(&id).is_none() {
                    return Err(unknown());
                }
                self.epoch += 1;
                self.reassign();
                return Ok(ShareAnswer {
                    member_epoch: -1,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                });
            }
            0 => {
                if !self.members.contains_key(&id) {
                    if self.members.len() >= rules.max_size {
                        return Err((
                            ResponseError::GroupMaxSizeReached,
                            format!(
                                "The share group has reached its maximum capacity of {} members.",
                                rules.max_size
                            ),
                        ));
                    }
                    bump = true;
                }
                let member = self.members.entry(id.clone()).or_insert(ShareMember {
                    id: id.clone(),
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    subscribed_topic_names: Vec::new(),
                    epoch: 0,
                    assigned: Partitions::new(),
                    told: None,
                    session_deadline: now,
                });
                member.epoch = 0;
            }
            epoch => {
                let member = self.members.get(&id).ok_or_else(unknown)?;
                if member.epoch != epoch {
                    return Err((
                        ResponseError::FencedMemberEpoch,
                        format!(
                            "The share group member has a member epoch ({epoch}) other than \
                             the one known by the group coordinator ({}).",
                            member.epoch
                        ),
                    ));
                }
            }
        }
        let member = self.members.get_mut(&id).ok_or_else(unknown)?;
        member.session_deadline = after(now, rules.share_session_timeout_ms);
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        if request.rack_id.is_some() {
            member.rack_id = request.rack_id;
        }
        if let Some(mut names) = request.subscribed_topic_names {
            names.sort();
            names.dedup();
            bump |= names != member.subscribed_topic_names;
            member.subscribed_topic_names = names;
        }
        let subscribed: Topics = topics
            .iter()
            .filter(|(name, _)| {
                self.members
                    .values()
                    .any(|m| m.subscribed_topic_names.contains(name))
            })
            .map(|(name, shape)| (name.clone(), shape.clone()))
            .collect();
        if subscribed != self.subscribed_topics {
            self.subscribed_topics = subscribed;
            bump = true;
        }
        if bump {
            self.epoch += 1;
            self.reassign();
        }
        let Some(member) = self.members.get_mut(&id) else {
            return Err(unknown());
        };
        // Also on every full request (one naming its subscription), as
        // Kafka answers them.
        let changed = member.told.as_ref() != Some(&member.assigned)
            || request.member_epoch == 0
            || full_request;
        if changed {
            member.told = Some(member.assigned.clone());
        }
        member.epoch = self.epoch;
        Ok(ShareAnswer {
            member_epoch: member.epoch,
            heartbeat_interval_ms: rules.share_heartbeat_interval_ms,
            assignment: changed.then(|| member.assigned.clone()),
        })
    }

    /// The group's assignment for its members and subscribed topics as they
    /// are now, each member keeping what it can of its own.
    fn reassign(&mut self) {
        let specs = self
            .members
            .iter()
            .map(|(id, m)| {
                let spec = ShareMemberSpec {
                    subscribed: &m.subscribed_topic_names,
                    current: &m.assigned,
                };
                (id.clone(), spec)
            })
            .collect();
        let assignment = share_assignor::assign(&specs, &self.subscribed_topics);
        for (id, assigned) in assignment {
            if let Some(member) = self.members.get_mut(&id) {
                member.assigned = assigned;
            }
        }
    }

    /// Removes members whose session lapsed; whether any was.
    pub fn tick(&mut self, group_id: &str, now: Instant) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = group_id, member = %id, "share session expired; removing member");
            self.members.remove(id);
            self.epoch += 1;
        }
        if !expired.is_empty() {
            self.reassign();
        }
        !expired.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredShareGroup {
    epoch: i32,
    members: Vec<StoredShareMember>,
}

#[derive(Serialize, Deserialize)]
struct StoredShareMember {
    id: String,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    topics: Vec<String>,
    epoch: i32,
}

impl ShareGroup {
    /// The stored document: members and epochs (assignments follow from the
    /// subscriptions at the next heartbeat).
    pub fn to_json(&self) -> String {
        let stored = StoredShareGroup {
            epoch: self.epoch,
            members: self
                .members
                .values()
                .map(|m| StoredShareMember {
                    id: m.id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    topics: m.subscribed_topic_names.clone(),
                    epoch: m.epoch,
                })
                .collect(),
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    pub fn from_json(json: &str, session_ms: i32, now: Instant) -> Result<ShareGroup, String> {
        let stored: StoredShareGroup = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let members = stored
            .members
            .into_iter()
            .map(|m| {
                let member = ShareMember {
                    id: m.id.clone(),
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    subscribed_topic_names: m.topics,
                    epoch: m.epoch,
                    assigned: Partitions::new(),
                    told: None,
                    session_deadline: after(now, session_ms),
                };
                (m.id, member)
            })
            .collect();
        Ok(ShareGroup {
            epoch: stored.epoch,
            members,
            subscribed_topics: Topics::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::consumer::TopicShape;

    #[test]
    fn a_loaded_member_is_told_its_assignment_even_when_it_is_empty() {
        let now = Instant::now();
        let rules = GroupRules::default();
        let mut group = ShareGroup::default();
        let topics: Topics = [(
            "t".to_owned(),
            TopicShape {
                id: uuid::Uuid::from_u128(1),
                partitions: 1,
            },
        )]
        .into_iter()
        .collect();
        let join = ShareHeartbeat {
            member_id: "a".into(),
            member_epoch: 0,
            subscribed_topic_names: Some(vec!["t".into()]),
            ..ShareHeartbeat::default()
        };
        let joined = group.heartbeat(join, &topics, &rules, now).unwrap();
        assert_eq!(joined.assignment.map(|a| a.len()), Some(1));

        // Another agent loads the group; the topic is gone meanwhile.
        let mut loaded = ShareGroup::from_json(&group.to_json(), 45_000, now).unwrap();
        let beat = ShareHeartbeat {
            member_id: "a".into(),
            member_epoch: joined.member_epoch,
            ..ShareHeartbeat::default()
        };
        let answer = loaded
            .heartbeat(beat.clone(), &Topics::new(), &rules, now)
            .unwrap();
        assert_eq!(
            answer.assignment,
            Some(Partitions::new()),
            "told to drop what it had"
        );
        let again = loaded.heartbeat(beat, &Topics::new(), &rules, now).unwrap();
        assert_eq!(again.assignment, None, "told once");
    }
}
