//! The integration-test harness: a broker started in-process on a free port,
//! and a minimal client that speaks the wire protocol with the kafka-protocol
//! crate's message types.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use streamhouse::{Broker, Config, Server, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which catalog and store a test broker uses.
#[derive(Clone, Debug)]
pub enum Backend {
    /// SQLite in the temp dir, objects in a folder of it.
    Embedded,
    /// PostgreSQL and S3 from the environment the README's test command sets up.
    PostgresS3,
}

pub struct TestBroker {
    pub addr: std::net::SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
    pub catalog_url: String,
    pub store_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with ./scripts/test.sh, which starts PostgreSQL and an S3 server and sets it")
    })
}

/// A fresh PostgreSQL database for one test.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url = required_env("STREAMHOUSE_TEST_POSTGRES_URL");
    let name = format!("sh_it_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    format!("{base}/{name}")
}

impl TestBroker {
    pub async fn start(backend: Backend) -> TestBroker {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestBroker {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let (catalog_url, store_url) = match backend {
            Backend::Embedded => (
                format!("sqlite://{}", dir.path().join("catalog.db").display()),
                format!("file://{}", dir.path().join("objects").display()),
            ),
            Backend::PostgresS3 => {
                let s3 = required_env("STREAMHOUSE_TEST_S3_URL");
                let sep = if s3.contains('?') { '&' } else { '?' };
                let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
                (
                    fresh_postgres_database().await,
                    format!("{s3}{sep}prefix={prefix}"),
                )
            }
        };
        Self::start_on(dir, catalog_url, store_url, None, tweak).await
    }

    /// Starts a broker on the same catalog and store as `self` (which must be
    /// stopped), on the same port.
    pub async fn restart(mut self) -> TestBroker {
        self.stop().await;
        let dir = Arc::clone(&self.dir);
        Self::start_on(
            dir,
            self.catalog_url.clone(),
            self.store_url.clone(),
            Some(self.addr.port()),
            |_| {},
        )
        .await
    }

    async fn start_on(
        dir: Arc<tempfile::TempDir>,
        catalog_url: String,
        store_url: String,
        port: Option<u16>,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestBroker {
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .expect("bind test port");
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings {
            listen: addr.to_string(),
            data_dir: PathBuf::from(dir.path()),
            catalog: Some(catalog_url.clone()),
            store: Some(store_url.clone()),
            flush_interval_ms: Some(5),
            ..Settings::default()
        };
        tweak(&mut settings);
        let config = Config::resolve(settings).expect("valid test config");
        let broker = Broker::open(config).await.expect("open broker");
        let server = Server::with_listener(broker, listener);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestBroker {
            addr,
            dir,
            catalog_url,
            store_url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> TestClient {
        TestClient::connect(self.addr).await
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

pub struct TestClient {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl TestClient {
    pub async fn connect(addr: std::net::SocketAddr) -> TestClient {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to test broker");
        TestClient {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends one request and returns the decoded response.
    pub async fn call(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &impl Encodable,
    ) -> ResponseKind {
        self.send(api_key, version, body).await;
        self.receive(api_key, version).await
    }

    pub async fn send(&mut self, api_key: ApiKey, version: i16, body: &impl Encodable) {
        self.correlation_id += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("streamhouse-test")))
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let length = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&length.to_be_bytes());
        self.send_raw(&buf).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write request");
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub async fn receive_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let length = self.stream.read_i32().await.ok()?;
            let mut body = vec![0u8; usize::try_from(length).ok()?];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("broker answered within 30 s")
    }

    pub async fn receive(&mut self, api_key: ApiKey, version: i16) -> ResponseKind {
        let mut frame = self.receive_frame().await.expect("a response frame");
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, self.correlation_id, "correlation id");
        let response = ResponseKind::decode(api_key, &mut frame, version).expect("response body");
        assert_eq!(frame.remaining(), 0, "response has trailing bytes");
        response
    }

    /// Whether the broker closed the connection (reads EOF within 5 s).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// A record batch of `count` keyed records with one header each.
pub fn record_batch(count: usize, first: usize, timestamp: i64, compression: Compression) -> Bytes {
    producer_batch(count, first, timestamp, compression, -1, -1, -1)
}

/// A batch from an idempotent producer (`producer_id` >= 0) whose first record
/// has sequence `base_sequence`.
pub fn producer_batch(
    count: usize,
    first: usize,
    timestamp: i64,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let records: Vec<Record> = (first..first + count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: (i - first) as i64,
            // The encoder groups records whose offset - sequence is constant
            // into one batch; its base sequence is the first record's.
            sequence: base_sequence + (i - first) as i32,
            timestamp,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Decodes fetched records into (offset, key, value).
pub fn decode_records(mut records: Bytes) -> Vec<(i64, String, String)> {
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
    sets.into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

/// (error code, base offset) of producing `batch` with acks=all to one
/// partition, over Produce v9.
pub async fn produce(
    client: &mut TestClient,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> (i16, i64) {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let ResponseKind::Produce(response) = client.call(ApiKey::Produce, 9, &request).await else {
        panic!("not a Produce response")
    };
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn unique_topic(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
