//! A client certificate's subject distinguished name, written as Kafka's
//! default principal builder names an SSL client: Java's
//! `X500Principal.getName()` (RFC 2253), e.g. `CN=alice,OU=eng,O=acme`.
//!
//! Only as much DER as that takes is walked: the certificate's
//! `tbsCertificate` up to its `subject`, and the subject's attributes. The
//! certificate was verified by rustls before this runs, so a malformed one is
//! not expected; it gives `None` all the same rather than a panic.

/// DER tags met on the way.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
/// `[0] EXPLICIT Version` of `tbsCertificate`, absent for v1 certificates.
const VERSION: u8 = 0xa0;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UNIVERSAL_STRING: u8 = 0x1c;
const BMP_STRING: u8 = 0x1e;

/// The attribute types Java names by keyword; any other is written as its
/// dotted OID with the value as `#` and the hex of its DER.
const KEYWORDS: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The subject of a DER certificate in RFC 2253 form: its relative names
/// last to first, separated by `,`, the attributes of one joined by `+`.
pub fn subject_dn(certificate: &[u8]) -> Option<String> {
    let (certificate, _) = expect(certificate, SEQUENCE)?;
    let (tbs, _) = expect(certificate.content, SEQUENCE)?;
    let mut tbs = tbs.content;
    if tbs.first() == Some(&VERSION) {
        tbs = Tlv::parse(tbs)?.rest;
    }
    // serialNumber, signature, issuer, validity, then subject.
    let (_, tbs) = expect(tbs, INTEGER)?;
    let (_, tbs) = expect(tbs, SEQUENCE)?;
    let (_, tbs) = expect(tbs, SEQUENCE)?;
    let (_, tbs) = expect(tbs, SEQUENCE)?;
    let (subject, _) = expect(tbs, SEQUENCE)?;
    let mut names = Vec::new();
    let mut rest = subject.content;
    while !rest.is_empty() {
        let (set, after) = expect(rest, SET)?;
        rest = after;
        let mut attributes = Vec::new();
        let mut inner = set.content;
        while !inner.is_empty() {
            let (attribute, after) = expect(inner, SEQUENCE)?;
            inner = after;
            attributes.push(attribute_text(attribute.content)?);
        }
        names.push(attributes.join("+"));
    }
    names.reverse();
    Some(names.join(","))
}

/// `TYPE=value` of one `AttributeTypeAndValue`.
fn attribute_text(attribute: &[u8]) -> Option<String> {
    let (oid, rest) = expect(attribute, OID)?;
    let value = Tlv::parse(rest)?;
    let oid = dotted(oid.content)?;
    let keyword = KEYWORDS.iter().find(|(o, _)| *o == oid).map(|(_, k)| *k);
    match (keyword, string_value(value.tag, value.content)) {
        (Some(keyword), Some(text)) => Some(format!("{keyword}={}", escape(&text))),
        (keyword, _) => {
            let hex: String = value.whole.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!("{}=#{hex}", keyword.unwrap_or(&oid)))
        }
    }
}

/// The text of a directory string, None for other value types.
fn string_value(tag: u8, content: &[u8]) -> Option<String> {
    match tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING => String::from_utf8(content.to_vec()).ok(),
        // T.61 is near enough Latin-1 for the names certificates carry.
        TELETEX_STRING => Some(content.iter().map(|&b| b as char).collect()),
        BMP_STRING if content.len().is_multiple_of(2) => String::from_utf16(
            &content
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
        .ok(),
        UNIVERSAL_STRING if content.len().is_multiple_of(4) => content
            .chunks(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// RFC 2253 escaping as Java writes it: its special characters behind a
/// backslash, as are a leading and a trailing space; control characters as
/// `\XX`.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        if ",=+<>#;\\\"".contains(c) || (c == ' ' && (i == 0 || i == last)) {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("\\{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An OID's content as dotted decimal.
fn dotted(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, &byte) in content.iter().enumerate() {
        value = value.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 != 0 {
            if i + 1 == content.len() {
                return None;
            }
            continue;
        }
        if arcs.is_empty() {
            let first = (value / 40).min(2);
            arcs.push(first);
            arcs.push(value - first * 40);
        } else {
            arcs.push(value);
        }
        value = 0;
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// One DER element.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    /// Tag, length and content.
    whole: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Tlv<'a> {
    fn parse(input: &'a [u8]) -> Option<Tlv<'a>> {
        let (&tag, after_tag) = input.split_first()?;
        let (&first, mut after) = after_tag.split_first()?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || after.len() < count {
                return None;
            }
            let length = after[..count]
                .iter()
                .fold(0usize, |n, &b| (n << 8) | usize::from(b));
            after = &after[count..];
            length
        };
        if after.len() < length {
            return None;
        }
        let header = input.len() - after.len();
        Some(Tlv {
            tag,
            content: &after[..length],
            whole: &input[..header + length],
            rest: &after[length..],
        })
    }
}

/// The element at the start of `input`, which must have `tag`, and what
/// follows it.
fn expect(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    let tlv = Tlv::parse(input)?;
    if tlv.tag != tag {
        return None;
    }
    let rest = tlv.rest;
    Some((tlv, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_written_dotted() {
        assert_eq!(dotted(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).as_deref(),
            Some("1.2.840.113549.1.9.1")
        );
        assert_eq!(dotted(&[0x55, 0x84]), None);
    }

    #[test]
    fn special_characters_are_escaped_as_java_does() {
        assert_eq!(escape("acme, inc"), "acme\\, inc");
        assert_eq!(escape(" a+b "), "\\ a\\+b\\ ");
        assert_eq!(escape("x\"y\\z;<>=#"), "x\\\"y\\\\z\\;\\<\\>\\=\\#");
        assert_eq!(escape("tab\there"), "tab\\09here");
        assert_eq!(escape("Zoë"), "Zoë");
    }

    #[test]
    fn truncated_der_gives_none() {
        assert_eq!(subject_dn(&[]), None);
        assert_eq!(subject_dn(&[0x30, 0x82, 0x01]), None);
        assert_eq!(subject_dn(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }
}
