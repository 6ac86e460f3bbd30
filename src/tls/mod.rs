//! TLS decryption with a key log: the layer between TCP reassembly and the HTTP/WebSocket
//! parsers for `wss://` (issue 11).
//!
//! A [`TlsConn`] takes both directions of one TCP connection as the in-order events of
//! reassembly ([`Event::Data`] / [`Event::Gap`]), recognises the TLS handshake, asks a
//! [`KeySource`] (a [`KeyLog`]) for the secrets of the connection's client random when it
//! needs them, and hands the decrypted application data of each direction to a callback,
//! as the same kind of events. What it learned (version, cipher suite, SNI, ALPN, whether
//! it could decrypt, what went wrong) is in [`TlsFacts`].
//!
//! ```text
//! reassembly ── Event (ciphertext, per direction) ──▶ TlsConn ── Event (plaintext) ──▶ HTTP / WebSocket
//!                                                       ▲
//!                          KeyLog (files, Decryption Secrets Blocks; Arc, shared)
//! ```
//!
//! Specifications, and where they are used:
//! - RFC 8446 (TLS 1.3): records §5, handshake §4, key schedule §7, KeyUpdate §4.6.3,
//!   HelloRetryRequest §4.1.4, middlebox compatibility §D.4, 0-RTT §4.2.10.
//! - RFC 5246 (TLS 1.2): records §6.2, PRF §5, key block §6.3; RFC 5288 (AES-GCM),
//!   RFC 7905 (ChaCha20-Poly1305), RFC 7366 (Encrypt-then-MAC), RFC 5077 (tickets).
//! - RFC 9850 (the SSLKEYLOGFILE format) and the pcapng Decryption Secrets Block.
//!
//! Modules: `record` and `handshake` are pure parsers; `suite` names cipher suites;
//! `keylog` loads secrets; `key_schedule` derives keys; `protection` opens one record;
//! `conn` is the state machine; `gcm` and `chacha` open AEAD records (the tag checked
//! apart from the decryption), `stitched` long AES-GCM records (graviola). Cryptography
//! comes only from crates: RustCrypto's and graviola (or `ring`).
//!
//! Handled: TLS 1.3 with TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and
//! TLS_CHACHA20_POLY1305_SHA256 (handshake and application keys, KeyUpdate, PSK resumption,
//! HelloRetryRequest, compatibility-mode ChangeCipherSpec, 0-RTT with its early secret, a key
//! log with only the application secrets); TLS 1.2 with AES-128/256-GCM, ChaCha20-Poly1305
//! and AES-128/256-CBC with HMAC-SHA1/256/384, MAC-then-encrypt or Encrypt-then-MAC, full
//! and abbreviated handshakes, any key exchange (the key log holds the master secret); gaps
//! (see [`TlsConn`]). Not decrypted, and said so in [`TlsFacts`]: other suites (CCM, 3DES,
//! ARIA, …: `unsupported_cipher`), TLS 1.0/1.1 and SSL 3.0 (also `unsupported_cipher`, the
//! version named), TLS 1.2 renegotiation (records after it fail: `decrypt_failed`), a
//! connection whose ClientHello or ServerHello was not seen (`handshake_missing`).
//!
//! Bounded: per direction, one partial record (at most [`MAX_RECORD_BUFFER`] bytes) and one
//! handshake message being reassembled (at most [`MAX_HANDSHAKE_MESSAGE`]); one reused
//! plaintext buffer per connection. Key material is never printed.

#[cfg(not(feature = "ring"))]
mod chacha;
mod conn;
#[cfg(not(feature = "ring"))]
mod gcm;
pub mod handshake;
pub mod key_schedule;
pub mod keylog;
pub mod protection;
pub mod record;
#[cfg(not(feature = "ring"))]
mod stitched;
pub mod suite;
mod suite_table;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use self::conn::{
    DirFacts, EarlyData, PlaintextSink, SegmentCtx, TlsAnomalies, TlsConn, TlsCounts, TlsFacts,
    TlsState, TlsVersion,
};
pub use self::keylog::{
    KeyLog, KeySource, LoadStats, NoKeys, Secret, Secrets, DSB_SECRETS_TYPE_TLS,
};
pub use self::suite::CipherSuite;
pub use crate::flow::reassembly::Event;

// Limits, per direction (or per connection), never global, so they act the same for any
// thread count. They live in `config.rs` with every other cap.
pub use crate::config::{
    MAX_TLS_EARLY_DATA_HELD as MAX_EARLY_DATA_HELD, MAX_TLS_FAILURES_IN_ROW as MAX_FAILURES_IN_ROW,
    MAX_TLS_HANDSHAKE_MESSAGE as MAX_HANDSHAKE_MESSAGE, MAX_TLS_RECORD_BUFFER as MAX_RECORD_BUFFER,
    MAX_TLS_RESYNC_CANDIDATES as MAX_RESYNC_CANDIDATES,
    MAX_TLS_RESYNC_NEXT_KEY_TRIALS as MAX_RESYNC_NEXT_KEY_TRIALS,
    MAX_TLS_RESYNC_SCAN_BYTES as MAX_RESYNC_SCAN_BYTES,
    MAX_TLS_RESYNC_SEQ_TRIALS as MAX_RESYNC_SEQ_TRIALS,
    MAX_TLS_SKIPPED_RECORDS as MAX_SKIPPED_RECORDS,
};

/// What the first bytes of a connection's payload say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A TLS record holding the start of a ClientHello.
    ClientHello,
    /// Not TLS (or not a ClientHello).
    NotTls,
    /// Consistent so far; more bytes are needed to tell.
    NeedMore,
}

/// Recognises a ClientHello by its first bytes (any port): a handshake record (type 22,
/// version 3.x, sane length) whose first message is a ClientHello (type 1) of version 3.x
/// (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2). Needs 11 bytes to be sure.
pub fn probe_client_hello(first: &[u8]) -> Probe {
    const EXPECT: [fn(u8) -> bool; 11] = [
        |b| b == record::content_type::HANDSHAKE,
        |b| b == 3,
        |b| b <= 4,
        |_| true,
        |_| true,
        |b| b == handshake::handshake_type::CLIENT_HELLO,
        |b| b == 0,
        |_| true,
        |_| true,
        |b| b == 3,
        |b| b <= 4,
    ];
    for (i, &b) in first.iter().take(EXPECT.len()).enumerate() {
        if !EXPECT[i](b) {
            return Probe::NotTls;
        }
    }
    if first.len() >= 5 {
        let len = u16::from_be_bytes([first[3], first[4]]) as usize;
        // A ClientHello body is at least 38 bytes (version, random, three length fields).
        if !(4 + 38..=record::MAX_PLAINTEXT_LEN).contains(&len) {
            return Probe::NotTls;
        }
    }
    if first.len() < EXPECT.len() {
        Probe::NeedMore
    } else {
        Probe::ClientHello
    }
}
