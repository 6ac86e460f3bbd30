//! One integration test binary (as ripgrep does): golden reports, ground truth of the real
//! captures, determinism across thread counts, and the command-line contract.

mod cli;
mod columns;
mod golden;
mod memory;
mod truth;
mod util;
