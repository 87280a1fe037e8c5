//! Transactions over the wire, on both backend pairs: the coordinator's APIs
//! and their error paths, markers in the log, read_committed fetches and
//! ListOffsets, transactional offsets, timeouts, two agents sharing a
//! transactional id, and share groups at read_committed.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    create_topic, fetch, fetch_request, name, on_both_backends, unique_topic, Backend, TestBroker,
    TestClient,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streamhouse_testkit::BatchBuilder;

on_both_backends!(
    a_transaction_aborts_then_commits_with_markers_read_committed_skips_the_aborted,
    a_second_incarnation_fences_the_first_and_aborts_its_transaction,
    requests_naming_the_wrong_producer_or_state_are_refused,
    a_transaction_past_its_timeout_is_aborted_by_the_coordinator,
    offsets_committed_in_a_transaction_take_effect_when_it_commits,
    another_agent_ends_the_transaction_one_agent_began,
    transaction_version_2_adds_partitions_on_produce_and_bumps_the_epoch,
    a_read_committed_share_group_gets_only_committed_records,
);

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// InitProducerId v4 for `id`: (error, producer id, epoch).
async fn init(client: &mut TestClient, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(s(id).into()))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let ResponseKind::InitProducerId(r) = client.call(ApiKey::InitProducerId, 4, &request).await
    else {
        panic!("not an InitProducerId response")
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// AddPartitionsToTxn v3 of partition 0 of `topic`: its error code.
async fn add_partition(
    client: &mut TestClient,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
) -> i16 {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(s(id).into())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![0]),
        ]);
    let ResponseKind::AddPartitionsToTxn(r) =
        client.call(ApiKey::AddPartitionsToTxn, 3, &request).await
    else {
        panic!("not an AddPartitionsToTxn response")
    };
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

async fn end(client: &mut TestClient, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(s(id).into())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let ResponseKind::EndTxn(r) = client.call(ApiKey::EndTxn, 3, &request).await else {
        panic!("not an EndTxn response")
    };
    r.error_code
}

/// A transactional batch of `count` records from sequence `seq`, keyed from
/// `first`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, count: usize) -> Bytes {
    BatchBuilder::keyed(count, seq as usize)
        .timestamp(1)
        .producer(pid, epoch, seq)
        .transactional()
        .build()
}

/// Produce v9 of a transactional batch to partition 0: (error, base offset).
async fn produce_txn(client: &mut TestClient, id: &str, topic: &str, batch: Bytes) -> (i16, i64) {
    produce_txn_v(client, 9, id, topic, batch).await
}

async fn produce_txn_v(
    client: &mut TestClient,
    version: i16,
    id: &str,
    topic: &str,
    batch: Bytes,
) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_transactional_id(Some(s(id).into()))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch)),
            ])]);
    let ResponseKind::Produce(r) = client.call(ApiKey::Produce, version, &request).await else {
        panic!("not a Produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A transactional producer as its requests name it.
struct Txn<'a> {
    id: &'a str,
    pid: i64,
    epoch: i16,
}

/// TxnOffsetCommit of `offset` for partition 0 of `topic` in `group`, without
/// member or generation: the partition's error code.
async fn txn_offset_commit(
    client: &mut TestClient,
    version: i16,
    txn: &Txn<'_>,
    group: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(s(txn.id).into())
        .with_group_id(s(group).into())
        .with_producer_id(ProducerId(txn.pid))
        .with_producer_epoch(txn.epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let ResponseKind::TxnOffsetCommit(r) = client
        .call(ApiKey::TxnOffsetCommit, version, &request)
        .await
    else {
        panic!("not a TxnOffsetCommit response")
    };
    r.topics[0].partitions[0].error_code
}

/// Fetch of partition 0 from `offset` at read_committed (`committed`) or not:
/// (last stable offset, aborted transactions as (producer, first offset),
/// offsets of the data records returned).
async fn read(
    client: &mut TestClient,
    topic: &str,
    offset: i64,
    committed: bool,
) -> (i64, Vec<(i64, i64)>, Vec<i64>) {
    let request = fetch_request(topic, 0, offset, 0).with_isolation_level(i8::from(committed));
    let partition = fetch(client, &request).await;
    assert_eq!(partition.error_code, 0);
    let aborted = partition
        .aborted_transactions
        .unwrap_or_default()
        .iter()
        .map(|t| (t.producer_id.0, t.first_offset))
        .collect();
    let mut records = partition.records.unwrap_or_default();
    let offsets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control)
        .map(|r| r.offset)
        .collect();
    (partition.last_stable_offset, aborted, offsets)
}

/// ListOffsets v6 latest of partition 0 at read_committed or not.
async fn latest(client: &mut TestClient, topic: &str, committed: bool) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(committed))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    let ResponseKind::ListOffsets(r) = client.call(ApiKey::ListOffsets, 6, &request).await else {
        panic!("not a ListOffsets response")
    };
    r.topics[0].partitions[0].offset
}

async fn describe(client: &mut TestClient, id: &str) -> (String, Vec<String>) {
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![s(id).into()]);
    let ResponseKind::DescribeTransactions(r) =
        client.call(ApiKey::DescribeTransactions, 0, &request).await
    else {
        panic!("not a DescribeTransactions response")
    };
    let state = &r.transaction_states[0];
    assert_eq!(state.error_code, 0);
    let partitions = state
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", t.topic.0))
        })
        .collect();
    (state.transaction_state.to_string(), partitions)
}

async fn a_transaction_aborts_then_commits_with_markers_read_committed_skips_the_aborted(
    backend: Backend,
) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("txn");
    let id = format!("{topic}-id");
    create_topic(&mut client, &topic, 1).await;
    let (error, pid, epoch) = init(&mut client, &id, 60_000).await;
    assert_eq!((error, epoch), (0, 0));
    // Not added to the transaction yet: refused, as Kafka's verification does.
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, 0, 0, 3))
            .await
            .0,
        INVALID_TXN_STATE
    );
    assert_eq!(add_partition(&mut client, &id, pid, 0, &topic).await, 0);
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        describe(&mut client, &id).await,
        ("Ongoing".to_string(), vec![format!("{topic}-0")])
    );
    // Open: read_committed sees nothing, read_uncommitted everything.
    assert_eq!(
        read(&mut client, &topic, 0, true).await,
        (0, vec![], vec![])
    );
    assert_eq!(read(&mut client, &topic, 0, false).await.2, vec![0, 1, 2]);
    assert_eq!(latest(&mut client, &topic, true).await, 0);
    assert_eq!(latest(&mut client, &topic, false).await, 3);

    assert_eq!(end(&mut client, &id, pid, 0, false).await, 0);
    // The abort marker took offset 3; the records come back with the
    // transaction listed as aborted, for the client to drop.
    assert_eq!(latest(&mut client, &topic, true).await, 4);
    assert_eq!(
        read(&mut client, &topic, 0, true).await,
        (4, vec![(pid, 0)], vec![0, 1, 2])
    );
    assert_eq!(describe(&mut client, &id).await.0, "CompleteAbort");

    assert_eq!(add_partition(&mut client, &id, pid, 0, &topic).await, 0);
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, 0, 3, 2)).await,
        (0, 4)
    );
    assert_eq!(end(&mut client, &id, pid, 0, true).await, 0);
    // A retry of the commit is answered as it was; an abort now is not.
    assert_eq!(end(&mut client, &id, pid, 0, true).await, 0);
    assert_eq!(
        end(&mut client, &id, pid, 0, false).await,
        INVALID_TXN_STATE
    );
    // Commit marker at 6: from 4 on nothing was aborted.
    assert_eq!(
        read(&mut client, &topic, 4, true).await,
        (7, vec![], vec![4, 5])
    );
    assert_eq!(describe(&mut client, &id).await.0, "CompleteCommit");

    let request = ListTransactionsRequest::default()
        .with_state_filters(vec![s("CompleteCommit"), s("Bogus")])
        .with_duration_filter(-1);
    let ResponseKind::ListTransactions(listed) =
        client.call(ApiKey::ListTransactions, 1, &request).await
    else {
        panic!("not a ListTransactions response")
    };
    assert_eq!(listed.unknown_state_filters, vec![s("Bogus")]);
    assert!(listed
        .transaction_states
        .iter()
        .any(|t| t.transactional_id.0.as_str() == id && t.producer_id.0 == pid));
}

async fn a_second_incarnation_fences_the_first_and_aborts_its_transaction(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("zombie");
    let id = format!("{topic}-id");
    create_topic(&mut client, &topic, 1).await;
    let (_, pid, _) = init(&mut client, &id, 60_000).await;
    assert_eq!(add_partition(&mut client, &id, pid, 0, &topic).await, 0);
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, 0, 0, 2)).await,
        (0, 0)
    );
    // The next incarnation: its open transaction aborted (marker at 2), the
    // epoch bumped past the abort's.
    let (error, same_pid, epoch) = init(&mut client, &id, 60_000).await;
    assert_eq!((error, same_pid, epoch), (0, pid, 2));
    assert_eq!(
        read(&mut client, &topic, 0, true).await,
        (3, vec![(pid, 0)], vec![0, 1])
    );
    // The zombie: fenced at the coordinator and on the partition.
    assert_eq!(end(&mut client, &id, pid, 0, true).await, PRODUCER_FENCED);
    assert_eq!(
        add_partition(&mut client, &id, pid, 0, &topic).await,
        PRODUCER_FENCED
    );
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, 0, 2, 1))
            .await
            .0,
        INVALID_PRODUCER_EPOCH
    );
    // The new incarnation writes from sequence 0 and commits.
    assert_eq!(add_partition(&mut client, &id, pid, 2, &topic).await, 0);
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, 2, 0, 1)).await,
        (0, 3)
    );
    assert_eq!(end(&mut client, &id, pid, 2, true).await, 0);
    assert_eq!(
        read(&mut client, &topic, 3, true).await,
        (5, vec![], vec![3])
    );
}

async fn requests_naming_the_wrong_producer_or_state_are_refused(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("refused");
    let id = format!("{topic}-id");
    create_topic(&mut client, &topic, 1).await;
    assert_eq!(
        init(&mut client, &id, 0).await.0,
        INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        init(&mut client, &id, 900_001).await.0,
        INVALID_TRANSACTION_TIMEOUT
    );
    // Never initialised.
    assert_eq!(
        end(&mut client, &id, 5, 0, true).await,
        INVALID_PRODUCER_ID_MAPPING
    );
    let (_, pid, epoch) = init(&mut client, &id, 60_000).await;
    assert_eq!(
        end(&mut client, &id, pid + 1000, epoch, true).await,
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        end(&mut client, &id, pid, epoch + 1, true).await,
        INVALID_PRODUCER_EPOCH
    );
    // Commit without adding anything: no transaction is open.
    assert_eq!(
        end(&mut client, &id, pid, epoch, true).await,
        INVALID_TXN_STATE
    );
    // A client may not write markers of its own.
    let marker = streamhouse_protocol::control::end_transaction_marker(pid, epoch, true, 0, 1);
    assert_eq!(
        common::produce(&mut client, &topic, 0, marker).await.0,
        87,
        "INVALID_RECORD"
    );
    // Unknown partition: not added, and the others not attempted.
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(s(&id).into())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name(&topic))
                .with_partitions(vec![0, 7]),
        ]);
    let ResponseKind::AddPartitionsToTxn(r) =
        client.call(ApiKey::AddPartitionsToTxn, 3, &request).await
    else {
        panic!("not an AddPartitionsToTxn response")
    };
    let codes: Vec<(i32, i16)> = r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| (p.partition_index, p.partition_error_code))
        .collect();
    assert_eq!(
        codes,
        vec![(0, 55), (7, 3)],
        "OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(describe(&mut client, &id).await.0, "Empty");
}

async fn a_transaction_past_its_timeout_is_aborted_by_the_coordinator(backend: Backend) {
    let broker = TestBroker::start_with(backend, |settings| {
        settings.transaction_abort_check_interval_ms = 100;
    })
    .await;
    let mut client = broker.client().await;
    let topic = unique_topic("timeout");
    let id = format!("{topic}-id");
    create_topic(&mut client, &topic, 1).await;
    let (_, pid, epoch) = init(&mut client, &id, 300).await;
    assert_eq!(add_partition(&mut client, &id, pid, epoch, &topic).await, 0);
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, epoch, 0, 2)).await,
        (0, 0)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while describe(&mut client, &id).await.0 != "CompleteAbort" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timed-out transaction was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        read(&mut client, &topic, 0, true).await,
        (3, vec![(pid, 0)], vec![0, 1])
    );
    // The producer was fenced by the abort: its batches are refused, its
    // commit too, but its own abort is answered (Kafka's lastProducerEpoch).
    assert_eq!(
        produce_txn(&mut client, &id, &topic, txn_batch(pid, epoch, 2, 1))
            .await
            .0,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        end(&mut client, &id, pid, epoch, true).await,
        PRODUCER_FENCED
    );
    assert_eq!(end(&mut client, &id, pid, epoch, false).await, 0);
}

async fn offsets_committed_in_a_transaction_take_effect_when_it_commits(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("txn-offsets");
    let id = format!("{topic}-id");
    let group = format!("{topic}-group");
    create_topic(&mut client, &topic, 1).await;
    let (_, pid, epoch) = init(&mut client, &id, 60_000).await;
    let txn = Txn {
        id: &id,
        pid,
        epoch,
    };
    // The group was not added to a transaction.
    assert_eq!(
        txn_offset_commit(&mut client, 3, &txn, &group, &topic, 5).await,
        INVALID_TXN_STATE
    );
    let add = AddOffsetsToTxnRequest::default()
        .with_transactional_id(s(&id).into())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(s(&group).into());
    let ResponseKind::AddOffsetsToTxn(added) = client.call(ApiKey::AddOffsetsToTxn, 3, &add).await
    else {
        panic!("not an AddOffsetsToTxn response")
    };
    assert_eq!(added.error_code, 0);
    assert_eq!(
        txn_offset_commit(&mut client, 3, &txn, &group, &topic, 5).await,
        0
    );
    let partitions: &[i32] = &[0];
    let committed = |fetched: Vec<(String, i32, i64, String)>| {
        fetched
            .into_iter()
            .map(|(_, _, offset, _)| offset)
            .collect::<Vec<_>>()
    };
    let wanted = [(topic.as_str(), partitions)];
    let fetched = common::groups::fetch(&mut client, &group, Some(&wanted)).await;
    assert_eq!(committed(fetched), vec![-1]);
    assert_eq!(end(&mut client, &id, pid, epoch, true).await, 0);
    let fetched = common::groups::fetch(&mut client, &group, Some(&wanted)).await;
    assert_eq!(committed(fetched), vec![5]);
}

async fn another_agent_ends_the_transaction_one_agent_began(backend: Backend) {
    let first = TestBroker::start(backend).await;
    let second = first.another_agent(|_| {}).await;
    let mut a = first.client().await;
    let mut b = second.client().await;
    let topic = unique_topic("txn-agents");
    let id = format!("{topic}-id");
    create_topic(&mut a, &topic, 1).await;
    let (_, pid, epoch) = init(&mut a, &id, 60_000).await;
    assert_eq!(add_partition(&mut a, &id, pid, epoch, &topic).await, 0);
    assert_eq!(
        produce_txn(&mut a, &id, &topic, txn_batch(pid, epoch, 0, 2)).await,
        (0, 0)
    );
    // The other agent sees the open transaction, ends it, and serves the result.
    assert_eq!(read(&mut b, &topic, 0, true).await.0, 0);
    assert_eq!(describe(&mut b, &id).await.0, "Ongoing");
    assert_eq!(end(&mut b, &id, pid, epoch, true).await, 0);
    assert_eq!(read(&mut b, &topic, 0, true).await, (3, vec![], vec![0, 1]));
    // The first agent's view of the high watermark follows within the heads
    // feed's delay; the records are readable at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = read(&mut a, &topic, 0, true).await;
        assert_eq!(seen.2, vec![0, 1]);
        if seen == (3, vec![], vec![0, 1]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A new incarnation through the first agent fences the old one on the
    // second too.
    let (error, _, bumped) = init(&mut a, &id, 60_000).await;
    assert_eq!((error, bumped), (0, epoch + 1));
    assert_eq!(end(&mut b, &id, pid, epoch, false).await, PRODUCER_FENCED);
}

/// EndTxn v5: (error, producer id, epoch) of the answer.
async fn end_v5(
    client: &mut TestClient,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> (i16, i64, i16) {
    let request = EndTxnRequest::default()
        .with_transactional_id(s(id).into())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let ResponseKind::EndTxn(r) = client.call(ApiKey::EndTxn, 5, &request).await else {
        panic!("not an EndTxn response")
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

async fn transaction_version_2_adds_partitions_on_produce_and_bumps_the_epoch(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("txn-v2");
    let id = format!("{topic}-id");
    let group = format!("{topic}-group");
    create_topic(&mut client, &topic, 1).await;
    let (_, pid, epoch) = init(&mut client, &id, 60_000).await;
    // Produce v11 still needs AddPartitionsToTxn; v12 adds the partition.
    assert_eq!(
        produce_txn_v(&mut client, 11, &id, &topic, txn_batch(pid, epoch, 0, 2))
            .await
            .0,
        INVALID_TXN_STATE
    );
    assert_eq!(
        produce_txn_v(&mut client, 12, &id, &topic, txn_batch(pid, epoch, 0, 2)).await,
        (0, 0)
    );
    assert_eq!(describe(&mut client, &id).await.0, "Ongoing");
    // TxnOffsetCommit v5 adds the group without AddOffsetsToTxn.
    let txn = Txn {
        id: &id,
        pid,
        epoch,
    };
    assert_eq!(
        txn_offset_commit(&mut client, 5, &txn, &group, &topic, 2).await,
        0
    );
    // The commit bumps the epoch; a retry under the old one learns the new.
    let next = epoch + 1;
    assert_eq!(
        end_v5(&mut client, &id, pid, epoch, true).await,
        (0, pid, next)
    );
    assert_eq!(
        end_v5(&mut client, &id, pid, epoch, true).await,
        (0, pid, next)
    );
    assert_eq!(
        read(&mut client, &topic, 0, true).await,
        (3, vec![], vec![0, 1])
    );
    let partitions: &[i32] = &[0];
    let wanted = [(topic.as_str(), partitions)];
    let fetched = common::groups::fetch(&mut client, &group, Some(&wanted)).await;
    assert_eq!(fetched[0].2, 2);
    // The old epoch is fenced on the partition; the new one starts at 0.
    assert_eq!(
        produce_txn_v(&mut client, 12, &id, &topic, txn_batch(pid, epoch, 2, 1))
            .await
            .0,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        produce_txn_v(&mut client, 12, &id, &topic, txn_batch(pid, next, 0, 1)).await,
        (0, 3)
    );
    assert_eq!(
        end_v5(&mut client, &id, pid, next, false).await,
        (0, pid, next + 1)
    );
    assert_eq!(
        read(&mut client, &topic, 0, true).await,
        (5, vec![(pid, 3)], vec![0, 1, 3])
    );
}

/// Joins a share group of `topic` and fetches partition 0 once: the
/// (first, last) offsets of each range acquired.
async fn share_acquire(client: &mut TestClient, group: &str, topic: &str) -> Vec<(i64, i64)> {
    let member = uuid::Uuid::new_v4().to_string();
    let join = ShareGroupHeartbeatRequest::default()
        .with_group_id(s(group).into())
        .with_member_id(s(&member))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![name(topic)]));
    let ResponseKind::ShareGroupHeartbeat(joined) =
        client.call(ApiKey::ShareGroupHeartbeat, 1, &join).await
    else {
        panic!("not a ShareGroupHeartbeat response")
    };
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let topic_id = joined.assignment.expect("an assignment").topic_partitions[0].topic_id;
    let request = ShareFetchRequest::default()
        .with_group_id(Some(s(group).into()))
        .with_member_id(Some(s(&member)))
        .with_share_session_epoch(0)
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_topics(vec![share_fetch_request::FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![
                share_fetch_request::FetchPartition::default().with_partition_index(0),
            ])]);
    let ResponseKind::ShareFetch(r) = client.call(ApiKey::ShareFetch, 1, &request).await else {
        panic!("not a ShareFetch response")
    };
    assert_eq!(r.error_code, 0);
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset))
        .collect()
}

async fn a_read_committed_share_group_gets_only_committed_records(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("stx");
    let id = format!("{topic}-id");
    create_topic(&mut client, &topic, 1).await;
    let (_, pid, epoch) = init(&mut client, &id, 60_000).await;
    // 0-2 aborted (marker 3), 4-5 committed (marker 6), 7 still open.
    for (seq, count, commit) in [(0, 3, Some(false)), (3, 2, Some(true)), (5, 1, None)] {
        assert_eq!(add_partition(&mut client, &id, pid, epoch, &topic).await, 0);
        let (error, _) =
            produce_txn(&mut client, &id, &topic, txn_batch(pid, epoch, seq, count)).await;
        assert_eq!(error, 0);
        if let Some(commit) = commit {
            assert_eq!(end(&mut client, &id, pid, epoch, commit).await, 0);
        }
    }
    let (committed, uncommitted) = (format!("{topic}-rc"), format!("{topic}-ru"));
    for (group, isolation) in [
        (&committed, "read_committed"),
        (&uncommitted, "read_uncommitted"),
    ] {
        let configs = [
            ("share.auto.offset.reset", 0, "earliest"),
            ("share.isolation.level", 0, isolation),
        ];
        let (error, message) =
            common::admin::incremental(&mut client, 1, 32, group, &configs, false).await;
        assert_eq!(error, 0, "{message:?}");
    }

    assert_eq!(
        share_acquire(&mut client, &uncommitted, &topic).await,
        vec![(0, 2), (4, 5), (7, 7)],
        "read_uncommitted: every data record, open or aborted"
    );
    assert_eq!(
        share_acquire(&mut client, &committed, &topic).await,
        vec![(4, 5)],
        "read_committed: the aborted records are archived, the open one waits"
    );
    assert_eq!(end(&mut client, &id, pid, epoch, true).await, 0);
    assert_eq!(
        share_acquire(&mut client, &committed, &topic).await,
        vec![(7, 7)],
        "committed now"
    );
}
