//! Cases about more than one catalog on a database: agents committing side by
//! side, an agent restarting, the cache of one agent seeing another's changes.

use std::sync::Arc;
use std::time::Duration;

use streamhouse_metadata::prelude::*;
use streamhouse_metadata::{CatalogError, RunOutcome};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::cases::{
    all_entries, appended, base_offset_of, commit, create, new_topic, offsets, run,
};
use crate::harness::TestDb;

// The admin case about several agents lives with the other admin cases.
pub use crate::admin::concurrent_config_updates_lose_nothing;
// So is the one about the catalog timeout.
pub use crate::timeouts::a_commit_stuck_on_a_lock_times_out_and_the_catalog_recovers;

const TASKS: i64 = 8;
const COMMITS_PER_TASK: i64 = 25;

/// Several agents (two catalogs, so two pools and on SQLite two writer
/// connections), eight tasks, 25 commits each, all appending to partition 0 (and
/// some to partition 1 in the same object): the entries must tile the partition.
pub async fn concurrent_commits_never_overlap_or_leave_gaps(db: &TestDb) {
    let agents: Vec<Arc<dyn Catalog>> = vec![db.open().await, db.open().await];
    let topic = create(&*agents[0], "orders", 2).await;
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let catalog = Arc::clone(&agents[task as usize % agents.len()]);
        let topic = topic.clone();
        tasks.spawn(async move {
            let mut bases = Vec::new();
            for i in 0..COMMITS_PER_TASK {
                let size = 1 + (task + i) % 4;
                let mut runs = vec![run(&topic, 0, 0, size)];
                if i % 3 == 0 {
                    runs.push(run(&topic, 1, 1_000, 1));
                }
                let key = format!("t{task}-c{i}");
                let outcomes = commit(&*catalog, &key, &runs).await;
                let base_offset = base_offset_of(&outcomes[0]);
                bases.push((base_offset, size, key));
            }
            bases
        });
    }
    let mut committed = Vec::new();
    while let Some(bases) = tasks.join_next().await {
        committed.extend(bases.expect("commit task"));
    }
    committed.sort();

    let total: i64 = committed.iter().map(|(_, size, _)| size).sum();
    let entries = all_entries(&*agents[1], topic.id, 0).await;
    assert_eq!(entries.len(), (TASKS * COMMITS_PER_TASK) as usize);
    let mut next = 0;
    for (entry, (base, size, key)) in entries.iter().zip(&committed) {
        assert_eq!(entry.base_offset, next, "gap or overlap at {next}");
        assert_eq!(
            (entry.base_offset, entry.last_offset),
            (*base, base + size - 1)
        );
        assert_eq!(&entry.object_key, key);
        next = entry.last_offset + 1;
    }
    assert_eq!(next, total);
    for agent in &agents {
        assert_eq!(
            agent.partition_offsets(topic.id, 0).await.unwrap(),
            offsets(0, total)
        );
    }
    let ones = TASKS * ((COMMITS_PER_TASK + 2) / 3);
    let p1 = all_entries(&*agents[0], topic.id, 1).await;
    assert_eq!(p1.len() as i64, ones);
    assert!(p1
        .iter()
        .enumerate()
        .all(|(i, e)| e.base_offset == i as i64 && e.last_offset == i as i64));
}

pub async fn reopening_the_database_shows_the_same_topics_and_offsets(db: &TestDb) {
    let before = db.open().await;
    let orders = create(&*before, "orders", 2).await;
    let audit = create(&*before, "audit", 1).await;
    commit(
        &*before,
        "o1",
        &[run(&orders, 0, 0, 3), run(&orders, 1, 300, 1)],
    )
    .await;
    commit(&*before, "o2", &[run(&orders, 0, 0, 2)]).await;
    let entries = all_entries(&*before, orders.id, 0).await;
    drop(before);

    let after = db.open().await;
    assert_eq!(
        after.list_topics().await.unwrap(),
        vec![audit.clone(), orders.clone()]
    );
    assert_eq!(
        after.topic_by_id(orders.id).await.unwrap(),
        Some(orders.clone())
    );
    assert_eq!(
        after.partition_offsets(orders.id, 0).await.unwrap(),
        offsets(0, 5)
    );
    assert_eq!(
        after.partition_offsets(orders.id, 1).await.unwrap(),
        offsets(0, 1)
    );
    assert_eq!(
        after.partition_offsets(audit.id, 0).await.unwrap(),
        offsets(0, 0)
    );
    assert_eq!(all_entries(&*after, orders.id, 0).await, entries);
    assert_eq!(
        commit(&*after, "o3", &[run(&orders, 0, 0, 1)]).await,
        vec![appended(5)]
    );
}

pub async fn cache_reflects_this_agents_creates_and_deletes_at_once(db: &TestDb) {
    let catalog = db.open_cached().await;
    assert_eq!(catalog.topic_by_name("orders").await.unwrap(), None);

    let first = create(&catalog, "orders", 1).await;
    assert_eq!(
        catalog.topic_by_name("orders").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        catalog.topic_by_id(first.id).await.unwrap(),
        Some(first.clone())
    );

    catalog.delete_topic("orders").await.unwrap();
    assert_eq!(catalog.topic_by_name("orders").await.unwrap(), None);
    assert_eq!(catalog.topic_by_id(first.id).await.unwrap(), None);

    let second = create(&catalog, "orders", 3).await;
    assert_eq!(
        catalog.topic_by_name("orders").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(catalog.topic_by_id(second.id).await.unwrap(), Some(second));
    assert_eq!(catalog.topic_by_id(first.id).await.unwrap(), None);
}

pub async fn cache_sees_other_agents_creates_at_once_and_deletes_within_its_ttl(db: &TestDb) {
    let ttl = Duration::from_millis(300);
    let cached = db.open_cached().await.with_topic_cache(100, ttl);
    let other = db.open_uncached().await;

    // Absence is not cached.
    assert_eq!(cached.topic_by_name("orders").await.unwrap(), None);
    let topic = create(&other, "orders", 1).await;
    assert_eq!(
        cached.topic_by_name("orders").await.unwrap(),
        Some(topic.clone())
    );
    assert_eq!(
        cached.topic_by_id(topic.id).await.unwrap(),
        Some(topic.clone())
    );

    other.delete_topic("orders").await.unwrap();
    // Served from the cache until the TTL passes...
    assert_eq!(
        cached.topic_by_name("orders").await.unwrap(),
        Some(topic.clone())
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    // ...and gone after.
    assert_eq!(cached.topic_by_name("orders").await.unwrap(), None);
    assert_eq!(cached.topic_by_id(topic.id).await.unwrap(), None);
}

pub async fn cache_forgets_a_topic_once_a_commit_finds_it_deleted(db: &TestDb) {
    let cached = db.open_cached().await;
    let other = db.open_uncached().await;
    let topic = create(&other, "orders", 1).await;
    assert_eq!(
        cached.topic_by_id(topic.id).await.unwrap(),
        Some(topic.clone())
    );
    other.delete_topic("orders").await.unwrap();

    let outcomes = commit(&cached, "o1", &[run(&topic, 0, 0, 1)]).await;
    assert_eq!(outcomes, vec![RunOutcome::UnknownPartition]);
    assert_eq!(cached.topic_by_id(topic.id).await.unwrap(), None);
    assert_eq!(cached.topic_by_name("orders").await.unwrap(), None);
}

pub async fn without_the_cache_lookups_see_other_agents_deletes_at_once(db: &TestDb) {
    let uncached = db.open_uncached().await;
    let other = db.open_uncached().await;
    let topic = create(&other, "orders", 1).await;
    assert_eq!(
        uncached.topic_by_name("orders").await.unwrap(),
        Some(topic.clone())
    );
    assert_eq!(
        uncached.topic_by_id(topic.id).await.unwrap(),
        Some(topic.clone())
    );

    other.delete_topic("orders").await.unwrap();
    assert_eq!(uncached.topic_by_name("orders").await.unwrap(), None);
    assert_eq!(uncached.topic_by_id(topic.id).await.unwrap(), None);
}

/// Agents racing to create one name: exactly one topic results, the others are
/// told it exists.
pub async fn concurrent_creates_of_one_name_make_one_topic(db: &TestDb) {
    let agents: Vec<Arc<dyn Catalog>> = vec![db.open().await, db.open().await];
    let mut tasks = JoinSet::new();
    for task in 0..8 {
        let catalog = Arc::clone(&agents[task % agents.len()]);
        tasks.spawn(async move { catalog.create_topic(&new_topic("orders", 3)).await });
    }
    let mut created = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result.expect("create task") {
            Ok(topic) => created.push(topic),
            Err(CatalogError::TopicAlreadyExists(name)) => assert_eq!(name, "orders"),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!(agents[0].list_topics().await.unwrap(), created);
}

/// A topic deleted while other agents keep committing to it: no commit fails, each
/// committer's runs for it are appended until the delete and reported as
/// UnknownPartition after, and nothing of the topic is left.
pub async fn deleting_a_topic_while_commits_are_in_flight(db: &TestDb) {
    const TASKS: usize = 4;
    const BEFORE: usize = 1;
    const DURING: usize = 15;
    const AFTER: usize = 5;
    let agents: Vec<Arc<dyn Catalog>> = vec![db.open().await, db.open().await];
    let doomed = create(&*agents[0], "doomed", 2).await;
    let kept = create(&*agents[0], "kept", 1).await;
    // Callers order runs by topic and partition.
    let mut template = vec![
        run(&doomed, 0, 0, 2),
        run(&doomed, 1, 200, 1),
        run(&kept, 0, 300, 3),
    ];
    template.sort_by_key(|r| (r.topic, r.partition));

    // Every task commits once before the delete, races it for a while, and
    // commits again once it has returned.
    let started = Arc::new(Barrier::new(TASKS + 1));
    let deleted = Arc::new(Barrier::new(TASKS + 1));
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let catalog = Arc::clone(&agents[task % agents.len()]);
        let runs = template.clone();
        let (started, deleted) = (Arc::clone(&started), Arc::clone(&deleted));
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..BEFORE + DURING + AFTER {
                if i == BEFORE {
                    started.wait().await;
                }
                if i == BEFORE + DURING {
                    deleted.wait().await;
                }
                outcomes.push(commit(&*catalog, &format!("t{task}-c{i}"), &runs).await);
            }
            outcomes
        });
    }
    started.wait().await;
    assert_eq!(agents[1].delete_topic("doomed").await.unwrap(), doomed);
    deleted.wait().await;

    let kept_at = template.iter().position(|r| r.topic == kept.id).unwrap();
    let doomed_at: Vec<usize> = (0..template.len()).filter(|&i| i != kept_at).collect();
    while let Some(outcomes) = tasks.join_next().await {
        let gone: Vec<bool> = outcomes
            .expect("commit task")
            .iter()
            .map(|outcome| {
                assert!(matches!(outcome[kept_at], RunOutcome::Committed(_)));
                // Both partitions vanish in the same transaction.
                let gone = doomed_at
                    .iter()
                    .map(|&i| outcome[i] == RunOutcome::UnknownPartition);
                let gone: Vec<bool> = gone.collect();
                assert!(gone.iter().all(|g| *g == gone[0]), "{outcome:?}");
                gone[0]
            })
            .collect();
        assert!(!gone[..BEFORE].iter().any(|g| *g), "{gone:?}");
        assert!(gone[BEFORE + DURING..].iter().all(|g| *g), "{gone:?}");
        // Once gone, never back.
        assert!(gone.windows(2).all(|w| w[0] <= w[1]), "{gone:?}");
    }
    assert_eq!(agents[0].topic_by_name("doomed").await.unwrap(), None);
    assert_eq!(
        agents[0].partition_offsets(doomed.id, 0).await.unwrap(),
        None
    );
    assert_eq!(all_entries(&*agents[0], doomed.id, 0).await, vec![]);
    assert_eq!(all_entries(&*agents[0], doomed.id, 1).await, vec![]);
    let kept_offsets = 3 * (TASKS * (BEFORE + DURING + AFTER)) as i64;
    assert_eq!(
        agents[0].partition_offsets(kept.id, 0).await.unwrap(),
        offsets(0, kept_offsets)
    );
}

/// The cluster id is made once and every agent, before and after a restart,
/// reports the same one.
pub async fn every_agent_reports_the_same_cluster_id(db: &TestDb) {
    let first = db.open().await;
    let second = db.open().await;
    let (a, b) = tokio::join!(first.cluster_id(), second.cluster_id());
    let id = a.unwrap();
    assert_eq!(b.unwrap(), id);
    assert_eq!(id.len(), 22);
    drop((first, second));
    assert_eq!(db.open().await.cluster_id().await.unwrap(), id);
}
