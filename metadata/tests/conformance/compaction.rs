//! Compaction and garbage collection: the swap that moves index entries to a
//! compacted object, its refusal when an entry changed, and which objects the
//! collector retires.

use std::time::{SystemTime, UNIX_EPOCH};

use streamhouse_metadata::compaction::{
    CompactedEntry, CompactionSwap, ObjectEntry, PartitionSwap, Shards, StoredObject, SwapOutcome,
};
use streamhouse_metadata::{Catalog, IndexEntry, NewObject, Topic};

use crate::cases::{all_entries, commit, create, run, run_at};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap()
}

/// Far enough in the future that everything committed so far is older.
fn later() -> i64 {
    now_ms() + 3_600_000
}

fn keys(objects: &[StoredObject]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

async fn small_objects(catalog: &dyn Catalog) -> Vec<StoredObject> {
    catalog
        .small_live_objects(1 << 40, Shards::ALL, 1000)
        .await
        .unwrap()
}

/// A swap that lays out each partition's entries back to back in a new object
/// `key` and merges those adjacent in offsets, as the storage compactor does.
fn swap_of(key: &str, entries: &[ObjectEntry], sources: &[StoredObject]) -> CompactionSwap {
    let mut partitions: Vec<PartitionSwap> = Vec::new();
    let mut position = 8;
    for e in entries {
        let same = partitions
            .last()
            .is_some_and(|p| (p.topic, p.partition) == (e.topic, e.partition));
        if !same {
            partitions.push(PartitionSwap {
                topic: e.topic,
                partition: e.partition,
                source_entries: 0,
                entries: Vec::new(),
            });
        }
        let p = partitions.last_mut().unwrap();
        p.source_entries += 1;
        match p.entries.last_mut() {
            Some(m) if m.last_offset + 1 == e.base_offset => {
                m.last_offset = e.last_offset;
                m.length += e.length;
                m.max_timestamp = m.max_timestamp.max(e.max_timestamp);
                m.running_max_timestamp = e.running_max_timestamp;
            }
            _ => p.entries.push(CompactedEntry {
                base_offset: e.base_offset,
                last_offset: e.last_offset,
                position,
                length: e.length,
                max_timestamp: e.max_timestamp,
                running_max_timestamp: e.running_max_timestamp,
            }),
        }
        position += e.length;
    }
    CompactionSwap {
        object: NewObject {
            key: key.to_owned(),
            size_bytes: position,
        },
        partitions,
        source_objects: sources.iter().map(|o| o.id).collect(),
        now_ms: now_ms(),
    }
}

/// Two partitions, three objects: p0 gets offsets 0-2, 3-4, 5-8 with timestamps
/// 100, 300, 200; p1 gets 0-0 and 1-1.
async fn three_small_objects(catalog: &dyn Catalog) -> Topic {
    let topic = create(catalog, "t", 2).await;
    commit(
        catalog,
        "a",
        &[run_at(&topic, 0, 8, 3, 100), run_at(&topic, 1, 308, 1, 50)],
    )
    .await;
    commit(catalog, "b", &[run_at(&topic, 0, 8, 2, 300)]).await;
    commit(
        catalog,
        "c",
        &[run_at(&topic, 0, 8, 4, 200), run_at(&topic, 1, 408, 1, 60)],
    )
    .await;
    topic
}

async fn by_timestamp(catalog: &dyn Catalog, topic: &Topic, ts: i64) -> Option<IndexEntry> {
    catalog
        .first_entry_at_or_after_timestamp(topic.id, 0, ts)
        .await
        .unwrap()
}

/// Each agent asks only for the objects of its shards.
pub async fn compaction_candidates_are_only_those_of_the_shards_asked_for(catalog: &dyn Catalog) {
    three_small_objects(catalog).await;
    let all = small_objects(catalog).await;
    assert_eq!(all.len(), 3);
    let candidates = |shards| async move {
        catalog
            .small_live_objects(1 << 40, shards, 1000)
            .await
            .unwrap()
    };
    let owning = Shards::from_fn(|s| s == Shards::of(all[0].id));
    assert_eq!(
        candidates(owning).await.len(),
        3,
        "ids below 1024 share a shard"
    );
    let others = Shards::from_fn(|s| s != Shards::of(all[0].id));
    assert!(candidates(others).await.is_empty());
    assert!(candidates(Shards::NONE).await.is_empty());
}

pub async fn a_compaction_swap_merges_adjacent_entries_and_keeps_lookups(catalog: &dyn Catalog) {
    let topic = three_small_objects(catalog).await;
    let sources = small_objects(catalog).await;
    assert_eq!(keys(&sources), ["a", "b", "c"]);
    let ids: Vec<i64> = sources.iter().map(|o| o.id).collect();
    let entries = catalog.object_entries(&ids).await.unwrap();
    let p0: Vec<(i32, i64, i64, i64, i64)> = entries
        .iter()
        .map(|e| {
            (
                e.partition,
                e.base_offset,
                e.last_offset,
                e.max_timestamp,
                e.running_max_timestamp,
            )
        })
        .collect();
    assert_eq!(
        p0,
        [
            (0, 0, 2, 100, 100),
            (0, 3, 4, 300, 300),
            (0, 5, 8, 200, 300),
            (1, 0, 0, 50, 50),
            (1, 1, 1, 60, 60),
        ]
    );
    assert!(entries.iter().all(|e| e.log_start_offset == 0));

    let swap = swap_of("big", &entries, &sources);
    assert_eq!(
        catalog.swap_compacted(&swap).await.unwrap(),
        SwapOutcome::Swapped
    );

    // One entry per partition now, in the new object, covering the same offsets.
    let moved = all_entries(catalog, topic.id, 0).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (
            moved[0].base_offset,
            moved[0].last_offset,
            moved[0].object_key.as_str()
        ),
        (0, 8, "big")
    );
    assert_eq!((moved[0].position, moved[0].length), (8, 900));
    assert_eq!(moved[0].max_timestamp, 300);
    let p1 = all_entries(catalog, topic.id, 1).await;
    assert_eq!(
        p1.iter()
            .map(|e| (e.base_offset, e.last_offset, e.position))
            .collect::<Vec<_>>(),
        [(0, 1, 908)]
    );
    assert_eq!(
        catalog.partition_offsets(topic.id, 0).await.unwrap(),
        crate::cases::offsets(0, 9)
    );
    // Timestamp lookups still find the entry holding the answer.
    for ts in [0, 100, 250, 300] {
        let found = by_timestamp(catalog, &topic, ts).await.unwrap();
        assert_eq!((found.base_offset, found.object_key.as_str()), (0, "big"));
    }
    assert_eq!(by_timestamp(catalog, &topic, 301).await, None);

    // The sources are no longer live; they wait out the grace period.
    assert_eq!(keys(&small_objects(catalog).await), ["big"]);
    assert!(catalog
        .objects_to_delete(swap.now_ms - 1, 100)
        .await
        .unwrap()
        .is_empty());
    let doomed = catalog.objects_to_delete(later(), 100).await.unwrap();
    assert_eq!(keys(&doomed), ["a", "b", "c"]);
    assert_eq!(catalog.forget_objects(&ids).await.unwrap(), 3);
    assert!(catalog
        .objects_to_delete(later(), 100)
        .await
        .unwrap()
        .is_empty());
    // The compacted object is referenced: never retired.
    assert_eq!(
        catalog
            .mark_unreferenced_objects(later(), now_ms(), 100)
            .await
            .unwrap(),
        0
    );
}

pub async fn a_compaction_swap_is_refused_when_a_source_entry_changed(catalog: &dyn Catalog) {
    let topic = three_small_objects(catalog).await;
    let sources = small_objects(catalog).await;
    let ids: Vec<i64> = sources.iter().map(|o| o.id).collect();
    let entries = catalog.object_entries(&ids).await.unwrap();
    let before_p0 = all_entries(catalog, topic.id, 0).await;

    // Another agent compacted the first two objects first.
    let first_two = catalog.object_entries(&ids[..2]).await.unwrap();
    let theirs = swap_of("theirs", &first_two, &sources[..2]);
    assert_eq!(
        catalog.swap_compacted(&theirs).await.unwrap(),
        SwapOutcome::Swapped
    );
    let after_theirs = all_entries(catalog, topic.id, 0).await;

    // Ours was planned from the old entries: refused, and nothing changes.
    let ours = swap_of("ours", &entries, &sources);
    assert_eq!(
        catalog.swap_compacted(&ours).await.unwrap(),
        SwapOutcome::Conflict
    );
    assert_eq!(all_entries(catalog, topic.id, 0).await, after_theirs);
    assert_ne!(after_theirs, before_p0);
    assert_eq!(keys(&small_objects(catalog).await), ["c", "theirs"]);
    let doomed = catalog.objects_to_delete(later(), 100).await.unwrap();
    assert_eq!(keys(&doomed), ["a", "b"]);
}

pub async fn a_compaction_swap_skips_partitions_of_deleted_topics(catalog: &dyn Catalog) {
    let gone = create(catalog, "gone", 1).await;
    let kept = create(catalog, "kept", 1).await;
    commit(catalog, "a", &[run(&gone, 0, 8, 2), run(&kept, 0, 208, 2)]).await;
    commit(catalog, "b", &[run(&gone, 0, 8, 1), run(&kept, 0, 108, 1)]).await;
    let sources = small_objects(catalog).await;
    let ids: Vec<i64> = sources.iter().map(|o| o.id).collect();
    let entries = catalog.object_entries(&ids).await.unwrap();
    assert_eq!(entries.len(), 4);
    catalog.delete_topic("gone").await.unwrap();

    let swap = swap_of("big", &entries, &sources);
    assert_eq!(
        catalog.swap_compacted(&swap).await.unwrap(),
        SwapOutcome::Swapped
    );
    let moved = all_entries(catalog, kept.id, 0).await;
    assert_eq!(
        moved
            .iter()
            .map(|e| (e.base_offset, e.last_offset, e.object_key.as_str()))
            .collect::<Vec<_>>(),
        [(0, 2, "big")]
    );
    assert_eq!(keys(&small_objects(catalog).await), ["big"]);
}

pub async fn garbage_collection_retires_objects_nothing_points_into(catalog: &dyn Catalog) {
    let doomed_topic = create(catalog, "doomed", 1).await;
    let trimmed = create(catalog, "trimmed", 1).await;
    commit(catalog, "of-doomed", &[run(&doomed_topic, 0, 8, 5)]).await;
    commit(catalog, "old-part", &[run(&trimmed, 0, 8, 10)]).await;
    commit(catalog, "new-part", &[run(&trimmed, 0, 8, 10)]).await;
    let mark = |created_before: i64| async move {
        catalog
            .mark_unreferenced_objects(created_before, now_ms(), 100)
            .await
            .unwrap()
    };
    assert_eq!(mark(later()).await, 0, "every object is referenced");

    catalog.delete_topic("doomed").await.unwrap();
    catalog.delete_records(trimmed.id, 0, 15).await.unwrap();
    // Entries below the log start stay until trimmed; then their object is dead.
    assert_eq!(catalog.drop_entries_below_log_start(100).await.unwrap(), 1);
    assert_eq!(catalog.drop_entries_below_log_start(100).await.unwrap(), 0);
    assert_eq!(
        all_entries(catalog, trimmed.id, 0)
            .await
            .iter()
            .map(|e| (e.base_offset, e.object_key.as_str()))
            .collect::<Vec<_>>(),
        [(10, "new-part")]
    );

    // Objects younger than the grace period are left alone.
    assert_eq!(mark(now_ms() - 3_600_000).await, 0);
    assert_eq!(mark(later()).await, 2);
    assert_eq!(mark(later()).await, 0, "already marked");
    let doomed = catalog.objects_to_delete(later(), 100).await.unwrap();
    assert_eq!(keys(&doomed), ["of-doomed", "old-part"]);
    assert_eq!(keys(&small_objects(catalog).await), ["new-part"]);
    let ids: Vec<i64> = doomed.iter().map(|o| o.id).collect();
    assert_eq!(catalog.forget_objects(&ids).await.unwrap(), 2);
    assert_eq!(catalog.forget_objects(&ids).await.unwrap(), 0);
    // A live object is never forgotten.
    let live: Vec<i64> = small_objects(catalog).await.iter().map(|o| o.id).collect();
    assert_eq!(catalog.forget_objects(&live).await.unwrap(), 0);
}

pub async fn the_catalog_tells_which_object_keys_it_knows(catalog: &dyn Catalog) {
    let topic = create(catalog, "known", 1).await;
    commit(catalog, "objects/aa/trimmed", &[run(&topic, 0, 8, 5)]).await;
    commit(catalog, "objects/bb/kept", &[run(&topic, 0, 8, 5)]).await;
    // More keys than one statement takes, the known ones in the second chunk.
    let mut asked: Vec<String> = (0..1500).map(|i| format!("objects/cc/{i}")).collect();
    asked.push("objects/aa/trimmed".to_owned());
    asked.push("objects/bb/kept".to_owned());
    let known = |keys: Vec<String>| async move {
        let mut known: Vec<String> = catalog
            .known_object_keys(&keys)
            .await
            .unwrap()
            .into_iter()
            .collect();
        known.sort();
        known
    };
    assert_eq!(
        known(asked.clone()).await,
        ["objects/aa/trimmed", "objects/bb/kept"]
    );
    assert!(known(Vec::new()).await.is_empty());

    // An object on its way out is still known until its row is forgotten:
    // the collector deletes it from the store first.
    catalog.delete_records(topic.id, 0, 5).await.unwrap();
    catalog.drop_entries_below_log_start(100).await.unwrap();
    assert_eq!(
        catalog
            .mark_unreferenced_objects(later(), now_ms(), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        known(asked.clone()).await,
        ["objects/aa/trimmed", "objects/bb/kept"]
    );
    let doomed: Vec<i64> = catalog
        .objects_to_delete(later(), 100)
        .await
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(catalog.forget_objects(&doomed).await.unwrap(), 1);
    assert_eq!(known(asked).await, ["objects/bb/kept"]);
}
