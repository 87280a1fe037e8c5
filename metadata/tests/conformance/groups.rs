//! What every catalog must do with consumer groups: committed offsets (stored,
//! overwritten, read back, deleted) and the stored state of groups.

use streamhouse_metadata::groups::{GroupFence, OffsetCommit, StoredGroup, StoredMember};
use streamhouse_metadata::Catalog;

/// Writes outside any lease, as a lone agent makes them.
const UNFENCED: GroupFence = GroupFence::Unfenced;

pub(crate) fn offset(
    topic: &str,
    partition: i32,
    offset: i64,
    metadata: Option<&str>,
) -> OffsetCommit {
    OffsetCommit {
        topic: topic.to_owned(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: metadata.map(str::to_owned),
    }
}

pub(crate) fn member(id: &str, instance: Option<&str>) -> StoredMember {
    StoredMember {
        member_id: id.to_owned(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        rebalance_timeout_ms: 30_000,
        session_timeout_ms: 10_000,
        subscription: vec![0, 1, 0xff, 0],
        assignment: id.as_bytes().to_vec(),
    }
}

pub(crate) fn group(id: &str, generation: i32, members: Vec<StoredMember>) -> StoredGroup {
    StoredGroup {
        group_id: id.to_owned(),
        protocol_type: Some("consumer".to_owned()),
        protocol_name: Some("range".to_owned()),
        generation,
        leader_id: members.first().map(|m| m.member_id.clone()),
        members,
        consumer_state: None,
    }
}

pub async fn committed_offsets_are_overwritten_and_read_back_in_order(catalog: &dyn Catalog) {
    assert_eq!(catalog.committed_offsets("g").await.unwrap(), vec![]);
    catalog
        .commit_offsets(
            "g",
            UNFENCED,
            &[offset("b", 1, 10, Some("x")), offset("a", 0, 5, None)],
        )
        .await
        .unwrap();
    catalog
        .commit_offsets("g", UNFENCED, &[offset("b", 1, 12, Some("y"))])
        .await
        .unwrap();
    catalog
        .commit_offsets("other", UNFENCED, &[offset("a", 0, 99, None)])
        .await
        .unwrap();
    let read: Vec<(String, i32, i64, i32, Option<String>)> = catalog
        .committed_offsets("g")
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            assert!(c.commit_timestamp_ms > 1_600_000_000_000);
            (c.topic, c.partition, c.offset, c.leader_epoch, c.metadata)
        })
        .collect();
    assert_eq!(
        read,
        vec![
            ("a".to_owned(), 0, 5, 3, None),
            ("b".to_owned(), 1, 12, 3, Some("y".to_owned())),
        ]
    );
    catalog
        .delete_offsets("g", UNFENCED, &[("a".to_owned(), 0), ("zzz".to_owned(), 4)])
        .await
        .unwrap();
    assert_eq!(catalog.committed_offsets("g").await.unwrap().len(), 1);
    assert_eq!(catalog.committed_offsets("other").await.unwrap().len(), 1);
}

pub async fn stored_groups_are_replaced_whole_and_deleted_with_their_offsets(
    catalog: &dyn Catalog,
) {
    assert_eq!(catalog.load_groups().await.unwrap(), vec![]);
    let first = group("g", 1, vec![member("m1", None), member("m2", Some("i2"))]);
    catalog.store_group(&first, UNFENCED).await.unwrap();
    let empty = StoredGroup {
        protocol_type: None,
        protocol_name: None,
        leader_id: None,
        ..group("a-simple", 0, vec![])
    };
    catalog.store_group(&empty, UNFENCED).await.unwrap();
    assert_eq!(
        catalog.load_groups().await.unwrap(),
        vec![empty.clone(), first]
    );
    // The next generation has other members: the old ones are gone.
    let second = group("g", 2, vec![member("m3", None)]);
    catalog.store_group(&second, UNFENCED).await.unwrap();
    assert_eq!(
        catalog.load_groups().await.unwrap(),
        vec![empty.clone(), second.clone()]
    );
    assert_eq!(catalog.load_group("g").await.unwrap(), Some(second));
    assert_eq!(catalog.load_group("a-simple").await.unwrap(), Some(empty));
    // A group of the consumer protocol: its state document is kept as given,
    // and storing it as a classic group again clears it.
    let modern = StoredGroup {
        protocol_name: None,
        leader_id: None,
        consumer_state: Some(r#"{"epoch":3,"members":[]}"#.to_owned()),
        ..group("modern", 0, vec![])
    };
    catalog.store_group(&modern, UNFENCED).await.unwrap();
    assert_eq!(
        catalog.load_group("modern").await.unwrap(),
        Some(modern.clone())
    );
    let classic_again = StoredGroup {
        consumer_state: None,
        ..modern
    };
    catalog.store_group(&classic_again, UNFENCED).await.unwrap();
    assert_eq!(
        catalog.load_group("modern").await.unwrap(),
        Some(classic_again)
    );
    catalog.delete_group("modern", UNFENCED).await.unwrap();
    assert_eq!(catalog.load_group("missing").await.unwrap(), None);
    catalog
        .commit_offsets("g", UNFENCED, &[offset("t", 0, 1, None)])
        .await
        .unwrap();
    catalog.delete_group("g", UNFENCED).await.unwrap();
    assert_eq!(catalog.load_groups().await.unwrap().len(), 1);
    assert_eq!(catalog.load_group("g").await.unwrap(), None);
    assert_eq!(catalog.committed_offsets("g").await.unwrap(), vec![]);
    // Deleting what is not there is not an error.
    catalog.delete_group("g", UNFENCED).await.unwrap();
}
