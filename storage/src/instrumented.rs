//! An object store decorator that counts requests, bytes and latencies.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::metrics::Metrics;

pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Self {
        InstrumentedStore { inner, metrics }
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

impl fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstrumentedStore({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        // Counted when sent, not when answered: a PUT abandoned halfway (the
        // losing half of a hedged upload) was still made, and a store billed
        // per request may bill it.
        self.metrics.store_puts.inc();
        self.metrics
            .store_put_bytes
            .inc_by(payload.content_length() as u64);
        let started = Instant::now();
        let result = self.inner.put_opts(location, payload, opts).await;
        self.metrics.store_put_latency.record(started.elapsed());
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.metrics.store_other_requests.inc();
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let started = Instant::now();
        let result = self.inner.get_opts(location, options).await;
        self.metrics.store_get_latency.record(started.elapsed());
        self.metrics.store_gets.inc();
        if let Ok(got) = &result {
            let size = got.range.end - got.range.start;
            self.metrics.store_get_bytes.inc_by(size);
        }
        result
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.metrics.store_gets.inc_by(ranges.len() as u64);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.metrics.store_other_requests.inc();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.metrics.store_other_requests.inc();
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.metrics.store_other_requests.inc();
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.metrics.store_other_requests.inc();
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn puts_and_gets_are_counted_with_their_bytes() {
        let metrics = Arc::new(Metrics::default());
        let store = InstrumentedStore::new(Arc::new(InMemory::new()), Arc::clone(&metrics));
        let path = Path::from("a/b");
        store
            .put(&path, PutPayload::from(vec![1u8; 10]))
            .await
            .unwrap();
        store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(metrics.store_puts.get(), 1);
        assert_eq!(metrics.store_put_bytes.get(), 10);
        assert_eq!(metrics.store_gets.get(), 1);
        assert_eq!(metrics.store_get_bytes.get(), 10);
        assert_eq!(metrics.store_put_latency.count(), 1);
    }
}
