#![no_main]
//! Fuzz target `inflate`: see `checks::inflate` in tests/fuzz/checks.rs for the input format and
//! the invariants asserted.

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::inflate(data));
