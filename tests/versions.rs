//! Every advertised version of every API is answered with a response the client
//! can decode: a field set outside its version would make the encoder fail.

mod common;

use common::{name, record_batch, unique_topic, Backend, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use streamhouse_protocol::versions::{accepts, advertised};

fn served(key: ApiKey) -> Vec<i16> {
    let api = advertised(key).expect("advertised");
    (api.min..=api.max).filter(|v| accepts(key, *v)).collect()
}

#[tokio::test]
async fn every_advertised_version_round_trips() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    let topic = unique_topic("versions");
    for version in served(ApiKey::CreateTopics) {
        let t = format!("{topic}-{version}");
        let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(&t))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
        let ResponseKind::CreateTopics(r) =
            client.call(ApiKey::CreateTopics, version, &request).await
        else {
            panic!()
        };
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{version}");
    }
    let t = format!("{topic}-7");
    let mut topic_id = uuid::Uuid::nil();
    for version in served(ApiKey::Metadata) {
        let topics = vec![MetadataRequestTopic::default().with_name(Some(name(&t)))];
        let request = MetadataRequest::default().with_topics(Some(topics));
        let ResponseKind::Metadata(r) = client.call(ApiKey::Metadata, version, &request).await
        else {
            panic!()
        };
        assert_eq!(r.topics[0].error_code, 0, "Metadata v{version}");
        assert_eq!(r.topics[0].partitions.len(), 1, "Metadata v{version}");
        if version >= 10 {
            topic_id = r.topics[0].topic_id;
        }
    }
    assert!(!topic_id.is_nil(), "Metadata v10+ gives the topic's id");
    // Names before v13, ids from it: a field outside its version cannot be
    // encoded.
    let by_name_or_id = |data: TopicProduceData, version: i16| {
        if version >= 13 {
            data.with_topic_id(topic_id)
        } else {
            data.with_name(name(&t))
        }
    };
    let fetch_by_name_or_id = |topic: FetchTopic, version: i16| {
        if version >= 13 {
            topic.with_topic_id(topic_id)
        } else {
            topic.with_topic(name(&t))
        }
    };
    let mut produced = 0;
    for version in served(ApiKey::Produce) {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![by_name_or_id(TopicProduceData::default(), version)
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(record_batch(2, 0, 1, Compression::None)))])]);
        let ResponseKind::Produce(r) = client.call(ApiKey::Produce, version, &request).await else {
            panic!()
        };
        // From v13 the topic is named by id only, in the request and the answer.
        if version >= 13 {
            assert_eq!(r.responses[0].topic_id, topic_id, "Produce v{version}");
        } else {
            assert_eq!(r.responses[0].name.0.as_str(), t, "Produce v{version}");
        }
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, produced),
            "Produce v{version}"
        );
        produced += 2;
    }
    for version in served(ApiKey::Fetch) {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_by_name_or_id(FetchTopic::default(), version)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let ResponseKind::Fetch(r) = client.call(ApiKey::Fetch, version, &request).await else {
            panic!()
        };
        if version >= 13 {
            assert_eq!(r.responses[0].topic_id, topic_id, "Fetch v{version}");
        } else {
            assert_eq!(r.responses[0].topic.0.as_str(), t, "Fetch v{version}");
        }
        let p = &r.responses[0].partitions[0];
        assert_eq!(
            (p.error_code, p.high_watermark),
            (0, produced),
            "Fetch v{version}"
        );
        assert_eq!(
            common::decode_records(p.records.clone().unwrap()).len() as i64,
            produced
        );
    }
    for version in served(ApiKey::ListOffsets) {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(&t))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]);
        let ResponseKind::ListOffsets(r) =
            client.call(ApiKey::ListOffsets, version, &request).await
        else {
            panic!()
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.offset),
            (0, produced),
            "ListOffsets v{version}"
        );
    }
    for version in served(ApiKey::InitProducerId) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(1000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let ResponseKind::InitProducerId(r) =
            client.call(ApiKey::InitProducerId, version, &request).await
        else {
            panic!()
        };
        assert_eq!(
            (r.error_code, r.producer_epoch),
            (0, 0),
            "InitProducerId v{version}"
        );
    }
    for version in served(ApiKey::DeleteTopics) {
        let t = format!("{topic}-{}", version + 1);
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name(&t))),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&t)])
        };
        let ResponseKind::DeleteTopics(r) =
            client.call(ApiKey::DeleteTopics, version, &request).await
        else {
            panic!()
        };
        assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{version}");
    }
}
