//! One integration test binary (as ripgrep does): golden reports, ground truth of the real
//! captures, determinism across thread counts, and the command-line contract.

mod check;
mod ci_recipe;
mod cli;
mod columns;
mod exit_status;
mod frames;
mod golden;
mod html;
mod inputs;
mod live;
mod memory;
mod policy;
mod reach;
mod summary;
mod tls;
mod truth;
mod util;
