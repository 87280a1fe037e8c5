//! Orphaned objects: objects in the store the catalog never knew are deleted
//! once they have stayed unknown for the grace period on the worker's clock;
//! objects the catalog knows, uploads committed within the grace, and keys
//! that are not objects are never touched.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_clock::ManualClock;
use streamhouse_metadata::{Catalog, NewObject, NewTopic, RunAppend, TopicId};
use streamhouse_storage::compaction::{OrphanScan, OrphanSuspects};
use streamhouse_storage::format::new_object_key;
use streamhouse_storage::{CompactionConfig, CompactionWorker, Metrics};

const GRACE: Duration = Duration::from_secs(60);

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    topic: TopicId,
    clock: Arc<ManualClock>,
    worker: CompactionWorker,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let clock = ManualClock::new();
    let catalog = streamhouse_metadata::open_with_clock(&url, clock.clone())
        .await
        .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let topic = catalog
        .create_topic(&NewTopic {
            name: "t".into(),
            partition_count: 1,
            configs: Default::default(),
        })
        .await
        .unwrap()
        .id;
    let worker = CompactionWorker::new(
        Arc::clone(&store),
        Arc::clone(&catalog),
        CompactionConfig {
            orphan_grace: GRACE,
            ..CompactionConfig::default()
        },
        Arc::new(Metrics::default()),
    )
    .with_clock(clock.clone());
    Setup {
        _dir: dir,
        catalog,
        store,
        topic,
        clock,
        worker,
    }
}

/// An object in the store, as an upload leaves it before its commit.
async fn upload(s: &Setup) -> String {
    let key = new_object_key();
    put(s, &key).await;
    key
}

async fn put(s: &Setup, key: &str) {
    s.store
        .put(&Path::from(key), PutPayload::from(vec![7u8; 100]))
        .await
        .unwrap();
}

/// The catalog commit of an uploaded object: one run of one offset.
async fn commit(s: &Setup, key: &str) {
    let object = NewObject {
        key: key.to_owned(),
        size_bytes: 100,
    };
    let run = RunAppend::single(s.topic, 0, 0, 100, 1, 0);
    s.catalog.commit_object(&object, &[run]).await.unwrap();
}

async fn stored(s: &Setup) -> Vec<String> {
    let mut keys: Vec<String> = s
        .store
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn scan(s: &Setup, suspects: &mut OrphanSuspects) -> OrphanScan {
    s.worker.scan_orphans(suspects).await.unwrap()
}

#[tokio::test]
async fn orphans_are_deleted_after_the_grace_and_nothing_else() {
    let s = setup().await;
    let committed = upload(&s).await;
    commit(&s, &committed).await;
    let orphan = upload(&s).await;
    // Not objects of ours: another extension, another folder.
    put(&s, "objects/notes.txt").await;
    put(&s, "elsewhere/ab/x.sho").await;
    let mut suspects = OrphanSuspects::default();

    let first = scan(&s, &mut suspects).await;
    assert_eq!((first.listed, first.unknown, first.deleted), (2, 1, 0));
    assert_eq!(suspects.len(), 1);

    // Half the grace later: another orphan, and an upload whose commit comes
    // after this scan saw it.
    s.clock.advance(GRACE / 2);
    let late_orphan = upload(&s).await;
    let in_flight = upload(&s).await;
    let second = scan(&s, &mut suspects).await;
    assert_eq!((second.listed, second.unknown, second.deleted), (4, 3, 0));
    commit(&s, &in_flight).await;

    // The first orphan has been unknown for the whole grace; the second for
    // half; the committed upload is known now.
    s.clock.advance(GRACE / 2);
    let third = scan(&s, &mut suspects).await;
    assert_eq!((third.listed, third.unknown, third.deleted), (4, 2, 1));
    assert_eq!(third.bytes_deleted, 100);
    assert_eq!(suspects.len(), 1, "only the late orphan is left to wait");
    assert!(!stored(&s).await.contains(&orphan));

    s.clock.advance(GRACE / 2);
    let fourth = scan(&s, &mut suspects).await;
    assert_eq!(fourth.deleted, 1);
    assert!(suspects.is_empty());
    let mut expected = vec![
        committed,
        in_flight,
        "elsewhere/ab/x.sho".to_owned(),
        "objects/notes.txt".to_owned(),
    ];
    expected.sort();
    assert_eq!(stored(&s).await, expected);
    assert!(!expected.contains(&late_orphan));
}

/// The grace counts from when THIS worker first saw the object unknown: a
/// worker that takes the job over (a fresh set of suspects) waits the whole
/// grace again, however old the object is.
#[tokio::test]
async fn a_new_scanner_waits_the_whole_grace_again() {
    let s = setup().await;
    let orphan = upload(&s).await;
    let mut old = OrphanSuspects::default();
    scan(&s, &mut old).await;
    s.clock.advance(GRACE * 10);

    let mut fresh = OrphanSuspects::default();
    assert_eq!(scan(&s, &mut fresh).await.deleted, 0);
    s.clock.advance(GRACE - Duration::from_millis(1));
    assert_eq!(scan(&s, &mut fresh).await.deleted, 0);
    assert_eq!(stored(&s).await, std::slice::from_ref(&orphan));
    s.clock.advance(Duration::from_millis(1));
    assert_eq!(scan(&s, &mut fresh).await.deleted, 1);
    assert!(stored(&s).await.is_empty());
}

/// More objects than one listing page and one catalog query take.
#[tokio::test]
async fn many_objects_are_judged_page_by_page() {
    let s = setup().await;
    let mut known = Vec::new();
    for i in 0..2_500 {
        let key = upload(&s).await;
        if i % 2 == 0 {
            commit(&s, &key).await;
            known.push(key);
        }
    }
    let mut suspects = OrphanSuspects::default();
    let first = scan(&s, &mut suspects).await;
    assert_eq!((first.listed, first.unknown), (2_500, 1_250));
    s.clock.advance(GRACE);
    assert_eq!(scan(&s, &mut suspects).await.deleted, 1_250);
    known.sort();
    assert_eq!(stored(&s).await, known);
}
