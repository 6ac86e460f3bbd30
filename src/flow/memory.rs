//! The memory budget (`--memory`): one bound on what the buffers of all connections hold
//! together, whatever the number of connections.
//!
//! Each holder of a per-connection buffer that can grow past a few hundred bytes reports
//! what it holds ([`MemoryCharge::memory_charge`], capacity rather than length) and knows
//! how to give it up ([`MemoryCharge::release_memory`]) so that the analysis goes on with
//! less: a hole in the reassembly becomes a gap (`reassembly.rs`), an HTTP head being
//! gathered is read as cut off there (`app.rs`, `ws/session.rs`). Later layers plug in the
//! same way: a frame consumer (inflater window, per-session frame ring) reports through
//! [`FrameConsumer::memory_charge`](crate::ws::events::FrameConsumer::memory_charge) and
//! [`FrameConsumer::release_memory`](crate::ws::events::FrameConsumer::release_memory);
//! a layer inside [`App`](super::app::App) (TLS records and plaintext) adds its charge to
//! `App::memory_charge` and its release to `App::release_memory`.
//!
//! Enforcement (deterministic for every `--threads`): after each segment a connection's
//! charge is brought up to date in its shard (`Shard::charged`). At a batch boundary the
//! pipeline adds the shards' totals; past the budget, connections that hold something give
//! it up in the order of their first packet, oldest first, until the total is within the
//! budget. Both the charges and the order are facts of the connections themselves, so the
//! same connections give up the same bytes for any number of shards. A connection that
//! gave something up carries the anomaly `memory_budget` and `exact=false`; the number of
//! such connections and the bytes given up are counted (`Stats::memory_budget`) and said on
//! stderr.

use super::SegmentCtx;

/// A holder of per-connection buffers under the memory budget.
pub trait MemoryCharge {
    /// Bytes held now in buffers that can grow (their capacity).
    fn memory_charge(&self) -> usize;

    /// The budget is spent and this connection is among the oldest holders: give up what
    /// is held and go on with less. `ctx` carries the connection's latest packet. Whatever
    /// becomes uncertain must stay visible (a gap, a cut head); the connection adds the
    /// `memory_budget` anomaly itself.
    fn release_memory(&mut self, ctx: &SegmentCtx<'_>);
}
