//! Seed inputs for each fuzz target, built from real encoders: a request of
//! every API the broker advertises at every version it accepts (encoded by
//! kafka-protocol, with topics, partitions, groups and records filled in, and
//! with default bodies at the range's ends), and record batches of every codec
//! (built by [`BatchBuilder`], which calls kafka-protocol's batch encoder).
//!
//! The short pass in `cargo test` runs the bodies over these as well as over
//! the committed corpus, so every (API, version) is decoded on every run even
//! if the minimised corpus lost its seed. `STREAMHOUSE_WRITE_FUZZ_SEEDS=DIR`
//! writes them to `DIR/<target>/` to start a fuzzing run from them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use uuid::Uuid;

use super::CODECS;
use crate::append_time;
use crate::batch::HEADER_BYTES;
use crate::topic_id_offsets::{ByTopicId, FIRST_TOPIC_ID_VERSION};
use crate::versions::ADVERTISED;
use streamhouse_testkit::BatchBuilder;

/// The seeds of the target called `target`, each with a descriptive name.
pub fn for_target(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "request_decode" => requests(),
        "record_batch" => record_runs(),
        "validate_batch" => batches(),
        "compressed_records" => record_streams(),
        "sasl_messages" => sasl_tokens(),
        other => panic!("no seeds for {other}"),
    }
}

/// What clients send as SASL tokens: PLAIN messages, SCRAM first messages
/// (as the Java client and librdkafka write them, with an authorization
/// id, an escaped name and Kafka's token extension) and final messages.
fn sasl_tokens() -> Vec<(String, Vec<u8>)> {
    [
        ("plain", &b"\0alice\0alice-secret"[..]),
        ("plain-authzid", b"alice\0alice\0pw"),
        ("scram-first", b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"),
        ("scram-first-authzid", b"n,a=us=3Der,n=us=3Der,r=rOprNGfwEbeRWgbNEkqO"),
        ("scram-first-token", b"n,,n=alice,r=abc,tokenauth=true"),
        (
            "scram-final",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ),
    ]
    .into_iter()
    .map(|(name, token)| (name.to_owned(), token.to_vec()))
    .collect()
}

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic() -> TopicName {
    TopicName(s("orders"))
}

fn group() -> GroupId {
    GroupId(s("billing"))
}

/// A request of every advertised API at every accepted version, filled in;
/// a default body at the range's ends as well.
fn requests() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for api in ADVERTISED {
        for version in api.min_accepted..=api.max {
            let name = format!("{:?}-v{version}", api.key).to_lowercase();
            // A field the version lacks fails the encoder: the default body
            // stands in for that version.
            if let Some(frame) = topic_id_frame(api.key, version) {
                seeds.push((name.clone(), frame));
            } else if let Some(frame) = frame(api.key, version, &filled(api.key)) {
                seeds.push((name.clone(), frame));
            } else if let Some(frame) = frame(api.key, version, &RequestKind::default_for(api.key))
            {
                seeds.push((name.clone(), frame));
            }
            if version == api.min_accepted || version == api.max {
                if let Some(frame) = frame(api.key, version, &RequestKind::default_for(api.key)) {
                    seeds.push((format!("{name}-default"), frame));
                }
            }
        }
    }
    seeds
}

/// OffsetCommit and OffsetFetch at the versions that name topics by id,
/// which kafka-protocol does not write (see [`crate::topic_id_offsets`]).
fn topic_id_frame(key: ApiKey, version: i16) -> Option<Vec<u8>> {
    if version < FIRST_TOPIC_ID_VERSION {
        return None;
    }
    let topic_id = uuid::Uuid::from_bytes([7; 16]);
    match filled(key) {
        RequestKind::OffsetCommit(mut request) => {
            for topic in &mut request.topics {
                topic.topic_id = topic_id;
            }
            body_frame(key, version, &ByTopicId(&request))
        }
        RequestKind::OffsetFetch(_) => {
            let mut topic = OffsetFetchRequestTopics::default().with_partition_indexes(vec![0, 1]);
            topic.topic_id = topic_id;
            let request = OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group())
                    .with_member_id(Some(s("member-1")))
                    .with_member_epoch(4)
                    .with_topics(Some(vec![topic])),
                OffsetFetchRequestGroup::default()
                    .with_group_id(group())
                    .with_member_epoch(-1),
            ]);
            body_frame(key, version, &ByTopicId(&request))
        }
        _ => None,
    }
}

/// A frame body: header (with a client id) and the body at `version`.
fn frame(key: ApiKey, version: i16, body: &RequestKind) -> Option<Vec<u8>> {
    let mut buf = header(key, version)?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn body_frame(key: ApiKey, version: i16, body: &impl Encodable) -> Option<Vec<u8>> {
    let mut buf = header(key, version)?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn header(key: ApiKey, version: i16) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("fuzz-seed")))
        .encode(&mut buf, key.request_header_version(version))
        .ok()?;
    Some(buf)
}

trait DefaultFor {
    fn default_for(key: ApiKey) -> RequestKind;
}

impl DefaultFor for RequestKind {
    fn default_for(key: ApiKey) -> RequestKind {
        match key {
            ApiKey::Produce => ProduceRequest::default().into(),
            ApiKey::Fetch => FetchRequest::default().into(),
            ApiKey::ListOffsets => ListOffsetsRequest::default().into(),
            ApiKey::Metadata => MetadataRequest::default().into(),
            ApiKey::OffsetCommit => OffsetCommitRequest::default().into(),
            ApiKey::OffsetFetch => OffsetFetchRequest::default().into(),
            ApiKey::FindCoordinator => FindCoordinatorRequest::default().into(),
            ApiKey::JoinGroup => JoinGroupRequest::default().into(),
            ApiKey::Heartbeat => HeartbeatRequest::default().into(),
            ApiKey::LeaveGroup => LeaveGroupRequest::default().into(),
            ApiKey::SyncGroup => SyncGroupRequest::default().into(),
            ApiKey::DescribeGroups => DescribeGroupsRequest::default().into(),
            ApiKey::ListGroups => ListGroupsRequest::default().into(),
            ApiKey::ApiVersions => ApiVersionsRequest::default().into(),
            ApiKey::CreateTopics => CreateTopicsRequest::default().into(),
            ApiKey::DeleteTopics => DeleteTopicsRequest::default().into(),
            ApiKey::InitProducerId => InitProducerIdRequest::default().into(),
            ApiKey::DeleteGroups => DeleteGroupsRequest::default().into(),
            ApiKey::OffsetDelete => OffsetDeleteRequest::default().into(),
            ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default().into(),
            ApiKey::DescribeConfigs => DescribeConfigsRequest::default().into(),
            ApiKey::AlterConfigs => AlterConfigsRequest::default().into(),
            ApiKey::DeleteRecords => DeleteRecordsRequest::default().into(),
            ApiKey::CreatePartitions => CreatePartitionsRequest::default().into(),
            ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default().into(),
            ApiKey::DescribeCluster => DescribeClusterRequest::default().into(),
            ApiKey::DescribeClientQuotas => DescribeClientQuotasRequest::default().into(),
            ApiKey::AlterClientQuotas => AlterClientQuotasRequest::default().into(),
            ApiKey::ListConfigResources => ListConfigResourcesRequest::default().into(),
            ApiKey::SaslHandshake => SaslHandshakeRequest::default().into(),
            ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default().into(),
            ApiKey::DescribeUserScramCredentials => {
                DescribeUserScramCredentialsRequest::default().into()
            }
            ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::default().into(),
            ApiKey::AlterReplicaLogDirs => AlterReplicaLogDirsRequest::default().into(),
            ApiKey::CreateAcls => CreateAclsRequest::default().into(),
            ApiKey::DescribeAcls => DescribeAclsRequest::default().into(),
            ApiKey::DeleteAcls => DeleteAclsRequest::default().into(),
            ApiKey::DescribeProducers => DescribeProducersRequest::default().into(),
            ApiKey::ElectLeaders => ElectLeadersRequest::default().into(),
            ApiKey::AlterPartitionReassignments => {
                AlterPartitionReassignmentsRequest::default().into()
            }
            ApiKey::ListPartitionReassignments => {
                ListPartitionReassignmentsRequest::default().into()
            }
            ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsRequest::default().into(),
            ApiKey::DescribeLogDirs => DescribeLogDirsRequest::default().into(),
            ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::default().into(),
            ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::default().into(),
            ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::default().into(),
            ApiKey::EndTxn => EndTxnRequest::default().into(),
            ApiKey::ListTransactions => ListTransactionsRequest::default().into(),
            ApiKey::DescribeTransactions => DescribeTransactionsRequest::default().into(),
            ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::default().into(),
            ApiKey::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::default().into(),
            ApiKey::ShareGroupHeartbeat => ShareGroupHeartbeatRequest::default().into(),
            ApiKey::ShareGroupDescribe => ShareGroupDescribeRequest::default().into(),
            ApiKey::ShareFetch => ShareFetchRequest::default().into(),
            ApiKey::ShareAcknowledge => ShareAcknowledgeRequest::default().into(),
            ApiKey::DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest::default().into(),
            ApiKey::AlterShareGroupOffsets => AlterShareGroupOffsetsRequest::default().into(),
            ApiKey::DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest::default().into(),
            other => panic!("{other:?} is not advertised; add its seed"),
        }
    }
}

/// A body with the fields a client fills in: a topic, a partition, a group, a
/// member, configs; Produce carries a real batch. Flexible versions also
/// carry an unknown tagged field on the top-level body.
fn filled(key: ApiKey) -> RequestKind {
    let (tag, tag_value) = (999, Bytes::from_static(b"tag"));
    match key {
        ApiKey::Produce => ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(BatchBuilder::keyed(2, 0).build()))])])
            .with_unknown_tagged_field(tag, tag_value)
            .into(),
        ApiKey::Fetch => FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(52_428_800)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(42)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1_048_576)])])
            .with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic(TopicName(s("old")))
                .with_partitions(vec![1])])
            .with_rack_id(s("rack-a"))
            .into(),
        ApiKey::ListOffsets => ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic())
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])])
            .into(),
        ApiKey::Metadata => MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic()))
            ]))
            .with_allow_auto_topic_creation(true)
            .with_unknown_tagged_field(tag, tag_value)
            .into(),
        ApiKey::OffsetCommit => OffsetCommitRequest::default()
            .with_group_id(group())
            .with_generation_id_or_member_epoch(3)
            .with_member_id(s("member-1"))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(100)
                    .with_committed_metadata(Some(s("meta")))])])
            .into(),
        ApiKey::OffsetFetch => OffsetFetchRequest::default()
            .with_group_id(group())
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic())
                .with_partition_indexes(vec![0, 1])]))
            .into(),
        ApiKey::FindCoordinator => FindCoordinatorRequest::default()
            .with_key(s("billing"))
            .into(),
        ApiKey::JoinGroup => JoinGroupRequest::default()
            .with_group_id(group())
            .with_session_timeout_ms(45_000)
            .with_rebalance_timeout_ms(300_000)
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(
                    b"\x00\x01\x00\x00\x00\x01\x00\x06orders",
                ))])
            .into(),
        ApiKey::Heartbeat => HeartbeatRequest::default()
            .with_group_id(group())
            .with_generation_id(3)
            .with_member_id(s("member-1"))
            .into(),
        ApiKey::LeaveGroup => LeaveGroupRequest::default()
            .with_group_id(group())
            .with_member_id(s("member-1"))
            .into(),
        ApiKey::SyncGroup => SyncGroupRequest::default()
            .with_group_id(group())
            .with_generation_id(3)
            .with_member_id(s("member-1"))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(s("member-1"))
                .with_assignment(Bytes::from_static(b"\x00\x01\x00\x00\x00\x01"))])
            .into(),
        ApiKey::DescribeGroups => DescribeGroupsRequest::default()
            .with_groups(vec![group()])
            .into(),
        ApiKey::ListGroups => ListGroupsRequest::default().into(),
        ApiKey::ApiVersions => ApiVersionsRequest::default()
            .with_client_software_name(s("streamhouse-fuzz"))
            .with_client_software_version(s("1.0"))
            .into(),
        ApiKey::CreateTopics => CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic())
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("60000")))])])
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default()
            .with_topic_names(vec![topic()])
            .with_topics(vec![DeleteTopicState::default().with_name(Some(topic()))])
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::InitProducerId => InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .into(),
        ApiKey::DeleteGroups => DeleteGroupsRequest::default()
            .with_groups_names(vec![group()])
            .into(),
        ApiKey::OffsetDelete => OffsetDeleteRequest::default()
            .with_group_id(group())
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ])
            .into(),
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(topic())
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(0)])])
            .into(),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configuration_keys(Some(vec![s("retention.ms")]))])
            .into(),
        ApiKey::AlterConfigs => AlterConfigsRequest::default()
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("1000")))])])
            .into(),
        ApiKey::DeleteRecords => DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic())
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(10)])])
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic())
                .with_count(6)])
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("cleanup.policy"))
                            .with_config_operation(0)
                            .with_value(Some(s("compact"))),
                    ]),
            ])
            .into(),
        ApiKey::DescribeCluster => DescribeClusterRequest::default()
            .with_include_cluster_authorized_operations(true)
            .into(),
        ApiKey::DescribeProducers => DescribeProducersRequest::default()
            .with_topics(vec![describe_producers_request::TopicRequest::default()
                .with_name(topic())
                .with_partition_indexes(vec![0])])
            .into(),
        ApiKey::ElectLeaders => ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
            )
            .with_topic(topic())
            .with_partitions(vec![0, 1])]))
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::default()
            .with_topics(vec![
                alter_partition_reassignments_request::ReassignableTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(Some(vec![BrokerId(1), BrokerId(2)])),
                    ]),
            ])
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::default()
            .with_topics(Some(vec![
                list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0]),
            ]))
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default().with_name(topic()),
            ])
            .with_response_partition_limit(2000)
            .with_cursor(Some(
                describe_topic_partitions_request::Cursor::default()
                    .with_topic_name(topic())
                    .with_partition_index(3),
            ))
            .into(),
        ApiKey::DescribeLogDirs => DescribeLogDirsRequest::default()
            .with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![0, 1]),
            ]))
            .into(),
        ApiKey::CreateAcls => CreateAclsRequest::default()
            .with_creations(vec![create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(topic().0)
                .with_resource_pattern_type(4)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)])
            .into(),
        ApiKey::DescribeAcls => DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(topic().0))
            .with_pattern_type_filter(2)
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1)
            .into(),
        ApiKey::DeleteAcls => DeleteAclsRequest::default()
            .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(Some(s("User:bob")))
                .with_host_filter(Some(s("*")))
                .with_operation(2)
                .with_permission_type(2)])
            .into(),
        ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(s("txn-1").into())
            .with_v3_and_below_producer_id(ProducerId(7))
            .with_v3_and_below_producer_epoch(2)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![0, 1]),
            ])
            .into(),
        ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::default()
            .with_transactional_id(s("txn-1").into())
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(2)
            .with_group_id(s("group-1").into())
            .into(),
        ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::default()
            .with_transactional_id(s("txn-1").into())
            .with_group_id(s("group-1").into())
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(2)
            .with_generation_id(3)
            .with_member_id(s("member-1"))
            .with_topics(vec![
                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(42)
                            .with_committed_metadata(Some(s("meta"))),
                    ]),
            ])
            .into(),
        ApiKey::EndTxn => EndTxnRequest::default()
            .with_transactional_id(s("txn-1").into())
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(2)
            .with_committed(true)
            .into(),
        ApiKey::ListTransactions => ListTransactionsRequest::default()
            .with_state_filters(vec![s("Ongoing")])
            .with_producer_id_filters(vec![ProducerId(7)])
            .with_duration_filter(1000)
            .into(),
        ApiKey::DescribeTransactions => DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![s("txn-1").into()])
            .into(),
        ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::default()
            .with_group_id(s("group-1").into())
            .with_member_id(s("m-1"))
            .with_member_epoch(0)
            .with_instance_id(Some(s("instance-1")))
            .with_rack_id(Some(s("rack-a")))
            .with_rebalance_timeout_ms(300_000)
            .with_subscribed_topic_names(Some(vec![s("orders").into()]))
            .with_subscribed_topic_regex(Some(s("ord.*")))
            .with_server_assignor(Some(s("uniform")))
            .with_topic_partitions(Some(vec![
                consumer_group_heartbeat_request::TopicPartitions::default()
                    .with_topic_id(Uuid::from_u128(7))
                    .with_partitions(vec![0, 1]),
            ]))
            .into(),
        ApiKey::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![s("group-1").into()])
            .with_include_authorized_operations(true)
            .into(),
        ApiKey::ShareGroupHeartbeat => ShareGroupHeartbeatRequest::default()
            .with_group_id(s("share-1").into())
            .with_member_id(s("m-1"))
            .with_rack_id(Some(s("rack-a")))
            .with_subscribed_topic_names(Some(vec![s("orders").into()]))
            .into(),
        ApiKey::ShareGroupDescribe => ShareGroupDescribeRequest::default()
            .with_group_ids(vec![s("share-1").into()])
            .into(),
        ApiKey::ShareFetch => ShareFetchRequest::default()
            .with_group_id(Some(s("share-1").into()))
            .with_member_id(Some(s("m-1")))
            .with_share_session_epoch(1)
            .with_max_wait_ms(500)
            .with_max_bytes(1 << 20)
            .with_max_records(500)
            .with_topics(vec![share_fetch_request::FetchTopic::default()
                .with_topic_id(Uuid::from_u128(7))
                .with_partitions(vec![
                    share_fetch_request::FetchPartition::default()
                        .with_partition_index(0)
                        .with_acknowledgement_batches(vec![
                            share_fetch_request::AcknowledgementBatch::default()
                                .with_first_offset(0)
                                .with_last_offset(9)
                                .with_acknowledge_types(vec![1]),
                        ]),
                ])])
            .with_forgotten_topics_data(vec![share_fetch_request::ForgottenTopic::default()
                .with_topic_id(Uuid::from_u128(8))
                .with_partitions(vec![1])])
            .into(),
        ApiKey::DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest::default()
            .with_groups(vec![
                describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(s("share-1").into())
                    .with_topics(Some(vec![
                        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(s("orders").into())
                            .with_partitions(vec![0, 1]),
                    ])),
            ])
            .into(),
        ApiKey::AlterShareGroupOffsets => AlterShareGroupOffsetsRequest::default()
            .with_group_id(s("share-1").into())
            .with_topics(vec![
                alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(s("orders").into())
                    .with_partitions(vec![
                        alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default()
                            .with_partition_index(0)
                            .with_start_offset(42),
                    ]),
            ])
            .into(),
        ApiKey::DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest::default()
            .with_group_id(s("share-1").into())
            .with_topics(vec![
                delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(s("orders").into()),
            ])
            .into(),
        ApiKey::ShareAcknowledge => ShareAcknowledgeRequest::default()
            .with_group_id(Some(s("share-1").into()))
            .with_member_id(Some(s("m-1")))
            .with_share_session_epoch(2)
            .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
                .with_topic_id(Uuid::from_u128(7))
                .with_partitions(vec![
                    share_acknowledge_request::AcknowledgePartition::default()
                        .with_partition_index(0)
                        .with_acknowledgement_batches(vec![
                            share_acknowledge_request::AcknowledgementBatch::default()
                                .with_first_offset(10)
                                .with_last_offset(11)
                                .with_acknowledge_types(vec![1, 2]),
                        ]),
                ])])
            .into(),
        ApiKey::SaslHandshake => SaslHandshakeRequest::default()
            .with_mechanism(s("SCRAM-SHA-512"))
            .into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"))
            .into(),
        ApiKey::DescribeUserScramCredentials => DescribeUserScramCredentialsRequest::default()
            .with_users(Some(vec![
                describe_user_scram_credentials_request::UserName::default().with_name(s("alice")),
            ]))
            .into(),
        ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![
                alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                    .with_name(s("bob"))
                    .with_mechanism(1),
            ])
            .with_upsertions(vec![
                alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                    .with_name(s("alice"))
                    .with_mechanism(2)
                    .with_iterations(4096)
                    .with_salt(Bytes::from_static(&[7; 32]))
                    .with_salted_password(Bytes::from_static(&[9; 64])),
            ])
            .into(),
        ApiKey::AlterReplicaLogDirs => AlterReplicaLogDirsRequest::default()
            .with_dirs(vec![
                alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                    .with_path(s("/var/lib/kafka/data-2"))
                    .with_topics(vec![
                        alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![0, 1]),
                    ]),
            ])
            .into(),
        other => RequestKind::default_for(other),
    }
}

/// Batches as clients send them: each codec, a producer's batch, a
/// `LogAppendTime`-stamped batch, a batch of many small records.
fn batches() -> Vec<(String, Vec<u8>)> {
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = codecs
        .iter()
        .map(|(name, compression)| {
            let batch = BatchBuilder::keyed(3, 0)
                .timestamps(1_700_000_000_000, 5)
                .compression(*compression)
                .build_mut();
            (format!("batch-{name}"), batch.to_vec())
        })
        .collect();
    seeds.push((
        "batch-producer".into(),
        BatchBuilder::keyed(2, 0)
            .producer(1000, 0, 7)
            .build()
            .to_vec(),
    ));
    let mut stamped = BatchBuilder::keyed(2, 0).build_mut();
    append_time::stamp(&mut stamped, 1_700_000_000_000);
    seeds.push(("batch-log-append-time".into(), stamped.to_vec()));
    seeds.push((
        "batch-small-records".into(),
        BatchBuilder::new(40).build().to_vec(),
    ));
    // A timestamp window for validate_batch: baseOffset is the clock and
    // partitionLeaderEpoch the bounds (see `validate_batch`).
    let mut windowed = BatchBuilder::keyed(3, 0)
        .timestamps(1_700_000_000_000, 1_000)
        .build_mut();
    windowed[..8].copy_from_slice(&1_700_000_001_000i64.to_be_bytes());
    windowed[12..16].copy_from_slice(&1_500i32.to_be_bytes());
    seeds.push(("batch-timestamp-window".into(), windowed.to_vec()));
    seeds
}

/// Runs of batches: each single batch, and two batches back to back.
fn record_runs() -> Vec<(String, Vec<u8>)> {
    let mut seeds = batches();
    let mut run = BatchBuilder::keyed(2, 0).build_mut().to_vec();
    run.extend_from_slice(
        &BatchBuilder::keyed(3, 2)
            .compression(Compression::Gzip)
            .build(),
    );
    seeds.push(("run-none-then-gzip".into(), run));
    seeds
}

/// `compressed_records` inputs: every codec selector, with and without the
/// `LogAppendTime` and window bits, over the records of a client's batch.
fn record_streams() -> Vec<(String, Vec<u8>)> {
    let batch = BatchBuilder::keyed(3, 0)
        .timestamps(super::BASE_TIMESTAMP, 10)
        .build();
    let records = &batch[HEADER_BYTES..];
    let mut seeds = Vec::new();
    for (index, codec) in CODECS.iter().enumerate() {
        for flags in [0u8, 0x08, 0x10] {
            let mut input = vec![index as u8 | flags];
            input.extend_from_slice(&3i32.to_be_bytes());
            input.extend_from_slice(records);
            seeds.push((format!("{codec:?}-flags{flags:#04x}").to_lowercase(), input));
        }
    }
    seeds
}
