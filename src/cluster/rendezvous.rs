//! Rendezvous (highest random weight) hashing: which agent a key belongs to.
//!
//! Each candidate scores each key; the highest score wins. A join or a leave
//! moves only the keys the changed agent wins or won, about 1/N of them. The
//! score is defined byte for byte (SHA-256 of a fixed layout) so that any
//! language can compute placement the same way, and it never changes between
//! versions: agents of two versions in one cluster agree.

use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"streamhouse/hrw/v1";

/// What a key names; part of the hashed bytes, so equal keys of two kinds are
/// placed independently.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum KeyKind {
    /// Topic id (16 bytes) then partition (i32, big-endian).
    PartitionLeader = 1,
    /// Group id, UTF-8.
    GroupCoordinator = 2,
    /// Job name, UTF-8, then shard (u32, big-endian).
    BackgroundWork = 4,
}

/// The score of `node_id` for a key: the first 8 bytes, big-endian, of
/// SHA-256(domain ‖ kind ‖ len(key) as u32 BE ‖ key ‖ node_id as i32 BE).
pub fn score(kind: KeyKind, key: &[u8], node_id: i32) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update([kind as u8]);
    // Keys are ids and names far below 4 GiB.
    hasher.update((key.len() as u32).to_be_bytes());
    hasher.update(key);
    hasher.update(node_id.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The candidate with the highest score; equal scores go to the lower node id.
pub fn winner(kind: KeyKind, key: &[u8], candidates: impl IntoIterator<Item = i32>) -> Option<i32> {
    candidates
        .into_iter()
        .map(|node| (score(kind, key, node), std::cmp::Reverse(node)))
        .max()
        .map(|(_, std::cmp::Reverse(node))| node)
}

/// The key bytes of a partition.
pub fn partition_key(topic: uuid::Uuid, partition: i32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(topic.as_bytes());
    key[16..].copy_from_slice(&partition.to_be_bytes());
    key
}

/// The key bytes of a background job's shard.
pub fn job_key(job: &str, shard: u32) -> Vec<u8> {
    let mut key = job.as_bytes().to_vec();
    key.extend_from_slice(&shard.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> uuid::Uuid {
        uuid::Uuid::parse_str("00000000-0000-0000-0000-000000000001").unwrap()
    }

    fn leaders(nodes: &[i32], partitions: i32) -> Vec<i32> {
        (0..partitions)
            .map(|p| {
                winner(
                    KeyKind::PartitionLeader,
                    &partition_key(topic(), p),
                    nodes.iter().copied(),
                )
                .unwrap()
            })
            .collect()
    }

    /// Fixed vectors: other implementations (the compat harness's Python one)
    /// must produce the same numbers.
    #[test]
    fn scores_match_the_published_vectors() {
        let key = partition_key(topic(), 0);
        assert_eq!(
            format!("{:016x}", score(KeyKind::PartitionLeader, &key, 0)),
            "089f5a9e9bcf7393"
        );
        assert_eq!(
            format!("{:016x}", score(KeyKind::PartitionLeader, &key, 1)),
            "2b52f7851c9d5705"
        );
        assert_eq!(leaders(&[0, 1, 2], 8), vec![2, 0, 1, 1, 2, 1, 2, 1]);
        assert_eq!(leaders(&[0, 1, 2, 3], 8), vec![2, 3, 1, 1, 2, 1, 2, 1]);
        assert_eq!(winner(KeyKind::GroupCoordinator, b"g1", [0, 1, 2]), Some(1));
        assert_eq!(
            format!("{:016x}", score(KeyKind::GroupCoordinator, b"g1", 0)),
            "20d9c2a7604c98da"
        );
    }

    #[test]
    fn partitions_spread_evenly_and_a_change_moves_only_its_share() {
        let three = leaders(&[0, 1, 2], 1000);
        for node in 0..3 {
            let led = three.iter().filter(|&&n| n == node).count();
            assert!((300..=367).contains(&led), "node {node} leads {led}");
        }
        let four = leaders(&[0, 1, 2, 3], 1000);
        let moved = three.iter().zip(&four).filter(|(a, b)| a != b).count();
        assert!(four
            .iter()
            .zip(&three)
            .all(|(new, old)| new == old || *new == 3));
        assert!(
            (200..=300).contains(&moved),
            "{moved} moved to the new node"
        );
        let without_one = leaders(&[0, 2], 1000);
        let moved = three
            .iter()
            .zip(&without_one)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(moved, three.iter().filter(|&&n| n == 1).count());
    }

    #[test]
    fn no_candidates_no_winner() {
        assert_eq!(winner(KeyKind::GroupCoordinator, b"g", []), None);
    }
}
