//! SASL on a SASL_PLAINTEXT listener, over the wire: users from the users
//! file, PLAIN in both framings (SaslAuthenticate and Kafka's original raw
//! tokens), the SCRAM server-first message from the stored credential,
//! Kafka's errors and messages for wrong passwords, unknown users and
//! mechanisms, and the connection closed on any other request before
//! authentication. Full SCRAM exchanges are checked with real clients (the
//! `sasl` compat runner).

mod common;

use bytes::{BufMut, BytesMut};
use common::sasl::{authenticate, handshake, metadata_works};
use common::{on_both_backends, s, Backend, TestBroker, TestClient};
use kafka_protocol::messages::*;

on_both_backends!(users_of_the_file_authenticate_and_others_are_refused);

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A broker with one SASL_PLAINTEXT listener and users alice and bob.
async fn sasl_broker(backend: Backend) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "# test users\nalice:alice-secret\nbob:b:ob\n").unwrap();
    let broker = TestBroker::start_with(backend, |settings| {
        let address = std::mem::replace(&mut settings.listen, "127.0.0.1:9092".into());
        settings.listener = vec![format!("SASL_PLAINTEXT://{address}")];
        settings.sasl_users_file = Some(users);
    })
    .await;
    (broker, dir)
}

async fn users_of_the_file_authenticate_and_others_are_refused(backend: Backend) {
    let (broker, _users) = sasl_broker(backend).await;

    // ApiVersions before authenticating lists the SASL APIs.
    let mut client = broker.client().await;
    let ResponseKind::ApiVersions(versions) = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await
    else {
        panic!()
    };
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16));
    let offered = handshake(&mut client, 1, "PLAIN").await;
    assert_eq!(offered.error_code, 0);
    let mechanisms: Vec<String> = offered.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(mechanisms, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    let accepted = authenticate(&mut client, b"\0alice\0alice-secret").await;
    assert_eq!((accepted.error_code, accepted.session_lifetime_ms), (0, 0));
    assert!(metadata_works(&mut client).await);
    // Past authentication, the SASL APIs are out of place.
    assert_eq!(
        handshake(&mut client, 1, "PLAIN").await.error_code,
        ILLEGAL_SASL_STATE
    );
    assert!(metadata_works(&mut client).await);

    // A password with a colon, from the file as it stands.
    let mut client = broker.client().await;
    handshake(&mut client, 1, "PLAIN").await;
    assert_eq!(
        authenticate(&mut client, b"bob\0bob\0b:ob")
            .await
            .error_code,
        0
    );

    // A wrong password and an unknown user: Kafka's error and message, then
    // the connection closes.
    for token in [&b"\0alice\0wrong"[..], b"\0mallory\0alice-secret"] {
        let mut client = broker.client().await;
        handshake(&mut client, 1, "PLAIN").await;
        let refused = authenticate(&mut client, token).await;
        assert_eq!(refused.error_code, SASL_AUTHENTICATION_FAILED);
        assert_eq!(
            refused.error_message.as_deref(),
            Some("Authentication failed: Invalid username or password")
        );
        assert!(client.is_closed().await);
    }

    // SCRAM: the server's first message carries the stored salt and Kafka's
    // iteration count; an unknown user is refused at once.
    let mut client = broker.client().await;
    handshake(&mut client, 1, "SCRAM-SHA-512").await;
    let first = authenticate(&mut client, b"n,,n=alice,r=abcdef").await;
    assert_eq!(first.error_code, 0);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    assert!(server_first.starts_with("r=abcdef"), "{server_first}");
    assert!(server_first.ends_with(",i=4096"), "{server_first}");
    let mut client = broker.client().await;
    handshake(&mut client, 1, "SCRAM-SHA-256").await;
    let refused = authenticate(&mut client, b"n,,n=mallory,r=abcdef").await;
    assert_eq!(
        (refused.error_code, refused.error_message.as_deref()),
        (
            SASL_AUTHENTICATION_FAILED,
            Some("Authentication failed: Invalid user credentials")
        )
    );

    // An unknown mechanism: the enabled ones listed, then closed.
    let mut client = broker.client().await;
    let refused = handshake(&mut client, 1, "GSSAPI").await;
    assert_eq!(refused.error_code, UNSUPPORTED_SASL_MECHANISM);
    assert_eq!(refused.mechanisms.len(), 3);
    assert!(client.is_closed().await);

    // Any other request before authentication closes the connection
    // unanswered; so does SaslAuthenticate before a handshake (answered).
    let mut client = broker.client().await;
    client
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert!(client.receive_frame().await.is_none());
    let mut client = broker.client().await;
    let out_of_order = authenticate(&mut client, b"\0alice\0alice-secret").await;
    assert_eq!(out_of_order.error_code, ILLEGAL_SASL_STATE);
    assert!(client.is_closed().await);
}

/// A bare token frame, as clients send them after a v0 handshake.
fn raw(token: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_i32(token.len() as i32);
    frame.put_slice(token);
    frame.to_vec()
}

#[tokio::test]
async fn a_v0_handshake_is_followed_by_raw_tokens() {
    let (broker, _users) = sasl_broker(Backend::Embedded).await;
    let mut client = broker.client().await;
    assert_eq!(handshake(&mut client, 0, "PLAIN").await.error_code, 0);
    client.send_raw(&raw(b"\0alice\0alice-secret")).await;
    assert_eq!(client.receive_frame().await.as_deref(), Some(&b""[..]));
    assert!(metadata_works(&mut client).await);

    // A refused raw token has no way to say why: the connection closes.
    let mut client = broker.client().await;
    handshake(&mut client, 0, "PLAIN").await;
    client.send_raw(&raw(b"\0alice\0wrong")).await;
    assert!(client.receive_frame().await.is_none());
}

#[tokio::test]
async fn a_plaintext_listener_answers_sasl_requests_with_illegal_state() {
    let broker = TestBroker::start(Backend::Embedded).await;
    let mut client = broker.client().await;
    assert_eq!(
        handshake(&mut client, 1, "PLAIN").await.error_code,
        ILLEGAL_SASL_STATE
    );
    assert_eq!(
        authenticate(&mut client, b"\0a\0b").await.error_code,
        ILLEGAL_SASL_STATE
    );
    assert!(metadata_works(&mut client).await);
}

/// A connection authenticated as `user` with PLAIN.
async fn signed_in(broker: &TestBroker, user: &str, password: &str) -> TestClient {
    let mut client = broker.client().await;
    handshake(&mut client, 1, "PLAIN").await;
    let token = format!("\0{user}\0{password}");
    assert_eq!(
        authenticate(&mut client, token.as_bytes()).await.error_code,
        0
    );
    client
}

async fn metadata_throttle(client: &mut TestClient) -> i32 {
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    let ResponseKind::Metadata(response) = client.call(ApiKey::Metadata, 12, &request).await else {
        panic!("not a Metadata response")
    };
    response.throttle_time_ms
}

/// Quotas of a user apply to the connections authenticated as that user:
/// a tiny request quota of alice's throttles her, never bob.
#[tokio::test]
async fn a_user_quota_applies_to_the_authenticated_user() {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    let (broker, _users) = sasl_broker(Backend::Embedded).await;
    let mut admin = signed_in(&broker, "bob", "b:ob").await;
    let request = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("user"))
            .with_entity_name(Some(s("alice")))])
        .with_ops(vec![OpData::default()
            .with_key(s("request_percentage"))
            .with_value(0.01)])]);
    let ResponseKind::AlterClientQuotas(altered) =
        admin.call(ApiKey::AlterClientQuotas, 1, &request).await
    else {
        panic!()
    };
    assert_eq!(altered.entries[0].error_code, 0);

    let mut alice = signed_in(&broker, "alice", "alice-secret").await;
    let mut throttled = false;
    for _ in 0..10_000 {
        if metadata_throttle(&mut alice).await > 0 {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "alice was never throttled");
    for _ in 0..200 {
        assert_eq!(metadata_throttle(&mut admin).await, 0, "bob was throttled");
    }
}

/// AlterUserScramCredentials creates, replaces and deletes credentials
/// (the client sends the salted password); DescribeUserScramCredentials
/// lists them; Kafka's refusals and messages for bad changes.
#[tokio::test]
async fn scram_credentials_are_altered_and_described() {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use streamhouse::sasl::scram::client_salted_password;
    use streamhouse_metadata::credentials::ScramMechanism;

    const DUPLICATE_RESOURCE: i16 = 92;
    const RESOURCE_NOT_FOUND: i16 = 91;
    const UNACCEPTABLE_CREDENTIAL: i16 = 93;

    let (broker, _users) = sasl_broker(Backend::Embedded).await;
    let mut admin = signed_in(&broker, "bob", "b:ob").await;
    let upsert = |user: &str, mechanism: i8, iterations: i32, password: &str| {
        let salt = vec![5u8; 24];
        let salted = ScramMechanism::from_type_id(mechanism)
            .map(|m| client_salted_password(m, password, &salt, iterations.clamp(1, 16384)))
            .unwrap_or_default();
        ScramCredentialUpsertion::default()
            .with_name(s(user))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(salt.into())
            .with_salted_password(salted.into())
    };
    let delete = |user: &str, mechanism: i8| {
        ScramCredentialDeletion::default()
            .with_name(s(user))
            .with_mechanism(mechanism)
    };
    async fn alter(
        client: &mut TestClient,
        request: AlterUserScramCredentialsRequest,
    ) -> Vec<(String, i16, Option<String>)> {
        let ResponseKind::AlterUserScramCredentials(response) = client
            .call(ApiKey::AlterUserScramCredentials, 0, &request)
            .await
        else {
            panic!()
        };
        response
            .results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                )
            })
            .collect()
    }
    async fn describe(client: &mut TestClient, users: Option<&[&str]>) -> Vec<String> {
        let request =
            DescribeUserScramCredentialsRequest::default().with_users(users.map(|users| {
                users
                    .iter()
                    .map(|u| UserName::default().with_name(s(u)))
                    .collect()
            }));
        let ResponseKind::DescribeUserScramCredentials(response) = client
            .call(ApiKey::DescribeUserScramCredentials, 0, &request)
            .await
        else {
            panic!()
        };
        assert_eq!(response.error_code, 0);
        response
            .results
            .iter()
            .map(|r| {
                let infos: Vec<String> = r
                    .credential_infos
                    .iter()
                    .map(|c| format!("{}:{}", c.mechanism, c.iterations))
                    .collect();
                format!(
                    "{} {} {} {}",
                    r.user,
                    r.error_code,
                    infos.join(","),
                    r.error_message.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    // carol is created with SCRAM-SHA-512 at 8,192 iterations, and signs in
    // (PLAIN checks against that credential).
    let created = alter(
        &mut admin,
        AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsert("carol", 2, 8192, "carol-pw")]),
    )
    .await;
    assert_eq!(created, vec![("carol".to_owned(), 0, None)]);
    signed_in(&broker, "carol", "carol-pw").await;
    assert_eq!(
        describe(&mut admin, Some(&["carol", "nobody", "alice"])).await,
        vec![
            "carol 0 2:8192 ".to_owned(),
            format!("nobody {RESOURCE_NOT_FOUND}  Attempt to describe a user credential that does not exist: nobody"),
            "alice 0 1:4096,2:4096 ".to_owned(),
        ]
    );
    assert_eq!(
        describe(&mut admin, Some(&["carol", "carol"])).await,
        vec![format!("carol {DUPLICATE_RESOURCE}  Cannot describe SCRAM credentials for the same user twice in a single request: carol")]
    );
    assert_eq!(
        describe(&mut admin, None).await,
        vec![
            "alice 0 1:4096,2:4096 ",
            "bob 0 1:4096,2:4096 ",
            "carol 0 2:8192 "
        ]
    );

    // Refusals, each for its own user; the refused user's other changes are
    // not made either.
    let refused = alter(
        &mut admin,
        AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![delete("dave", 1), delete("carol", 1), delete("", 2)])
            .with_upsertions(vec![
                upsert("erin", 1, 100, "pw"),
                upsert("frank", 1, 20_000, "pw"),
                upsert("gina", 9, 4096, "pw"),
                upsert("carol", 2, 4096, "new-pw"),
                upsert("hal", 1, 4096, "pw"),
                upsert("hal", 1, 4096, "pw2"),
            ]),
    )
    .await;
    let message = |m: &str| Some(m.to_owned());
    assert_eq!(
        refused,
        vec![
            (
                "dave".to_owned(),
                RESOURCE_NOT_FOUND,
                message("Attempt to delete a user credential that does not exist")
            ),
            (
                "carol".to_owned(),
                RESOURCE_NOT_FOUND,
                message("Attempt to delete a user credential that does not exist")
            ),
            (
                String::new(),
                UNACCEPTABLE_CREDENTIAL,
                message("Username must not be empty")
            ),
            (
                "erin".to_owned(),
                UNACCEPTABLE_CREDENTIAL,
                message("Too few iterations")
            ),
            (
                "frank".to_owned(),
                UNACCEPTABLE_CREDENTIAL,
                message("Too many iterations")
            ),
            (
                "gina".to_owned(),
                UNSUPPORTED_SASL_MECHANISM,
                message("Unknown SCRAM mechanism")
            ),
            (
                "hal".to_owned(),
                DUPLICATE_RESOURCE,
                message("A user credential cannot be altered twice in the same request")
            ),
        ]
    );
    // carol's password did not change (her deletion was refused).
    signed_in(&broker, "carol", "carol-pw").await;

    // A deletion removes the credential: carol can no longer sign in.
    let deleted = alter(
        &mut admin,
        AlterUserScramCredentialsRequest::default().with_deletions(vec![delete("carol", 2)]),
    )
    .await;
    assert_eq!(deleted, vec![("carol".to_owned(), 0, None)]);
    let mut client = broker.client().await;
    handshake(&mut client, 1, "PLAIN").await;
    assert_eq!(
        authenticate(&mut client, b"\0carol\0carol-pw")
            .await
            .error_code,
        SASL_AUTHENTICATION_FAILED
    );
}

/// Before authentication a frame is at most Kafka's
/// `sasl.server.max.receive.size` (512 KiB): a larger one closes the
/// connection before its bytes are buffered.
#[tokio::test]
async fn an_oversized_frame_before_authentication_closes_the_connection() {
    let (broker, _users) = sasl_broker(Backend::Embedded).await;
    let mut client = broker.client().await;
    let mut frame = BytesMut::new();
    frame.put_i32(524_289);
    frame.put_slice(&[0; 64]);
    client.send_raw(&frame).await;
    assert!(client.receive_frame().await.is_none());
    // Others are still served.
    let mut client = signed_in(&broker, "alice", "alice-secret").await;
    assert!(metadata_works(&mut client).await);
}

/// A SASL_PLAINTEXT broker whose sessions last `reauth_ms`.
async fn reauth_broker(reauth_ms: u64) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "alice:alice-secret\nbob:bob-secret\n").unwrap();
    let broker = TestBroker::start_with(Backend::Embedded, |settings| {
        let address = std::mem::replace(&mut settings.listen, "127.0.0.1:9092".into());
        settings.listener = vec![format!("SASL_PLAINTEXT://{address}")];
        settings.sasl_users_file = Some(users);
        settings.connections_max_reauth_ms = reauth_ms;
    })
    .await;
    (broker, dir)
}

#[tokio::test]
async fn clients_re_authenticate_within_their_session_lifetime() {
    let (broker, _users) = reauth_broker(1500).await;
    let mut client = broker.client().await;
    handshake(&mut client, 1, "PLAIN").await;
    let accepted = authenticate(&mut client, b"\0alice\0alice-secret").await;
    assert_eq!(
        (accepted.error_code, accepted.session_lifetime_ms),
        (0, 1500)
    );
    assert!(metadata_works(&mut client).await);
    // Again on the same connection, between other requests: renewed.
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        assert_eq!(handshake(&mut client, 1, "PLAIN").await.error_code, 0);
        let renewed = authenticate(&mut client, b"\0alice\0alice-secret").await;
        assert_eq!((renewed.error_code, renewed.session_lifetime_ms), (0, 1500));
        assert!(metadata_works(&mut client).await);
    }
    // The mechanism stays the session's.
    assert_eq!(
        handshake(&mut client, 1, "SCRAM-SHA-256").await.error_code,
        UNSUPPORTED_SASL_MECHANISM
    );
}

#[tokio::test]
async fn a_session_past_its_lifetime_or_re_authenticated_as_another_user_closes() {
    let (broker, _users) = reauth_broker(1000).await;
    // Not re-authenticated in time: the next request closes the connection.
    let mut client = broker.client().await;
    handshake(&mut client, 1, "PLAIN").await;
    authenticate(&mut client, b"\0alice\0alice-secret").await;
    assert!(metadata_works(&mut client).await);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    client
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert!(client.is_closed().await);

    // Another principal: Kafka's message, and the session is over.
    let mut client = broker.client().await;
    handshake(&mut client, 1, "PLAIN").await;
    authenticate(&mut client, b"\0alice\0alice-secret").await;
    handshake(&mut client, 1, "PLAIN").await;
    let refused = authenticate(&mut client, b"\0bob\0bob-secret").await;
    assert_eq!(refused.error_code, SASL_AUTHENTICATION_FAILED);
    assert_eq!(
        refused.error_message.as_deref(),
        Some("Cannot change principals during re-authentication from User:alice: User:bob")
    );
    client
        .send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert!(client.is_closed().await);

    // SaslAuthenticate v0 carries no lifetime: that client is never asked
    // to re-authenticate, and its session does not expire.
    let mut client = broker.client().await;
    handshake(&mut client, 1, "PLAIN").await;
    let request = SaslAuthenticateRequest::default()
        .with_auth_bytes(bytes::Bytes::from_static(b"\0alice\0alice-secret"));
    let ResponseKind::SaslAuthenticate(accepted) =
        client.call(ApiKey::SaslAuthenticate, 0, &request).await
    else {
        panic!()
    };
    assert_eq!(accepted.error_code, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(metadata_works(&mut client).await);
}

/// franz-go opens with an ApiVersions newer than ours; on a SASL listener
/// too it gets UNSUPPORTED_VERSION with our list, asks again and signs in.
#[tokio::test]
async fn a_newer_api_versions_before_authentication_gets_our_versions() {
    let (broker, _users) = sasl_broker(Backend::Embedded).await;
    let mut client = broker.client().await;
    let mut request = BytesMut::new();
    request.put_i16(ApiKey::ApiVersions as i16);
    request.put_i16(99);
    request.put_i32(77);
    request.put_i16(-1); // no client id
    request.put_u8(0); // no tagged fields
    let mut frame = BytesMut::new();
    frame.put_i32(request.len() as i32);
    frame.extend_from_slice(&request);
    client.send_raw(&frame).await;
    let mut answer = client.receive_frame().await.expect("an answer");
    use bytes::Buf;
    assert_eq!(answer.get_i32(), 77, "correlation id");
    assert_eq!(answer.get_i16(), 35, "UNSUPPORTED_VERSION");
    assert_eq!(handshake(&mut client, 1, "PLAIN").await.error_code, 0);
    let accepted = authenticate(&mut client, b"\0alice\0alice-secret").await;
    assert_eq!(accepted.error_code, 0);
    assert!(metadata_works(&mut client).await);
}
