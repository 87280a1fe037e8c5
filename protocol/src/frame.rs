//! Length-prefixed framing: every Kafka request and response is a big-endian
//! `int32` size followed by that many bytes.

/// Kafka's own default for `socket.request.max.bytes` (100 MiB). Frames above the
/// configured maximum are almost certainly a protocol violation or a hostile peer;
/// the connection is dropped rather than the memory allocated.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Size of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is negative")]
    NegativeLength(i32),
    #[error("frame length {length} exceeds the maximum of {max} bytes")]
    TooLarge { length: usize, max: usize },
}

/// Looks at the start of `buf` and tells whether a whole frame is there.
///
/// Returns `Ok(Some(n))` when the first frame's body (without the prefix) is `n`
/// bytes long and all of it is in `buf`; `Ok(None)` when more bytes are needed.
/// The length is validated as soon as the prefix is complete, so a caller never
/// reserves buffer space for an invalid frame.
pub fn check(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, FrameError> {
    let Some(length) = declared_length(buf, max_frame_bytes)? else {
        return Ok(None);
    };
    if buf.len() - LENGTH_PREFIX_BYTES >= length {
        Ok(Some(length))
    } else {
        Ok(None)
    }
}

/// The validated body length of the frame starting at `buf`, once its prefix is
/// complete, whether or not the body has arrived yet.
pub fn declared_length(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_BYTES) else {
        return Ok(None);
    };
    let length = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let length = usize::try_from(length).map_err(|_| FrameError::NegativeLength(length))?;
    if length > max_frame_bytes {
        return Err(FrameError::TooLarge {
            length,
            max: max_frame_bytes,
        });
    }
    Ok(Some(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_prefix_needs_more() {
        assert_eq!(check(&[0, 0, 0], 100), Ok(None));
    }

    #[test]
    fn incomplete_body_needs_more() {
        assert_eq!(check(&[0, 0, 0, 3, 1, 2], 100), Ok(None));
    }

    #[test]
    fn complete_frame_reports_body_length() {
        assert_eq!(check(&[0, 0, 0, 3, 1, 2, 3, 9], 100), Ok(Some(3)));
    }

    #[test]
    fn negative_length_is_rejected() {
        assert_eq!(
            check(&(-1i32).to_be_bytes(), 100),
            Err(FrameError::NegativeLength(-1))
        );
    }

    #[test]
    fn oversized_length_is_rejected_before_body_arrives() {
        assert_eq!(
            check(&101i32.to_be_bytes(), 100),
            Err(FrameError::TooLarge {
                length: 101,
                max: 100
            })
        );
    }
}
