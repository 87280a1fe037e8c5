//! The zone a client names in its `client.id`.
//!
//! Clients cannot otherwise tell a broker their zone (producers send no rack),
//! so they put a token in `client.id`, e.g.
//! `client.id=orders-app,streamhouse_zone=eu-west-1a`, as WarpStream (`ws_az=`)
//! and Aiven's Inkless (`diskless_az=`) do. Such a client is given partition
//! leaders in its zone when the zone has live agents.

/// The token's name.
pub const ZONE_TOKEN: &str = "streamhouse_zone=";

/// The zone named in `client_id`: the token at the start or after a space or
/// comma, up to the next space, comma or `=`.
pub fn client_zone(client_id: Option<&str>) -> Option<&str> {
    let client_id = client_id?;
    let mut from = 0;
    while let Some(found) = client_id[from..].find(ZONE_TOKEN) {
        let start = from + found;
        let at_boundary = start == 0 || matches!(client_id.as_bytes()[start - 1], b' ' | b',');
        let value_start = start + ZONE_TOKEN.len();
        if at_boundary {
            let value = &client_id[value_start..];
            let end = value.find([' ', ',', '=']).unwrap_or(value.len());
            if end > 0 {
                return Some(&value[..end]);
            }
        }
        from = value_start;
    }
    None
}

/// Whether `zone` is an acceptable `--zone`: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn valid_zone(zone: &str) -> bool {
    (1..=64).contains(&zone.len())
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_where_clients_put_it() {
        let cases = [
            (Some("streamhouse_zone=eu-west-1a"), Some("eu-west-1a")),
            (Some("orders,streamhouse_zone=z1"), Some("z1")),
            (Some("orders streamhouse_zone=z1 more"), Some("z1")),
            (Some("streamhouse_zone=z1,other=x"), Some("z1")),
            (Some("xstreamhouse_zone=z1"), None),
            (Some("xstreamhouse_zone=z1,streamhouse_zone=z2"), Some("z2")),
            (Some("streamhouse_zone="), None),
            (Some("streamhouse_zone=,a"), None),
            (Some("orders"), None),
            (None, None),
        ];
        for (client_id, zone) in cases {
            assert_eq!(client_zone(client_id), zone, "{client_id:?}");
        }
    }

    #[test]
    fn zones_are_short_plain_names() {
        assert!(valid_zone("eu-west-1a"));
        assert!(valid_zone("zone_1.b"));
        assert!(!valid_zone(""));
        assert!(!valid_zone("a b"));
        assert!(!valid_zone("a,b"));
        assert!(!valid_zone(&"z".repeat(65)));
    }
}
