//! The memory budget of fetch responses in flight (`--fetch-memory-bytes`),
//! shared by every connection of the agent.
//!
//! A fetch holds bytes of the budget from before it reads until its response
//! has been written to the socket ([`Held`], carried with the response to the
//! connection's writer). It takes what is free, up to its `max_bytes`, and
//! reads no more than that: under load responses get smaller, as Kafka
//! answers with what fits. A fetch that finds nothing free waits for room, at
//! most its `max_wait`, then answers without records, like a fetch that found
//! nothing new, and the client asks again. A first batch larger than what a
//! fetch got waits for room for itself; one larger than the whole budget
//! waits for all of it, so it is still served, alone.
//!
//! A connection's fetches take memory in their order ([`FetchTurns`]): each
//! only once every earlier fetch of the connection has been written, which
//! costs it nothing, as its response is written after theirs anyway. So one
//! fetch of a connection holds memory at a time, as Kafka handles one request
//! of a connection at a time: a client that pipelines fetches and does not
//! read holds one response, not one per fetch, and waits in line for memory
//! once, so a reader behind a crowd of such clients waits for one fetch of
//! each at most.
//!
//! Responses a client never takes would keep their bytes until the idle
//! timeout (ten minutes by default), and enough such clients would starve
//! every reader. So while fetches are short of memory, a connection that
//! holds some of it and has delivered nothing for [`STALLED`] is closed (see
//! [`FetchMemory::reclaim`], used by `connection.rs`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

/// How long a connection holding fetch memory may deliver nothing while
/// fetches wait for memory, before it is closed to give the memory back. A
/// client that reads, however slow its link, takes bytes every round trip;
/// Kafka clients read their sockets from a network thread of their own,
/// whatever the application does. A second without taking a byte is a client
/// that is not reading (or a dead peer), and its responses are what the
/// waiting fetches need.
pub const STALLED: Duration = Duration::from_secs(1);

pub struct FetchMemory {
    /// One permit per byte. Permits are forgotten when taken and added back
    /// by [`Held`]'s drop, so a holding can shrink and grow.
    permits: Semaphore,
    capacity: usize,
    in_use: Gauge,
    reclaimed: Counter,
    shortage: Mutex<Shortage>,
    /// Signalled when a fetch starts waiting for memory.
    short: Notify,
}

#[derive(Default)]
struct Shortage {
    /// Fetches waiting for memory now.
    waiting: usize,
    /// When the last wait ended.
    ended: Option<Instant>,
}

impl FetchMemory {
    /// A budget of `capacity` bytes (at least 1, at most `u32::MAX`: permits
    /// are taken in `u32` counts).
    pub fn new(capacity: usize) -> FetchMemory {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        FetchMemory {
            permits: Semaphore::new(capacity),
            capacity,
            in_use: Gauge::default(),
            reclaimed: Counter::default(),
            shortage: Mutex::default(),
            short: Notify::new(),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "streamhouse_fetch_memory_bytes",
            "Bytes of the fetch memory budget held by fetch responses, from their read until written",
            self.in_use.clone(),
        );
        registry.register(
            "streamhouse_fetch_memory_reclaimed_connections",
            "Connections closed for holding fetch memory without reading while fetches waited for it",
            self.reclaimed.clone(),
        );
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        usize::try_from(self.in_use.get()).unwrap_or(0)
    }

    /// Takes at least `least` bytes (the whole budget if `least` is larger),
    /// waiting for them until `deadline`, and as much more as is free up to
    /// `most`. None if `least` did not come free in time.
    pub async fn take(
        self: &Arc<Self>,
        least: usize,
        most: usize,
        deadline: Instant,
    ) -> Option<Held> {
        let least = least.clamp(1, self.capacity);
        let count = u32::try_from(least).unwrap_or(u32::MAX);
        match self.permits.try_acquire_many(count) {
            Ok(permits) => permits.forget(),
            Err(_) => {
                let _waiting = self.wait_begins();
                let acquire = self.permits.acquire_many(count);
                match tokio::time::timeout_at(deadline, acquire).await {
                    Ok(Ok(permits)) => permits.forget(),
                    // Timed out, or closed (never: the budget is not closed).
                    _ => return None,
                }
            }
        }
        self.in_use.inc_by(least as i64);
        let mut held = Held {
            memory: Arc::clone(self),
            bytes: least,
        };
        held.take_free(most);
        Some(held)
    }

    fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            self.in_use.dec_by(bytes as i64);
            self.permits.add_permits(bytes);
        }
    }

    fn wait_begins(&self) -> WaitGuard<'_> {
        self.shortage.lock().unwrap().waiting += 1;
        self.short.notify_waiters();
        WaitGuard(self)
    }

    /// Whether some fetch has waited for memory at some time since `since`.
    fn short_since(&self, since: Instant) -> bool {
        let shortage = self.shortage.lock().unwrap();
        shortage.waiting > 0 || shortage.ended.is_some_and(|ended| ended >= since)
    }

    /// Resolves once fetches have been short of memory at some time after
    /// `since` and [`STALLED`] has passed since `since`: a connection that
    /// holds memory and has delivered nothing since `since` is then closed.
    pub async fn reclaim(&self, since: Instant) {
        loop {
            let notified = self.short.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wait beginning in between
            // still wakes us.
            notified.as_mut().enable();
            if self.short_since(since) {
                break;
            }
            notified.await;
        }
        tokio::time::sleep_until(since + STALLED).await;
    }

    /// Counts a connection closed by [`FetchMemory::reclaim`].
    pub fn reclaimed(&self) {
        self.reclaimed.inc();
    }
}

/// Marks a fetch waiting for memory while it lives.
struct WaitGuard<'a>(&'a FetchMemory);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut shortage = self.0.shortage.lock().unwrap();
        shortage.waiting -= 1;
        shortage.ended = Some(Instant::now());
    }
}

/// The order of one connection's fetches; see the module doc.
pub struct FetchTurns {
    /// Tickets given out: the next fetch's place.
    issued: AtomicU64,
    /// Places dropped out of order, waiting for those before them.
    early: Mutex<BTreeSet<u64>>,
    /// The first place not yet written (or dropped): every fetch before it
    /// is.
    written: watch::Sender<u64>,
}

impl FetchTurns {
    pub fn new() -> Arc<FetchTurns> {
        Arc::new(FetchTurns {
            issued: AtomicU64::new(0),
            early: Mutex::default(),
            written: watch::Sender::new(0),
        })
    }

    /// The next fetch's place. Called in the order the fetches arrived.
    pub fn ticket(self: &Arc<Self>) -> FetchTicket {
        FetchTicket {
            turns: Arc::clone(self),
            place: self.issued.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// One fetch's place among its connection's; kept until its response is
/// written ([`FetchHold`]), which lets the next fetch take its turn.
pub struct FetchTicket {
    turns: Arc<FetchTurns>,
    place: u64,
}

impl FetchTicket {
    /// Resolves once every earlier fetch of the connection has been written.
    /// It never waits for a later one, so turns cannot wait on each other.
    pub async fn turn(&self) {
        let mut written = self.turns.written.subscribe();
        // The sender lives in `self.turns`: the wait ends only by the
        // condition.
        let _ = written.wait_for(|written| *written >= self.place).await;
    }
}

impl Drop for FetchTicket {
    fn drop(&mut self) {
        // Responses are written in order, so tickets go in order but for a
        // connection closing (or a response that cannot be encoded).
        let mut early = self.turns.early.lock().unwrap();
        let place = self.place;
        self.turns.written.send_if_modified(|written| {
            if *written != place {
                early.insert(place);
                return false;
            }
            *written += 1;
            while early.remove(written) {
                *written += 1;
            }
            true
        });
    }
}

/// What a fetch's response keeps until written: its memory, if it read any,
/// and its place among the connection's fetches.
pub struct FetchHold {
    pub memory: Option<Held>,
    pub ticket: FetchTicket,
}

impl FetchHold {
    /// Bytes of the budget held.
    pub fn bytes(&self) -> usize {
        self.memory.as_ref().map_or(0, Held::bytes)
    }
}

/// Bytes of the budget held by one fetch; given back when dropped.
pub struct Held {
    memory: Arc<FetchMemory>,
    bytes: usize,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether this holds the whole budget: then what it read stands even if
    /// larger, as nothing else can be served meanwhile.
    pub fn is_whole_budget(&self) -> bool {
        self.bytes >= self.memory.capacity
    }

    /// Takes more, without waiting, to hold `bytes` in all; false (and
    /// nothing taken) if the budget does not have them free.
    pub fn grow_to(&mut self, bytes: usize) -> bool {
        let more = bytes.saturating_sub(self.bytes);
        if more == 0 {
            return true;
        }
        let Ok(count) = u32::try_from(more) else {
            return false;
        };
        match self.memory.permits.try_acquire_many(count) {
            Ok(permits) => {
                permits.forget();
                self.memory.in_use.inc_by(more as i64);
                self.bytes += more;
                true
            }
            Err(_) => false,
        }
    }

    /// Takes what is free, without waiting, up to `bytes` in all.
    fn take_free(&mut self, bytes: usize) {
        let wanted = bytes.min(self.memory.capacity).saturating_sub(self.bytes);
        let free = self.memory.permits.available_permits();
        // Another fetch may take some between the two reads: then this one
        // holds less, which is no harm.
        self.grow_to(self.bytes + wanted.min(free));
    }

    /// Gives back all but `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        let spare = self.bytes.saturating_sub(bytes);
        self.memory.give_back(spare);
        self.bytes -= spare;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.memory.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_fetch_takes_what_is_free_up_to_what_it_wants() {
        let memory = Arc::new(FetchMemory::new(1000));
        let first = memory.take(1, 600, later(0)).await.unwrap();
        assert_eq!(first.bytes(), 600);
        let second = memory.take(1, 600, later(0)).await.unwrap();
        assert_eq!(second.bytes(), 400);
        assert_eq!(memory.in_use(), 1000);
        drop(first);
        assert_eq!(memory.in_use(), 400);
    }

    #[tokio::test]
    async fn a_fetch_finding_nothing_free_waits_until_its_deadline() {
        let memory = Arc::new(FetchMemory::new(1000));
        let all = memory.take(1000, 1000, later(0)).await.unwrap();
        let started = Instant::now();
        assert!(memory.take(1, 10, later(100)).await.is_none());
        assert!(started.elapsed() >= Duration::from_millis(100));
        let waiting = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move { memory.take(1, 10, later(5_000)).await.map(|h| h.bytes()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(all);
        assert_eq!(waiting.await.unwrap(), Some(10));
        assert_eq!(memory.in_use(), 0);
    }

    /// A connection's fetch takes its turn once every earlier one has been
    /// written, whatever later ones do.
    #[tokio::test]
    async fn a_fetch_takes_its_turn_once_the_earlier_ones_are_written() {
        let turns = FetchTurns::new();
        let (first, second, third) = (turns.ticket(), turns.ticket(), turns.ticket());
        first.turn().await;
        let waits = |ticket: &FetchTicket| {
            let mut turn = Box::pin(ticket.turn());
            futures::FutureExt::now_or_never(&mut turn).is_none()
        };
        assert!(waits(&second) && waits(&third));
        drop(third);
        assert!(waits(&second), "a later fetch written first does not count");
        drop(first);
        assert!(!waits(&second));
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_the_whole_budget() {
        let memory = Arc::new(FetchMemory::new(1000));
        let mut held = memory.take(5000, 5000, later(0)).await.unwrap();
        assert!(held.is_whole_budget());
        assert!(!held.grow_to(5000));
        held.shrink_to(10);
        assert_eq!(memory.in_use(), 10);
        assert!(held.grow_to(900));
        assert_eq!(memory.in_use(), 900);
    }

    /// A connection holding memory is let go once a fetch went short after
    /// it stopped delivering, and not before it has delivered nothing for
    /// `STALLED`.
    #[tokio::test]
    async fn reclaim_waits_for_a_shortage_and_the_stall() {
        let memory = Arc::new(FetchMemory::new(10));
        let since = Instant::now();
        let all = memory.take(10, 10, later(0)).await.unwrap();
        let reclaim = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move { memory.reclaim(since).await }
        });
        // No shortage: nothing happens, even past the stall.
        tokio::time::sleep(STALLED + Duration::from_millis(200)).await;
        assert!(!reclaim.is_finished());
        // A fetch goes short: the stall is long past, so at once.
        assert!(memory.take(1, 1, later(10)).await.is_none());
        tokio::time::timeout(Duration::from_millis(500), reclaim)
            .await
            .expect("reclaimed once a fetch went short")
            .unwrap();
        // A shortage over before a connection stopped delivering is not its
        // doing.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let since = Instant::now();
        let later_reclaim = tokio::time::timeout(STALLED * 2, memory.reclaim(since)).await;
        assert!(later_reclaim.is_err());
        // One during its stall is, once the stall is long enough.
        let since = Instant::now();
        let short_at = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert!(memory.take(1, 1, later(10)).await.is_none());
            }
        });
        memory.reclaim(since).await;
        assert!(since.elapsed() >= STALLED);
        short_at.await.unwrap();
        drop(all);
    }
}
