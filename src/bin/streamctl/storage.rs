//! `streamctl storage usage|check`: what the protocol has no word for, read
//! from the catalog and the object store directly. Nothing is written
//! (opening the catalog applies its migrations, which an agent has already
//! done).
//!
//! `check` reads every index entry of every partition from its log start and
//! the bytes it names: the object must exist and be long enough, and the run
//! must be whole batches (size, magic, CRC-32C, a record count within the
//! batch's offsets: cleaned batches have gaps) that fill exactly the entry's
//! offsets. Each problem is one line; the exit status is non-zero
//! if there is any.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use streamhouse_metadata::{Catalog, IndexEntry, TopicId};
use streamhouse_protocol::batch;

use crate::client::ClientError;
use crate::output::{self, Format};

/// Index entries read per catalog query, and object reads in flight.
const ENTRIES_PER_PAGE: u32 = 1000;
const READS_IN_FLIGHT: usize = 8;
/// Below half the compactor's default target (4 MiB): what it would merge.
const SMALL_OBJECT_BYTES: i64 = 2 << 20;

/// Where the catalog and the store are.
pub struct Backends {
    pub catalog: String,
    pub store: String,
}

impl Backends {
    /// `--catalog`/`--store`, or the embedded layout of `--data-dir`, as the
    /// agent derives them.
    pub fn new(data_dir: &str, catalog: Option<String>, store: Option<String>) -> Backends {
        let dir = std::path::Path::new(data_dir);
        Backends {
            catalog: catalog
                .unwrap_or_else(|| format!("sqlite://{}", dir.join("catalog.db").display())),
            store: store.unwrap_or_else(|| format!("file://{}", dir.join("objects").display())),
        }
    }

    async fn catalog(&self) -> Result<Arc<dyn Catalog>, ClientError> {
        if let Some(path) = self.catalog.strip_prefix("sqlite://") {
            // Opening would create a missing file: a typo must not.
            if !std::path::Path::new(path).exists() {
                return Err(ClientError::Usage(format!(
                    "catalog {}: no such file",
                    self.catalog
                )));
            }
        }
        streamhouse_metadata::open(&self.catalog)
            .await
            .map_err(|e| ClientError::Usage(format!("catalog {}: {e}", self.catalog)))
    }

    fn store(&self) -> Result<Arc<dyn ObjectStore>, ClientError> {
        streamhouse_storage::open_store(&self.store)
            .map_err(|e| ClientError::Usage(format!("store {}: {e}", self.store)))
    }
}

fn catalog_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Usage(format!("reading the catalog: {e}"))
}

/// Per topic: partitions, retained bytes, the objects holding them; and the
/// compaction backlog (live objects small enough for the compactor).
pub async fn usage(backends: &Backends, format: Format) -> Result<(), ClientError> {
    let catalog = backends.catalog().await?;
    let topics = catalog.list_topics().await.map_err(catalog_error)?;
    let usage: HashMap<TopicId, (i64, i64)> = catalog
        .topic_usage()
        .await
        .map_err(catalog_error)?
        .into_iter()
        .map(|u| (u.topic, (u.bytes, u.objects)))
        .collect();
    let mut rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| {
            let (bytes, objects) = usage.get(&t.id).copied().unwrap_or((0, 0));
            vec![
                t.name.clone(),
                t.partition_count.to_string(),
                bytes.to_string(),
                objects.to_string(),
            ]
        })
        .collect();
    rows.sort();
    let backlog = catalog
        .small_live_objects(
            SMALL_OBJECT_BYTES,
            streamhouse_metadata::compaction::Shards::ALL,
            100_000,
        )
        .await
        .map_err(catalog_error)?;
    let backlog_bytes: i64 = backlog.iter().map(|o| o.size_bytes).sum();
    match format {
        Format::Table => {
            output::table(format, &["TOPIC", "PARTITIONS", "BYTES", "OBJECTS"], &rows);
            println!(
                "compaction backlog: {} objects under {} bytes, {backlog_bytes} bytes",
                backlog.len(),
                SMALL_OBJECT_BYTES
            );
        }
        Format::Json => {
            let topics: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "topic": r[0],
                        "partitions": r[1].parse::<i64>().unwrap_or(0),
                        "bytes": r[2].parse::<i64>().unwrap_or(0),
                        "objects": r[3].parse::<i64>().unwrap_or(0),
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "topics": topics,
                    "compaction_backlog": { "objects": backlog.len(), "bytes": backlog_bytes },
                })
            );
        }
    }
    Ok(())
}

/// One entry to check, with where it belongs.
struct Checked {
    topic: String,
    partition: i32,
    entry: IndexEntry,
}

/// Checks every index entry; `Ok(false)` if any problem was found.
pub async fn check(backends: &Backends, format: Format) -> Result<bool, ClientError> {
    let catalog = backends.catalog().await?;
    let store = backends.store()?;
    let topics = catalog.list_topics().await.map_err(catalog_error)?;
    // The entries first (the catalog is small next to the store), so the
    // progress has a total.
    let mut entries = Vec::new();
    for topic in &topics {
        for partition in 0..topic.partition_count {
            let Some(offsets) = catalog
                .partition_offsets(topic.id, partition)
                .await
                .map_err(catalog_error)?
            else {
                continue;
            };
            let mut from = offsets.log_start_offset;
            loop {
                let page = catalog
                    .index_entries(topic.id, partition, from, ENTRIES_PER_PAGE)
                    .await
                    .map_err(catalog_error)?;
                let Some(last) = page.last() else { break };
                from = last.last_offset + 1;
                let full = page.len() == ENTRIES_PER_PAGE as usize;
                entries.extend(page.into_iter().map(|entry| Checked {
                    topic: topic.name.clone(),
                    partition,
                    entry,
                }));
                if !full {
                    break;
                }
            }
        }
    }
    let total = entries.len();
    let progress = std::io::stderr().is_terminal();
    let sizes = object_sizes(&store, &entries).await?;
    let mut problems = Vec::new();
    let mut done = 0usize;
    let mut bytes_read = 0u64;
    let mut checks = futures::stream::iter(entries.iter().map(|c| check_entry(&store, &sizes, c)))
        .buffered(READS_IN_FLIGHT);
    while let Some(outcome) = checks.next().await {
        let (read, problem) = outcome?;
        bytes_read += read;
        problems.extend(problem);
        done += 1;
        if progress && (done.is_multiple_of(100) || done == total) {
            eprint!("\rchecked {done}/{total} entries ({bytes_read} bytes)");
            let _ = std::io::stderr().flush();
        }
    }
    if progress && total > 0 {
        eprintln!();
    }
    match format {
        Format::Table => {
            for problem in &problems {
                println!("{problem}");
            }
            println!(
                "checked {total} index entries of {} topics, {bytes_read} bytes: {} problems",
                topics.len(),
                problems.len()
            );
        }
        Format::Json => println!(
            "{}",
            json!({
                "entries": total,
                "topics": topics.len(),
                "bytes": bytes_read,
                "problems": problems,
            })
        ),
    }
    Ok(problems.is_empty())
}

/// The size of every object the entries name, `None` for a missing one.
async fn object_sizes(
    store: &Arc<dyn ObjectStore>,
    entries: &[Checked],
) -> Result<HashMap<String, Option<u64>>, ClientError> {
    let mut keys: Vec<&str> = entries
        .iter()
        .map(|c| c.entry.object_key.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    futures::stream::iter(keys.into_iter().map(|key| async move {
        match store.head(&Path::from(key)).await {
            Ok(meta) => Ok((key.to_string(), Some(meta.size))),
            Err(object_store::Error::NotFound { .. }) => Ok((key.to_string(), None)),
            Err(e) => Err(ClientError::Usage(format!("store: object {key}: {e}"))),
        }
    }))
    .buffer_unordered(READS_IN_FLIGHT)
    .try_collect()
    .await
}

/// (bytes read, the problem if any) of one entry.
async fn check_entry(
    store: &Arc<dyn ObjectStore>,
    sizes: &HashMap<String, Option<u64>>,
    checked: &Checked,
) -> Result<(u64, Option<String>), ClientError> {
    let entry = &checked.entry;
    let at = format!(
        "{}[{}] offsets {}-{} in object {} at {}+{}",
        checked.topic,
        checked.partition,
        entry.base_offset,
        entry.last_offset,
        entry.object_key,
        entry.position,
        entry.length
    );
    let (Ok(start), Ok(length)) = (u64::try_from(entry.position), u64::try_from(entry.length))
    else {
        return Ok((0, Some(format!("{at}: a negative position or length"))));
    };
    let size = match sizes.get(&entry.object_key).copied().flatten() {
        Some(size) => size,
        None => return Ok((0, Some(format!("{at}: the object is missing")))),
    };
    if start + length > size {
        return Ok((0, Some(format!("{at}: the object has only {size} bytes"))));
    }
    let run = store
        .get_range(
            &Path::from(entry.object_key.as_str()),
            start..start + length,
        )
        .await
        .map_err(|e| ClientError::Usage(format!("store: reading {at}: {e}")))?;
    Ok((
        length,
        run_problem(entry, &run).map(|p| format!("{at}: {p}")),
    ))
}

/// What is wrong with `run` as the bytes of `entry`, if anything.
fn run_problem(entry: &IndexEntry, run: &[u8]) -> Option<String> {
    let ranges = match batch::split(run) {
        Ok(ranges) => ranges,
        Err(e) => return Some(format!("not whole batches: {e}")),
    };
    let mut next = entry.base_offset;
    for range in ranges {
        let header = match batch::validate_stored(&run[range]) {
            Ok(header) => header,
            Err(e) => return Some(format!("a batch at offset {next} is corrupt: {e}")),
        };
        next += header.offset_count();
    }
    (next != entry.last_offset + 1).then(|| {
        format!(
            "its batches hold offsets {}-{}, not the entry's",
            entry.base_offset,
            next - 1
        )
    })
}
