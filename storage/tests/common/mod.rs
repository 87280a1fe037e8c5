//! What the write-path tests share: appends built by hand, since the write
//! path reads only a batch's header.

use bytes::{BufMut, BytesMut};
use streamhouse_metadata::TopicId;
use streamhouse_storage::{Append, ProducerAppend};

/// One batch of `records` offsets; the write path reads only its header.
pub fn append(topic: TopicId, records: i32, producer: Option<ProducerAppend>) -> Append {
    let body = 16;
    let (producer_id, epoch, sequence) =
        producer.map_or((-1, -1, -1), |p| (p.producer_id, p.epoch, p.first_sequence));
    let mut b = BytesMut::new();
    b.put_i64(0); // baseOffset
    b.put_i32(61 - 12 + body); // batchLength
    b.put_i32(0); // partitionLeaderEpoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc
    b.put_i16(0); // attributes
    b.put_i32(records - 1); // lastOffsetDelta
    b.put_i64(1_000); // baseTimestamp
    b.put_i64(1_000); // maxTimestamp
    b.put_i64(producer_id);
    b.put_i16(epoch);
    b.put_i32(sequence);
    b.put_i32(records); // recordsCount
    b.put_bytes(7, body as usize);
    Append {
        topic,
        partition: 0,
        batches: b.freeze(),
        batch_count: 1,
        offset_count: i64::from(records),
        min_timestamp: 1_000,
        max_timestamp: 1_000,
        append_time_ms: -1,
        producer,
        txn: None,
    }
}
