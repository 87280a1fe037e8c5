//! Counts and lengths read from a request checked against the bytes left,
//! before the `kafka-protocol` decoder sizes anything by them.
//!
//! That decoder reads an array's count and calls `Vec::with_capacity(count)`
//! before it reads a single element, so a 20-byte Metadata request claiming
//! 2^32 topics asks the allocator for hundreds of GiB: harmless only while the
//! allocator maps memory lazily, fatal (the process aborts) under an
//! address-space limit or strict overcommit. Kafka's generated readers refuse
//! an array count larger than the bytes remaining; we cannot change the
//! decoder, but every count and length it reads passes through one of two
//! `Buf` methods:
//!
//! - `try_get_i32`: array counts and byte-string lengths of the classic
//!   (non-flexible) versions;
//! - `try_get_u8`: unsigned varints (compact array counts, compact string and
//!   bytes lengths, tagged-field counts and sizes of the flexible versions),
//!   read a byte at a time, and booleans.
//!
//! [`GuardedBuf`] wraps a frame and lowers any such value larger than the
//! bytes left after it to just past them (`left + 1`; `left + 2` for a varint,
//! since compact counts are stored plus one). An honest count or length is
//! never lowered: each element, string byte or tagged field takes at least
//! one byte. A lowered count still cannot be satisfied, so the decode fails,
//! having asked for at most one element per byte left. Values only change,
//! never positions (a lowered varint is re-encoded in as many bytes), so a
//! plain integer that happens to exceed the bytes left (a 30 s timeout in a
//! 40-byte request) decodes at the same place with a smaller value; the
//! caller decodes such a request a second time, unguarded, once the guarded
//! pass has shown that every count fits.
//!
//! A boolean byte of 0x80 or more would be taken for the start of a varint;
//! clients write booleans as 0 or 1.

use std::ops::Range;

use bytes::{Buf, Bytes};
use kafka_protocol::protocol::buf::{ByteBuf, NotEnoughBytesError};

/// The longest unsigned varint the decoder reads (a u32 in 7-bit groups).
const MAX_VARINT_BYTES: usize = 5;

/// The first value the guard lowered: what was read and how many bytes were
/// left after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lowered {
    pub value: u64,
    pub bytes_left: usize,
}

/// A frame whose counts and lengths are kept within the bytes left (see the
/// module docs).
pub struct GuardedBuf {
    inner: Bytes,
    /// The rest of a lowered varint, served by the decoder's next byte reads.
    varint_rest: [u8; MAX_VARINT_BYTES],
    varint_rest_len: usize,
    varint_rest_pos: usize,
    lowered: Option<Lowered>,
}

impl GuardedBuf {
    pub fn new(inner: Bytes) -> Self {
        Self {
            inner,
            varint_rest: [0; MAX_VARINT_BYTES],
            varint_rest_len: 0,
            varint_rest_pos: 0,
            lowered: None,
        }
    }

    /// The first value lowered, if any: when there was one, what was decoded
    /// may hold lowered plain integers and must not be used.
    pub fn lowered(&self) -> Option<Lowered> {
        self.lowered
    }

    fn note_lowered(&mut self, value: u64, bytes_left: usize) {
        self.lowered.get_or_insert(Lowered { value, bytes_left });
    }

    /// Any access other than the decoder's byte-by-byte varint read ends a
    /// lowered varint being served (the decoder never does that mid-varint).
    fn drop_varint_rest(&mut self) {
        self.varint_rest_len = 0;
        self.varint_rest_pos = 0;
    }

    /// Reads the first byte of what may be a varint; if it is one whose value
    /// exceeds the bytes left after it, returns the first byte of a lowered
    /// encoding of the same length and keeps the rest for the next reads.
    fn first_varint_byte(&mut self) -> u8 {
        let chunk = self.inner.chunk();
        let first = chunk[0];
        if first < 0x80 {
            self.inner.advance(1);
            return first;
        }
        // Decode as the kafka-protocol decoder does: at most five 7-bit groups,
        // stopping at the first byte without the continuation bit, bits past
        // 32 dropped.
        let mut value: u32 = 0;
        let mut len = 0;
        for (i, &b) in chunk.iter().take(MAX_VARINT_BYTES).enumerate() {
            value |= u32::from(b & 0x7f).wrapping_shl(7 * i as u32);
            len = i + 1;
            if b < 0x80 {
                break;
            }
        }
        // A varint cut short by the end of the frame keeps its bytes: the
        // decoder fails on it anyway.
        let cut_short = len < MAX_VARINT_BYTES && chunk[len - 1] >= 0x80;
        let bytes_left = chunk.len() - len;
        // Compact lengths are stored plus one, so `left + 1` still fits one;
        // `left + 2` is the smallest value that fits nothing.
        let limit = bytes_left as u64 + 1;
        let mut encoded = [0u8; MAX_VARINT_BYTES];
        if cut_short || u64::from(value) <= limit {
            // The rest of this varint is served as it is: read afresh, a
            // continuation byte would pass for the start of another varint,
            // and lowering that one would rewrite this one's higher groups
            // (a count of 0 became 58,720,256).
            encoded[..len].copy_from_slice(&chunk[..len]);
        } else {
            self.note_lowered(u64::from(value), bytes_left);
            let lowered = u32::try_from(limit + 1).unwrap_or(u32::MAX).min(value);
            for (i, byte) in encoded.iter_mut().enumerate().take(len) {
                let group = (lowered >> (7 * i as u32)) as u8 & 0x7f;
                *byte = if i + 1 < len { group | 0x80 } else { group };
            }
        }
        self.varint_rest = encoded;
        self.varint_rest_len = len;
        self.varint_rest_pos = 1;
        self.inner.advance(1);
        encoded[0]
    }
}

impl Buf for GuardedBuf {
    fn remaining(&self) -> usize {
        self.inner.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.inner.chunk()
    }

    fn advance(&mut self, cnt: usize) {
        self.drop_varint_rest();
        self.inner.advance(cnt);
    }

    fn try_get_u8(&mut self) -> Result<u8, bytes::TryGetError> {
        if self.varint_rest_pos < self.varint_rest_len {
            let byte = self.varint_rest[self.varint_rest_pos];
            self.varint_rest_pos += 1;
            self.inner.advance(1);
            return Ok(byte);
        }
        self.drop_varint_rest();
        if !self.inner.has_remaining() {
            return Err(bytes::TryGetError {
                requested: 1,
                available: 0,
            });
        }
        Ok(self.first_varint_byte())
    }

    fn try_get_i32(&mut self) -> Result<i32, bytes::TryGetError> {
        self.drop_varint_rest();
        let value = self.inner.try_get_i32()?;
        let bytes_left = self.inner.remaining();
        // Negative values are nulls (-1) or plain integers; the decoder
        // refuses other negative counts itself.
        match usize::try_from(value) {
            Ok(count) if count > bytes_left => {
                self.note_lowered(count as u64, bytes_left);
                Ok(i32::try_from(bytes_left + 1).unwrap_or(i32::MAX))
            }
            _ => Ok(value),
        }
    }
}

impl ByteBuf for GuardedBuf {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        self.inner.peek_bytes(r)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.drop_varint_rest();
        self.inner.get_bytes(size)
    }

    fn try_get_bytes(&mut self, size: usize) -> Result<Bytes, NotEnoughBytesError> {
        self.drop_varint_rest();
        self.inner.try_get_bytes(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(bytes: &[u8]) -> GuardedBuf {
        GuardedBuf::new(Bytes::copy_from_slice(bytes))
    }

    fn read_varint(buf: &mut GuardedBuf) -> u32 {
        let mut value = 0u32;
        for i in 0..MAX_VARINT_BYTES {
            let b = u32::from(buf.try_get_u8().unwrap());
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        value
    }

    #[test]
    fn an_i32_count_within_the_bytes_left_is_untouched() {
        let mut buf = guarded(&[0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(buf.try_get_i32().unwrap(), 3);
        assert_eq!(buf.lowered(), None);
    }

    #[test]
    fn an_i32_count_past_the_bytes_left_is_lowered_to_one_past_them() {
        let mut buf = guarded(&[0x7f, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(buf.try_get_i32().unwrap(), 3);
        assert_eq!(
            buf.lowered(),
            Some(Lowered {
                value: i32::MAX as u64,
                bytes_left: 2
            })
        );
        assert_eq!(buf.remaining(), 2);
    }

    #[test]
    fn nulls_and_negative_values_are_untouched() {
        let mut buf = guarded(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(buf.try_get_i32().unwrap(), -1);
        assert_eq!(buf.lowered(), None);
    }

    #[test]
    fn a_varint_count_within_the_bytes_left_is_untouched() {
        // 300 as a varint, followed by 299 bytes: a compact count of 299.
        let mut bytes = vec![0xac, 0x02];
        bytes.extend(std::iter::repeat_n(0, 299));
        let mut buf = guarded(&bytes);
        assert_eq!(read_varint(&mut buf), 300);
        assert_eq!(buf.lowered(), None);
        assert_eq!(buf.remaining(), 299);
    }

    #[test]
    fn a_varint_past_the_bytes_left_is_lowered_in_as_many_bytes() {
        // u32::MAX as a five-byte varint, then three bytes.
        let mut buf = guarded(&[0xff, 0xff, 0xff, 0xff, 0x0f, 7, 8, 9]);
        assert_eq!(read_varint(&mut buf), 5);
        assert_eq!(buf.remaining(), 3);
        assert_eq!(buf.try_get_u8().unwrap(), 7);
        assert_eq!(
            buf.lowered(),
            Some(Lowered {
                value: u64::from(u32::MAX),
                bytes_left: 3
            })
        );
    }

    #[test]
    fn small_varints_and_plain_bytes_pass_through() {
        let mut buf = guarded(&[0x01, 0x00, 0x7f]);
        assert_eq!(buf.try_get_u8().unwrap(), 1);
        assert_eq!(buf.try_get_u8().unwrap(), 0);
        assert_eq!(buf.try_get_u8().unwrap(), 0x7f);
        assert!(buf.try_get_u8().is_err());
        assert_eq!(buf.lowered(), None);
    }

    /// Found by the request_decode fuzz target: seven 0x80 bytes and 0x65,
    /// of which the decoder reads five, a count of 0. The fourth byte, read
    /// afresh as the start of a varint, decoded to more than the bytes left
    /// and was lowered, which rewrote the count's fourth group: in a
    /// DescribeConfigs v4 request the count became 58,720,256 and the
    /// decoder asked for 5 GB.
    #[test]
    fn the_bytes_of_a_varint_that_fits_are_not_read_as_varints_of_their_own() {
        let mut buf = guarded(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x65, 1, 2]);
        assert_eq!(read_varint(&mut buf), 0);
        assert_eq!(buf.remaining(), 5);
        assert_eq!(buf.lowered(), None);
    }

    #[test]
    fn a_varint_cut_short_by_the_end_is_left_as_it_is() {
        let mut buf = guarded(&[0xff, 0xff]);
        assert_eq!(buf.try_get_u8().unwrap(), 0xff);
        assert_eq!(buf.try_get_u8().unwrap(), 0xff);
        assert!(buf.try_get_u8().is_err());
    }
}
