//! Share groups' partition states: rewritten in one step, listed per group,
//! and forgotten a topic at a time.

use streamhouse_metadata::{Catalog, TopicId};

async fn set(catalog: &dyn Catalog, group: &str, topic: TopicId, partition: i32, state: &str) {
    let state = state.to_owned();
    let stored = catalog
        .update_share_partition(group, topic, partition, &move |_| Some(state.clone()))
        .await
        .expect("update_share_partition");
    assert!(stored.is_some());
}

pub async fn share_partitions_are_rewritten_listed_and_forgotten_per_topic(catalog: &dyn Catalog) {
    let (orders, audit) = (TopicId::from_u128(1), TopicId::from_u128(2));
    set(catalog, "g", orders, 0, "a").await;
    set(catalog, "g", orders, 1, "b").await;
    set(catalog, "g", audit, 0, "c").await;
    set(catalog, "other", orders, 0, "d").await;
    // An update that returns None leaves the row as it is.
    let kept = catalog
        .update_share_partition("g", orders, 0, &|current| {
            assert_eq!(current, Some("a"));
            None
        })
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("a"));
    set(catalog, "g", orders, 0, "a2").await;
    assert_eq!(
        catalog
            .share_partition("g", orders, 0)
            .await
            .unwrap()
            .as_deref(),
        Some("a2")
    );

    assert_eq!(catalog.delete_share_topic("g", orders).await.unwrap(), 2);
    let left: Vec<_> = catalog
        .share_partitions("g")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.topic, p.partition, p.state))
        .collect();
    assert_eq!(left, vec![(audit, 0, "c".to_owned())]);
    // Another group's state of the topic stays; a second delete finds none.
    assert_eq!(
        catalog
            .share_partition("other", orders, 0)
            .await
            .unwrap()
            .as_deref(),
        Some("d")
    );
    assert_eq!(catalog.delete_share_topic("g", orders).await.unwrap(), 0);
}
