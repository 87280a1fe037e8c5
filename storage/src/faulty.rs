//! A store decorator that runs hooks around PUTs and GETs ([`HookedStore`]),
//! and the hooks that inject faults ([`Faults`]), for tests and fault drills:
//! around any `Arc<dyn ObjectStore>`, they fail, delay, hang, or perform a PUT
//! and then report it failed, as a real store and the network in front of it
//! can. Tests that only count or hold requests back write hooks of their own.
//!
//! Faults are armed through the shared [`Faults`] handle while the store is in
//! use, so a test can break the store in the middle of a run and mend it again.
//! Counted faults ("the next N PUTs") are consumed one per request; the latency
//! and the hang apply to every request until changed.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tokio::sync::watch;

/// What the store does wrong next. Every field can be changed at any time.
#[derive(Debug)]
pub struct Faults {
    failing_puts: AtomicU32,
    lost_put_answers: AtomicU32,
    failing_gets: AtomicU32,
    latency_micros: AtomicU64,
    /// While true, every PUT and GET waits until it turns false.
    hung: watch::Sender<bool>,
    injected: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            failing_puts: AtomicU32::new(0),
            lost_put_answers: AtomicU32::new(0),
            failing_gets: AtomicU32::new(0),
            latency_micros: AtomicU64::new(0),
            hung: watch::Sender::new(false),
            injected: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// The next `count` PUTs fail without storing anything.
    pub fn fail_puts(&self, count: u32) {
        self.failing_puts.store(count, Ordering::SeqCst);
    }

    /// The next `count` PUTs store their object, then report a failure: the
    /// answer was lost on the way back.
    pub fn lose_put_answers(&self, count: u32) {
        self.lost_put_answers.store(count, Ordering::SeqCst);
    }

    /// The next `count` GETs fail.
    pub fn fail_gets(&self, count: u32) {
        self.failing_gets.store(count, Ordering::SeqCst);
    }

    /// Every PUT and GET takes `latency` longer.
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.store(micros, Ordering::SeqCst);
    }

    /// While hung, PUTs and GETs wait (a store that stopped answering);
    /// unhanging releases them all.
    pub fn set_hung(&self, hung: bool) {
        self.hung.send_replace(hung);
    }

    /// How many faults the store has injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Takes one from a counted fault, if any is left.
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    async fn delay(&self) {
        let micros = self.latency_micros.load(Ordering::SeqCst);
        if micros > 0 {
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
        let mut hung = self.hung.subscribe();
        // An error means the sender is gone, which cannot happen while `self`
        // lives; either way there is nothing left to wait for.
        let _ = hung.wait_for(|hung| !*hung).await;
    }

    fn injected_error(&self, what: &'static str, location: &Path) -> Error {
        self.injected.fetch_add(1, Ordering::SeqCst);
        Error::Generic {
            store: "FaultyStore",
            source: format!("injected fault: {what} of {location}").into(),
        }
    }
}

/// What a [`HookedStore`] runs around each request; each hook may fail it.
#[async_trait]
pub trait StoreHooks: Send + Sync + 'static {
    /// Before a PUT reaches the store; an error stops it there.
    async fn before_put(&self, _location: &Path) -> Result<()> {
        Ok(())
    }
    /// After the store took a PUT; an error is the answer lost on the way back.
    async fn after_put(&self, _location: &Path) -> Result<()> {
        Ok(())
    }
    /// Before a GET (or a ranged GET) reaches the store.
    async fn before_get(&self, _location: &Path) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl<H: StoreHooks> StoreHooks for Arc<H> {
    async fn before_put(&self, location: &Path) -> Result<()> {
        H::before_put(self, location).await
    }
    async fn after_put(&self, location: &Path) -> Result<()> {
        H::after_put(self, location).await
    }
    async fn before_get(&self, location: &Path) -> Result<()> {
        H::before_get(self, location).await
    }
}

#[async_trait]
impl StoreHooks for Faults {
    async fn before_put(&self, location: &Path) -> Result<()> {
        self.delay().await;
        if Faults::take(&self.failing_puts) {
            return Err(self.injected_error("failed PUT", location));
        }
        Ok(())
    }

    async fn after_put(&self, location: &Path) -> Result<()> {
        if Faults::take(&self.lost_put_answers) {
            return Err(self.injected_error("lost answer to a PUT", location));
        }
        Ok(())
    }

    async fn before_get(&self, location: &Path) -> Result<()> {
        self.delay().await;
        if Faults::take(&self.failing_gets) {
            return Err(self.injected_error("failed GET", location));
        }
        Ok(())
    }
}

/// Any store, with `hooks` run around its PUTs and GETs; every other call
/// passes straight through.
pub struct HookedStore<H> {
    /// The store itself, for reads and writes that bypass the hooks.
    pub inner: Arc<dyn ObjectStore>,
    pub hooks: H,
}

impl<H> HookedStore<H> {
    pub fn with_hooks(inner: Arc<dyn ObjectStore>, hooks: H) -> Self {
        HookedStore { inner, hooks }
    }
}

/// A store whose faults the returned [`Faults`] arm and disarm.
pub type FaultyStore = HookedStore<Arc<Faults>>;

impl FaultyStore {
    /// Wraps `inner`; the returned handle arms and disarms the faults.
    pub fn new(inner: Arc<dyn ObjectStore>) -> (FaultyStore, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        (HookedStore::with_hooks(inner, Arc::clone(&faults)), faults)
    }
}

impl<H> fmt::Display for HookedStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HookedStore({})", self.inner)
    }
}

impl<H> fmt::Debug for HookedStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HookedStore({:?})", self.inner)
    }
}

#[async_trait]
impl<H: StoreHooks> ObjectStore for HookedStore<H> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.hooks.before_put(location).await?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.hooks.after_put(location).await?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.hooks.before_get(location).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.hooks.before_get(location).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
