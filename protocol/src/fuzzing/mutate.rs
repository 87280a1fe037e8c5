//! Deterministic mutations of corpus inputs for the short fuzz pass in
//! `cargo test`: the kinds libFuzzer's default mutators make (bit flips,
//! bytes set to edge values, integers overwritten with boundary values,
//! insertions, deletions, duplications and splices with another input), plus
//! one that knows Kafka's formats (a one-byte varint padded to five bytes),
//! from a fixed seed, so every run tests the same inputs and a failure
//! reproduces.

/// SplitMix64: small, fast and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Values at the edges of what a length, count or varint byte can hold.
const EDGE_BYTES: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x40, 0x20];
const EDGE_I32: [i32; 10] = [
    0,
    1,
    -1,
    i32::MAX,
    i32::MIN,
    0x4000_0000,
    0x0010_0000,
    255,
    256,
    65_536,
];

/// Applies one to four mutations to a copy of `input`; `other` is another
/// corpus input to splice from.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        mutate_once(rng, &mut data, other);
    }
    data
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let kind = rng.below(9);
    if data.is_empty() && kind < 8 {
        data.push(EDGE_BYTES[rng.below(EDGE_BYTES.len())]);
        return;
    }
    let at = rng.below(data.len().max(1));
    match kind {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = EDGE_BYTES[rng.below(EDGE_BYTES.len())],
        2 => data[at] = rng.next() as u8,
        3 => {
            let value = EDGE_I32[rng.below(EDGE_I32.len())];
            let bytes = if rng.below(2) == 0 {
                value.to_be_bytes()
            } else {
                // Also as a small varint-ish pattern: the low byte alone.
                [value as u8, 0, 0, 0]
            };
            let end = (at + 4).min(data.len());
            data[at..end].copy_from_slice(&bytes[..end - at]);
        }
        4 => {
            let len = 1 + rng.below(8.min(data.len() - at));
            data.drain(at..at + len);
        }
        5 => {
            // Duplicates a range in place (a repeated record or field).
            let len = 1 + rng.below(16.min(data.len() - at));
            let copy = data[at..at + len].to_vec();
            let to = rng.below(data.len() + 1);
            data.splice(to..to, copy);
        }
        6 => {
            let len = 1 + rng.below(8);
            let to = rng.below(data.len() + 1);
            let fresh: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            data.splice(to..to, fresh);
        }
        7 => {
            // A one-byte varint written in five bytes, the most Kafka's
            // `readVarint` reads; the last byte's high bits lie beyond 32 and
            // are dropped by it (but not by a reader that takes a varlong).
            if data[at] < 0x80 {
                let high = [0x00, 0x10, 0x70][rng.below(3)];
                let padded = [data[at] | 0x80, 0x80, 0x80, 0x80, high];
                data.splice(at..=at, padded);
            }
        }
        _ => {
            // Splice: a prefix of this input, the rest from the other.
            if other.is_empty() {
                return;
            }
            let keep = rng.below(data.len() + 1);
            let from = rng.below(other.len());
            data.truncate(keep);
            data.extend_from_slice(&other[from..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let input = b"0123456789abcdef";
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..100)
                .map(|_| mutate(&mut rng, input, b"zyx"))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().any(|m| m.len() != input.len()));
        assert!(run(7).iter().any(|m| m.len() == input.len() && m != input));
    }
}
