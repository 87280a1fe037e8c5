//! One member of a classic group, and the results the coordinator hands back to
//! members waiting in JoinGroup or SyncGroup.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

/// What a JoinGroup is answered with.
#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub member_id: String,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// Every member with its metadata for the chosen protocol; only for the leader.
    pub members: Vec<JoinedMember>,
    /// A static leader rejoined a stable group: it need not assign again (v9+).
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(member_id: &str, error: ResponseError) -> JoinResult {
        JoinResult {
            error: Some(error),
            member_id: member_id.to_owned(),
            generation: -1,
            ..JoinResult::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a SyncGroup is answered with.
#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(error),
            ..SyncResult::default()
        }
    }
}

/// A JoinGroup as the group sees it, whatever its wire version.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first be given its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// The session expires when no heartbeat (or join, sync, commit) arrives by then.
    pub session_deadline: Instant,
}

impl Member {
    pub fn new(id: String, request: &JoinRequest, now: Instant) -> Member {
        let mut member = Member {
            id,
            instance_id: request.instance_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            rebalance_timeout_ms: 0,
            session_timeout_ms: 0,
            protocol_type: String::new(),
            protocols: Vec::new(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            session_deadline: now,
        };
        member.update(request, now);
        member
    }

    /// Takes the timeouts and protocols of a (re)join.
    pub fn update(&mut self, request: &JoinRequest, now: Instant) {
        self.rebalance_timeout_ms = request.rebalance_timeout_ms;
        self.session_timeout_ms = request.session_timeout_ms;
        self.protocol_type = request.protocol_type.clone();
        self.protocols = request.protocols.clone();
        self.heartbeat(now);
    }

    pub fn heartbeat(&mut self, now: Instant) {
        self.session_deadline = now + millis(self.session_timeout_ms);
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Members waiting for a JoinGroup or SyncGroup answer are alive by definition.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none() && self.sync_waiter.is_none() && now >= self.session_deadline
    }

    pub fn answer_join(&mut self, result: JoinResult) {
        if let Some(waiter) = self.join_waiter.take() {
            // The client may have gone; nothing to do then.
            let _ = waiter.send(result);
        }
    }

    pub fn answer_sync(&mut self, result: SyncResult) {
        if let Some(waiter) = self.sync_waiter.take() {
            let _ = waiter.send(result);
        }
    }
}

/// Timeouts arrive as i32 milliseconds; negative ones count as zero.
pub fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
