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
    /// Capture time after an Upgrade request within which the other leg's request (the
    /// same Sec-WebSocket-Key) pairs the two as legs of one session through a proxy.
    pub pair_window_ns: i64,
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
            pair_window_ns: 5_000_000_000,
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

/// Ping round trips kept per direction for the median; past it, every other kept sample is
/// dropped and only every second later one is kept (a regular subsample, deterministic).
pub const MAX_RTT_SAMPLES: usize = 64;

/// Pings waiting for their pong that are remembered per direction (older ones are counted
/// as unanswered but their times are not kept).
pub const MAX_PENDING_PINGS: usize = 16;

/// Header fields of each handshake head kept for the JSON report.
pub const MAX_KEPT_HEADERS: usize = 32;

/// Bytes of each kept header value (longer values are cut, with `…`).
pub const MAX_KEPT_HEADER_VALUE: usize = 256;

/// Inflated bytes of one compressed message past which inflation of that message stops
/// (RFC 7692: a decompression bomb). The message still counts; its size, and with
/// context takeover the sizes of its direction's later compressed messages, become lower
/// bounds (`inflate_limit`, exact=false).
pub const MAX_INFLATED_MESSAGE: u64 = 64 << 20;

/// Inflated bytes of one direction of a connection past which its compressed messages
/// are no longer inflated (the same consequences as [`MAX_INFLATED_MESSAGE`]).
pub const MAX_INFLATED_DIRECTION: u64 = 1 << 30;

/// Bytes of each direction, from the connection's first captured byte, in which a
/// connection without a seen handshake may be recognised as WebSocket by its framing.
pub const MIDSTREAM_PROBE_BYTES: u64 = 64 * 1024;

/// Upgrade requests followed on one connection (keep-alive: a rejected Upgrade, then
/// another); after that many the connection's further requests are not followed.
pub const MAX_UPGRADES_PER_CONNECTION: usize = 16;

/// HTTP requests sent ahead of their responses (pipelining) that are followed on one
/// connection before the Upgrade; more is not followed.
pub const MAX_PIPELINED_REQUESTS: usize = 32;

/// Records held back on their way out while a proxy leg waits for its peer to be numbered
/// (`legs.rs`); past it the oldest waiting leg is written unpaired, and so is its peer.
/// Records wait only while the peer's connection, started within the pairing window, is
/// still open.
pub const MAX_HELD_LEGS: usize = 16 * 1024;
/// Read buffers of all open capture inputs together (each open input keeps up to
/// `BATCHES_IN_FLIGHT + 1` chunks): an input alone reads `Limits::chunk_bytes` at a time,
/// many inputs open at once share this, down to `capture::MIN_CHUNK` each.
pub const INPUT_BUFFER_BYTES: usize = 16 << 20;

// TLS decryption (`src/tls`, issue 11): per direction or per connection, never global.

/// A partial TLS record held per direction of a connection: the 5-byte header and the
/// longest TLS 1.2 ciphertext, 2^14 + 2048 bytes (RFC 5246 §6.2.3). Counted against the
/// connection's memory like the out-of-order segments.
pub const MAX_TLS_RECORD_BUFFER: usize = 5 + (1 << 14) + 2048;

/// Longest TLS handshake message kept whole (ClientHello, ServerHello,
/// EncryptedExtensions, KeyUpdate); others are skipped by count. A larger hello is cut
/// off and its facts (SNI, ALPN) lost.
pub const MAX_TLS_HANDSHAKE_MESSAGE: usize = 1 << 16;

/// After a gap that hides a TLS record header: candidate record headers tried in the
/// bytes that follow before the direction is given up (RFC 8446 §5.3: the sequence number
/// is part of the nonce, so it is recovered by trial decryption).
pub const MAX_TLS_RESYNC_CANDIDATES: u32 = 16;

/// After such a gap: bytes scanned for a candidate header before giving up.
pub const MAX_TLS_RESYNC_SCAN_BYTES: usize = 256 * 1024;

/// After such a gap: sequence numbers tried per candidate (the records the gap may hold;
/// fewer when the gap is too short to hold that many records).
pub const MAX_TLS_RESYNC_SEQ_TRIALS: u64 = 256;

/// After such a gap, for TLS 1.3: sequence numbers tried under the next keys (the
/// application keys after the handshake, or the next generation after a KeyUpdate,
/// RFC 8446 §4.6.3).
pub const MAX_TLS_RESYNC_NEXT_KEY_TRIALS: u64 = 16;

/// Records that may fail to decrypt and be skipped while a direction may still be sending
/// something there is no key for: rejected 0-RTT data, or handshake records when the key
/// log has only the application secrets (RFC 8446 §4.2.10: the server skips the same).
pub const MAX_TLS_SKIPPED_RECORDS: u32 = 64;

/// TLS records in a row that fail to authenticate (without a gap) before the direction
/// is given up.
pub const MAX_TLS_FAILURES_IN_ROW: u32 = 4;

/// 0-RTT records held (whole, ciphertext) until the server's answer says whether they
/// were accepted: bytes per connection.
pub const MAX_TLS_EARLY_DATA_HELD: usize = 2 * MAX_TLS_RECORD_BUFFER;

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
