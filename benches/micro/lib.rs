//! Criterion micro-benchmarks of the produce and fetch paths (the bench
//! targets beside this file). The library is empty: Cargo needs one target
//! that is not a bench, and this one builds nothing.
