//! The cluster id: one row, created on first use.

use sqlx::AnyPool;

use super::rows::get;
use super::SqlCatalog;
use crate::Result;

pub(super) async fn cluster_id(catalog: &SqlCatalog) -> Result<String> {
    if let Some(id) = read(&catalog.reads).await? {
        return Ok(id);
    }
    // Two agents starting together both try; the loser's insert does nothing and
    // both then read the winner's id.
    sqlx::query(
        "INSERT INTO cluster (singleton, cluster_id) VALUES (1, $1) ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(new_cluster_id())
    .execute(&catalog.writes)
    .await?;
    match read(&catalog.writes).await? {
        Some(id) => Ok(id),
        None => Err(crate::CatalogError::Corrupt(
            "the cluster row vanished right after it was written".into(),
        )),
    }
}

async fn read(pool: &AnyPool) -> Result<Option<String>> {
    let row = sqlx::query("SELECT cluster_id FROM cluster WHERE singleton = 1")
        .fetch_optional(pool)
        .await?;
    row.map(|row| get(&row, "cluster_id")).transpose()
}

/// A random id in Kafka's format: the 16 bytes of a UUID in URL-safe base64
/// without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut out = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            out.push(ALPHABET[((bits >> held) & 0x3f) as usize] as char);
        }
    }
    if held > 0 {
        out.push(ALPHABET[((bits << (6 - held)) & 0x3f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = super::new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, super::new_cluster_id());
    }
}
