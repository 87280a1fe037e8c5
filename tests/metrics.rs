//! The agent's request metrics as a scrape shows them, after real requests:
//! requests, errors and times per API, records and bytes per topic, open
//! connections and a group's lag, on both backends.

mod common;

use common::groups::commit;
use common::{
    create_topic, fetch, fetch_request, on_both_backends, produce, record_batch, unique_topic,
    Backend, TestBroker,
};
use kafka_protocol::records::Compression;
use streamhouse::metrics_http::BeforeScrape;

on_both_backends!(a_scrape_shows_requests_traffic_connections_and_lag);

/// The agent's metrics as its endpoint serves them, after the scrape's refresh.
async fn scrape(broker: &TestBroker) -> String {
    let agent = broker.broker();
    agent.refresh().await;
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &agent.registry).unwrap();
    text
}

fn assert_sample(text: &str, sample: &str) {
    assert!(
        text.lines().any(|line| line == sample),
        "no `{sample}` in the scrape:\n{text}"
    );
}

async fn a_scrape_shows_requests_traffic_connections_and_lag(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let topic = unique_topic("metrics");
    create_topic(&mut client, &topic, 2).await;
    let five = record_batch(5, 0, 1_000, Compression::None);
    let five_bytes = five.len();
    assert_eq!(produce(&mut client, &topic, 0, five).await.0, 0);
    assert_eq!(
        produce(
            &mut client,
            &topic,
            1,
            record_batch(3, 5, 1_000, Compression::None)
        )
        .await
        .0,
        0
    );
    // A partition the topic does not have: an error the metrics name.
    assert_eq!(
        produce(
            &mut client,
            &topic,
            7,
            record_batch(1, 0, 1_000, Compression::None)
        )
        .await
        .0,
        3
    );
    let fetched = fetch(&mut client, &fetch_request(&topic, 0, 0, 100)).await;
    assert_eq!(fetched.records.as_ref().map(|r| r.len()), Some(five_bytes));
    let group = unique_topic("metrics-group");
    assert_eq!(
        commit(&mut client, &group, -1, "", &[(&topic, 0, 2, "")]).await,
        vec![(topic.clone(), 0, 0)]
    );

    let text = scrape(&broker).await;
    assert_sample(&text, "streamhouse_requests_total{api=\"Produce\"} 3");
    assert_sample(&text, "streamhouse_requests_total{api=\"Fetch\"} 1");
    assert_sample(
        &text,
        "streamhouse_request_errors_total{api=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"} 1",
    );
    assert_sample(
        &text,
        "streamhouse_request_duration_seconds_count{api=\"Produce\"} 3",
    );
    assert_sample(
        &text,
        &format!("streamhouse_topic_records_in_total{{topic=\"{topic}\"}} 8"),
    );
    assert_sample(
        &text,
        &format!("streamhouse_topic_records_out_total{{topic=\"{topic}\"}} 5"),
    );
    assert_sample(
        &text,
        &format!("streamhouse_topic_bytes_out_total{{topic=\"{topic}\"}} {five_bytes}"),
    );
    assert_sample(&text, "streamhouse_connections 1");
    // Committed 2 of partition 0's 5 records; partition 1 has no commit.
    assert_sample(
        &text,
        &format!(
            "streamhouse_consumer_group_lag{{group=\"{group}\",topic=\"{topic}\",partition=\"0\"}} 3"
        ),
    );
    assert!(
        !text.contains(&format!("topic=\"{topic}\",partition=\"1\"")),
        "{text}"
    );

    // More records raise the lag at the next scrape; a closed connection is
    // no longer counted.
    assert_eq!(
        produce(
            &mut client,
            &topic,
            0,
            record_batch(4, 5, 1_000, Compression::None)
        )
        .await
        .0,
        0
    );
    drop(client);
    let text = scrape(&broker).await;
    assert_sample(
        &text,
        &format!(
            "streamhouse_consumer_group_lag{{group=\"{group}\",topic=\"{topic}\",partition=\"0\"}} 7"
        ),
    );
    let mut closed = false;
    for _ in 0..50 {
        if scrape(&broker)
            .await
            .lines()
            .any(|l| l == "streamhouse_connections 0")
        {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(closed, "the closed connection is still counted");
}
