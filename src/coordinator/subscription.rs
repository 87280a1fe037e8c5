//! The topics a "consumer" protocol member subscribes to, read from its JoinGroup
//! metadata (Kafka's ConsumerProtocolSubscription: version int16, then an array
//! of topic names). Every length is checked against the bytes present: the
//! metadata is client data.

/// The subscribed topics, or `None` if the metadata does not parse.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut reader = Reader(metadata);
    let _version = reader.i16()?;
    let count = reader.i32()?;
    if count < 0 {
        return Some(Vec::new());
    }
    let mut topics = Vec::new();
    for _ in 0..count {
        let length = usize::try_from(reader.i16()?).ok()?;
        let bytes = reader.take(length)?;
        topics.push(String::from_utf8(bytes.to_vec()).ok()?);
    }
    Some(topics)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::subscribed_topics;

    fn subscription(topics: &[&str]) -> Vec<u8> {
        let mut bytes = vec![0, 1];
        bytes.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for topic in topics {
            bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            bytes.extend_from_slice(topic.as_bytes());
        }
        bytes.extend_from_slice(&[0, 0, 0, 0]); // user data and more: ignored
        bytes
    }

    #[test]
    fn topics_are_read() {
        assert_eq!(
            subscribed_topics(&subscription(&["a", "orders"])),
            Some(vec!["a".to_owned(), "orders".to_owned()])
        );
    }

    #[test]
    fn truncated_or_lying_metadata_is_refused() {
        let full = subscription(&["orders"]);
        for cut in 0..8 {
            assert_eq!(subscribed_topics(&full[..cut]), None, "cut at {cut}");
        }
        // Claims two billion topics in a few bytes.
        assert_eq!(
            subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]),
            None
        );
        // A negative string length.
        assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 1, 0xff, 0xff]), None);
    }
}
