//! Client quotas over the wire: AlterClientQuotas and DescribeClientQuotas at
//! every advertised version (entities by user and client id, named or
//! default; filters exact, default and specified, strict or not; refusals
//! per entry), produce and fetch byte rates and request time enforced with
//! Kafka's throttle_time_ms and a muted connection; on both backends.

mod common;

use std::time::{Duration, Instant};

use common::{
    create_topic, fetch_request, on_both_backends, record_batch, unique_topic, Backend, TestBroker,
    TestClient,
};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use streamhouse_protocol::versions::advertised;

on_both_backends!(
    quotas_are_altered_and_described_at_every_version,
    a_producer_over_its_quota_is_throttled_and_muted_and_others_are_not,
    a_client_over_its_request_quota_is_throttled_and_muted_and_others_are_not,
);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// An entity part: (type, name), `None` for the default.
fn entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    parts
        .iter()
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(s(entity_type))
                .with_entity_name(name.map(s))
        })
        .collect()
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default().with_key(s(key)).with_value(value)
}

fn remove(key: &str) -> OpData {
    OpData::default().with_key(s(key)).with_remove(true)
}

async fn alter(
    client: &mut TestClient,
    version: i16,
    entries: Vec<EntryData>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let request = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let ResponseKind::AlterClientQuotas(response) = client
        .call(ApiKey::AlterClientQuotas, version, &request)
        .await
    else {
        panic!("not an AlterClientQuotas response")
    };
    response
        .entries
        .into_iter()
        .map(|e| (e.error_code, e.error_message.map(|m| m.to_string())))
        .collect()
}

/// Entities as "user=NAME,client-id=<default>" with their sorted values.
async fn describe(
    client: &mut TestClient,
    version: i16,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Result<Vec<String>, i16> {
    let request = DescribeClientQuotasRequest::default()
        .with_components(
            components
                .iter()
                .map(|(entity_type, match_type, name)| {
                    ComponentData::default()
                        .with_entity_type(s(entity_type))
                        .with_match_type(*match_type)
                        .with_match(name.map(s))
                })
                .collect(),
        )
        .with_strict(strict);
    let ResponseKind::DescribeClientQuotas(response) = client
        .call(ApiKey::DescribeClientQuotas, version, &request)
        .await
    else {
        panic!("not a DescribeClientQuotas response")
    };
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    let mut described: Vec<String> = response
        .entries
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let entity: Vec<String> = entry
                .entity
                .iter()
                .map(|part| {
                    let name = part.entity_name.as_deref().unwrap_or("<default>");
                    format!("{}={name}", part.entity_type)
                })
                .collect();
            let values: Vec<String> = entry
                .values
                .iter()
                .map(|v| format!("{}={}", v.key, v.value))
                .collect();
            format!("{} {}", entity.join(","), values.join(","))
        })
        .collect();
    described.sort();
    Ok(described)
}

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const SPECIFIED: i8 = 2;

async fn quotas_are_altered_and_described_at_every_version(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let mut client = broker.client().await;
    let alter_versions = advertised(ApiKey::AlterClientQuotas).unwrap();
    let describe_versions = advertised(ApiKey::DescribeClientQuotas).unwrap();
    for version in alter_versions.min..=alter_versions.max {
        let c = format!("c{version}");
        // validate_only stores nothing.
        let answer = alter(
            &mut client,
            version,
            vec![EntryData::default()
                .with_entity(entity(&[("client-id", Some(&c))]))
                .with_ops(vec![set("producer_byte_rate", 1000.0)])],
            true,
        )
        .await;
        assert_eq!(answer, vec![(0, None)], "v{version}");
        let exact = [("client-id", EXACT, Some(c.as_str()))];
        assert_eq!(describe(&mut client, 0, &exact, false).await, Ok(vec![]));

        // One request: two good entries and two refused, each on its own.
        let answer = alter(
            &mut client,
            version,
            vec![
                EntryData::default()
                    .with_entity(entity(&[("client-id", Some(&c))]))
                    .with_ops(vec![
                        set("producer_byte_rate", 1000.0),
                        set("consumer_byte_rate", 2000.0),
                        set("request_percentage", 0.5),
                    ]),
                EntryData::default()
                    .with_entity(entity(&[("user", Some("alice")), ("client-id", None)]))
                    .with_ops(vec![set("consumer_byte_rate", 3000.0)]),
                EntryData::default()
                    .with_entity(entity(&[("client-id", Some("x"))]))
                    .with_ops(vec![set("controller_mutation_rate", 50.0)]),
                EntryData::default()
                    .with_entity(entity(&[("client-id", Some("x"))]))
                    .with_ops(vec![set("producer_byte_rate", -1.0)]),
                EntryData::default()
                    .with_entity(entity(&[("client-id", Some("x"))]))
                    .with_ops(vec![set("request_percentage", -1.0)]),
            ],
            false,
        )
        .await;
        assert_eq!(answer[0], (0, None), "v{version}");
        assert_eq!(answer[1], (0, None), "v{version}");
        assert_eq!(answer[2].0, 42, "INVALID_REQUEST: {answer:?}");
        assert!(answer[2]
            .1
            .as_deref()
            .unwrap()
            .contains("controller_mutation_rate"));
        assert_eq!(answer[3].0, 42, "INVALID_REQUEST: {answer:?}");
        assert_eq!(answer[4].0, 42, "INVALID_REQUEST: {answer:?}");
        for describe_version in describe_versions.min..=describe_versions.max {
            assert_eq!(
                describe(&mut client, describe_version, &exact, false).await,
                Ok(vec![format!(
                    "client-id={c} consumer_byte_rate=2000,producer_byte_rate=1000,request_percentage=0.5"
                )])
            );
        }
        // Removing one key keeps the other.
        alter(
            &mut client,
            version,
            vec![EntryData::default()
                .with_entity(entity(&[("client-id", Some(&c))]))
                .with_ops(vec![remove("consumer_byte_rate")])],
            false,
        )
        .await;
        assert_eq!(
            describe(&mut client, 1, &exact, false).await,
            Ok(vec![format!(
                "client-id={c} producer_byte_rate=1000,request_percentage=0.5"
            )])
        );
    }
    let alice = "user=alice,client-id=<default> consumer_byte_rate=3000".to_owned();
    // Non-strict: entities with other parts too; strict: only those parts.
    let any_client = [("client-id", SPECIFIED, None)];
    let all = describe(&mut client, 1, &any_client, false).await.unwrap();
    assert!(all.contains(&alice) && all.len() == 3, "{all:?}");
    let strict = describe(&mut client, 1, &any_client, true).await.unwrap();
    assert_eq!(strict.len(), 2, "{strict:?}");
    assert_eq!(
        describe(&mut client, 1, &[("client-id", DEFAULT, None)], false).await,
        Ok(vec![alice.clone()])
    );
    assert_eq!(
        describe(&mut client, 1, &[("user", EXACT, Some("alice"))], true).await,
        Ok(vec![])
    );
    // A filter naming one type twice is refused.
    assert_eq!(
        describe(
            &mut client,
            1,
            &[("user", SPECIFIED, None), ("user", DEFAULT, None)],
            false
        )
        .await,
        Err(42)
    );
}

/// Produce v9 of `bytes` record bytes in one batch to partition 0; the
/// response's throttle_time_ms.
async fn produce(client: &mut TestClient, topic: &str, records: usize) -> i32 {
    let batch = record_batch(records, 0, 1, Compression::None);
    common::produce_throttle(client, topic, batch).await
}

async fn a_producer_over_its_quota_is_throttled_and_muted_and_others_are_not(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let topic = unique_topic("quota");
    let mut admin = broker.client().await;
    create_topic(&mut admin, &topic, 1).await;
    let slow = unique_topic("slow");
    // 2,000 bytes a second: over ten seconds, 20,000 bytes before throttling.
    alter(
        &mut admin,
        1,
        vec![EntryData::default()
            .with_entity(entity(&[("client-id", Some(&slow))]))
            .with_ops(vec![
                set("producer_byte_rate", 2000.0),
                set("consumer_byte_rate", 2000.0),
            ])],
        false,
    )
    .await;
    let mut limited = TestClient::connect(broker.addr).await.with_client_id(&slow);
    let mut free = TestClient::connect(broker.addr)
        .await
        .with_client_id("free");
    // A batch of 500 records is some 14 KB: the second goes over.
    let first = produce(&mut limited, &topic, 500).await;
    let throttle = produce(&mut limited, &topic, 500).await;
    assert!(
        first == 0 && throttle > 500,
        "throttles {first} then {throttle}"
    );
    // The connection reads nothing more until the throttle is over.
    let asked = Instant::now();
    let ResponseKind::Metadata(_) = limited
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await
    else {
        panic!("not a Metadata response")
    };
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(throttle as u64 - 100),
        "answered after {waited:?}, throttled {throttle} ms"
    );
    // Another client id has no quota.
    for _ in 0..3 {
        assert_eq!(produce(&mut free, &topic, 500).await, 0);
    }
    // Fetching: a response carries at most the quota over ten seconds (the
    // first batch of 14 KB, not the second); the next goes over the quota, so
    // it is throttled and answered without records.
    let fetch = fetch_request(&topic, 0, 0, 0);
    let ResponseKind::Fetch(first) = limited.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!("not a Fetch response")
    };
    assert_eq!(first.throttle_time_ms, 0);
    let records = first.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .len();
    assert!((10_000..=20_000).contains(&records), "{records} bytes");
    let ResponseKind::Fetch(second) = limited.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!("not a Fetch response")
    };
    assert!(second.throttle_time_ms > 0, "{}", second.throttle_time_ms);
    assert!(second.responses.is_empty());
    let ResponseKind::Fetch(unlimited) = free.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!("not a Fetch response")
    };
    assert_eq!(unlimited.throttle_time_ms, 0);
}

/// A quota set through one agent is described by another at once and
/// enforced by it within its refresh period.
#[tokio::test]
async fn a_quota_set_on_one_agent_is_enforced_by_another() {
    let first = TestBroker::start(Backend::Embedded).await;
    let second = first.another_agent(|_| {}).await;
    let topic = unique_topic("quota-cluster");
    let mut admin = first.client().await;
    create_topic(&mut admin, &topic, 1).await;
    let slow = unique_topic("slow");
    let answer = alter(
        &mut admin,
        1,
        vec![EntryData::default()
            .with_entity(entity(&[("client-id", Some(&slow))]))
            .with_ops(vec![set("producer_byte_rate", 1000.0)])],
        false,
    )
    .await;
    assert_eq!(answer, vec![(0, None)]);
    let mut other_admin = second.client().await;
    assert_eq!(
        describe(
            &mut other_admin,
            1,
            &[("client-id", EXACT, Some(&slow))],
            true
        )
        .await,
        Ok(vec![format!("client-id={slow} producer_byte_rate=1000")])
    );
    // 1,000 bytes a second allows 10,000 at once: a batch of 500 records
    // (some 14 KB) is throttled once the second agent has read the quota.
    let deadline = Instant::now() + QUOTA_REFRESH + Duration::from_secs(5);
    loop {
        let mut limited = TestClient::connect(second.addr).await.with_client_id(&slow);
        if produce(&mut limited, &topic, 500).await > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second agent never throttled the client"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How often an agent re-reads the quotas (`streamhouse::quotas::REFRESH_EVERY`).
const QUOTA_REFRESH: Duration = streamhouse::quotas::REFRESH_EVERY;

/// Metadata v12 for no topic, a cheap request; the response's
/// throttle_time_ms.
async fn metadata(client: &mut TestClient) -> i32 {
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    let ResponseKind::Metadata(response) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    response.throttle_time_ms
}

/// Cheap requests until one is throttled; (requests sent, throttle).
async fn metadata_until_throttled(client: &mut TestClient, most: usize) -> Option<(usize, i32)> {
    for sent in 1..=most {
        let throttle = metadata(client).await;
        if throttle > 0 {
            return Some((sent, throttle));
        }
    }
    None
}

/// 0.01 % of one thread's time is 100 µs a second: 1 ms over the first ten
/// seconds, which a few dozen requests use up.
const TINY_REQUEST_PERCENTAGE: f64 = 0.01;

async fn a_client_over_its_request_quota_is_throttled_and_muted_and_others_are_not(
    backend: Backend,
) {
    let broker = TestBroker::start(backend).await;
    let topic = unique_topic("request-quota");
    let mut admin = broker.client().await;
    create_topic(&mut admin, &topic, 1).await;
    let busy = unique_topic("busy");
    let answer = alter(
        &mut admin,
        1,
        vec![EntryData::default()
            .with_entity(entity(&[("client-id", Some(&busy))]))
            .with_ops(vec![set("request_percentage", TINY_REQUEST_PERCENTAGE)])],
        false,
    )
    .await;
    assert_eq!(answer, vec![(0, None)]);
    let mut limited = TestClient::connect(broker.addr).await.with_client_id(&busy);
    let mut free = TestClient::connect(broker.addr)
        .await
        .with_client_id("free");
    let Some((sent, throttle)) = metadata_until_throttled(&mut limited, 10_000).await else {
        panic!("10,000 requests and never throttled")
    };
    // Kafka bounds a request-time throttle by one sample window.
    assert!(throttle <= 1000, "throttled {throttle} ms");
    // The connection reads nothing more until the throttle is over; the
    // next requests are still over the quota, whatever they are.
    let asked = Instant::now();
    let next = metadata(&mut limited).await;
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(throttle as u64).saturating_sub(Duration::from_millis(100)),
        "answered after {waited:?}, throttled {throttle} ms"
    );
    assert!(next > 0, "{next}");
    // Produce reports it too (the larger of it and a byte-rate throttle);
    // Fetch is answered without records, as for a byte-rate throttle.
    assert!(produce(&mut limited, &topic, 1).await > 0);
    let fetch = fetch_request(&topic, 0, 0, 0);
    let ResponseKind::Fetch(throttled) = limited.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!("not a Fetch response")
    };
    assert!(throttled.throttle_time_ms > 0);
    assert!(throttled.responses.is_empty());
    // Another client id sends as many and more, never throttled.
    for _ in 0..sent + 20 {
        assert_eq!(metadata(&mut free).await, 0);
    }
    let ResponseKind::Fetch(unlimited) = free.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!("not a Fetch response")
    };
    assert_eq!(unlimited.throttle_time_ms, 0);
    assert_eq!(unlimited.responses.len(), 1);
}

/// A request quota set through one agent is enforced by another within its
/// refresh period.
#[tokio::test]
async fn a_request_quota_set_on_one_agent_is_enforced_by_another() {
    let first = TestBroker::start(Backend::Embedded).await;
    let second = first.another_agent(|_| {}).await;
    let busy = unique_topic("busy");
    let mut admin = first.client().await;
    let answer = alter(
        &mut admin,
        1,
        vec![EntryData::default()
            .with_entity(entity(&[("client-id", None)]))
            .with_ops(vec![set("request_percentage", TINY_REQUEST_PERCENTAGE)])],
        false,
    )
    .await;
    assert_eq!(answer, vec![(0, None)]);
    // The default client-id quota: each client id's own.
    let deadline = Instant::now() + QUOTA_REFRESH + Duration::from_secs(5);
    loop {
        let mut limited = TestClient::connect(second.addr).await.with_client_id(&busy);
        if metadata_until_throttled(&mut limited, 500).await.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second agent never throttled the client"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
