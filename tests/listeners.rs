//! Several listeners on one agent, over the wire: a client is told every
//! broker's endpoint on the listener it connected on (Metadata,
//! FindCoordinator, DescribeCluster), and, as in Kafka, an agent without that
//! listener is left out: its partitions have no leader (LISTENER_NOT_FOUND
//! from Metadata v6, LEADER_NOT_AVAILABLE before, leader -1 without an error
//! in DescribeTopicPartitions) and the groups it coordinates are
//! COORDINATOR_NOT_AVAILABLE.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::Certs;
use common::sasl::{authenticate, handshake};
use common::{
    create_topic, name, on_both_backends, s, unique_topic, Backend, Stream, TestBroker, TestClient,
};
use kafka_protocol::messages::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

on_both_backends!(
    each_listener_is_told_its_own_endpoint,
    agents_without_the_clients_listener_are_left_out,
);

const LEADER_NOT_AVAILABLE: i16 = 5;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const LISTENER_NOT_FOUND: i16 = 72;

/// A client of `broker`'s `protocol` listener, authenticated as alice on a
/// SASL one; `certs` is the CA an SSL client trusts.
async fn client_of(
    broker: &TestBroker,
    protocol: &str,
    certs: Option<&Certs>,
) -> TestClient<Box<dyn Stream>> {
    let addr = broker.listener(protocol);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream: Box<dyn Stream> = if protocol == "SSL" {
        let mut roots = RootCertStore::empty();
        let ca = certs.expect("an SSL client needs the CA").path("ca.pem");
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let mut client = TestClient::over(stream);
    if protocol == "SASL_PLAINTEXT" {
        assert_eq!(handshake(&mut client, 1, "PLAIN").await.error_code, 0);
        let accepted = authenticate(&mut client, b"\0alice\0alice-secret").await;
        assert_eq!(accepted.error_code, 0);
    }
    client
}

fn users_file(dir: &std::path::Path) -> std::path::PathBuf {
    let users = dir.join("users");
    std::fs::write(&users, "alice:alice-secret\n").unwrap();
    users
}

async fn metadata(
    client: &mut TestClient<impl Stream>,
    version: i16,
    topic: Option<&str>,
) -> MetadataResponse {
    let topics = topic
        .map(|t| vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(t)))]);
    let ResponseKind::Metadata(r) = client
        .call(
            ApiKey::Metadata,
            version,
            &MetadataRequest::default().with_topics(topics),
        )
        .await
    else {
        panic!("not a Metadata response")
    };
    r
}

/// Each broker of a Metadata response: node id to `host:port`.
fn brokers(response: &MetadataResponse) -> BTreeMap<i32, String> {
    response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect()
}

/// FindCoordinator v4 for `groups`: (error, node id, `host:port`) each.
async fn coordinators(
    client: &mut TestClient<impl Stream>,
    groups: &[String],
) -> Vec<(i16, i32, String)> {
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(groups.iter().map(|g| s(g)).collect());
    let ResponseKind::FindCoordinator(r) = client.call(ApiKey::FindCoordinator, 4, &request).await
    else {
        panic!("not a FindCoordinator response")
    };
    r.coordinators
        .iter()
        .map(|c| (c.error_code, c.node_id.0, format!("{}:{}", c.host, c.port)))
        .collect()
}

async fn cluster_brokers(client: &mut TestClient<impl Stream>) -> BTreeMap<i32, String> {
    let ResponseKind::DescribeCluster(r) = client
        .call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default(),
        )
        .await
    else {
        panic!("not a DescribeCluster response")
    };
    r.brokers
        .iter()
        .map(|b| (b.broker_id.0, format!("{}:{}", b.host, b.port)))
        .collect()
}

async fn each_listener_is_told_its_own_endpoint(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    let users = users_file(dir.path());
    let protocols = ["PLAINTEXT", "SASL_PLAINTEXT", "SSL"];
    let broker = TestBroker::start_with_listeners(backend, &protocols, |settings| {
        // The SSL listener is advertised by name, the others as bound.
        let ssl = settings.listener[2].replace("127.0.0.1", "localhost");
        settings.advertised_listener = vec![ssl];
        settings.tls_cert = Some(certs.path("server.pem"));
        settings.tls_key = Some(certs.path("server.key"));
        settings.sasl_users_file = Some(users);
    })
    .await;
    let node_id = broker.broker().node_id();
    let topic = unique_topic("listeners");
    let groups = vec!["listeners-group".to_string()];
    for protocol in protocols {
        let addr = broker.listener(protocol);
        let expected = match protocol {
            "SSL" => format!("localhost:{}", addr.port()),
            _ => addr.to_string(),
        };
        let mut client = client_of(&broker, protocol, Some(&certs)).await;
        if protocol == "PLAINTEXT" {
            create_topic(&mut client, &topic, 2).await;
        }
        let response = metadata(&mut client, 12, Some(&topic)).await;
        assert_eq!(
            brokers(&response),
            BTreeMap::from([(node_id, expected.clone())])
        );
        for partition in &response.topics[0].partitions {
            assert_eq!((partition.error_code, partition.leader_id.0), (0, node_id));
        }
        assert_eq!(
            coordinators(&mut client, &groups).await,
            vec![(0, node_id, expected.clone())],
            "{protocol}"
        );
        assert_eq!(
            cluster_brokers(&mut client).await,
            BTreeMap::from([(node_id, expected)])
        );
    }
}

/// Polls Metadata through `client` until it names `count` brokers.
async fn until_brokers(client: &mut TestClient<impl Stream>, count: usize) {
    let started = Instant::now();
    while metadata(client, 12, None).await.brokers.len() != count {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {count} brokers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn agents_without_the_clients_listener_are_left_out(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let both = ["PLAINTEXT", "SASL_PLAINTEXT"];
    let a = TestBroker::start_with_listeners(backend, &both, |settings| {
        settings.sasl_users_file = Some(users);
    })
    .await;
    let b = a.another_agent_with_listeners(&["PLAINTEXT"], |_| {}).await;
    let (a_id, b_id) = (a.broker().node_id(), b.broker().node_id());
    let mut plain = client_of(&a, "PLAINTEXT", None).await;
    until_brokers(&mut plain, 2).await;
    let topic = unique_topic("led");
    create_topic(&mut plain, &topic, 16).await;

    // On PLAINTEXT both agents, each at its own PLAINTEXT address, lead.
    let on_plain = metadata(&mut plain, 12, Some(&topic)).await;
    assert_eq!(
        brokers(&on_plain),
        BTreeMap::from([
            (a_id, a.listener("PLAINTEXT").to_string()),
            (b_id, b.listener("PLAINTEXT").to_string()),
        ])
    );
    let leaders: Vec<i32> = on_plain.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    assert!(
        leaders.contains(&a_id) && leaders.contains(&b_id),
        "{leaders:?}"
    );

    // On SASL_PLAINTEXT only agent a, and b's partitions have no leader.
    let mut sasl = client_of(&a, "SASL_PLAINTEXT", None).await;
    let a_sasl = a.listener("SASL_PLAINTEXT").to_string();
    for (version, missing) in [(12, LISTENER_NOT_FOUND), (5, LEADER_NOT_AVAILABLE)] {
        let on_sasl = metadata(&mut sasl, version, Some(&topic)).await;
        assert_eq!(brokers(&on_sasl), BTreeMap::from([(a_id, a_sasl.clone())]));
        for (partition, leader) in on_sasl.topics[0].partitions.iter().zip(&leaders) {
            let expected = if *leader == a_id {
                (0, a_id)
            } else {
                (missing, -1)
            };
            assert_eq!((partition.error_code, partition.leader_id.0), expected);
            assert_eq!(partition.replica_nodes, [BrokerId(*leader)]);
        }
    }
    assert_eq!(
        cluster_brokers(&mut sasl).await,
        BTreeMap::from([(a_id, a_sasl.clone())])
    );
    let request = DescribeTopicPartitionsRequest::default().with_topics(vec![
        describe_topic_partitions_request::TopicRequest::default().with_name(name(&topic)),
    ]);
    let ResponseKind::DescribeTopicPartitions(described) = sasl
        .call(ApiKey::DescribeTopicPartitions, 0, &request)
        .await
    else {
        panic!("not a DescribeTopicPartitions response")
    };
    for (partition, leader) in described.topics[0].partitions.iter().zip(&leaders) {
        let expected = if *leader == a_id { a_id } else { -1 };
        assert_eq!((partition.error_code, partition.leader_id.0), (0, expected));
    }

    // Groups: a's own on its SASL address, b's not available there.
    let groups: Vec<String> = (0..16).map(|i| format!("group-{i}")).collect();
    let on_plain = coordinators(&mut plain, &groups).await;
    let on_sasl = coordinators(&mut sasl, &groups).await;
    assert!(on_plain.iter().any(|c| c.1 == b_id), "{on_plain:?}");
    for (plain, sasl) in on_plain.iter().zip(&on_sasl) {
        assert_eq!(plain.0, 0);
        if plain.1 == a_id {
            assert_eq!(*sasl, (0, a_id, a_sasl.clone()));
        } else {
            assert_eq!((sasl.0, sasl.1), (COORDINATOR_NOT_AVAILABLE, -1));
        }
    }
}
