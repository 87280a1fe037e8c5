//! The short fuzz pass that `cargo test` runs on the pinned toolchain: each
//! target's body over its committed corpus (`fuzz/corpus/<target>/`, the
//! minimised result of the long libFuzzer runs), over its seeds
//! ([`super::seeds`]), and over [`MUTATIONS`] deterministic mutations of
//! them ([`super::mutate`]). An input that panics is written to the temporary
//! directory and named in the failure, for `cargo fuzz run <target> <file>`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use super::mutate::{mutate, Rng};
use super::{seeds, Target, TARGETS};

/// Mutations per target: a few seconds per target in a debug build.
const MUTATIONS: usize = 20_000;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn target(name: &str) -> Target {
    *TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"))
}

/// The committed corpus, sorted by file name so the mutations are the same
/// on every machine.
fn committed_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the corpus of {target} is missing at {}: {e}",
                dir.display()
            )
        })
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    files
        .iter()
        .map(|file| std::fs::read(file).expect("corpus file"))
        .collect()
}

/// Runs `target` over `input`; on a panic, keeps the input and fails naming it.
fn run_one(target: Target, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
        let kept = std::env::temp_dir().join(format!(
            "streamhouse-fuzz-{}-{:016x}",
            target.name,
            crc32c::crc32c(input)
        ));
        std::fs::write(&kept, input).expect("keep the failing input");
        panic!(
            "{} panicked on {what} ({} bytes), kept at {}",
            target.name,
            input.len(),
            kept.display()
        );
    }
}

fn pass(name: &str) {
    let target = target(name);
    let seeds = seeds::for_target(name);
    if let Some(dir) = std::env::var_os("STREAMHOUSE_WRITE_FUZZ_SEEDS") {
        let dir = Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir).expect("seed directory");
        for (seed, bytes) in &seeds {
            std::fs::write(dir.join(seed), bytes).expect("write seed");
        }
    }
    let mut inputs = committed_corpus(name);
    inputs.extend(seeds.into_iter().map(|(_, bytes)| bytes));
    for (index, input) in inputs.iter().enumerate() {
        run_one(target, input, &format!("corpus input {index}"));
    }
    let mut rng = Rng::new(0x5eed_0000 ^ crc32c::crc32c(name.as_bytes()) as u64);
    for round in 0..MUTATIONS {
        let input = &inputs[rng.below(inputs.len())];
        let other = &inputs[rng.below(inputs.len())];
        let mutated = mutate(&mut rng, input, other);
        run_one(target, &mutated, &format!("mutation {round}"));
    }
}

#[test]
fn request_decode_survives_its_corpus_and_mutations() {
    pass("request_decode");
}

#[test]
fn record_batch_survives_its_corpus_and_mutations() {
    pass("record_batch");
}

#[test]
fn validate_batch_survives_its_corpus_and_mutations() {
    pass("validate_batch");
}

#[test]
fn compressed_records_survives_its_corpus_and_mutations() {
    pass("compressed_records");
}

#[test]
fn sasl_messages_survives_its_corpus_and_mutations() {
    pass("sasl_messages");
}

#[test]
fn every_target_has_a_test_here() {
    assert_eq!(
        TARGETS.iter().map(|t| t.name).collect::<Vec<_>>(),
        [
            "request_decode",
            "record_batch",
            "validate_batch",
            "compressed_records",
            "sasl_messages"
        ]
    );
}
