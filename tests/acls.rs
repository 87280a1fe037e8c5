//! ACLs over the wire: CreateAcls, DescribeAcls and DeleteAcls as the admin
//! client sends them, and Kafka's authorizer enforced on produce, fetch,
//! metadata, groups and the cluster APIs, with super users, prefixed and
//! deny ACLs, the default for resources no ACL names, and a second agent
//! enforcing the ACLs the first stored. Real clients (`kafka-acls`, the Java
//! producer and consumer) are checked by the `sasl` compat runner.

mod common;

use std::time::{Duration, Instant};

use common::groups::{join, Join};
use common::sasl::{authenticate, handshake};
use common::{
    create_topic, fetch, fetch_request, name, on_both_backends, produce, record_batch, s,
    unique_topic, Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(
    acls_are_created_described_and_deleted_by_admins_only,
    produce_fetch_and_metadata_follow_the_acls,
    groups_and_cluster_apis_follow_the_acls,
    another_agent_enforces_the_acls_stored_through_the_first,
    every_api_refuses_a_principal_without_acls,
);

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;

// Kafka's codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const MATCH: i8 = 2;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

/// `--acls on` with users admin (the super user), alice and bob on a
/// SASL_PLAINTEXT listener.
async fn secured(backend: Backend) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        "admin:admin-secret\nalice:alice-secret\nbob:bob-secret\n",
    )
    .unwrap();
    let broker = TestBroker::start_with(backend, |settings| {
        let address = std::mem::replace(&mut settings.listen, "127.0.0.1:9092".into());
        settings.listener = vec![format!("SASL_PLAINTEXT://{address}")];
        settings.sasl_users_file = Some(users);
        settings.acls = streamhouse::config::AclMode::On;
        settings.super_user = vec!["User:admin".into()];
    })
    .await;
    (broker, dir)
}

/// A connection authenticated with PLAIN as `user` (password `USER-secret`).
async fn login(broker: &TestBroker, user: &str) -> TestClient {
    let mut client = broker.client().await;
    assert_eq!(handshake(&mut client, 1, "PLAIN").await.error_code, 0);
    let token = format!("\0{user}\0{user}-secret");
    assert_eq!(
        authenticate(&mut client, token.as_bytes()).await.error_code,
        0
    );
    client
}

fn acl(
    resource_type: i8,
    resource: &str,
    pattern: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(resource))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

/// CreateAcls v3: each result's error code.
async fn create_acls(
    client: &mut TestClient,
    acls: Vec<create_acls_request::AclCreation>,
) -> Vec<i16> {
    let request = CreateAclsRequest::default().with_creations(acls);
    let ResponseKind::CreateAcls(response) = client.call(ApiKey::CreateAcls, 3, &request).await
    else {
        panic!("not a CreateAcls response")
    };
    response.results.iter().map(|r| r.error_code).collect()
}

fn filter_any() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

async fn describe_acls(
    client: &mut TestClient,
    filter: &DescribeAclsRequest,
) -> DescribeAclsResponse {
    let ResponseKind::DescribeAcls(response) = client.call(ApiKey::DescribeAcls, 3, filter).await
    else {
        panic!("not a DescribeAcls response")
    };
    response
}

/// (resource name, pattern, principal, operation, permission) of each ACL.
fn listed(response: &DescribeAclsResponse) -> Vec<(String, i8, String, i8, i8)> {
    response
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| {
                (
                    r.resource_name.to_string(),
                    r.pattern_type,
                    a.principal.to_string(),
                    a.operation,
                    a.permission_type,
                )
            })
        })
        .collect()
}

async fn acls_are_created_described_and_deleted_by_admins_only(backend: Backend) {
    let (broker, _users) = secured(backend).await;
    let mut admin = login(&broker, "admin").await;
    let topic = unique_topic("acl");

    // Invalid ACLs are refused one by one, the rest stored.
    let codes = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, &topic, LITERAL, "User:alice", WRITE, ALLOW),
            acl(TOPIC, &topic, PREFIXED, "User:bob", READ, ALLOW),
            acl(TOPIC, &topic, MATCH, "User:bob", READ, ALLOW),
            acl(TOPIC, &topic, LITERAL, "alice", READ, ALLOW),
            acl(CLUSTER, "other", LITERAL, "User:alice", CREATE, ALLOW),
            acl(TOPIC, &topic, LITERAL, "User:mallory", ALL, DENY),
        ],
    )
    .await;
    assert_eq!(
        codes,
        [0, 0, INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST, 0]
    );
    // Adding one again keeps one.
    assert_eq!(
        create_acls(
            &mut admin,
            vec![acl(TOPIC, &topic, LITERAL, "User:alice", WRITE, ALLOW)]
        )
        .await,
        [0]
    );

    let every = describe_acls(&mut admin, &filter_any()).await;
    assert_eq!(every.error_code, 0);
    assert_eq!(listed(&every).len(), 3);
    // MATCH: every ACL that applies to the topic, literal or prefixed.
    let applying = filter_any()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(s(&format!("{topic}-more"))))
        .with_pattern_type_filter(MATCH);
    assert_eq!(
        listed(&describe_acls(&mut admin, &applying).await),
        [(topic.clone(), PREFIXED, "User:bob".into(), READ, ALLOW)]
    );
    let alices = filter_any().with_principal_filter(Some(s("User:alice")));
    assert_eq!(
        listed(&describe_acls(&mut admin, &alices).await),
        [(topic.clone(), LITERAL, "User:alice".into(), WRITE, ALLOW)]
    );
    let unknown = filter_any().with_operation(0);
    assert_eq!(
        describe_acls(&mut admin, &unknown).await.error_code,
        INVALID_REQUEST
    );

    // Others may neither read nor change the ACLs.
    let mut alice = login(&broker, "alice").await;
    assert_eq!(
        describe_acls(&mut alice, &filter_any()).await.error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    assert_eq!(
        create_acls(
            &mut alice,
            vec![acl(TOPIC, "x", LITERAL, "User:alice", ALL, ALLOW)]
        )
        .await,
        [CLUSTER_AUTHORIZATION_FAILED]
    );

    // Deleting: each filter reports what it removed.
    let deny_filter = delete_acls_request::DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(DENY);
    let nothing = deny_filter
        .clone()
        .with_principal_filter(Some(s("User:nobody")));
    let request = DeleteAclsRequest::default().with_filters(vec![deny_filter, nothing]);
    let ResponseKind::DeleteAcls(deleted) = admin.call(ApiKey::DeleteAcls, 3, &request).await
    else {
        panic!()
    };
    let removed: Vec<Vec<String>> = deleted
        .filter_results
        .iter()
        .map(|f| {
            f.matching_acls
                .iter()
                .map(|a| a.principal.to_string())
                .collect()
        })
        .collect();
    assert_eq!(removed, [vec!["User:mallory".to_string()], vec![]]);
    assert_eq!(
        listed(&describe_acls(&mut admin, &filter_any()).await).len(),
        2
    );
}

async fn produce_fetch_and_metadata_follow_the_acls(backend: Backend) {
    let (broker, _users) = secured(backend).await;
    let mut admin = login(&broker, "admin").await;
    let prefix = unique_topic("acl");
    let (mine, theirs, shared) = (
        format!("{prefix}-alice"),
        format!("{prefix}-other"),
        format!("{prefix}-shared"),
    );
    for topic in [&mine, &theirs, &shared] {
        create_topic(&mut admin, topic, 1).await;
    }
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                acl(
                    TOPIC,
                    &format!("{prefix}-a"),
                    PREFIXED,
                    "User:alice",
                    ALL,
                    ALLOW
                ),
                acl(TOPIC, &shared, LITERAL, "User:*", READ, ALLOW),
                acl(TOPIC, &shared, LITERAL, "User:bob", READ, DENY),
            ],
        )
        .await,
        [0, 0, 0]
    );
    let batch = || record_batch(1, 0, 1_000, Compression::None);

    let mut alice = login(&broker, "alice").await;
    assert_eq!(produce(&mut alice, &mine, 0, batch()).await.0, 0);
    assert_eq!(
        produce(&mut alice, &theirs, 0, batch()).await.0,
        TOPIC_AUTHORIZATION_FAILED
    );
    // READ does not imply WRITE.
    assert_eq!(
        produce(&mut alice, &shared, 0, batch()).await.0,
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        fetch(&mut alice, &fetch_request(&mine, 0, 0, 0))
            .await
            .error_code,
        0
    );
    assert_eq!(
        fetch(&mut alice, &fetch_request(&shared, 0, 0, 0))
            .await
            .error_code,
        0
    );
    assert_eq!(
        fetch(&mut alice, &fetch_request(&theirs, 0, 0, 0))
            .await
            .error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    // The deny wins over the wildcard allow.
    let mut bob = login(&broker, "bob").await;
    assert_eq!(
        fetch(&mut bob, &fetch_request(&shared, 0, 0, 0))
            .await
            .error_code,
        TOPIC_AUTHORIZATION_FAILED
    );

    // Every topic: only those alice may describe; named: the error.
    let metadata = |topics: Option<Vec<&str>>| {
        MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .into_iter()
                    .map(|n| {
                        metadata_request::MetadataRequestTopic::default().with_name(Some(name(n)))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(true)
            .with_include_topic_authorized_operations(true)
    };
    let ResponseKind::Metadata(every) = alice.call(ApiKey::Metadata, 12, &metadata(None)).await
    else {
        panic!()
    };
    let mut seen: Vec<String> = every
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .filter(|n| n.starts_with(&prefix))
        .collect();
    seen.sort();
    assert_eq!(seen, [mine.clone(), shared.clone()]);
    let shared_ops = every
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == shared))
        .unwrap()
        .topic_authorized_operations;
    // READ, and DESCRIBE it implies.
    assert_eq!(shared_ops, (1 << READ) | (1 << DESCRIBE));
    let unknown = format!("{prefix}-b-new");
    let ResponseKind::Metadata(named) = alice
        .call(
            ApiKey::Metadata,
            12,
            &metadata(Some(vec![&theirs, &unknown])),
        )
        .await
    else {
        panic!()
    };
    let codes: Vec<i16> = named.topics.iter().map(|t| t.error_code).collect();
    // The unknown topic is not created: alice may not create it.
    assert_eq!(
        codes,
        [TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED]
    );
    // Alice may create topics under her prefix, also by auto-creation.
    let created = format!("{prefix}-alice-auto");
    let ResponseKind::Metadata(auto) = alice
        .call(ApiKey::Metadata, 12, &metadata(Some(vec![&created])))
        .await
    else {
        panic!()
    };
    assert_eq!(auto.topics[0].error_code, 0);
}

async fn groups_and_cluster_apis_follow_the_acls(backend: Backend) {
    let (broker, _users) = secured(backend).await;
    let mut admin = login(&broker, "admin").await;
    let group = unique_topic("group");
    create_acls(
        &mut admin,
        vec![acl(GROUP, &group, LITERAL, "User:alice", READ, ALLOW)],
    )
    .await;
    let topics = ["t"];
    let join_request = |group| Join::consumer(group, "", &topics);

    let mut bob = login(&broker, "bob").await;
    let joined = join(&mut bob, &join_request(&group)).await;
    assert_eq!(joined.error_code, GROUP_AUTHORIZATION_FAILED);
    let mut alice = login(&broker, "alice").await;
    let joined = join(&mut alice, &join_request(&group)).await;
    assert_ne!(joined.error_code, GROUP_AUTHORIZATION_FAILED);

    // FindCoordinator wants DESCRIBE, which READ implies.
    for (client, expected) in [(&mut alice, 0), (&mut bob, GROUP_AUTHORIZATION_FAILED)] {
        let request = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s(&group)]);
        let ResponseKind::FindCoordinator(found) =
            client.call(ApiKey::FindCoordinator, 4, &request).await
        else {
            panic!()
        };
        assert_eq!(found.coordinators[0].error_code, expected);
    }

    // Cluster APIs: refused until alice may DESCRIBE the cluster.
    assert_eq!(
        describe_log_dirs(&mut alice).await,
        CLUSTER_AUTHORIZATION_FAILED
    );
    // Without WRITE anywhere, no producer id either.
    assert_eq!(
        init_producer_id(&mut alice).await,
        CLUSTER_AUTHORIZATION_FAILED
    );
    create_acls(
        &mut admin,
        vec![
            acl(
                CLUSTER,
                "kafka-cluster",
                LITERAL,
                "User:alice",
                DESCRIBE,
                ALLOW,
            ),
            acl(TOPIC, "anything", LITERAL, "User:alice", WRITE, ALLOW),
        ],
    )
    .await;
    assert_eq!(describe_log_dirs(&mut alice).await, 0);
    assert_eq!(init_producer_id(&mut alice).await, 0);
    // The super user may do anything without any ACL.
    assert_eq!(describe_log_dirs(&mut admin).await, 0);
}

async fn another_agent_enforces_the_acls_stored_through_the_first(backend: Backend) {
    let (first, users) = secured(backend).await;
    let users_file = users.path().join("users");
    let second = first
        .another_agent(|settings| {
            let address = std::mem::replace(&mut settings.listen, "127.0.0.1:9092".into());
            settings.listener = vec![format!("SASL_PLAINTEXT://{address}")];
            settings.sasl_users_file = Some(users_file);
            settings.acls = streamhouse::config::AclMode::On;
            settings.super_user = vec!["User:admin".into()];
        })
        .await;
    let mut admin = login(&first, "admin").await;
    let topic = unique_topic("acl");
    create_topic(&mut admin, &topic, 1).await;
    let mut alice = login(&second, "alice").await;
    let batch = || record_batch(1, 0, 1_000, Compression::None);
    assert_eq!(
        produce(&mut alice, &topic, 0, batch()).await.0,
        TOPIC_AUTHORIZATION_FAILED
    );
    create_acls(
        &mut admin,
        vec![acl(TOPIC, &topic, LITERAL, "User:alice", WRITE, ALLOW)],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = produce(&mut alice, &topic, 0, batch()).await.0;
        if code == 0 {
            break;
        }
        assert_eq!(code, TOPIC_AUTHORIZATION_FAILED);
        assert!(
            Instant::now() < deadline,
            "the second agent never saw the ACL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_acls_the_acl_apis_answer_security_disabled() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    assert_eq!(
        create_acls(
            &mut client,
            vec![acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)]
        )
        .await,
        [SECURITY_DISABLED]
    );
    assert_eq!(
        describe_acls(&mut client, &filter_any()).await.error_code,
        SECURITY_DISABLED
    );
}

/// DescribeLogDirs v4's error code.
async fn describe_log_dirs(client: &mut TestClient) -> i16 {
    let request = DescribeLogDirsRequest::default().with_topics(None);
    let ResponseKind::DescribeLogDirs(r) = client.call(ApiKey::DescribeLogDirs, 4, &request).await
    else {
        panic!("not a DescribeLogDirs response")
    };
    r.error_code
}

/// The error codes of one request's response.
async fn codes(
    client: &mut TestClient,
    key: ApiKey,
    version: i16,
    body: &impl kafka_protocol::protocol::Encodable,
) -> Vec<i16> {
    streamhouse::request_metrics::error_codes(&client.call(key, version, body).await)
}

/// Sends each remaining API's request naming `topic`, `doomed` (a topic to
/// delete) and `group`: (API, its error codes).
async fn every_other_api(
    client: &mut TestClient,
    topic: &str,
    doomed: &str,
    group: &str,
) -> Vec<(&'static str, Vec<i16>)> {
    use kafka_protocol::messages::*;
    let mut answers = Vec::new();
    let partitions = |p: Vec<i32>| p;
    let r = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
            ]),
    ]);
    answers.push((
        "ListOffsets",
        codes(client, ApiKey::ListOffsets, 6, &r).await,
    ));
    let r = OffsetForLeaderEpochRequest::default().with_topics(vec![
        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    .with_current_leader_epoch(-1),
            ]),
    ]);
    answers.push((
        "OffsetForLeaderEpoch",
        codes(client, ApiKey::OffsetForLeaderEpoch, 4, &r).await,
    ));
    let r = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![
            describe_topic_partitions_request::TopicRequest::default().with_name(name(topic)),
        ])
        .with_response_partition_limit(100);
    answers.push((
        "DescribeTopicPartitions",
        codes(client, ApiKey::DescribeTopicPartitions, 0, &r).await,
    ));
    let r = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name(&format!("{topic}-new")))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    answers.push((
        "CreateTopics",
        codes(client, ApiKey::CreateTopics, 7, &r).await,
    ));
    let r = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(3)
                .with_assignments(None),
        ]);
    answers.push((
        "CreatePartitions",
        codes(client, ApiKey::CreatePartitions, 3, &r).await,
    ));
    let r = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default().with_offset(0),
            ])]);
    answers.push((
        "DeleteRecords",
        codes(client, ApiKey::DeleteRecords, 2, &r).await,
    ));
    let r = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(name(topic))
            .with_partition_indexes(partitions(vec![0])),
    ]);
    answers.push((
        "DescribeProducers",
        codes(client, ApiKey::DescribeProducers, 0, &r).await,
    ));
    for (label, resource_type, resource) in [
        ("DescribeConfigs topic", 2i8, topic),
        ("DescribeConfigs broker", 4, ""),
    ] {
        let r = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(resource))
                .with_configuration_keys(None),
        ]);
        answers.push((label, codes(client, ApiKey::DescribeConfigs, 4, &r).await));
    }
    let r = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("86400000")))]),
    ]);
    answers.push((
        "AlterConfigs",
        codes(client, ApiKey::AlterConfigs, 2, &r).await,
    ));
    let r = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("86400000"))),
            ]),
    ]);
    answers.push((
        "IncrementalAlterConfigs",
        codes(client, ApiKey::IncrementalAlterConfigs, 1, &r).await,
    ));
    let r = ListConfigResourcesRequest::default();
    answers.push((
        "ListConfigResources",
        codes(client, ApiKey::ListConfigResources, 1, &r).await,
    ));
    let r = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_group_instance_id(None)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(0)
                        .with_committed_metadata(None),
                ]),
        ]);
    answers.push((
        "OffsetCommit",
        codes(client, ApiKey::OffsetCommit, 9, &r).await,
    ));
    let r = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
    ]);
    answers.push((
        "OffsetFetch",
        codes(client, ApiKey::OffsetFetch, 9, &r).await,
    ));
    let r = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default(),
                ]),
        ]);
    answers.push((
        "OffsetDelete",
        codes(client, ApiKey::OffsetDelete, 0, &r).await,
    ));
    let r = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    answers.push((
        "DescribeGroups",
        codes(client, ApiKey::DescribeGroups, 5, &r).await,
    ));
    let r = ListPartitionReassignmentsRequest::default().with_topics(None);
    answers.push((
        "ListPartitionReassignments",
        codes(client, ApiKey::ListPartitionReassignments, 0, &r).await,
    ));
    let r = AlterPartitionReassignmentsRequest::default();
    answers.push((
        "AlterPartitionReassignments",
        codes(client, ApiKey::AlterPartitionReassignments, 1, &r).await,
    ));
    let r = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
        elect_leaders_request::TopicPartitions::default()
            .with_topic(name(topic))
            .with_partitions(vec![0]),
    ]));
    answers.push((
        "ElectLeaders",
        codes(client, ApiKey::ElectLeaders, 2, &r).await,
    ));
    let r = AlterReplicaLogDirsRequest::default().with_dirs(vec![
        alter_replica_log_dirs_request::AlterReplicaLogDir::default()
            .with_path(s("/nowhere"))
            .with_topics(vec![
                alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![0]),
            ]),
    ]);
    answers.push((
        "AlterReplicaLogDirs",
        codes(client, ApiKey::AlterReplicaLogDirs, 2, &r).await,
    ));
    let r = DescribeUserScramCredentialsRequest::default().with_users(None);
    answers.push((
        "DescribeUserScramCredentials",
        codes(client, ApiKey::DescribeUserScramCredentials, 0, &r).await,
    ));
    let r = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        alter_user_scram_credentials_request::ScramCredentialDeletion::default()
            .with_name(s("carol"))
            .with_mechanism(1),
    ]);
    answers.push((
        "AlterUserScramCredentials",
        codes(client, ApiKey::AlterUserScramCredentials, 0, &r).await,
    ));
    let r = DescribeClientQuotasRequest::default();
    answers.push((
        "DescribeClientQuotas",
        codes(client, ApiKey::DescribeClientQuotas, 1, &r).await,
    ));
    let r = AlterClientQuotasRequest::default().with_entries(vec![
        alter_client_quotas_request::EntryData::default()
            .with_entity(vec![alter_client_quotas_request::EntityData::default()
                .with_entity_type(s("user"))
                .with_entity_name(Some(s("carol")))])
            .with_ops(vec![alter_client_quotas_request::OpData::default()
                .with_key(s("producer_byte_rate"))
                .with_value(1_048_576.0)]),
    ]);
    answers.push((
        "AlterClientQuotas",
        codes(client, ApiKey::AlterClientQuotas, 1, &r).await,
    ));
    let r = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    answers.push((
        "DeleteGroups",
        codes(client, ApiKey::DeleteGroups, 2, &r).await,
    ));
    // The transaction APIs, for a transactional id named after the group.
    let txn = TransactionalId(s(group));
    let r = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn.clone()))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    answers.push((
        "InitProducerId transactional",
        codes(client, ApiKey::InitProducerId, 4, &r).await,
    ));
    let r = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn.clone())
        .with_v3_and_below_producer_id(ProducerId(0))
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![0]),
        ]);
    answers.push((
        "AddPartitionsToTxn",
        codes(client, ApiKey::AddPartitionsToTxn, 3, &r).await,
    ));
    let r = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn.clone())
        .with_group_id(GroupId(s(group)));
    answers.push((
        "AddOffsetsToTxn",
        codes(client, ApiKey::AddOffsetsToTxn, 3, &r).await,
    ));
    let r = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn.clone())
        .with_group_id(GroupId(s(group)))
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default(),
                ]),
        ]);
    answers.push((
        "TxnOffsetCommit",
        codes(client, ApiKey::TxnOffsetCommit, 3, &r).await,
    ));
    let r = EndTxnRequest::default().with_transactional_id(txn.clone());
    answers.push(("EndTxn", codes(client, ApiKey::EndTxn, 3, &r).await));
    let r = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s("m"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name(topic)]))
        .with_topic_partitions(Some(vec![]));
    answers.push((
        "ConsumerGroupHeartbeat",
        codes(client, ApiKey::ConsumerGroupHeartbeat, 1, &r).await,
    ));
    let r = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    answers.push((
        "ConsumerGroupDescribe",
        codes(client, ApiKey::ConsumerGroupDescribe, 1, &r).await,
    ));
    let share_group = format!("{group}-share");
    let r = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(&share_group)))
        .with_member_id(s("m"))
        .with_subscribed_topic_names(Some(vec![name(topic)]));
    answers.push((
        "ShareGroupHeartbeat",
        codes(client, ApiKey::ShareGroupHeartbeat, 1, &r).await,
    ));
    let r = ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(&share_group))]);
    answers.push((
        "ShareGroupDescribe",
        codes(client, ApiKey::ShareGroupDescribe, 1, &r).await,
    ));
    let r = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(s(&share_group))),
    ]);
    answers.push((
        "DescribeShareGroupOffsets",
        codes(client, ApiKey::DescribeShareGroupOffsets, 0, &r).await,
    ));
    let r = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(&share_group)))
        .with_topics(vec![
            alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(name(topic))
                .with_partitions(vec![
                    alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default(),
                ]),
        ]);
    answers.push((
        "AlterShareGroupOffsets",
        codes(client, ApiKey::AlterShareGroupOffsets, 0, &r).await,
    ));
    let r = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(&share_group)))
        .with_topics(vec![
            delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                .with_topic_name(name(topic)),
        ]);
    answers.push((
        "DeleteShareGroupOffsets",
        codes(client, ApiKey::DeleteShareGroupOffsets, 0, &r).await,
    ));
    let r = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(&share_group))))
        .with_member_id(Some(s("m")))
        .with_max_records(10)
        .with_max_bytes(1 << 20);
    answers.push(("ShareFetch", codes(client, ApiKey::ShareFetch, 1, &r).await));
    let r = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s(&share_group))))
        .with_member_id(Some(s("m")))
        .with_share_session_epoch(-1);
    answers.push((
        "ShareAcknowledge",
        codes(client, ApiKey::ShareAcknowledge, 1, &r).await,
    ));
    let r = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn]);
    answers.push((
        "DescribeTransactions",
        codes(client, ApiKey::DescribeTransactions, 0, &r).await,
    ));
    let r = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![name(doomed)]);
    answers.push((
        "DeleteTopics",
        codes(client, ApiKey::DeleteTopics, 5, &r).await,
    ));
    answers
}

async fn every_api_refuses_a_principal_without_acls(backend: Backend) {
    let (broker, _users) = secured(backend).await;
    let mut admin = login(&broker, "admin").await;
    let topic = unique_topic("acl-all");
    let doomed = format!("{topic}-doomed");
    let group = unique_topic("acl-group");
    create_topic(&mut admin, &topic, 2).await;
    create_topic(&mut admin, &doomed, 1).await;

    let mut bob = login(&broker, "bob").await;
    let refused = every_other_api(&mut bob, &topic, &doomed, &group).await;
    for (api, codes) in &refused {
        let expected = match *api {
            "DescribeConfigs broker"
            | "ListConfigResources"
            | "ListPartitionReassignments"
            | "AlterPartitionReassignments"
            | "ElectLeaders"
            | "AlterReplicaLogDirs"
            | "DescribeUserScramCredentials"
            | "AlterUserScramCredentials"
            | "DescribeClientQuotas"
            | "AlterClientQuotas" => CLUSTER_AUTHORIZATION_FAILED,
            "OffsetCommit"
            | "OffsetFetch"
            | "OffsetDelete"
            | "DescribeGroups"
            | "DeleteGroups"
            | "ConsumerGroupHeartbeat"
            | "ConsumerGroupDescribe"
            | "ShareGroupHeartbeat"
            | "ShareGroupDescribe"
            | "DescribeShareGroupOffsets"
            | "AlterShareGroupOffsets"
            | "DeleteShareGroupOffsets"
            | "ShareFetch"
            | "ShareAcknowledge" => GROUP_AUTHORIZATION_FAILED,
            "InitProducerId transactional"
            | "AddPartitionsToTxn"
            | "AddOffsetsToTxn"
            | "TxnOffsetCommit"
            | "EndTxn"
            | "DescribeTransactions" => TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            _ => TOPIC_AUTHORIZATION_FAILED,
        };
        assert!(
            !codes.is_empty() && codes.iter().all(|c| *c == expected),
            "{api}: {codes:?}"
        );
    }
    // ListGroups refuses nothing: bob sees no group he may not describe.
    let ResponseKind::ListGroups(listed) = bob
        .call(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
        .await
    else {
        panic!()
    };
    assert!(listed.groups.is_empty());
    // The super user passes every check (other errors may remain, such as
    // the broker config being read-only or nothing to elect).
    let allowed = every_other_api(&mut admin, &topic, &doomed, &group).await;
    for (api, codes) in &allowed {
        assert!(
            !codes.iter().any(|c| [
                TOPIC_AUTHORIZATION_FAILED,
                GROUP_AUTHORIZATION_FAILED,
                CLUSTER_AUTHORIZATION_FAILED,
                TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            ]
            .contains(c)),
            "{api}: {codes:?}"
        );
    }
    // ListTransactions refuses nothing either: bob is not shown the
    // transactional id the admin's InitProducerId created.
    let ResponseKind::ListTransactions(listed) = bob
        .call(
            ApiKey::ListTransactions,
            1,
            &ListTransactionsRequest::default().with_duration_filter(-1),
        )
        .await
    else {
        panic!()
    };
    assert!(listed.transaction_states.is_empty());
    let ResponseKind::ListTransactions(listed) = admin
        .call(
            ApiKey::ListTransactions,
            1,
            &ListTransactionsRequest::default().with_duration_filter(-1),
        )
        .await
    else {
        panic!()
    };
    assert_eq!(listed.transaction_states.len(), 1);
}

/// InitProducerId v4 of an idempotent producer: the error code.
async fn init_producer_id(client: &mut TestClient) -> i16 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let ResponseKind::InitProducerId(init) = client.call(ApiKey::InitProducerId, 4, &request).await
    else {
        panic!("not an InitProducerId response")
    };
    init.error_code
}
