//! Producer state expiry over the wire (Kafka's `producer.id.expiration.ms`):
//! a producer that has not appended to a partition for the expiration is
//! forgotten there, so its retry of an old batch is appended again, as Kafka
//! appends it; a producer that keeps appending keeps its state. DescribeConfigs
//! reports both settings.

mod common;

use std::time::{Duration, Instant};

use common::{
    admin, create_topic, name, on_both_backends, produce, producer_batch, unique_topic, Backend,
    TestBroker, TestClient,
};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

on_both_backends!(an_idle_producer_is_forgotten_and_its_retry_appended_again);

const EXPIRATION: Duration = Duration::from_millis(1500);

async fn init(client: &mut TestClient) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let ResponseKind::InitProducerId(r) = client.call(ApiKey::InitProducerId, 4, &request).await
    else {
        panic!("not an InitProducerId response")
    };
    assert_eq!(r.error_code, 0);
    r.producer_id.0
}

/// `count` records from producer `pid` (epoch 0), sequences from `seq`.
fn batch(pid: i64, seq: i32, count: usize) -> bytes::Bytes {
    producer_batch(count, seq as usize, 1, Compression::None, pid, 0, seq)
}

/// The producers DescribeProducers lists on partition 0.
async fn listed(client: &mut TestClient, topic: &str) -> Vec<i64> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name(topic))
        .with_partition_indexes(vec![0])]);
    let ResponseKind::DescribeProducers(r) =
        client.call(ApiKey::DescribeProducers, 0, &request).await
    else {
        panic!("not a DescribeProducers response")
    };
    let partition = &r.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition
        .active_producers
        .iter()
        .map(|p| p.producer_id.0)
        .collect()
}

async fn an_idle_producer_is_forgotten_and_its_retry_appended_again(backend: Backend) {
    let broker = TestBroker::start_with(backend, |s| {
        s.producer_id_expiration_ms = EXPIRATION.as_millis() as u64;
        s.producer_id_expiration_check_interval_ms = 100;
    })
    .await;
    let mut client = broker.client().await;
    let topic = unique_topic("expiry");
    create_topic(&mut client, &topic, 1).await;
    let (idle, active) = (init(&mut client).await, init(&mut client).await);
    let idle_sent = Instant::now();
    assert_eq!(
        produce(&mut client, &topic, 0, batch(idle, 0, 3)).await,
        (0, 0)
    );
    let mut last = (0, 3); // the active producer's last batch: (sequence, offset)
    assert_eq!(
        produce(&mut client, &topic, 0, batch(active, 0, 1)).await,
        (0, 3)
    );

    // The active producer appends every 200 ms until the idle one is gone.
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seq = last.0 + 1;
        let (error, offset) = produce(&mut client, &topic, 0, batch(active, seq, 1)).await;
        assert_eq!((error, offset), (0, last.1 + 1));
        last = (seq, offset);
        let producers = listed(&mut client, &topic).await;
        assert!(producers.contains(&active), "{producers:?}");
        if !producers.contains(&idle) {
            break;
        }
        assert!(
            idle_sent.elapsed() < EXPIRATION * 10,
            "the idle producer was never forgotten"
        );
    }
    // Not before the expiration: the catalog stamped the batch after it was
    // sent, and compared with its clock before the listing was answered.
    assert!(
        idle_sent.elapsed() >= EXPIRATION,
        "{:?}",
        idle_sent.elapsed()
    );

    // The idle producer's retry of its batch is no longer recognised: Kafka
    // appends a batch of a producer it has forgotten, whatever its sequence.
    let end = last.1 + 1;
    assert_eq!(
        produce(&mut client, &topic, 0, batch(idle, 0, 3)).await,
        (0, end)
    );
    assert_eq!(
        produce(&mut client, &topic, 0, batch(idle, 3, 1)).await,
        (0, end + 3)
    );
    // The active producer's retry is still answered with the original offset.
    assert_eq!(
        produce(&mut client, &topic, 0, batch(active, last.0, 1)).await,
        (0, last.1)
    );
    let producers = listed(&mut client, &topic).await;
    assert!(
        producers.contains(&idle) && producers.contains(&active),
        "{producers:?}"
    );

    let keys = [
        "producer.id.expiration.ms",
        "producer.id.expiration.check.interval.ms",
    ];
    let result = admin::describe(&mut client, 4, admin::BROKER, "0", Some(&keys)).await;
    assert_eq!(admin::config(&result, keys[0]).0, "1500");
    assert_eq!(admin::config(&result, keys[1]).0, "100");
}
