//! OffsetCommit v10 and OffsetFetch v10 request bodies, which name topics by
//! id instead of by name.
//!
//! The `kafka-protocol` crate's message types carry the topic id and its
//! response codecs write v10, but its request codecs stop at v9 (the schemas
//! it was generated from still marked v10 unstable). Only these two request
//! bodies are read here, into the crate's own types with `name` left empty
//! and `topic_id` set; [`ByTopicId`] writes them, for tests and fuzz seeds.
//! v10 differs from v9 only in the topic entries: a UUID where the name was.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest};
use kafka_protocol::protocol::buf::{ByteBuf, ByteBufMut};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

/// The first OffsetCommit and OffsetFetch version that names topics by id.
pub const FIRST_TOPIC_ID_VERSION: i16 = 10;

/// The v9 layout of the parts v10 leaves unchanged (partition entries).
const UNCHANGED_LAYOUT_VERSION: i16 = 9;

/// Reads an OffsetCommit v10 request body.
pub fn decode_offset_commit<B: ByteBuf>(buf: &mut B) -> Result<OffsetCommitRequest> {
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(string(buf)?);
    request.generation_id_or_member_epoch = buf.try_get_i32()?;
    request.member_id = string(buf)?;
    request.group_instance_id = nullable_string(buf)?;
    let Some(count) = compact_count(buf)? else {
        bail!("null topics array");
    };
    for _ in 0..count {
        let mut topic = OffsetCommitRequestTopic::default();
        topic.topic_id = uuid(buf)?;
        let Some(partition_count) = compact_count(buf)? else {
            bail!("null partitions array");
        };
        for _ in 0..partition_count {
            topic.partitions.push(OffsetCommitRequestPartition::decode(
                buf,
                UNCHANGED_LAYOUT_VERSION,
            )?);
        }
        topic.unknown_tagged_fields = tagged_fields(buf)?;
        request.topics.push(topic);
    }
    request.unknown_tagged_fields = tagged_fields(buf)?;
    Ok(request)
}

/// Reads an OffsetFetch v10 request body (the multi-group form of v8+).
pub fn decode_offset_fetch<B: ByteBuf>(buf: &mut B) -> Result<OffsetFetchRequest> {
    let mut request = OffsetFetchRequest::default();
    let Some(group_count) = compact_count(buf)? else {
        bail!("null groups array");
    };
    for _ in 0..group_count {
        let mut group = OffsetFetchRequestGroup::default();
        group.group_id = GroupId(string(buf)?);
        group.member_id = nullable_string(buf)?;
        group.member_epoch = buf.try_get_i32()?;
        group.topics = match compact_count(buf)? {
            None => None,
            Some(topic_count) => {
                let mut topics = Vec::new();
                for _ in 0..topic_count {
                    let mut topic = OffsetFetchRequestTopics::default();
                    topic.topic_id = uuid(buf)?;
                    let Some(index_count) = compact_count(buf)? else {
                        bail!("null partition indexes array");
                    };
                    for _ in 0..index_count {
                        topic.partition_indexes.push(buf.try_get_i32()?);
                    }
                    topic.unknown_tagged_fields = tagged_fields(buf)?;
                    topics.push(topic);
                }
                Some(topics)
            }
        };
        group.unknown_tagged_fields = tagged_fields(buf)?;
        request.groups.push(group);
    }
    request.require_stable = buf.try_get_u8()? != 0;
    request.unknown_tagged_fields = tagged_fields(buf)?;
    Ok(request)
}

/// An unsigned varint, read a byte at a time (as the counts guard expects).
fn unsigned_varint<B: ByteBuf>(buf: &mut B) -> Result<u32> {
    let mut value = 0u32;
    for group in 0..5 {
        let byte = buf.try_get_u8()?;
        value |= u32::from(byte & 0x7f) << (group * 7);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    bail!("unsigned varint longer than 5 bytes")
}

/// A compact array's element count; None for a null array.
fn compact_count<B: ByteBuf>(buf: &mut B) -> Result<Option<u32>> {
    Ok(unsigned_varint(buf)?.checked_sub(1))
}

fn nullable_string<B: ByteBuf>(buf: &mut B) -> Result<Option<StrBytes>> {
    match unsigned_varint(buf)?.checked_sub(1) {
        None => Ok(None),
        Some(len) => Ok(Some(StrBytes::try_from(buf.try_get_bytes(len as usize)?)?)),
    }
}

fn string<B: ByteBuf>(buf: &mut B) -> Result<StrBytes> {
    match nullable_string(buf)? {
        Some(text) => Ok(text),
        None => bail!("null where a string is required"),
    }
}

fn uuid<B: ByteBuf>(buf: &mut B) -> Result<Uuid> {
    let bytes = buf.try_get_bytes(16)?;
    Ok(Uuid::from_slice(&bytes)?)
}

fn tagged_fields<B: ByteBuf>(buf: &mut B) -> Result<BTreeMap<i32, Bytes>> {
    let count = unsigned_varint(buf)?;
    let mut fields = BTreeMap::new();
    for _ in 0..count {
        let tag = unsigned_varint(buf)?;
        let size = unsigned_varint(buf)?;
        let value = buf.try_get_bytes(size as usize)?;
        let Ok(tag) = i32::try_from(tag) else {
            bail!("tagged field number {tag} out of range");
        };
        fields.insert(tag, value);
    }
    Ok(fields)
}

/// A v10 request body to write: `ByTopicId(&request)` sent as version 10.
/// Only version 10 is written; earlier ones go through the crate's encoder.
pub struct ByTopicId<'a, T>(pub &'a T);

impl Encodable for ByTopicId<'_, OffsetCommitRequest> {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        only_topic_id_version(version)?;
        let request = self.0;
        write_string(buf, Some(&request.group_id.0))?;
        buf.put_i32(request.generation_id_or_member_epoch);
        write_string(buf, Some(&request.member_id))?;
        write_string(buf, request.group_instance_id.as_ref())?;
        write_count(buf, Some(request.topics.len()))?;
        for topic in &request.topics {
            buf.put_slice(topic.topic_id.as_bytes());
            write_count(buf, Some(topic.partitions.len()))?;
            for partition in &topic.partitions {
                partition.encode(buf, UNCHANGED_LAYOUT_VERSION)?;
            }
            write_tagged_fields(buf, &topic.unknown_tagged_fields)?;
        }
        write_tagged_fields(buf, &request.unknown_tagged_fields)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        encoded_size(self, version)
    }
}

impl Encodable for ByTopicId<'_, OffsetFetchRequest> {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        only_topic_id_version(version)?;
        let request = self.0;
        write_count(buf, Some(request.groups.len()))?;
        for group in &request.groups {
            write_string(buf, Some(&group.group_id.0))?;
            write_string(buf, group.member_id.as_ref())?;
            buf.put_i32(group.member_epoch);
            write_count(buf, group.topics.as_ref().map(Vec::len))?;
            for topic in group.topics.iter().flatten() {
                buf.put_slice(topic.topic_id.as_bytes());
                write_count(buf, Some(topic.partition_indexes.len()))?;
                for index in &topic.partition_indexes {
                    buf.put_i32(*index);
                }
                write_tagged_fields(buf, &topic.unknown_tagged_fields)?;
            }
            write_tagged_fields(buf, &group.unknown_tagged_fields)?;
        }
        buf.put_u8(u8::from(request.require_stable));
        write_tagged_fields(buf, &request.unknown_tagged_fields)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        encoded_size(self, version)
    }
}

fn only_topic_id_version(version: i16) -> Result<()> {
    if version != FIRST_TOPIC_ID_VERSION {
        bail!("only version {FIRST_TOPIC_ID_VERSION} is written by topic id, not {version}");
    }
    Ok(())
}

/// The size of a body, by writing it: these bodies are small and only
/// tests and fuzz seeds write them.
fn encoded_size(body: &impl Encodable, version: i16) -> Result<usize> {
    let mut buf = bytes::BytesMut::new();
    body.encode(&mut buf, version)?;
    Ok(buf.len())
}

fn write_count<B: ByteBufMut>(buf: &mut B, count: Option<usize>) -> Result<()> {
    let stored = match count {
        None => 0,
        Some(n) => u32::try_from(n + 1)?,
    };
    write_unsigned_varint(buf, stored);
    Ok(())
}

fn write_unsigned_varint<B: ByteBufMut>(buf: &mut B, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn write_string<B: ByteBufMut>(buf: &mut B, text: Option<&StrBytes>) -> Result<()> {
    write_count(buf, text.map(|t| t.len()))?;
    if let Some(text) = text {
        buf.put_slice(text.as_bytes());
    }
    Ok(())
}

fn write_tagged_fields<B: ByteBufMut>(buf: &mut B, fields: &BTreeMap<i32, Bytes>) -> Result<()> {
    write_unsigned_varint(buf, u32::try_from(fields.len())?);
    for (tag, value) in fields {
        write_unsigned_varint(buf, u32::try_from(*tag)?);
        write_unsigned_varint(buf, u32::try_from(value.len())?);
        buf.put_slice(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> StrBytes {
        StrBytes::from_string(value.to_owned())
    }
    use kafka_protocol::messages::TopicName;

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn commit() -> OffsetCommitRequest {
        let mut topic = OffsetCommitRequestTopic::default();
        topic.topic_id = id(7);
        topic.partitions = vec![OffsetCommitRequestPartition::default()
            .with_partition_index(2)
            .with_committed_offset(41)
            .with_committed_leader_epoch(3)
            .with_committed_metadata(Some(text("meta")))];
        OffsetCommitRequest::default()
            .with_group_id(GroupId(text("billing")))
            .with_generation_id_or_member_epoch(5)
            .with_member_id(text("member-1"))
            .with_group_instance_id(Some(text("instance-1")))
            .with_topics(vec![topic])
    }

    fn written(body: &impl Encodable) -> Bytes {
        let mut buf = bytes::BytesMut::new();
        body.encode(&mut buf, FIRST_TOPIC_ID_VERSION).unwrap();
        assert_eq!(
            buf.len(),
            body.compute_size(FIRST_TOPIC_ID_VERSION).unwrap()
        );
        buf.freeze()
    }

    #[test]
    fn an_offset_commit_reads_back_as_written() {
        let request = commit();
        let mut bytes = written(&ByTopicId(&request));
        let decoded = decode_offset_commit(&mut bytes).unwrap();
        assert_eq!(decoded, request);
        assert!(bytes.is_empty());
        assert_eq!(decoded.topics[0].name, TopicName::default());
    }

    #[test]
    fn an_offset_commit_differs_from_v9_only_by_the_topic_id() {
        // The same request at v9 writes the topic's name (1 + 5 bytes for
        // "topic") where v10 writes its 16-byte id.
        let mut request = commit();
        request.topics[0].name = TopicName(text("topic"));
        let mut v9 = bytes::BytesMut::new();
        request.encode(&mut v9, 9).unwrap();
        let v10 = written(&ByTopicId(&request));
        assert_eq!(v10.len(), v9.len() - 6 + 16);
    }

    #[test]
    fn an_offset_fetch_reads_back_as_written_with_null_and_listed_topics() {
        let mut listed = OffsetFetchRequestTopics::default();
        listed.topic_id = id(9);
        listed.partition_indexes = vec![0, 1, 4];
        let request = OffsetFetchRequest::default()
            .with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(text("a")))
                    .with_member_id(Some(text("m")))
                    .with_member_epoch(12)
                    .with_topics(Some(vec![listed])),
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(text("b")))
                    .with_member_epoch(-1)
                    .with_topics(None),
            ])
            .with_require_stable(true);
        let mut bytes = written(&ByTopicId(&request));
        assert_eq!(decode_offset_fetch(&mut bytes).unwrap(), request);
        assert!(bytes.is_empty());
    }

    #[test]
    fn truncated_bodies_fail_to_decode() {
        let full = written(&ByTopicId(&commit()));
        for cut in 0..full.len() {
            let mut part = full.slice(..cut);
            assert!(decode_offset_commit(&mut part).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn other_versions_are_not_written() {
        let mut buf = bytes::BytesMut::new();
        assert!(ByTopicId(&commit()).encode(&mut buf, 9).is_err());
    }
}
