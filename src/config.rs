//! Every limit and default of the analysis, in one place.
//!
//! Caps are per connection or per direction, never global across shards, so that a
//! cap is hit (and reported) the same way whatever the thread count. The one global cap,
//! the memory budget, is enforced at batch boundaries from facts that do not depend on
//! the shards (what each connection holds, and its first packet).

/// Limits that bound memory and work. Each one, when exceeded, is counted and reported.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest capture record (pcap record or pcapng block) accepted, in bytes.
    /// A larger length is taken as corruption of the file, not as a packet.
    pub max_record_bytes: usize,
    /// Bytes read from a capture file at a time (one reusable chunk).
    pub chunk_bytes: usize,
    /// Packets handed to the workers at a time.
    pub batch_packets: usize,
    /// Captured bytes handed to the workers at a time (whichever cap is reached first).
    pub batch_bytes: usize,
    /// TCP connections tracked at once (all shards together); beyond it the
    /// longest-idle tenth is evicted and counted (`--max-connections`).
    pub max_connections: usize,
    /// Bytes that the buffers of all connections together may hold: out-of-order data,
    /// HTTP heads being gathered, and whatever later layers hold per connection (inflater
    /// windows, TLS records, frame rings) — see `flow::memory`. Past it, at a batch
    /// boundary, the connections with the oldest first packet give theirs up
    /// (`--memory`; anomaly `memory_budget`).
    pub memory_budget: usize,
    /// Capture time a connection has to show a handshake (or, with mid-stream pickup,
    /// recognisable frames); after it, once it is the oldest connection the report waits
    /// for, it is taken as not a session and stops holding the report back.
    pub recognise_ns: i64,
    /// Bytes per direction a connection may carry without being recognised before it is
    /// taken as not a session.
    pub recognise_bytes: u64,
    /// Out-of-order bytes held per direction of a connection, waiting for a hole to fill.
    pub max_ooo_bytes: usize,
    /// Out-of-order segments held per direction of a connection.
    pub max_ooo_segments: usize,
    /// Bytes of an HTTP Upgrade request or response head that are buffered while incomplete.
    pub max_handshake_bytes: usize,
    /// A segment further ahead of the expected sequence number than this is out of window.
    pub max_seq_ahead: u32,
    /// Finished records held in memory while they wait for their turn; past it they are
    /// spilled, sorted, to a temporary file.
    pub max_pending_bytes: usize,
    /// Capture time a closed connection (FIN both ways or RST) is kept for late segments.
    pub closed_linger_ns: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 16 << 20,
            chunk_bytes: 2 << 20,
            batch_packets: 16 * 1024,
            batch_bytes: 2 << 20,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            recognise_ns: 10_000_000_000,
            recognise_bytes: 64 * 1024,
            max_ooo_bytes: 1 << 20,
            max_ooo_segments: 512,
            max_handshake_bytes: 16 * 1024,
            max_seq_ahead: 1 << 30,
            max_pending_bytes: 8 << 20,
            closed_linger_ns: 120_000_000_000,
        }
    }
}

/// Default of `--max-connections`: 1 Mi connections (about 1 GiB if every one is an open
/// WebSocket session; a connection that carried no payload takes tens of bytes).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1 << 20;

/// Default of `--memory`: 256 MiB of per-connection buffers.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// Parses a size: bytes, or a number with a binary suffix K, M, G or T (KiB, MiB, GiB,
/// TiB; `KiB`, `MB` and friends are read the same way).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{s:?} is not a size (bytes, or a number with K, M, G or T)"
            ))
        }
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (bytes, or a number with K, M, G or T)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Most header lines accepted in one HTTP head; more is taken as not HTTP.
pub const MAX_HEADERS: usize = 128;

/// Close payload bytes kept per direction. A Close frame may carry at most 125 (§5.5);
/// oversized ones are flagged, and their reason is kept up to this many bytes.
pub const MAX_CLOSE_KEPT: usize = 1024;

/// Entries of each shard's flow cache (a power of two), a direct-mapped cache of the
/// flow table indexed by the segment's hash.
pub const FLOW_CACHE: usize = 1 << 13;

/// Batch buffers in use at once with a reader thread: the queue of 2 between the threads,
/// and one in each of the reader and the shard side. Memory then does not depend on how
/// long the run is. Each file keeps as many spare chunks, since every batch in flight may
/// hold one.
pub const BATCHES_IN_FLIGHT: usize = 4;

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        for bad in [
            "",
            "M",
            "1.5G",
            "-1",
            "12X",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
