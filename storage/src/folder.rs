//! The local-folder object store of the embedded default: object_store's
//! `LocalFileSystem` (fsync on write) with three changes for a broker that
//! shares one disk, one allocator and two cores between producers and
//! background work.
//!
//! - **A producer's large objects bypass the page cache.** Objects of at
//!   least [`DIRECT_MIN_BYTES`] are written with direct I/O (see `direct`),
//!   same durability, half the agent's CPU per MiB at high rates.
//!
//! - **Reads land in a buffer allocated by the caller's thread.**
//!   `LocalFileSystem` reads on tokio's blocking pool, so every object buffer
//!   was allocated by a short-lived blocking thread and freed later, from a
//!   runtime worker, when the read cache evicted it. mimalloc keeps a heap per
//!   thread, and a block freed from another thread goes back to its owner's
//!   heap only when the owner allocates again; blocking threads idle or exit
//!   instead. Allocating on the caller's thread lowered the embedded agent's
//!   peak by about 40-60 MiB in the benchmark's produce scenarios (the larger
//!   cause of its extra memory was transparent huge pages: see `src/lib.rs`).
//! - **Background writes are written and fsynced in pieces.** A put marked
//!   [`BackgroundWrite`] (compaction's 8 MiB objects) goes to disk
//!   [`BACKGROUND_PIECE_BYTES`] at a time, each piece fsynced on its own
//!   blocking call, so a producer's fsync waits behind at most one piece
//!   instead of a whole object (one 8 MiB fsync takes about 30 ms here, which
//!   was the embedded produce p99).

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, Extensions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

use crate::background::BackgroundWrite;

/// Bytes written and fsynced per blocking call of a background write: a
/// fraction of a millisecond to a few milliseconds of disk time.
pub const BACKGROUND_PIECE_BYTES: usize = 512 * 1024;

/// Objects of at least this many bytes are written with direct I/O. Below,
/// the page cache's copy is a small part of a write's cost and direct I/O
/// measured a few percent slower (Java's default producer, objects of about
/// 300 KiB); above, it halves the agent's CPU per MiB (docs/benchmarks.md).
pub const DIRECT_MIN_BYTES: usize = 1 << 20;

pub struct FolderStore {
    inner: LocalFileSystem,
    /// See [`DIRECT_MIN_BYTES`].
    direct_min_bytes: usize,
    /// The folder's file system refused direct I/O once.
    direct_refused: AtomicBool,
}

impl FolderStore {
    /// A store over `folder`, which must exist.
    pub fn new(folder: &FsPath) -> Result<Self> {
        let inner = LocalFileSystem::new_with_prefix(folder)?
            // An acknowledged record must survive a machine crash, not only a
            // process crash.
            .with_fsync(true);
        Ok(FolderStore {
            inner,
            direct_min_bytes: DIRECT_MIN_BYTES,
            direct_refused: AtomicBool::new(false),
        })
    }

    /// A producer's object: written with direct I/O where the file system
    /// takes it (see [`direct`]), else as `LocalFileSystem` writes it.
    async fn put_foreground(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if payload.content_length() < self.direct_min_bytes
            || self.direct_refused.load(Ordering::Relaxed)
        {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let dest = self.inner.path_to_filesystem(location)?;
        let bytes = payload.clone();
        match blocking(move || direct::publish(&dest, &bytes)).await? {
            direct::Outcome::Written => {}
            direct::Outcome::Refused => {
                // tmpfs and some others refuse O_DIRECT: buffered from now on.
                self.direct_refused.store(true, Ordering::Relaxed);
                return self.inner.put_opts(location, payload, opts).await;
            }
        }
        self.put_result(location).await
    }

    /// What a put answers, as `LocalFileSystem` does: the new file's tag.
    async fn put_result(&self, location: &Path) -> Result<PutResult> {
        let meta = self.inner.head(location).await?;
        Ok(PutResult {
            e_tag: meta.e_tag,
            version: meta.version,
            extensions: Extensions::new(),
        })
    }

    async fn put_in_pieces(&self, location: &Path, payload: PutPayload) -> Result<PutResult> {
        let dest = self.inner.path_to_filesystem(location)?;
        let staging = staging_path(&dest);
        let mut file = blocking(create_staging(staging.clone(), |_| {})).await?;
        for chunk in payload.iter() {
            for piece in chunk.chunks(BACKGROUND_PIECE_BYTES) {
                let piece = chunk.slice_ref(piece);
                let written = blocking(move || {
                    file.write_all(&piece)?;
                    file.sync_data()?;
                    Ok(file)
                })
                .await;
                file = match written {
                    Ok(file) => file,
                    Err(e) => {
                        let _ = std::fs::remove_file(&staging);
                        return Err(e);
                    }
                };
            }
        }
        let published = blocking({
            let staging = staging.clone();
            move || {
                drop(file);
                rename_into_place(&staging, &dest)
            }
        })
        .await;
        if let Err(e) = published {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        self.put_result(location).await
    }
}

/// A name next to `dest` that the store's listing skips (it ignores `#`
/// names, which are its own staged uploads) and no concurrent put shares.
fn staging_path(dest: &FsPath) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!("#staged-{}", uuid::Uuid::new_v4().simple()));
    name.into()
}

/// Direct I/O for a producer's object. Buffered, the kernel copies every
/// byte into the page cache, which costs more CPU than anything else the
/// agent does while producing (docs/benchmarks.md: 57% of its samples at 412
/// MiB/s); the agent keeps committed objects in its own read cache, so that
/// copy buys nothing. The bytes are copied once into a block-aligned buffer,
/// written and fsynced, the file cut to the object's length, then renamed
/// into place and the folder fsynced, as a buffered put does.
#[cfg(target_os = "linux")]
mod direct {
    use std::fs::File;
    use std::io::Write;
    use std::path::Path;

    use object_store::PutPayload;

    use super::{create_staging, rename_into_place, staging_path};

    /// Direct I/O's alignment of buffers, offsets and lengths: the logical
    /// block size of any disk Linux drives is at most this.
    const ALIGN: usize = 4096;

    pub(super) enum Outcome {
        Written,
        /// The file system does not do direct I/O; nothing was left behind,
        /// and the put is to be made buffered.
        Refused,
    }

    pub(super) fn publish(dest: &Path, payload: &PutPayload) -> std::io::Result<Outcome> {
        let staging = staging_path(dest);
        let file = match create_staging(staging.clone(), open_direct())() {
            Ok(file) => file,
            Err(e) if refused(&e) => return Ok(Outcome::Refused),
            Err(e) => return Err(e),
        };
        match write(file, payload).and_then(|()| rename_into_place(&staging, dest)) {
            Ok(()) => Ok(Outcome::Written),
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                // Some file systems open with O_DIRECT and refuse the write.
                if refused(&e) {
                    Ok(Outcome::Refused)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// How Linux says a file system (or its block size) does not do direct
    /// I/O, at open or at the first write.
    fn refused(e: &std::io::Error) -> bool {
        e.raw_os_error() == Some(libc::EINVAL)
    }

    fn open_direct() -> impl Fn(&mut std::fs::OpenOptions) {
        use std::os::unix::fs::OpenOptionsExt;
        |options| {
            options.custom_flags(libc::O_DIRECT);
        }
    }

    fn write(mut file: File, payload: &PutPayload) -> std::io::Result<()> {
        let len = payload.content_length();
        let padded = len.div_ceil(ALIGN) * ALIGN;
        // An aligned window into a buffer one block larger.
        let mut buffer = vec![0u8; padded + ALIGN];
        let start = buffer.as_ptr().align_offset(ALIGN);
        let window = &mut buffer[start..start + padded];
        let mut at = 0;
        for chunk in payload.iter() {
            window[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        }
        file.write_all(window)?;
        // The padding's zeros go; the length is metadata sync_data keeps.
        file.set_len(len as u64)?;
        file.sync_data()
    }
}

/// Elsewhere, always the buffered put.
#[cfg(not(target_os = "linux"))]
mod direct {
    pub(super) enum Outcome {
        Written,
        Refused,
    }

    pub(super) fn publish(
        _dest: &std::path::Path,
        _payload: &object_store::PutPayload,
    ) -> std::io::Result<Outcome> {
        Ok(Outcome::Refused)
    }
}

/// Creates the staging file, and its parent folders (fsynced, so the object's
/// folder survives a crash) when they are missing.
fn create_staging(
    path: PathBuf,
    flags: impl Fn(&mut std::fs::OpenOptions) + Send + 'static,
) -> impl FnOnce() -> std::io::Result<File> + Send + 'static {
    move || {
        let open = || {
            let mut options = File::options();
            options.write(true).create_new(true);
            flags(&mut options);
            options.open(&path)
        };
        match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = path.parent().unwrap_or(FsPath::new("."));
                std::fs::create_dir_all(parent)?;
                sync_dir(Some(parent))?;
                sync_dir(parent.parent())?;
                open()
            }
            other => other,
        }
    }
}

/// Publishes a written and fsynced staging file under its object's name,
/// durably: the rename is in the folder once its fsync returns.
fn rename_into_place(staging: &FsPath, dest: &FsPath) -> std::io::Result<()> {
    std::fs::rename(staging, dest)?;
    sync_dir(dest.parent())
}

fn sync_dir(dir: Option<&FsPath>) -> std::io::Result<()> {
    match dir {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Runs file I/O on tokio's blocking pool, with its error as the store's.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let generic = |source: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
        store: "FolderStore",
        source,
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| generic(Box::new(e))),
        Err(join) => Err(generic(Box::new(join))),
    }
}

impl fmt::Display for FolderStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Folder({})", self.inner)
    }
}

impl fmt::Debug for FolderStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FolderStore({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FolderStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let background = opts.extensions.get::<BackgroundWrite>().is_some();
        match opts.mode {
            PutMode::Overwrite if background => self.put_in_pieces(location, payload).await,
            PutMode::Overwrite => self.put_foreground(location, payload, opts).await,
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut result = self.inner.get_opts(location, options).await?;
        let GetResultPayload::File(mut file, _) = result.payload else {
            return Ok(result);
        };
        let Range { start, end } = result.range.clone();
        let len = usize::try_from(end - start).map_err(|e| object_store::Error::Generic {
            store: "FolderStore",
            source: Box::new(e),
        })?;
        // Allocated here, on the caller's thread: see the module doc. The
        // range is read whole before this returns (StreamHouse reads whole
        // objects of at most a few MiB), and handed out as a one-chunk stream.
        let mut buffer = Vec::with_capacity(len);
        let buffer = blocking(move || {
            file.seek(SeekFrom::Start(start))?;
            file.take(len as u64).read_to_end(&mut buffer)?;
            if buffer.len() != len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("object ended after {} of {len} bytes", buffer.len()),
                ));
            }
            Ok(buffer)
        })
        .await?;
        result.payload =
            GetResultPayload::Stream(stream::once(async move { Ok(Bytes::from(buffer)) }).boxed());
        Ok(result)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn background_put_is_read_back_whole_and_leaves_no_staging_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path()).unwrap();
        let data = object(3 * BACKGROUND_PIECE_BYTES + 17);
        let path = Path::from("objects/a/b.obj");
        store
            .put_opts(
                &path,
                PutPayload::from(data.clone()),
                BackgroundWrite::put_options(),
            )
            .await
            .unwrap();
        let read = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(read.as_ref(), data.as_slice());
        let names: Vec<_> = std::fs::read_dir(dir.path().join("objects/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["b.obj".to_string()]);
    }

    #[tokio::test]
    async fn foreground_puts_of_any_length_read_back_whole_and_leave_no_staging_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore {
            direct_min_bytes: 0,
            ..FolderStore::new(dir.path()).unwrap()
        };
        // Around the direct writes' 4 KiB blocks, and in several chunks.
        for len in [0, 1, 4095, 4096, 4097, (1 << 20) + 3] {
            let data = object(len);
            let path = Path::from(format!("objects/o/{len}.obj"));
            let half = len / 2;
            let payload = PutPayload::from_iter([
                Bytes::copy_from_slice(&data[..half]),
                Bytes::copy_from_slice(&data[half..]),
            ]);
            store.put(&path, payload).await.unwrap();
            let read = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(read.as_ref(), data.as_slice(), "length {len}");
            // Overwriting (a hedged PUT's second attempt) leaves the same bytes.
            store
                .put(&path, PutPayload::from(data.clone()))
                .await
                .unwrap();
            let read = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(read.as_ref(), data.as_slice(), "length {len}, again");
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("objects/o"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "0.obj",
                "1.obj",
                "1048579.obj",
                "4095.obj",
                "4096.obj",
                "4097.obj"
            ]
        );
    }

    #[tokio::test]
    async fn ranges_and_foreground_puts_behave_as_the_plain_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path()).unwrap();
        let data = object(1000);
        let path = Path::from("x.obj");
        store
            .put(&path, PutPayload::from(data.clone()))
            .await
            .unwrap();
        let range = store.get_range(&path, 100..350).await.unwrap();
        assert_eq!(range.as_ref(), &data[100..350]);
        let err = store.get(&Path::from("missing.obj")).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    }
}
