//! SSL and SASL_SSL listeners over the wire, with a tokio-rustls client and
//! certificates openssl makes for each test: produce, fetch and metadata over
//! TLS; a plain-text client on the TLS port closed while TLS clients go on
//! being served; mTLS refusing a client without a certificate or with one
//! from another CA, and naming the one it accepts by its subject (a user
//! quota of that name throttles it); SASL_SSL with PLAIN and a whole
//! SCRAM-SHA-512 exchange.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::certs::Certs;
use common::sasl::{authenticate, handshake, metadata_works};
use common::{
    create_topic, fetch, fetch_request, on_both_backends, produce, record_batch, s, unique_topic,
    Backend, TestBroker, TestClient,
};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use streamhouse::sasl::scram;
use streamhouse_metadata::credentials::ScramMechanism;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

on_both_backends!(
    an_ssl_listener_serves_tls_clients_and_closes_plain_text_ones,
    mutual_tls_admits_only_certificates_of_its_ca_and_names_their_subject,
    sasl_ssl_authenticates_with_plain_and_scram,
);

const SASL_AUTHENTICATION_FAILED: i16 = 58;

type TlsClient = TestClient<TlsStream<TcpStream>>;

/// A broker with one `protocol` listener (SSL or SASL_SSL), requiring client
/// certificates when `mtls`, and SASL users alice and bob.
async fn tls_broker(
    backend: Backend,
    protocol: &str,
    mtls: bool,
) -> (TestBroker, Certs, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    let users = dir.path().join("users");
    std::fs::write(&users, "alice:alice-secret\nbob:bob-secret\n").unwrap();
    let sasl = protocol == "SASL_SSL";
    let broker = TestBroker::start_with(backend, |settings| {
        let address = std::mem::replace(&mut settings.listen, "127.0.0.1:9092".into());
        settings.listener = vec![format!("{protocol}://{address}")];
        settings.tls_cert = Some(certs.path("server.pem"));
        settings.tls_key = Some(certs.path("server.key"));
        settings.tls_client_ca = mtls.then(|| certs.path("ca.pem"));
        settings.sasl_users_file = sasl.then_some(users);
    })
    .await;
    (broker, certs, dir)
}

/// A TLS connection that trusts the test CA, presenting the certificate
/// `identity`.pem when given.
async fn connect(
    broker: &TestBroker,
    certs: &Certs,
    identity: Option<&str>,
) -> std::io::Result<TlsClient> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs.path("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(certs.path(&format!("{name}.pem"))).unwrap()],
                PrivateKeyDer::from_pem_file(certs.path(&format!("{name}.key"))).unwrap(),
            )
            .unwrap(),
    };
    let tcp = TcpStream::connect(broker.addr).await?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    Ok(TestClient::over(stream))
}

/// Whether the broker refused the connection: at the handshake, or (TLS
/// 1.3, where the client finishes first) by closing it right after.
async fn refused(connected: std::io::Result<TlsClient>) -> bool {
    match connected {
        Err(_) => true,
        Ok(mut client) => client.is_closed().await,
    }
}

async fn an_ssl_listener_serves_tls_clients_and_closes_plain_text_ones(backend: Backend) {
    let (broker, certs, _dir) = tls_broker(backend, "SSL", false).await;
    let mut client = connect(&broker, &certs, None).await.unwrap();

    // Metadata advertises the listener's address, as on any listener.
    let ResponseKind::Metadata(metadata) = client
        .call(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await
    else {
        panic!("not a Metadata response")
    };
    assert_eq!(
        (metadata.brokers[0].host.as_str(), metadata.brokers[0].port),
        ("127.0.0.1", i32::from(broker.addr.port()))
    );

    let topic = unique_topic("tls");
    create_topic(&mut client, &topic, 1).await;
    for first in [0, 100] {
        let batch = record_batch(100, first, 1_700_000_000_000, Compression::None);
        assert_eq!(
            produce(&mut client, &topic, 0, batch).await,
            (0, first as i64)
        );
    }
    // Fetch responses larger than one TLS record arrive whole.
    let fetched = fetch(&mut client, &fetch_request(&topic, 0, 0, 0)).await;
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.high_watermark, 200);
    let records = common::decode_records(fetched.records.unwrap());
    assert_eq!(records.len(), 200);

    // A plain-text client gets at most a TLS alert, and the connection closes.
    let mut plain = TestClient::connect(broker.addr).await;
    plain
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(15),
        plain.stream.read_to_end(&mut answer),
    )
    .await
    .expect("a plain-text client is closed");
    assert!(
        read.is_err() || answer.len() <= 7,
        "{} bytes answered",
        answer.len()
    );

    // Others are served meanwhile and after.
    assert!(metadata_works(&mut client).await);
    let mut another = connect(&broker, &certs, None).await.unwrap();
    assert!(metadata_works(&mut another).await);
}

/// Throttle time of producing `count` records with acks=all.
async fn produce_throttle(client: &mut TlsClient, topic: &str, count: usize) -> i32 {
    let batch = record_batch(count, 0, 0, Compression::None);
    common::produce_throttle(client, topic, batch).await
}

async fn mutual_tls_admits_only_certificates_of_its_ca_and_names_their_subject(backend: Backend) {
    let (broker, certs, _dir) = tls_broker(backend, "SSL", true).await;
    assert!(refused(connect(&broker, &certs, None).await).await);
    // Same subject, another CA.
    assert!(refused(connect(&broker, &certs, Some("stranger")).await).await);
    let mut alice = connect(&broker, &certs, Some("client")).await.unwrap();
    assert!(metadata_works(&mut alice).await);

    // Kafka's principal of an SSL client is its certificate's subject: a
    // user quota of that name applies to it.
    let quota = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("user"))
            .with_entity_name(Some(s("CN=alice,OU=eng,O=acme")))])
        .with_ops(vec![OpData::default()
            .with_key(s("producer_byte_rate"))
            .with_value(2000.0)])]);
    let ResponseKind::AlterClientQuotas(altered) =
        alice.call(ApiKey::AlterClientQuotas, 1, &quota).await
    else {
        panic!("not an AlterClientQuotas response")
    };
    assert_eq!(altered.entries[0].error_code, 0);
    let topic = unique_topic("mtls");
    create_topic(&mut alice, &topic, 1).await;
    // Some 14 KB each: the second goes over 2,000 bytes a second.
    let first = produce_throttle(&mut alice, &topic, 500).await;
    let second = produce_throttle(&mut alice, &topic, 500).await;
    assert!(
        first == 0 && second > 500,
        "throttles {first} then {second}"
    );
}

async fn sasl_handshake(client: &mut TlsClient, mechanism: &str) {
    assert_eq!(handshake(client, 1, mechanism).await.error_code, 0);
}

/// A whole SCRAM-SHA-512 exchange as `user` with `password`: the final
/// SaslAuthenticate response.
async fn scram_sha_512(
    client: &mut TlsClient,
    user: &str,
    password: &str,
) -> SaslAuthenticateResponse {
    sasl_handshake(client, "SCRAM-SHA-512").await;
    let client_first_bare = format!("n={user},r=tlsclientnonce");
    let first = authenticate(client, format!("n,,{client_first_bare}").as_bytes()).await;
    assert_eq!(first.error_code, 0);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let field = |name: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    let (nonce, salt, iterations) = (field("r="), field("s="), field("i="));
    let base64 = base64::engine::general_purpose::STANDARD;
    let salted = scram::client_salted_password(
        ScramMechanism::Sha512,
        password,
        &base64.decode(salt).unwrap(),
        iterations.parse().unwrap(),
    );
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let proof = scram::client_proof(ScramMechanism::Sha512, &salted, auth_message.as_bytes());
    let client_final = format!("{without_proof},p={}", base64.encode(proof));
    authenticate(client, client_final.as_bytes()).await
}

async fn sasl_ssl_authenticates_with_plain_and_scram(backend: Backend) {
    let (broker, certs, _dir) = tls_broker(backend, "SASL_SSL", false).await;

    let mut client = connect(&broker, &certs, None).await.unwrap();
    sasl_handshake(&mut client, "PLAIN").await;
    let accepted = authenticate(&mut client, b"\0alice\0alice-secret").await;
    assert_eq!(accepted.error_code, 0);
    assert!(metadata_works(&mut client).await);

    let mut client = connect(&broker, &certs, None).await.unwrap();
    let last = scram_sha_512(&mut client, "bob", "bob-secret").await;
    assert_eq!(last.error_code, 0, "{:?}", last.error_message);
    assert!(String::from_utf8_lossy(&last.auth_bytes).starts_with("v="));
    assert!(metadata_works(&mut client).await);

    let mut client = connect(&broker, &certs, None).await.unwrap();
    let refused = scram_sha_512(&mut client, "bob", "wrong").await;
    assert_eq!(refused.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(client.is_closed().await);

    // TLS alone is not enough: a request before SASL closes the connection.
    let mut client = connect(&broker, &certs, None).await.unwrap();
    client
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert!(client.is_closed().await);
}
