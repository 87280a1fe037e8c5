//! Request-time quotas (`request_percentage`; Kafka's
//! ClientRequestQuotaManager, KIP-124): the time an agent works on the
//! requests of a client under such a quota, counted against it as a share of
//! one thread's time (100 is one thread busy all the time).
//!
//! What is measured. Kafka counts the time its request-handler and network
//! threads spend on a request, and not the time the request waits in
//! purgatory (a produce awaiting replication, a fetch's long poll). An agent
//! serves requests as tasks on a few worker threads, and a waiting request
//! holds no thread. So the measure is the time threads spend running the
//! request: every poll of its handler, from the decoding of its frame to the
//! encoding of its response, and the work it hands to the blocking pool
//! (record validation, timestamp searches; [`spawn_blocking`]). Time spent
//! waiting is not counted: for the catalog or the object store to answer,
//! for a produce's object to be committed, for a fetch's long poll, fetch
//! memory or turn, for a rebalance, for a worker thread to pick the request
//! up. Such a wait occupies no thread, and counting it would throttle a
//! client for the agent's or the catalog's slowness rather than its own load.
//!
//! The time up to the response is recorded, and checked against the quota,
//! as the response is built ([`RequestMeter::settle`]); encoding it is
//! recorded once it is encoded, against later requests, as Kafka records a
//! network thread's time.
//!
//! Which requests count: every request of a client with a request quota, as
//! Kafka's clients' requests, except a Produce with acks=0 (which has no
//! response to carry the throttle; Kafka exempts it too) and the answer to
//! an ApiVersions of a version the agent does not know (sent before any
//! handler runs, a v0 error without the field). SaslHandshake and
//! SaslAuthenticate are exempt as on Kafka (authentication itself runs before
//! requests are metered: `crate::sasl`); Kafka's other exemptions,
//! inter-broker cluster actions, are APIs an agent does not serve.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use kafka_protocol::messages::RequestKind;
use streamhouse_protocol::request::Request;
use tokio::task::JoinError;
use tokio::time::Instant;

use super::{Applied, ClientQuotas, Mute, QuotaKind};

/// Nanoseconds per second of one thread's time, per percent.
const NANOS_PER_PERCENT: f64 = 1e9 / 100.0;

/// A `request_percentage` as nanoseconds of work per second.
pub(super) fn nanos_per_second(percentage: f64) -> f64 {
    percentage * NANOS_PER_PERCENT
}

/// Whether Kafka exempts this request from the request quota.
pub fn exempt(request: &RequestKind) -> bool {
    match request {
        RequestKind::Produce(produce) => produce.acks == 0,
        // Part of authentication on Kafka, and their responses have no
        // throttle field.
        RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_) => true,
        _ => false,
    }
}

tokio::task_local! {
    /// The meter of the request whose future is being polled, for work it
    /// hands to the blocking pool.
    static CURRENT: Arc<RequestMeter>;
}

/// Not in a poll, or not yet settled.
const NONE: u64 = u64::MAX;

/// The time spent on one request of a client under a request quota.
pub struct RequestMeter {
    quotas: Arc<ClientQuotas>,
    applied: Applied,
    mute: Arc<Mute>,
    /// What the times below count from.
    base: Instant,
    /// Nanoseconds of work done: polls ended, blocking work, decoding.
    spent: AtomicU64,
    /// When the poll under way began (nanoseconds after `base`), or NONE.
    polling_since: AtomicU64,
    /// The nanoseconds recorded as the response was built, or NONE.
    settled: AtomicU64,
}

impl ClientQuotas {
    /// Whether some request quota is configured: without one, requests are
    /// not timed at all.
    pub fn meters_requests(&self) -> bool {
        self.limits(QuotaKind::Request)
    }

    /// A meter for this request, if a request quota applies to its client
    /// and Kafka does not exempt it; `decoding` is the time its frame took
    /// to decode.
    pub fn request_meter(
        self: &Arc<Self>,
        request: &Request,
        user: &str,
        mute: &Arc<Mute>,
        decoding: Duration,
    ) -> Option<Arc<RequestMeter>> {
        if exempt(&request.body) {
            return None;
        }
        let client_id = request.header.client_id.as_deref().unwrap_or("");
        let applied = self.applied(QuotaKind::Request, user, client_id)?;
        Some(Arc::new(RequestMeter {
            quotas: Arc::clone(self),
            applied,
            mute: Arc::clone(mute),
            base: Instant::now(),
            spent: AtomicU64::new(nanos(decoding)),
            polling_since: AtomicU64::new(NONE),
            settled: AtomicU64::new(NONE),
        }))
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX - 1)
}

impl RequestMeter {
    fn now(&self) -> u64 {
        nanos(self.base.elapsed())
    }

    /// Counts work done for the request outside its polls.
    fn charge(&self, work: Duration) {
        self.spent.fetch_add(nanos(work), Ordering::Relaxed);
    }

    /// The work done so far, the poll under way included.
    fn measured(&self) -> u64 {
        let spent = self.spent.load(Ordering::Relaxed);
        match self.polling_since.load(Ordering::Relaxed) {
            NONE => spent,
            since => spent.saturating_add(self.now().saturating_sub(since)),
        }
    }

    /// Runs one poll of the request's future, timed.
    fn poll_with<R>(self: &Arc<Self>, poll: impl FnOnce() -> R) -> R {
        let began = self.now();
        self.polling_since.store(began, Ordering::Relaxed);
        let polled = CURRENT.sync_scope(Arc::clone(self), poll);
        self.polling_since.store(NONE, Ordering::Relaxed);
        self.charge(Duration::from_nanos(self.now().saturating_sub(began)));
        polled
    }

    /// Records the time spent on the request up to now and returns how long
    /// the client must wait (zero within its quota); a client that must
    /// wait is muted for that long. Called as the response is built; once
    /// only (later calls return zero).
    pub fn settle(&self) -> Duration {
        let measured = self.measured();
        if self
            .settled
            .compare_exchange(NONE, measured, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Duration::ZERO;
        }
        let throttle =
            self.quotas
                .record_applied(self.applied.clone(), measured, Instant::now(), true);
        self.mute.mute_for(throttle);
        throttle
    }

    /// Records the work done after [`settle`](Self::settle) (encoding the
    /// response), against the client's later requests.
    fn finish(&self) {
        let settled = self.settled.load(Ordering::Relaxed);
        if settled == NONE {
            // Never answered (acks=0 is exempt before a meter exists; a
            // closed connection's request is not counted).
            return;
        }
        let after = self.spent.load(Ordering::Relaxed).saturating_sub(settled);
        if after > 0 {
            self.quotas
                .record_applied(self.applied.clone(), after, Instant::now(), false);
        }
    }
}

/// Runs `future` (a request's first, in-order part) with its polls timed.
pub async fn timed<F: Future>(meter: Option<&Arc<RequestMeter>>, future: F) -> F::Output {
    let Some(meter) = meter else {
        return future.await;
    };
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| meter.poll_with(|| future.as_mut().poll(cx))).await
}

/// A request's response future with its polls timed; once it is done, the
/// work after the response was built is recorded.
pub struct Metered<F> {
    inner: F,
    meter: Arc<RequestMeter>,
}

impl<F> Metered<F> {
    pub fn new(inner: F, meter: Arc<RequestMeter>) -> Self {
        Metered { inner, meter }
    }
}

impl<F: Future + Unpin> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let polled = this.meter.poll_with(|| Pin::new(inner).poll(cx));
        if polled.is_ready() {
            this.meter.finish();
        }
        polled
    }
}

/// `tokio::task::spawn_blocking`, with the work's time counted against the
/// request that hands it over, if that request is metered.
pub async fn spawn_blocking<T, W>(work: W) -> Result<T, JoinError>
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
{
    let meter = CURRENT.try_with(Arc::clone).ok();
    tokio::task::spawn_blocking(move || match meter {
        None => work(),
        Some(meter) => {
            let began = Instant::now();
            let done = work();
            meter.charge(began.elapsed());
            done
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::super::ANONYMOUS_USER;
    use std::collections::BTreeMap;

    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, MetadataRequest, ProduceRequest, RequestHeader,
    };
    use kafka_protocol::protocol::StrBytes;
    use streamhouse_metadata::quotas::{ClientQuota, EntityName, QuotaEntity};

    use super::super::REQUEST_PERCENTAGE;
    use super::*;

    fn request(client_id: &str, body: RequestKind) -> Request {
        let api_key = match &body {
            RequestKind::Produce(_) => ApiKey::Produce,
            RequestKind::Metadata(_) => ApiKey::Metadata,
            _ => ApiKey::ApiVersions,
        };
        Request {
            header: RequestHeader::default()
                .with_request_api_key(api_key as i16)
                .with_client_id(Some(StrBytes::from_string(client_id.to_owned()))),
            api_key,
            version: 0,
            body,
        }
    }

    fn quotas(client_id: &str, percentage: f64) -> Arc<ClientQuotas> {
        let quotas = Arc::new(ClientQuotas::default());
        quotas.replace(vec![ClientQuota {
            entity: QuotaEntity {
                user: None,
                client_id: Some(EntityName::Named(client_id.to_owned())),
            },
            values: BTreeMap::from([(REQUEST_PERCENTAGE.to_owned(), percentage)]),
        }]);
        quotas
    }

    #[test]
    fn a_percentage_is_a_share_of_one_threads_time() {
        assert_eq!(nanos_per_second(100.0), 1e9);
        assert_eq!(nanos_per_second(0.01), 100_000.0);
    }

    #[test]
    fn produce_without_acks_and_sasl_are_exempt_and_other_requests_are_not() {
        let produce = |acks| RequestKind::Produce(ProduceRequest::default().with_acks(acks));
        assert!(exempt(&produce(0)));
        assert!(!exempt(&produce(1)));
        assert!(!exempt(&produce(-1)));
        assert!(!exempt(&RequestKind::ApiVersions(
            ApiVersionsRequest::default()
        )));
        assert!(!exempt(&RequestKind::Metadata(MetadataRequest::default())));
        assert!(exempt(&RequestKind::SaslHandshake(Default::default())));
        assert!(exempt(&RequestKind::SaslAuthenticate(Default::default())));

        let quotas = quotas("slow", 1.0);
        let mute = Arc::new(Mute::default());
        let meter = |client: &str, body| {
            quotas
                .request_meter(
                    &request(client, body),
                    ANONYMOUS_USER,
                    &mute,
                    Duration::ZERO,
                )
                .is_some()
        };
        assert!(meter("slow", produce(1)));
        assert!(meter(
            "slow",
            RequestKind::ApiVersions(ApiVersionsRequest::default())
        ));
        assert!(!meter("slow", produce(0)));
        // Another client id has no request quota: nothing is timed.
        assert!(!meter("other", produce(1)));
        // Without any request quota, nothing is looked up.
        assert!(!ClientQuotas::default().meters_requests());
        assert!(quotas.meters_requests());
    }

    #[test]
    fn request_time_over_the_quota_is_throttled_at_most_one_window() {
        let quotas = quotas("c", 1.0);
        let applied = quotas
            .applied(QuotaKind::Request, ANONYMOUS_USER, "c")
            .unwrap();
        assert_eq!(applied.per_second, 1e7);
        let start = Instant::now();
        // 1 % is 10 ms a second: 100 ms over the first ten seconds is within.
        let record = |ms: u64, at: u64| {
            quotas.record_applied(
                applied.clone(),
                ms * 1_000_000,
                start + Duration::from_secs(at),
                true,
            )
        };
        assert_eq!(record(100, 0), Duration::ZERO);
        // 10 ms more: 110 ms over 10 s is 1.1 %, 10 % over: a tenth of the
        // window.
        let throttle = record(10, 1);
        assert!(
            (Duration::from_millis(990)..=Duration::from_millis(1000)).contains(&throttle),
            "{throttle:?}"
        );
        // Far over: Kafka's bound of one sample window.
        assert_eq!(record(10_000, 2), Duration::from_secs(1));
    }

    /// Polls are timed; the waits between them are not.
    #[tokio::test]
    async fn only_the_time_spent_in_polls_is_measured() {
        let quotas = quotas("c", 100.0);
        let mute = Arc::new(Mute::default());
        let meter = quotas
            .request_meter(
                &request("c", RequestKind::Metadata(MetadataRequest::default())),
                ANONYMOUS_USER,
                &mute,
                Duration::from_millis(5),
            )
            .unwrap();
        let inner = Arc::clone(&meter);
        let work = async move {
            std::thread::sleep(Duration::from_millis(20));
            // A wait: no thread is busy.
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::thread::sleep(Duration::from_millis(20));
            let measured = inner.measured();
            assert_eq!(inner.settle(), Duration::ZERO);
            measured
        };
        let measured = Metered::new(Box::pin(work), Arc::clone(&meter)).await;
        let measured = Duration::from_nanos(measured);
        assert!(
            (Duration::from_millis(45)..Duration::from_millis(200)).contains(&measured),
            "{measured:?}"
        );
        // Settled once: a second settle neither records nor throttles.
        assert_eq!(meter.settle(), Duration::ZERO);
    }

    /// Work handed to the blocking pool counts against the request.
    #[tokio::test]
    async fn blocking_work_counts_against_the_request() {
        let quotas = quotas("c", 100.0);
        let mute = Arc::new(Mute::default());
        let meter = quotas
            .request_meter(
                &request("c", RequestKind::Metadata(MetadataRequest::default())),
                ANONYMOUS_USER,
                &mute,
                Duration::ZERO,
            )
            .unwrap();
        let work = async {
            spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
                .await
                .unwrap();
        };
        timed(Some(&meter), work).await;
        assert!(meter.measured() >= 50_000_000, "{}", meter.measured());
        // Unmetered, it runs all the same.
        assert_eq!(spawn_blocking(|| 7).await.unwrap(), 7);
    }
}
