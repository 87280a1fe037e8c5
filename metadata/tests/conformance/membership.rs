//! Membership: registration, node ids, leases, reaping and the epoch that names
//! each set of agents.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection, SqliteConnection};
use streamhouse_metadata::agents::{AgentRegistration, Endpoint, Renewal};
use streamhouse_metadata::{Backend, CatalogError};

use crate::harness::TestDb;

const LEASE_MS: i64 = 60_000;

fn agent(port: i32, node_id: Option<i32>) -> AgentRegistration {
    AgentRegistration {
        node_id,
        incarnation: uuid::Uuid::new_v4().to_string(),
        host: "127.0.0.1".into(),
        port,
        endpoints: vec![endpoint("PLAINTEXT", port)],
        zone: None,
        lease_ms: LEASE_MS,
    }
}

fn endpoint(listener: &str, port: i32) -> Endpoint {
    Endpoint {
        listener: listener.into(),
        host: "127.0.0.1".into(),
        port,
    }
}

fn node_ids(membership: &streamhouse_metadata::agents::Membership) -> Vec<i32> {
    membership.agents.iter().map(|a| a.node_id).collect()
}

pub async fn automatic_node_ids_fill_gaps_from_zero_and_each_change_bumps_the_epoch(db: &TestDb) {
    let catalog = db.open().await;
    let empty = catalog.membership().await.unwrap();
    assert!(empty.agents.is_empty());

    let a = agent(9001, None);
    let b = agent(9002, None);
    let c = agent(9003, None);
    let first = catalog.register_agent(&a).await.unwrap();
    let second = catalog.register_agent(&b).await.unwrap();
    let third = catalog.register_agent(&c).await.unwrap();
    assert_eq!((first.node_id, second.node_id, third.node_id), (0, 1, 2));
    assert_eq!(second.epoch, first.epoch + 1);
    assert_eq!(third.epoch, second.epoch + 1);

    catalog.deregister_agent(1, &b.incarnation).await.unwrap();
    let after_leave = catalog.membership().await.unwrap();
    assert_eq!(node_ids(&after_leave), vec![0, 2]);
    assert_eq!(after_leave.epoch, third.epoch + 1);
    // Leaving twice changes nothing, not even the epoch.
    catalog.deregister_agent(1, &b.incarnation).await.unwrap();
    assert_eq!(catalog.membership().await.unwrap().epoch, after_leave.epoch);

    let d = catalog.register_agent(&agent(9004, None)).await.unwrap();
    assert_eq!(d.node_id, 1, "the gap is filled first");
    let view = catalog.membership().await.unwrap();
    assert_eq!(node_ids(&view), vec![0, 1, 2]);
    assert_eq!(view.epoch, d.epoch);
    assert_eq!(view.agents[1].port, 9004);
}

pub async fn an_agent_restarting_on_its_address_replaces_its_previous_row(db: &TestDb) {
    let catalog = db.open().await;
    let before = agent(9001, None);
    catalog.register_agent(&agent(9000, None)).await.unwrap();
    let first = catalog.register_agent(&before).await.unwrap();
    assert_eq!(first.node_id, 1);

    let restarted = agent(9001, None);
    let again = catalog.register_agent(&restarted).await.unwrap();
    assert_eq!(again.node_id, 1, "same address, same node id");
    assert!(again.epoch > first.epoch);
    let view = catalog.membership().await.unwrap();
    assert_eq!(view.agents.len(), 2);
    assert_eq!(view.agents[1].incarnation, restarted.incarnation);

    // The previous run's renewals now find its row gone.
    let renewal = catalog
        .renew_agent(1, &before.incarnation, LEASE_MS, false)
        .await
        .unwrap();
    assert_eq!(renewal, Renewal::Gone);

    // Asking for another id at a registered address is a configuration error.
    let error = catalog
        .register_agent(&agent(9001, Some(7)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CatalogError::AddressHasOtherNodeId {
                registered: 1,
                requested: 7,
                ..
            }
        ),
        "{error:?}"
    );
}

pub async fn a_node_id_held_by_a_live_agent_is_refused_and_a_lapsed_one_is_taken(db: &TestDb) {
    let catalog = db.open().await;
    let holder = agent(9001, Some(5));
    assert_eq!(catalog.register_agent(&holder).await.unwrap().node_id, 5);
    let error = catalog
        .register_agent(&agent(9002, Some(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            CatalogError::NodeIdInUse {
                node_id: 5,
                port: 9001,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("127.0.0.1:9001"), "{error}");

    // Once the holder's lease lapses, the id may be taken.
    let mut short = agent(9003, Some(6));
    short.lease_ms = 1;
    catalog.register_agent(&short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taker = catalog.register_agent(&agent(9004, Some(6))).await.unwrap();
    assert_eq!(taker.node_id, 6);
    let view = catalog.membership().await.unwrap();
    assert_eq!(
        view.agents.iter().find(|a| a.node_id == 6).unwrap().port,
        9004
    );
}

pub async fn lapsed_agents_are_reaped_only_by_a_renewal_that_may_reap(db: &TestDb) {
    let agents = [db.open().await, db.open().await];
    let live = agent(9001, None);
    let mut dying = agent(9002, None);
    dying.lease_ms = 1;
    agents[0].register_agent(&live).await.unwrap();
    agents[1].register_agent(&dying).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let epoch = agents[0].membership().await.unwrap().epoch;
    // Readers never filter by lease time: the row stays until reaped.
    let renewal = agents[0]
        .renew_agent(0, &live.incarnation, LEASE_MS, false)
        .await
        .unwrap();
    assert_eq!(renewal, Renewal::Renewed { reaped: vec![] });
    let view = agents[1].membership().await.unwrap();
    assert_eq!((view.epoch, view.agents.len()), (epoch, 2));

    let renewal = agents[0]
        .renew_agent(0, &live.incarnation, LEASE_MS, true)
        .await
        .unwrap();
    assert_eq!(renewal, Renewal::Renewed { reaped: vec![1] });
    let view = agents[1].membership().await.unwrap();
    assert_eq!(node_ids(&view), vec![0]);
    assert_eq!(view.epoch, epoch + 1);

    // Nothing more to reap: the epoch stays.
    agents[0]
        .renew_agent(0, &live.incarnation, LEASE_MS, true)
        .await
        .unwrap();
    assert_eq!(agents[1].membership().await.unwrap().epoch, epoch + 1);
    // The reaped agent learns it at its next renewal.
    let renewal = agents[1]
        .renew_agent(1, &dying.incarnation, LEASE_MS, true)
        .await
        .unwrap();
    assert_eq!(renewal, Renewal::Gone);
}

pub async fn agents_registering_together_get_distinct_node_ids(db: &TestDb) {
    let agents = [db.open().await, db.open().await];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let catalog = std::sync::Arc::clone(&agents[i % 2]);
        tasks.spawn(async move { catalog.register_agent(&agent(9100 + i as i32, None)).await });
    }
    let mut ids = Vec::new();
    let mut epochs = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let registered = result.unwrap().unwrap();
        ids.push(registered.node_id);
        epochs.push(registered.epoch);
    }
    ids.sort();
    epochs.sort();
    epochs.dedup();
    assert_eq!(ids, (0..8).collect::<Vec<_>>());
    assert_eq!(epochs.len(), 8, "every registration named its own epoch");
}

pub async fn counters_start_at_zero_and_track_membership(db: &TestDb) {
    let catalog = db.open().await;
    let counters = catalog.counters().await.unwrap();
    assert_eq!((counters.membership, counters.catalog), (0, 0));
    let registered = catalog.register_agent(&agent(9001, None)).await.unwrap();
    assert_eq!(
        catalog.counters().await.unwrap().membership,
        registered.epoch
    );
}

pub async fn every_listener_an_agent_advertises_is_read_back(db: &TestDb) {
    let catalog = db.open().await;
    let mut both = agent(9001, None);
    both.endpoints = vec![
        endpoint("PLAINTEXT", 9001),
        Endpoint {
            listener: "SASL_SSL".into(),
            host: "broker-1.example".into(),
            port: 9093,
        },
    ];
    catalog.register_agent(&both).await.unwrap();
    catalog.register_agent(&agent(9002, None)).await.unwrap();
    let view = catalog.membership().await.unwrap();
    assert_eq!(view.agents[0].endpoints, both.endpoints);
    assert_eq!(
        view.agents[0]
            .endpoint("SASL_SSL")
            .map(|e| (e.host, e.port)),
        Some(("broker-1.example".into(), 9093))
    );
    assert_eq!(view.agents[1].endpoints, vec![endpoint("PLAINTEXT", 9002)]);
    assert_eq!(view.agents[1].endpoint("SASL_SSL"), None);

    // A row as an agent of an older version inserts it, without listeners:
    // its one address answers for every listener.
    let legacy = "INSERT INTO agents (node_id, incarnation, host, port, zone, registered_at_ms, \
                  lease_expires_at_ms) VALUES (7, 'old', '127.0.0.1', 9007, NULL, 0, 9000000000000)";
    match db.target.backend {
        Backend::Postgres => {
            let mut conn = PgConnection::connect(&db.url).await.unwrap();
            conn.execute(legacy).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Sqlite => {
            let mut conn = SqliteConnection::connect(&db.url).await.unwrap();
            conn.execute(legacy).await.unwrap();
            conn.close().await.unwrap();
        }
    }
    let view = catalog.membership().await.unwrap();
    let old = view.agents.iter().find(|a| a.node_id == 7).unwrap();
    assert!(old.endpoints.is_empty());
    assert_eq!(old.endpoint("SASL_SSL"), Some(endpoint("SASL_SSL", 9007)));
}
