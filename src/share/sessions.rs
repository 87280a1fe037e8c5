//! Share sessions (KIP-932): which partitions a member of a share group
//! fetches from this agent, and the epoch its next ShareFetch or
//! ShareAcknowledge must carry. A session opens with epoch 0 (ShareFetch),
//! each request names the partitions added since and forgets others, and
//! epoch -1 closes it, and so does the end of the connection that opened it
//! (a consumer killed, or gone without closing: its records go back to the
//! group at once rather than when their locks lapse, as in Kafka). Sessions
//! live in this agent's memory only, as in Kafka's brokers: a client that
//! moves to another agent opens a new one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::TopicId;

/// Sessions one agent keeps at most (Kafka's group.share.max.share.sessions).
pub const MAX_SESSIONS: usize = 2000;

/// A session unused this long is forgotten (its member is gone).
const IDLE: Duration = Duration::from_secs(120);

pub const OPEN_EPOCH: i32 = 0;
pub const CLOSE_EPOCH: i32 = -1;

type Key = (String, String);
pub type SessionPartitions = BTreeSet<(TopicId, i32)>;

/// Names one client connection to this agent for as long as it is open.
pub type ConnectionId = u64;

/// A session its connection's end closed: the member and its partitions.
#[derive(Debug, PartialEq, Eq)]
pub struct Orphaned {
    pub group_id: String,
    pub member_id: String,
    pub partitions: SessionPartitions,
}

struct Session {
    /// The connection that opened it (a member that opens its session
    /// again on another connection moves it there).
    connection: ConnectionId,
    next_epoch: i32,
    partitions: SessionPartitions,
    used: Instant,
}

#[derive(Default)]
pub struct ShareSessions {
    sessions: Mutex<HashMap<Key, Session>>,
}

impl ShareSessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Session>> {
        // Every change is a single insert, remove or field update.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the member's session on by one request at `epoch`, adding
    /// `added` and dropping `forgotten`; returns the session's partitions
    /// (for epoch -1, those of the session just closed). Epoch 0 (a fetch
    /// only) replaces any session the member had, opened on `connection`.
    #[allow(clippy::too_many_arguments)]
    pub fn advance(
        &self,
        connection: ConnectionId,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        added: &[(TopicId, i32)],
        forgotten: &[(TopicId, i32)],
        now: Instant,
    ) -> Result<SessionPartitions, ResponseError> {
        let key = (group_id.to_owned(), member_id.to_owned());
        let mut sessions = self.map();
        if epoch == OPEN_EPOCH {
            sessions.retain(|_, s| now.duration_since(s.used) < IDLE);
            if !sessions.contains_key(&key) && sessions.len() >= MAX_SESSIONS {
                return Err(ResponseError::ShareSessionLimitReached);
            }
            let partitions: SessionPartitions = added.iter().copied().collect();
            sessions.insert(
                key,
                Session {
                    connection,
                    next_epoch: 1,
                    partitions: partitions.clone(),
                    used: now,
                },
            );
            return Ok(partitions);
        }
        let Some(session) = sessions.get_mut(&key) else {
            return Err(ResponseError::ShareSessionNotFound);
        };
        if epoch == CLOSE_EPOCH {
            let mut session = sessions
                .remove(&key)
                .map(|s| s.partitions)
                .unwrap_or_default();
            session.extend(added.iter().copied());
            return Ok(session);
        }
        if epoch != session.next_epoch {
            return Err(ResponseError::InvalidShareSessionEpoch);
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.used = now;
        session.partitions.extend(added.iter().copied());
        for partition in forgotten {
            session.partitions.remove(partition);
        }
        Ok(session.partitions.clone())
    }

    /// Closes the sessions `connection` opened (it ended) and returns them.
    pub fn close_connection(&self, connection: ConnectionId) -> Vec<Orphaned> {
        let mut sessions = self.map();
        let keys: Vec<Key> = sessions
            .iter()
            .filter(|(_, s)| s.connection == connection)
            .map(|(key, _)| key.clone())
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                let session = sessions.remove(&key)?;
                Some(Orphaned {
                    group_id: key.0,
                    member_id: key.1,
                    partitions: session.partitions,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_move_on_by_one_and_a_session_closes() {
        let sessions = ShareSessions::default();
        let now = Instant::now();
        let t = TopicId::from_u128(1);
        let opened = sessions
            .advance(7, "g", "m", 0, &[(t, 0)], &[], now)
            .unwrap();
        assert_eq!(opened.len(), 1);
        assert_eq!(
            sessions.advance(7, "g", "m", 2, &[], &[], now),
            Err(ResponseError::InvalidShareSessionEpoch)
        );
        let grown = sessions
            .advance(7, "g", "m", 1, &[(t, 1)], &[(t, 0)], now)
            .unwrap();
        assert_eq!(grown.into_iter().collect::<Vec<_>>(), vec![(t, 1)]);
        let closed = sessions.advance(7, "g", "m", -1, &[], &[], now).unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            sessions.advance(7, "g", "m", 2, &[], &[], now),
            Err(ResponseError::ShareSessionNotFound)
        );
        assert_eq!(
            sessions.advance(7, "g", "other", 1, &[], &[], now),
            Err(ResponseError::ShareSessionNotFound)
        );
    }

    #[test]
    fn the_end_of_a_connection_closes_the_sessions_it_opened_only() {
        let sessions = ShareSessions::default();
        let now = Instant::now();
        let t = TopicId::from_u128(1);
        sessions
            .advance(1, "g", "a", 0, &[(t, 0)], &[], now)
            .unwrap();
        sessions
            .advance(1, "g", "moved", 0, &[(t, 1)], &[], now)
            .unwrap();
        sessions
            .advance(2, "g", "b", 0, &[(t, 0)], &[], now)
            .unwrap();
        // "moved" opened its session again on connection 3.
        sessions
            .advance(3, "g", "moved", 0, &[(t, 1)], &[], now)
            .unwrap();
        let closed = sessions.close_connection(1);
        assert_eq!(
            closed,
            vec![Orphaned {
                group_id: "g".into(),
                member_id: "a".into(),
                partitions: [(t, 0)].into_iter().collect(),
            }]
        );
        assert!(sessions.close_connection(1).is_empty());
        assert_eq!(
            sessions.advance(1, "g", "a", 1, &[], &[], now),
            Err(ResponseError::ShareSessionNotFound)
        );
        assert!(sessions.advance(2, "g", "b", 1, &[], &[], now).is_ok());
        assert!(sessions.advance(3, "g", "moved", 1, &[], &[], now).is_ok());
    }
}
