//! The log cleaner's catalog: a partition's view (offsets, cleaned-up-to
//! offset, entries with their objects) and the swap that replaces a cleaned
//! range, refused whole when any source entry changed meanwhile.

use streamhouse_metadata::compaction::{
    CleanerView, CleaningSwap, CompactedEntry, PartitionEntry, SwapOutcome, NO_TOMBSTONES,
};
use streamhouse_metadata::{Catalog, NewObject, Topic};

use crate::cases::{all_entries, commit, create, run_at};

/// One partition, three objects: offsets 0-2, 3-4 and 5-8.
async fn three_entries(catalog: &dyn Catalog) -> Topic {
    let topic = create(catalog, "t", 1).await;
    commit(catalog, "a", &[run_at(&topic, 0, 8, 3, 100)]).await;
    commit(catalog, "b", &[run_at(&topic, 0, 8, 2, 300)]).await;
    commit(catalog, "c", &[run_at(&topic, 0, 8, 4, 200)]).await;
    topic
}

async fn view(catalog: &dyn Catalog, topic: &Topic) -> CleanerView {
    catalog
        .cleaner_view(topic.id, 0, 1000)
        .await
        .unwrap()
        .expect("the partition exists")
}

/// Offsets and object of each entry.
fn spans(entries: &[PartitionEntry]) -> Vec<(i64, i64, &str)> {
    entries
        .iter()
        .map(|e| (e.base_offset, e.last_offset, e.object_key.as_str()))
        .collect()
}

/// Cleans entries 0-2 and 3-4 into object `key`: 0-2 keeps 10 bytes, 3-4
/// loses every record (a gap).
fn cleaning(topic: &Topic, sources: &[PartitionEntry], key: &str) -> CleaningSwap {
    CleaningSwap {
        topic: topic.id,
        partition: 0,
        object: Some(NewObject {
            key: key.into(),
            size_bytes: 18,
        }),
        sources: sources.to_vec(),
        entries: vec![CompactedEntry {
            base_offset: 0,
            last_offset: 2,
            position: 8,
            length: 10,
            max_timestamp: 100,
            running_max_timestamp: 100,
        }],
        cleaned_offset: 5,
        cleaned_bytes: 10,
        cleaner_limit: 8,
        tombstones_expire_at_ms: 7_000,
    }
}

pub async fn a_cleaning_swap_replaces_the_cleaned_entries_and_raises_the_cleaned_offset(
    catalog: &dyn Catalog,
) {
    let topic = three_entries(catalog).await;
    let before = view(catalog, &topic).await;
    assert_eq!(
        (
            before.log_start_offset,
            before.high_watermark,
            before.cleaned_offset
        ),
        (0, 9, 0)
    );
    assert_eq!(
        (before.cleaner_limit, before.tombstones_expire_at_ms),
        (0, NO_TOMBSTONES),
        "before the first cleaning"
    );
    assert_eq!(
        spans(&before.entries),
        [(0, 2, "a"), (3, 4, "b"), (5, 8, "c")]
    );
    let swap = cleaning(&topic, &before.entries[..2], "cleaned");
    assert_eq!(
        catalog.swap_cleaned(&swap).await.unwrap(),
        SwapOutcome::Swapped
    );
    let after = view(catalog, &topic).await;
    assert_eq!((after.cleaned_offset, after.cleaned_bytes), (5, 10));
    assert_eq!(
        (after.cleaner_limit, after.tombstones_expire_at_ms),
        (8, 7_000)
    );
    assert_eq!(spans(&after.entries), [(0, 2, "cleaned"), (5, 8, "c")]);
    assert_eq!(
        (after.entries[0].position, after.entries[0].length),
        (8, 10)
    );
    // A read inside the removed range finds the next entry.
    let from_3 = catalog.index_entries(topic.id, 0, 3, 10).await.unwrap();
    assert_eq!(from_3[0].base_offset, 5);
    assert_eq!(all_entries(catalog, topic.id, 0).await.len(), 2);
    // The offsets themselves never change.
    let offsets = catalog
        .partition_offsets(topic.id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((offsets.log_start_offset, offsets.high_watermark), (0, 9));

    // A later cleaning with a lower offset never moves it back.
    let again = CleaningSwap {
        object: None,
        sources: Vec::new(),
        entries: Vec::new(),
        cleaned_offset: 2,
        cleaned_bytes: 99,
        cleaner_limit: 99,
        tombstones_expire_at_ms: 1,
        ..swap
    };
    assert_eq!(
        catalog.swap_cleaned(&again).await.unwrap(),
        SwapOutcome::Swapped
    );
    let unchanged = view(catalog, &topic).await;
    assert_eq!((unchanged.cleaned_offset, unchanged.cleaned_bytes), (5, 10));
    assert_eq!(
        (unchanged.cleaner_limit, unchanged.tombstones_expire_at_ms),
        (8, 7_000)
    );
}

pub async fn a_cleaning_swap_is_refused_whole_when_a_source_entry_changed(catalog: &dyn Catalog) {
    let topic = three_entries(catalog).await;
    let read = view(catalog, &topic).await;
    // Another agent's cleaner replaced entry 0-2 meanwhile.
    let first = cleaning(&topic, &read.entries[..1], "other-agent");
    assert_eq!(
        catalog.swap_cleaned(&first).await.unwrap(),
        SwapOutcome::Swapped
    );
    let between = view(catalog, &topic).await;
    let stale = cleaning(&topic, &read.entries[..2], "stale");
    assert_eq!(
        catalog.swap_cleaned(&stale).await.unwrap(),
        SwapOutcome::Conflict
    );
    assert_eq!(
        view(catalog, &topic).await,
        between,
        "nothing changed: entry 3-4 is still there, no entry points into the stale object"
    );
    // The stale object was never recorded: the collector has nothing of it.
    let objects = catalog
        .small_live_objects(1 << 40, streamhouse_metadata::compaction::Shards::ALL, 100)
        .await
        .unwrap();
    assert!(objects.iter().all(|o| o.key != "stale"), "{objects:?}");
    // A partition gone with its topic is a conflict too.
    catalog.delete_topic("t").await.unwrap();
    assert_eq!(
        catalog.swap_cleaned(&stale).await.unwrap(),
        SwapOutcome::Conflict
    );
    assert_eq!(catalog.cleaner_view(topic.id, 0, 10).await.unwrap(), None);
}
