//! The body is streamhouse_protocol::fuzzing::sasl_messages, shared with the
//! short pass in `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamhouse_protocol::fuzzing::sasl_messages(data);
});
