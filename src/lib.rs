//! # wsclose
//!
//! Why did my WebSocket connections close? `wsclose` reads packet captures (pcap and
//! pcapng) offline, reassembles the TCP streams, parses the HTTP Upgrade handshake and the
//! RFC 6455 frames, and reports every WebSocket session: who talked, how many messages each
//! side sent, the close code and reason each side sent, who closed first, how TCP ended, and
//! whether every number is exact.
//!
//! ```no_run
//! use wsclose::{capture::Capture, pipeline::{analyze, Options}};
//! let opts = Options::default();
//! let capture = Capture::open(&["fixtures/captures/real-py-clean.pcap".into()], &opts.limits);
//! let summary = analyze(capture, &opts, &mut |rec| {
//!     println!("{} -> {}: {}", rec.client, rec.server, rec.verdict.outcome.as_str());
//!     Ok(())
//! }).unwrap();
//! eprintln!("{}", summary.stats);
//! ```
//!
//! The data flow is capture → decode → flow table + TCP reassembly → handshake/frame
//! parsing → session record → report writer; see ARCHITECTURE.md.

pub mod bits;
pub mod capture;
pub mod check;
pub mod config;
pub mod decode;
pub mod error;
#[cfg(feature = "libpcap")]
pub mod filter;
pub mod flow;
pub mod http;
pub mod legs;
pub mod net;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod reorder;
pub mod report;
pub mod spill;
pub mod stats;
pub mod summary;
pub mod time;
pub mod tls;
pub mod verdict;
pub mod ws;
