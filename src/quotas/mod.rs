//! Client quotas as an agent enforces them: the quotas configured in the
//! catalog (re-read every few seconds, so every agent sees another's changes),
//! Kafka's choice of the quota that applies to a client, and the rates
//! measured per client (bytes produced and fetched, time spent on its
//! requests), from which each response's throttle time follows.
//!
//! As on Kafka, each agent enforces the quotas on its own traffic: a client
//! spread over three agents may move three times its quota in all.

mod mute;
mod rate;
pub mod request_time;
mod response_throttle;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::quotas::{ClientQuota, EntityName};
use streamhouse_metadata::Catalog;
use tokio::time::Instant;

pub use mute::Mute;
use rate::Rate;
pub use request_time::RequestMeter;
pub use response_throttle::raise_throttle;

/// Bytes per second a client may produce.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a client may fetch.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// The share of one thread's time the agent may spend on a client's
/// requests, in percent (`request_time`).
pub const REQUEST_PERCENTAGE: &str = "request_percentage";

/// The user every client is until clients authenticate: Kafka's principal of
/// an unauthenticated connection.
pub const ANONYMOUS_USER: &str = "ANONYMOUS";

/// Rates kept before idle ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// How often an agent re-reads the quotas from the catalog.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Who a request counts against: the user and client id quotas name.
/// Built for every produce and fetch, so it copies nothing: the user is the
/// connection's, the client id shares the request header's bytes.
#[derive(Clone, Debug)]
pub struct QuotaClient {
    pub user: Arc<str>,
    pub client_id: StrBytes,
}

impl QuotaClient {
    /// The client of a request with this header client id (none is Kafka's
    /// empty client id) on a connection authenticated as `user`
    /// ([`ANONYMOUS_USER`] without authentication).
    pub fn of(user: &Arc<str>, client_id: &Option<StrBytes>) -> QuotaClient {
        QuotaClient {
            user: Arc::clone(user),
            client_id: client_id.clone().unwrap_or_default(),
        }
    }
}

/// What a quota limits.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum QuotaKind {
    /// Record bytes produced.
    Produce,
    /// Record bytes fetched.
    Fetch,
    /// Nanoseconds spent on requests (`request_time`).
    Request,
}

impl QuotaKind {
    const ALL: [QuotaKind; 3] = [QuotaKind::Produce, QuotaKind::Fetch, QuotaKind::Request];

    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
        }
    }

    /// This kind's bit in [`ClientQuotas::kinds`].
    fn bit(self) -> u8 {
        match self {
            QuotaKind::Produce => 1,
            QuotaKind::Fetch => 2,
            QuotaKind::Request => 4,
        }
    }

    /// A configured value as units (bytes, nanoseconds) per second.
    fn per_second(self, value: f64) -> f64 {
        match self {
            QuotaKind::Produce | QuotaKind::Fetch => value,
            QuotaKind::Request => request_time::nanos_per_second(value),
        }
    }

    /// The longest a client is told to wait. Kafka bounds a request-time
    /// throttle by one sample window (so a client under a tiny quota still
    /// gets an answer each second); a byte-rate throttle here by the whole
    /// window.
    fn max_throttle(self) -> Duration {
        match self {
            QuotaKind::Produce | QuotaKind::Fetch => rate::MAX_WINDOW,
            QuotaKind::Request => rate::SAMPLE,
        }
    }
}

/// Which part of an entity a precedence step looks for.
#[derive(Clone, Copy)]
enum Part {
    /// The client's own name.
    Named,
    Default,
    Absent,
}

impl Part {
    fn matches(self, part: &Option<EntityName>, name: &str) -> bool {
        match (self, part) {
            (Part::Named, Some(EntityName::Named(named))) => named == name,
            (Part::Default, Some(EntityName::Default)) => true,
            (Part::Absent, None) => true,
            _ => false,
        }
    }

    /// The name the rate is measured for: the client's own for a part the
    /// entity has, empty for one it has not.
    fn rate_name(self, name: &str) -> String {
        match self {
            Part::Absent => String::new(),
            Part::Named | Part::Default => name.to_owned(),
        }
    }
}

/// Kafka's order of precedence, (user, client id): the most specific entity
/// with a value for the key wins, a name before the default.
const PRECEDENCE: [(Part, Part); 8] = [
    (Part::Named, Part::Named),
    (Part::Named, Part::Default),
    (Part::Named, Part::Absent),
    (Part::Default, Part::Named),
    (Part::Default, Part::Default),
    (Part::Default, Part::Absent),
    (Part::Absent, Part::Named),
    (Part::Absent, Part::Default),
];

/// The quota that applies to a client, and whose traffic counts against it.
#[derive(Clone, Debug, PartialEq)]
struct Applied {
    kind: QuotaKind,
    /// Units (bytes, nanoseconds) per second.
    per_second: f64,
    /// The user and client id the rate is measured for: the client's own for
    /// each part the entity has (named or default, as Kafka's metric tags),
    /// empty for a part it has not, so clients sharing a quota share a rate.
    user: String,
    client_id: String,
}

/// The configured quotas and the measured rates; one per agent.
#[derive(Default)]
pub struct ClientQuotas {
    configured: RwLock<Vec<ClientQuota>>,
    /// The kinds some configured quota limits ([`QuotaKind::bit`]): with
    /// none of a kind, its traffic is not even looked at, without a lock.
    kinds: AtomicU8,
    rates: Mutex<HashMap<(QuotaKind, String, String), Rate>>,
}

impl ClientQuotas {
    /// Replaces the configured quotas (a refresh from the catalog).
    pub fn replace(&self, quotas: Vec<ClientQuota>) {
        let kinds = QuotaKind::ALL
            .iter()
            .filter(|kind| quotas.iter().any(|q| q.values.contains_key(kind.key())))
            .fold(0, |bits, kind| bits | kind.bit());
        let mut configured = self
            .configured
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *configured = quotas;
        self.kinds.store(kinds, Ordering::Relaxed);
    }

    /// Whether some quota of this kind is configured.
    fn limits(&self, kind: QuotaKind) -> bool {
        self.kinds.load(Ordering::Relaxed) & kind.bit() != 0
    }

    pub fn configured(&self) -> Vec<ClientQuota> {
        self.configured
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the quotas from the catalog; on failure the last ones stay.
    pub async fn refresh(&self, catalog: &dyn Catalog) {
        match catalog.client_quotas().await {
            Ok(quotas) => self.replace(quotas),
            Err(e) => tracing::debug!(error = %e, "client quotas not refreshed"),
        }
    }

    /// Refreshes the quotas every [`REFRESH_EVERY`] while `quotas` lives.
    pub fn refresh_in_background(quotas: &Arc<ClientQuotas>, catalog: Arc<dyn Catalog>) {
        let quotas = Arc::downgrade(quotas);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(quotas) = quotas.upgrade() else {
                    return;
                };
                quotas.refresh(catalog.as_ref()).await;
            }
        });
    }

    /// The quota of this kind that applies to the client, in Kafka's order
    /// of precedence ([`PRECEDENCE`]).
    fn applied(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<Applied> {
        if !self.limits(kind) {
            return None;
        }
        let configured = self
            .configured
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        PRECEDENCE.iter().find_map(|&(user_part, client_part)| {
            let value = configured
                .iter()
                .find(|quota| {
                    user_part.matches(&quota.entity.user, user)
                        && client_part.matches(&quota.entity.client_id, client_id)
                })
                .and_then(|quota| quota.values.get(kind.key()))?;
            Some(Applied {
                kind,
                per_second: kind.per_second(*value),
                user: user_part.rate_name(user),
                client_id: client_part.rate_name(client_id),
            })
        })
    }

    /// Counts `bytes` of a client's traffic against its quota and returns how
    /// long the client must wait: zero within the quota. Without a quota
    /// nothing is counted.
    pub fn record(&self, kind: QuotaKind, client: &QuotaClient, bytes: u64) -> Duration {
        self.record_at(kind, &client.user, &client.client_id, bytes, Instant::now())
    }

    fn record_at(
        &self,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: u64,
        now: Instant,
    ) -> Duration {
        let Some(applied) = self.applied(kind, user, client_id) else {
            return Duration::ZERO;
        };
        self.record_applied(applied, bytes, now, true)
    }

    /// Counts `units` against an applied quota; with `throttle`, returns how
    /// long the client must wait (otherwise zero: the units are counted for
    /// later requests only).
    fn record_applied(
        &self,
        applied: Applied,
        units: u64,
        now: Instant,
        throttle: bool,
    ) -> Duration {
        let mut rates = self
            .rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A default quota measures each client id on its own: a client
        // inventing ids must not grow this map for ever. Rates whose samples
        // have all expired say nothing any more and go.
        if rates.len() >= PRUNE_ABOVE {
            rates.retain(|_, rate| !rate.is_idle(now));
        }
        let rate = rates
            .entry((applied.kind, applied.user, applied.client_id))
            .or_default();
        rate.record(units, now);
        if !throttle {
            return Duration::ZERO;
        }
        rate.throttle(applied.per_second, now)
            .min(applied.kind.max_throttle())
    }

    /// The most bytes one response may carry for this client: what its quota
    /// allows over the rate's shortest window, so that one response never
    /// puts it over (Kafka caps a fetch the same way). None without a quota.
    pub fn window_bytes(&self, kind: QuotaKind, client: &QuotaClient) -> Option<u64> {
        let applied = self.applied(kind, &client.user, &client.client_id)?;
        Some((applied.per_second * rate::MIN_WINDOW.as_secs_f64()) as u64)
    }

    /// Takes back bytes recorded for a response that was not sent as
    /// recorded (a throttled fetch answers without its records, as Kafka's).
    pub fn unrecord(&self, kind: QuotaKind, client: &QuotaClient, bytes: u64) {
        let Some(applied) = self.applied(kind, &client.user, &client.client_id) else {
            return;
        };
        let mut rates = self
            .rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(rate) = rates.get_mut(&(kind, applied.user, applied.client_id)) {
            rate.unrecord(bytes);
        }
    }
}

/// Milliseconds for a response's `throttle_time_ms`.
pub fn throttle_ms(throttle: Duration) -> i32 {
    i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use streamhouse_metadata::quotas::QuotaEntity;

    fn quota(user: Option<EntityName>, client_id: Option<EntityName>, rate: f64) -> ClientQuota {
        ClientQuota {
            entity: QuotaEntity { user, client_id },
            values: BTreeMap::from([(PRODUCER_BYTE_RATE.to_owned(), rate)]),
        }
    }

    fn named(name: &str) -> Option<EntityName> {
        Some(EntityName::Named(name.to_owned()))
    }

    #[test]
    fn the_most_specific_entity_applies_and_defaults_measure_each_client() {
        let quotas = ClientQuotas::default();
        quotas.replace(vec![
            quota(None, Some(EntityName::Default), 100.0),
            quota(None, named("special"), 200.0),
            quota(named("alice"), None, 300.0),
            quota(named("alice"), named("special"), 400.0),
        ]);
        let applied = |user: &str, client: &str| {
            quotas
                .applied(QuotaKind::Produce, user, client)
                .map(|a| (a.per_second, a.user, a.client_id))
        };
        assert_eq!(
            applied("bob", "special"),
            Some((200.0, "".into(), "special".into()))
        );
        // The default client quota is each client's own.
        assert_eq!(
            applied("bob", "other"),
            Some((100.0, "".into(), "other".into()))
        );
        // A user quota is shared by the user's clients.
        assert_eq!(
            applied("alice", "other"),
            Some((300.0, "alice".into(), "".into()))
        );
        assert_eq!(
            applied("alice", "special"),
            Some((400.0, "alice".into(), "special".into()))
        );
        assert_eq!(quotas.applied(QuotaKind::Fetch, "bob", "special"), None);
    }

    #[test]
    fn idle_rates_of_many_client_ids_are_dropped() {
        let quotas = ClientQuotas::default();
        quotas.replace(vec![quota(None, Some(EntityName::Default), 1000.0)]);
        let start = Instant::now();
        for i in 0..PRUNE_ABOVE {
            quotas.record_at(QuotaKind::Produce, ANONYMOUS_USER, &i.to_string(), 1, start);
        }
        let rates = |quotas: &ClientQuotas| quotas.rates.lock().unwrap().len();
        assert_eq!(rates(&quotas), PRUNE_ABOVE);
        // Once their samples have expired, the next client's record drops them.
        let later = start + Duration::from_secs(12);
        quotas.record_at(QuotaKind::Produce, ANONYMOUS_USER, "new", 1, later);
        assert_eq!(rates(&quotas), 1);
    }

    #[test]
    fn traffic_over_the_quota_is_throttled_in_proportion() {
        let quotas = ClientQuotas::default();
        quotas.replace(vec![quota(None, named("c"), 1000.0)]);
        let start = Instant::now();
        // 10 s at exactly the quota: no throttle.
        for second in 0..10 {
            let at = start + Duration::from_secs(second);
            assert_eq!(
                quotas.record_at(QuotaKind::Produce, ANONYMOUS_USER, "c", 1000, at),
                Duration::ZERO
            );
        }
        // Another 10,000 bytes at once doubles the rate over the 10 s window:
        // the client waits as long as the window, to bring it back.
        let throttle = quotas.record_at(
            QuotaKind::Produce,
            ANONYMOUS_USER,
            "c",
            10_000,
            start + Duration::from_secs(10),
        );
        assert!(
            (Duration::from_secs(9)..=Duration::from_secs(11)).contains(&throttle),
            "{throttle:?}"
        );
        // Other clients have no quota and are never throttled.
        let other = QuotaClient::of(
            &Arc::from(ANONYMOUS_USER),
            &Some(StrBytes::from_static_str("d")),
        );
        assert_eq!(
            quotas.record(QuotaKind::Produce, &other, 1 << 30),
            Duration::ZERO
        );
    }
}
