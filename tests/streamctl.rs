//! The `streamctl` binary against real agents: the README's quick start,
//! every command in both output formats, a partition led by another agent,
//! and the errors a user sees (one line, non-zero exit).

mod common;

use common::groups::{join_new, leave, sync, Join};
use common::{on_both_backends, unique_topic, Backend, TestBroker};
use serde_json::Value;

on_both_backends!(
    the_quick_start_creates_produces_and_consumes,
    topic_commands_create_describe_alter_grow_and_delete,
    records_go_to_each_partitions_leader_on_two_agents,
    group_commands_list_describe_reset_and_delete,
    a_group_of_the_consumer_protocol_is_described_too,
    cluster_info_lists_the_agents,
    storage_usage_and_check_find_a_missing_a_truncated_and_a_corrupt_object,
);

/// (exit code, stdout, stderr) of `streamctl ARGS` with `stdin`, run off the
/// runtime (the agents under test run on it).
async fn streamctl(bootstrap: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut all = vec!["--bootstrap".to_string(), bootstrap.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_streamctl"))
            .args(&all)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("streamctl starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("streamctl ends");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// Runs `streamctl ARGS` and returns its stdout; panics unless it exits 0.
async fn ok(bootstrap: &str, args: &[&str]) -> String {
    let (code, out, err) = streamctl(bootstrap, args, "").await;
    assert_eq!(code, 0, "streamctl {args:?}: {err}");
    out
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn the_quick_start_creates_produces_and_consumes(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let at = broker.addr.to_string();
    let topic = unique_topic("orders");
    let out = ok(&at, &["topic", "create", &topic, "--partitions", "10"]).await;
    assert_eq!(out.trim(), format!("created topic {topic} (10 partitions)"));
    let out = ok(&at, &["produce", &topic, "0", "--value", "Hello World"]).await;
    assert_eq!(
        out.trim(),
        format!("produced 1 record to {topic}[0] at offset 0")
    );
    // Reads to the end and exits.
    let out = ok(&at, &["consume", &topic, "0", "--offset", "0"]).await;
    assert_eq!(out, format!("{topic}[0]@0 Hello World\n"));

    // Lines of stdin with a key all go to the key's partition, in order.
    let (code, out, err) = streamctl(
        &at,
        &["--output", "json", "produce", &topic, "--key", "user-1"],
        "one\ntwo\nthree\n",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let produced = json(&out);
    assert_eq!(produced["records"], 3);
    let partition = produced["batches"][0]["partition"].as_i64().unwrap();
    let out = ok(
        &at,
        &[
            "consume",
            &topic,
            &partition.to_string(),
            "--format",
            "json",
        ],
    )
    .await;
    let values: Vec<(String, String)> = out
        .lines()
        .map(json)
        .filter(|r| r["key"] == "user-1")
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ["one", "two", "three"]
        .iter()
        .map(|v| ("user-1".to_string(), v.to_string()))
        .collect();
    assert_eq!(values, want);
    // Every partition from the beginning, at most 2 records.
    let out = ok(&at, &["consume", &topic, "--from-beginning", "-n", "2"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");

    // Errors: one line on stderr and exit 1; bad arguments exit 2.
    let (code, out, err) = streamctl(&at, &["consume", "no-such-topic"], "").await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    let (code, _, err) = streamctl(&at, &["produce", &topic, "10", "--value", "x"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("has no partition 10"), "{err}");
    let (code, _, err) = streamctl(&at, &["topic", "create", &topic], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("TOPIC_ALREADY_EXISTS"), "{err}");
    let (code, _, _) = streamctl(&at, &["topic", "create", "x", "--partitions", "0"], "").await;
    assert_eq!(code, 2);
    let (code, _, _) = streamctl(&at, &["no-such-command"], "").await;
    assert_eq!(code, 2);
    let (code, _, err) = streamctl("127.0.0.1:1", &["topic", "list"], "").await;
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect to 127.0.0.1:1"), "{err}");
}

async fn topic_commands_create_describe_alter_grow_and_delete(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let at = broker.addr.to_string();
    let topic = unique_topic("ctl-topic");
    ok(
        &at,
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    )
    .await;
    let listed = json(&ok(&at, &["--output", "json", "topic", "list"]).await);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic.as_str())
        .expect("listed");
    assert_eq!(entry["partitions"], 3);
    let table = ok(&at, &["topic", "list"]).await;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains(&topic), "{table}");

    ok(&at, &["produce", &topic, "1", "--value", "v"]).await;
    let described = json(&ok(&at, &["--output", "json", "topic", "describe", &topic]).await);
    assert_eq!(described["configs"]["retention.ms"], "60000");
    let partitions = described["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    assert_eq!(
        (
            partitions[1]["earliest"].as_i64(),
            partitions[1]["latest"].as_i64()
        ),
        (Some(0), Some(1))
    );

    ok(
        &at,
        &[
            "topic",
            "alter-config",
            &topic,
            "--set",
            "cleanup.policy=compact",
            "--delete",
            "retention.ms",
        ],
    )
    .await;
    let described = json(&ok(&at, &["--output", "json", "topic", "describe", &topic]).await);
    assert_eq!(described["configs"]["cleanup.policy"], "compact");
    assert!(
        described["configs"].get("retention.ms").is_none(),
        "{described}"
    );
    let (code, _, err) = streamctl(
        &at,
        &["topic", "alter-config", &topic, "--set", "no.such.config=1"],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("INVALID_CONFIG"), "{err}");

    ok(&at, &["topic", "add-partitions", &topic, "--total", "5"]).await;
    let described = json(&ok(&at, &["--output", "json", "topic", "describe", &topic]).await);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 5);
    let table = ok(&at, &["topic", "describe", &topic]).await;
    assert!(
        table.contains("PARTITION  LEADER  EARLIEST  LATEST"),
        "{table}"
    );

    let out = ok(&at, &["--output", "json", "topic", "delete", &topic]).await;
    assert_eq!(json(&out)["deleted"], true);
    let listed = ok(&at, &["topic", "list"]).await;
    assert!(!listed.contains(&topic), "{listed}");
    let (code, _, err) = streamctl(&at, &["topic", "delete", &topic], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");

    // Kafka's internal topic is listed (as kafka-topics --list does), and the
    // agent refuses to delete, recreate or write to it.
    assert!(listed.contains("__consumer_offsets"), "{listed}");
    for (args, error) in [
        (
            &["topic", "delete", "__consumer_offsets"][..],
            "INVALID_REQUEST",
        ),
        (
            &["topic", "create", "__consumer_offsets"][..],
            "INVALID_REQUEST",
        ),
        (
            &["produce", "__consumer_offsets", "0", "--value", "v"][..],
            "INVALID_TOPIC_EXCEPTION",
        ),
    ] {
        let (code, _, err) = streamctl(&at, args, "").await;
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(error), "{args:?}: {err}");
    }
}

async fn records_go_to_each_partitions_leader_on_two_agents(backend: Backend) {
    let a = TestBroker::start_with(backend, |s| s.agent_lease_ms = 1000).await;
    let b = a.another_agent(|s| s.agent_lease_ms = 1000).await;
    let at = a.addr.to_string();
    let topic = unique_topic("ctl-leaders");
    // Partitions are placed by a hash of the topic's random id: with 8, all
    // of them went to one agent once in 128 runs and the wait below could
    // never end; with 32, once in about two billion.
    ok(&at, &["topic", "create", &topic, "--partitions", "32"]).await;
    // Both agents lead some partitions once each sees the other.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let described = json(&ok(&at, &["--output", "json", "topic", "describe", &topic]).await);
        let mut leaders: Vec<i64> = described["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["leader"].as_i64().unwrap())
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        if leaders.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "one leader only: {leaders:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Without a key each line goes to the next partition: 64 lines, 2 each.
    let lines: String = (0..64).map(|i| format!("line-{i}\n")).collect();
    let (code, _, err) = streamctl(&at, &["produce", &topic], &lines).await;
    assert_eq!(code, 0, "{err}");
    let through_b = ok(
        &b.addr.to_string(),
        &["consume", &topic, "--format", "json"],
    )
    .await;
    let mut values: Vec<String> = through_b
        .lines()
        .map(json)
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    values.sort();
    let mut want: Vec<String> = (0..64).map(|i| format!("line-{i}")).collect();
    want.sort();
    assert_eq!(values, want);
}

/// ConsumerProtocolAssignment v0 of `partitions` of `topic`.
fn assignment(topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut bytes = vec![0u8, 0];
    bytes.extend_from_slice(&1i32.to_be_bytes());
    bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    bytes.extend_from_slice(topic.as_bytes());
    bytes.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions {
        bytes.extend_from_slice(&p.to_be_bytes());
    }
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
    bytes
}

async fn group_commands_list_describe_reset_and_delete(backend: Backend) {
    let broker = TestBroker::start(backend).await;
    let at = broker.addr.to_string();
    let topic = unique_topic("ctl-group");
    let group = unique_topic("ctl-group");
    ok(&at, &["topic", "create", &topic, "--partitions", "3"]).await;
    let (code, _, err) = streamctl(&at, &["produce", &topic, "0"], "a\nb\nc\nd\ne\n").await;
    assert_eq!(code, 0, "{err}");

    // An inactive group's offsets are set by reset-offsets.
    let out = ok(
        &at,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to",
            "2",
        ],
    )
    .await;
    assert!(out.starts_with("TOPIC"), "{out}");
    let described = json(&ok(&at, &["--output", "json", "group", "describe", &group]).await);
    let partitions = described["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{described}");
    assert_eq!(
        (
            partitions[0]["committed"].as_i64(),
            partitions[0]["latest"].as_i64(),
            partitions[0]["lag"].as_i64()
        ),
        (Some(2), Some(5), Some(3))
    );
    ok(
        &at,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--partition",
            "0",
            "--to",
            "latest",
        ],
    )
    .await;
    let described = json(&ok(&at, &["--output", "json", "group", "describe", &group]).await);
    assert_eq!(described["partitions"][0]["lag"], 0);
    let (code, _, _) = streamctl(
        &at,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to",
            "x",
        ],
        "",
    )
    .await;
    assert_eq!(code, 2);

    // A member holding partition 0: describe names it; the group cannot be
    // reset or deleted while it is there.
    let mut client = broker.client().await;
    let joined = join_new(&mut client, Join::consumer(&group, "", &[&topic])).await;
    assert_eq!(joined.error_code, 0);
    let member = joined.member_id.to_string();
    let mine = assignment(&topic, &[0]);
    let synced = sync(
        &mut client,
        &group,
        joined.generation_id,
        &member,
        &[(&member, &mine)],
    )
    .await;
    assert_eq!(synced.error_code, 0);
    let described = json(&ok(&at, &["--output", "json", "group", "describe", &group]).await);
    assert_eq!(described["state"], "Stable");
    assert_eq!(described["members"][0]["member_id"], member.as_str());
    assert_eq!(described["partitions"][0]["member"], member.as_str());
    let table = ok(&at, &["group", "describe", &group]).await;
    assert!(table.contains("LAG"), "{table}");
    let listed = json(&ok(&at, &["--output", "json", "group", "list"]).await);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .expect("listed");
    assert_eq!(
        (entry["state"].as_str(), entry["protocol_type"].as_str()),
        (Some("Stable"), Some("consumer"))
    );
    let (code, _, err) = streamctl(
        &at,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to",
            "earliest",
        ],
        "",
    )
    .await;
    assert_eq!(code, 1, "a reset of an active group is refused");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = streamctl(&at, &["group", "delete", &group], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("NON_EMPTY_GROUP"), "{err}");

    assert_eq!(leave(&mut client, &group, &member).await, 0);
    ok(&at, &["group", "delete", &group]).await;
    let (code, _, err) = streamctl(&at, &["group", "describe", &group], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
}

async fn cluster_info_lists_the_agents(backend: Backend) {
    let a = TestBroker::start_with(backend, |s| s.agent_lease_ms = 1000).await;
    let b = a.another_agent(|s| s.agent_lease_ms = 1000).await;
    let at = a.addr.to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let info = loop {
        let info = json(&ok(&at, &["--output", "json", "cluster", "info"]).await);
        if info["agents"].as_array().unwrap().len() == 2 {
            break info;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let addresses: Vec<&str> = info["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert!(addresses.contains(&b.addr.to_string().as_str()), "{info}");
    assert!(!info["cluster_id"].as_str().unwrap().is_empty());
    let table = ok(&at, &["cluster", "info"]).await;
    assert!(table.contains("AGENT  ADDRESS"), "{table}");
}

async fn storage_usage_and_check_find_a_missing_a_truncated_and_a_corrupt_object(backend: Backend) {
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    // No compaction: the objects stay as produced.
    let broker = TestBroker::start_with(backend, |s| s.compaction_target_bytes = Some(0)).await;
    let at = broker.addr.to_string();
    let topic = unique_topic("ctl-storage");
    ok(&at, &["topic", "create", &topic]).await;
    for round in 0..3 {
        let lines: String = (0..20).map(|i| format!("r{round}-{i}\n")).collect();
        let (code, _, err) = streamctl(&at, &["produce", &topic, "0"], &lines).await;
        assert_eq!(code, 0, "{err}");
    }
    let backends = [
        "--catalog",
        &broker.catalog_url,
        "--store",
        &broker.store_url,
    ];
    let storage = |command: &'static str| {
        let mut args = vec!["storage"];
        args.extend(backends);
        args.push(command);
        args
    };
    let usage = json(
        &ok(
            &at,
            &[&["--output", "json"][..], &storage("usage")].concat(),
        )
        .await,
    );
    let ours = usage["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == topic.as_str())
        .expect("the topic's usage");
    assert!(ours["bytes"].as_i64().unwrap() > 0, "{usage}");
    assert_eq!(ours["objects"], 3, "{usage}");
    let checked = ok(&at, &storage("check")).await;
    assert!(checked.trim_end().ends_with(": 0 problems"), "{checked}");

    // Break the three objects: one gone, one cut short, one with a flipped byte.
    let catalog = streamhouse_metadata::open(&broker.catalog_url)
        .await
        .unwrap();
    let store = streamhouse_storage::open_store(&broker.store_url).unwrap();
    let id = catalog.topic_by_name(&topic).await.unwrap().unwrap().id;
    let entries = catalog.index_entries(id, 0, 0, 10).await.unwrap();
    assert_eq!(entries.len(), 3);
    let path = |i: usize| Path::from(entries[i].object_key.as_str());
    store.delete(&path(0)).await.unwrap();
    let whole = store.get(&path(1)).await.unwrap().bytes().await.unwrap();
    store
        .put(&path(1), PutPayload::from(whole.slice(..whole.len() / 2)))
        .await
        .unwrap();
    let mut flipped = store
        .get(&path(2))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let inside = entries[2].position as usize + 70;
    flipped[inside] ^= 0xff;
    store
        .put(&path(2), PutPayload::from(flipped))
        .await
        .unwrap();

    let (code, out, err) = streamctl(&at, &storage("check"), "").await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("storage check found problems"), "{err}");
    assert!(out.contains("the object is missing"), "{out}");
    assert!(out.contains("the object has only"), "{out}");
    assert!(out.contains("is corrupt"), "{out}");
    assert!(out.trim_end().ends_with(": 3 problems"), "{out}");
    let report = json(
        &streamctl(
            &at,
            &[&["--output", "json"][..], &storage("check")].concat(),
            "",
        )
        .await
        .1,
    );
    assert_eq!(report["problems"].as_array().unwrap().len(), 3, "{report}");

    let (code, _, err) = streamctl(
        &at,
        &["storage", "--data-dir", "/nonexistent/streamhouse", "usage"],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("no such file"), "{err}");
}

async fn a_group_of_the_consumer_protocol_is_described_too(backend: Backend) {
    use kafka_protocol::messages::{ApiKey, ConsumerGroupHeartbeatRequest, ResponseKind};
    let broker = TestBroker::start(backend).await;
    let at = broker.addr.to_string();
    let topic = unique_topic("ctl-848");
    let group = unique_topic("ctl-848");
    ok(&at, &["topic", "create", &topic, "--partitions", "2"]).await;
    let mut client = broker.client().await;
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(common::s(&group).into())
        .with_member_id(common::s("member-1"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![common::s(&topic).into()]))
        .with_topic_partitions(Some(vec![]));
    let ResponseKind::ConsumerGroupHeartbeat(joined) = client
        .call(ApiKey::ConsumerGroupHeartbeat, 1, &request)
        .await
    else {
        panic!("not a ConsumerGroupHeartbeat response")
    };
    assert_eq!(joined.error_code, 0);

    let described = json(&ok(&at, &["--output", "json", "group", "describe", &group]).await);
    assert_eq!(described["state"], "Stable", "{described}");
    assert_eq!(described["protocol_type"], "consumer");
    assert_eq!(described["members"][0]["member_id"], "member-1");
    let partitions = described["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{described}");
    assert!(
        partitions.iter().all(|p| p["member"] == "member-1"),
        "{described}"
    );
}
