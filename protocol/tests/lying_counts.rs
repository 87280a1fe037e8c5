//! Requests whose counts claim far more elements than they carry are refused
//! without asking the allocator for memory sized by the count.
//!
//! The test process runs under an address-space limit of 16 GiB, as a host
//! with a limit (or strict overcommit) would: an allocation sized by a lying
//! count (tens to hundreds of GiB) then fails and aborts the process, which
//! it did before counts were checked against the bytes left.
#![cfg(unix)]

use std::sync::Once;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::Encodable;
use nix::sys::resource::{setrlimit, Resource};
use streamhouse_protocol::request::{decode, RequestError};

const ADDRESS_SPACE_LIMIT: u64 = 16 << 30;

fn limit_address_space() {
    static LIMIT: Once = Once::new();
    LIMIT.call_once(|| {
        setrlimit(
            Resource::RLIMIT_AS,
            ADDRESS_SPACE_LIMIT,
            ADDRESS_SPACE_LIMIT,
        )
        .expect("set the address-space limit");
    });
}

fn frame(api_key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some("liar".into()))
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    buf.put_slice(body);
    buf.freeze()
}

fn assert_malformed(api_key: ApiKey, version: i16, body: &[u8]) {
    limit_address_space();
    match decode(frame(api_key, version, body)) {
        Err(RequestError::Malformed { .. }) => {}
        other => panic!("{api_key:?} v{version}: {other:?}"),
    }
}

const MAX_I32: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
const MAX_VARINT: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

#[test]
fn metadata_claiming_billions_of_topics() {
    assert_malformed(ApiKey::Metadata, 4, &[&MAX_I32[..], &[0]].concat());
    assert_malformed(ApiKey::Metadata, 12, &[&MAX_VARINT[..], &[0, 0]].concat());
}

/// An honest, empty Produce body whose topic count (its last `count_bytes`
/// before `trailing` bytes) is replaced by `count`.
fn produce_with_topic_count(version: i16, count: &[u8], trailing: usize) -> Vec<u8> {
    let mut body = BytesMut::new();
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .encode(&mut body, version)
        .unwrap();
    let mut body = body.to_vec();
    let cut = body.len() - trailing - if version >= 9 { 1 } else { 4 };
    let rest = body.split_off(cut);
    body.extend_from_slice(count);
    body.extend_from_slice(&rest[rest.len() - trailing..]);
    body
}

#[test]
fn produce_claiming_billions_of_topics() {
    assert_malformed(
        ApiKey::Produce,
        7,
        &produce_with_topic_count(7, &MAX_I32, 0),
    );
    assert_malformed(
        ApiKey::Produce,
        9,
        &produce_with_topic_count(9, &MAX_VARINT, 1),
    );
}

#[test]
fn a_lying_count_nested_inside_an_honest_array() {
    // OffsetFetch v6 (flexible): group "g", one topic "t" claiming 2^32 - 2
    // partitions.
    let body = [&[2, b'g', 2, 2, b't'][..], &MAX_VARINT, &[0, 0, 0, 0]].concat();
    assert_malformed(ApiKey::OffsetFetch, 6, &body);
}

#[test]
fn tagged_fields_claiming_more_than_they_carry() {
    // Metadata v12 with a null topic array, then tagged fields: a count of
    // 2^32 - 1 fields.
    assert_malformed(
        ApiKey::Metadata,
        12,
        &[&[0][..], &[1, 0], &MAX_VARINT].concat(),
    );
}
