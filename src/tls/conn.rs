//! One TLS connection: record framing per direction, the handshake as far as decryption
//! needs it, key changes, decryption, gaps.
//!
//! Directions are the caller's indices 0 and 1 (e.g. 0 for packets from the lower
//! endpoint); which one is the client is learned from the ClientHello (or, failing that,
//! the ServerHello). Plaintext is handed on with the same index.
//!
//! When each direction's keys change:
//!
//! ```text
//! TLS 1.3 (RFC 8446 §2, §7):  ServerHello ─▶ both: *_handshake_traffic_secret
//!                             sender's Finished ─▶ that side: *_traffic_secret_0
//!                             KeyUpdate ─▶ that side: next generation ("traffic upd")
//!                             (0-RTT: client_early_traffic_secret until EndOfEarlyData)
//! TLS 1.2 (RFC 5246 §7.1):    sender's ChangeCipherSpec ─▶ that side: key block keys
//! ```
//!
//! A gap that falls inside one record costs that record only (its length is known, so the
//! next header is too). A gap that hides a record header loses the framing: the bytes after
//! it are scanned for candidate headers, and each candidate is tried with the next sequence
//! numbers (and, in TLS 1.3, the next keys) until one authenticates — bounded, see the
//! constants in `tls/mod.rs`. If none does, the rest of that direction is undecryptable.

use std::fmt;

use super::handshake::{self, handshake_type as hs, HelloExtensions};
use super::key_schedule::{self, BadSecretLength, MAX_KEY_BLOCK};
use super::keylog::{KeySource, Secret, Secrets};
use super::protection::{Format, RecordKeys};
use super::record::{self, content_type as ct, Alert, RecordHeader, HEADER_LEN};
use super::suite::{Aead, CipherSuite, Protection};
use super::{
    Event, MAX_EARLY_DATA_HELD, MAX_FAILURES_IN_ROW, MAX_HANDSHAKE_MESSAGE, MAX_RECORD_BUFFER,
    MAX_RESYNC_CANDIDATES, MAX_RESYNC_NEXT_KEY_TRIALS, MAX_RESYNC_SCAN_BYTES,
    MAX_RESYNC_SEQ_TRIALS, MAX_SKIPPED_RECORDS,
};

/// Where a connection's plaintext goes: its events per direction and, so that a record
/// nobody reads is authenticated but not decrypted (`protection::RecordKeys::open_unread`),
/// how many of a direction's next plaintext bytes will be passed over unread. A closure
/// `FnMut(direction, Event)` is a sink that reads everything.
pub trait PlaintextSink {
    /// Plaintext (or a gap in it) of direction `dir`.
    fn event(&mut self, dir: usize, ev: Event<'_>);

    /// How many of `dir`'s next plaintext bytes will be passed over without being read.
    #[inline]
    fn unread(&self, dir: usize) -> u64 {
        let _ = dir;
        0
    }

    /// `n` plaintext bytes of `dir` are here, authenticated, not decrypted. Called only with
    /// `n <= unread(dir)`.
    #[inline]
    fn pass_over(&mut self, dir: usize, n: u64) {
        unreachable!("{n} bytes of direction {dir} passed over that are read");
    }
}

/// Records shorter than this (ciphertext bytes) are decrypted without asking whether
/// anybody reads them ([`PlaintextSink::unread`]).
const MIN_RECORD_PASSED_OVER: usize = 512;

/// A sink for what is given up: nothing is handed on.
fn discard(_: usize, _: Event<'_>) {}

impl<F: FnMut(usize, Event<'_>)> PlaintextSink for F {
    #[inline]
    fn event(&mut self, dir: usize, ev: Event<'_>) {
        self(dir, ev)
    }
}

/// Where a piece of stream data came from: the packet that delivered it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentCtx {
    /// Frame number of the packet (1-based, as Wireshark numbers them).
    pub frame: u64,
    /// Its capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
}

/// The negotiated protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Ssl30,
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub const ALL: [TlsVersion; 5] = [
        TlsVersion::Ssl30,
        TlsVersion::Tls10,
        TlsVersion::Tls11,
        TlsVersion::Tls12,
        TlsVersion::Tls13,
    ];

    fn from_wire(v: u16) -> Option<TlsVersion> {
        Some(match v {
            0x0300 => TlsVersion::Ssl30,
            0x0301 => TlsVersion::Tls10,
            0x0302 => TlsVersion::Tls11,
            0x0303 => TlsVersion::Tls12,
            0x0304 => TlsVersion::Tls13,
            _ => return None,
        })
    }

    /// `1.2`, `1.3` (the report's `tls` column), `1.0`, `1.1`, `ssl3`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Ssl30 => "ssl3",
            TlsVersion::Tls10 => "1.0",
            TlsVersion::Tls11 => "1.1",
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

/// How far decryption got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsState {
    /// The handshake is under way; no keys were needed yet.
    Handshake,
    /// Records are being decrypted (a direction may still have been lost to a gap: see
    /// [`DirFacts::undecryptable_from_frame`]).
    Decrypting,
    /// The key log has no secrets for this connection's client random (or not the ones
    /// needed), at least not when they were needed.
    NoKey,
    /// Secrets were found, but records do not authenticate with them (a key log of
    /// another capture).
    DecryptFailed,
    /// A cipher suite (or protocol version) this layer does not decrypt.
    UnsupportedCipher,
    /// The hellos were not seen whole (capture started late, or a gap hid them), so the
    /// keys cannot be known.
    HandshakeMissing,
    /// The stream is not TLS records.
    NotTls,
}

impl TlsState {
    pub const ALL: [TlsState; 7] = [
        TlsState::Handshake,
        TlsState::Decrypting,
        TlsState::NoKey,
        TlsState::DecryptFailed,
        TlsState::UnsupportedCipher,
        TlsState::HandshakeMissing,
        TlsState::NotTls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsState::Handshake => "handshake",
            TlsState::Decrypting => "decrypting",
            TlsState::NoKey => "no_key",
            TlsState::DecryptFailed => "decrypt_failed",
            TlsState::UnsupportedCipher => "unsupported_cipher",
            TlsState::HandshakeMissing => "handshake_missing",
            TlsState::NotTls => "not_tls",
        }
    }
}

/// Anomaly flags for the report (`tls_no_key`, `tls_decrypt_failed`,
/// `tls_unsupported_cipher`, `tls_gap`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsAnomalies {
    pub no_key: bool,
    pub decrypt_failed: bool,
    pub unsupported_cipher: bool,
    /// Ciphertext was missing (a TCP gap) or had to be skipped: plaintext counts are not
    /// exact.
    pub gap: bool,
}

/// What one direction carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirFacts {
    /// Complete records seen.
    pub records: u64,
    /// Records decrypted (authenticated).
    pub decrypted_records: u64,
    /// Of those, application data records authenticated whose plaintext was passed over
    /// unread, not decrypted ([`PlaintextSink::unread`]).
    pub unread_records: u64,
    /// Application data bytes handed on.
    pub plaintext_bytes: u64,
    /// Ciphertext bytes received (record headers included).
    pub ciphertext_bytes: u64,
    /// TCP gaps met, and those after which decryption resumed.
    pub gaps: u32,
    pub gaps_recovered: u32,
    /// Records that could not be decrypted and were skipped (damaged by a gap, rejected
    /// 0-RTT data, handshake records without their secret).
    pub skipped_records: u64,
    /// Records that failed to authenticate.
    pub failed_records: u64,
    /// TLS 1.3 KeyUpdates sent by this side.
    pub key_updates: u32,
    /// Frame from which this direction could no longer be decrypted.
    pub undecryptable_from_frame: Option<u64>,
    /// The first alert this side sent, and the frame that completed it.
    pub first_alert: Option<(Alert, u64)>,
    /// Frame of this side's close_notify alert.
    pub close_notify_frame: Option<u64>,
}

/// Early data (0-RTT, RFC 8446 §4.2.10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EarlyData {
    #[default]
    None,
    /// The client offered it; the server's answer was not seen (yet).
    Offered,
    Accepted,
    Rejected,
}

/// Everything the connection learned, kept up to date as records arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    pub state: TlsState,
    pub version: Option<TlsVersion>,
    pub cipher_suite: Option<CipherSuite>,
    /// `server_name` from the ClientHello (empty when none was sent).
    pub sni: String,
    /// The protocol the server selected (ServerHello in TLS 1.2, EncryptedExtensions in
    /// TLS 1.3; so unknown in 1.3 without keys).
    pub alpn: Option<String>,
    /// The protocols the client offered, in order.
    pub alpn_offered: Vec<String>,
    /// Direction index of the client.
    pub client_dir: Option<usize>,
    /// TLS 1.2 abbreviated handshake (session ID or ticket) or TLS 1.3 PSK.
    pub resumed: bool,
    pub hello_retry_request: bool,
    pub encrypt_then_mac: bool,
    pub early_data: EarlyData,
    pub anomalies: TlsAnomalies,
    /// Per direction index.
    pub dirs: [DirFacts; 2],
    pub client_hello_frame: Option<u64>,
}

impl TlsFacts {
    /// The facts of the client's and the server's direction, if the client is known.
    pub fn client_server(&self) -> Option<(&DirFacts, &DirFacts)> {
        self.client_dir.map(|c| (&self.dirs[c], &self.dirs[1 - c]))
    }
}

/// Totals over connections, for the closing line on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCounts {
    pub connections: u64,
    pub decrypted: u64,
    pub no_key: u64,
    pub decrypt_failed: u64,
    pub unsupported_cipher: u64,
    pub handshake_missing: u64,
    pub with_gaps: u64,
    pub records: u64,
    pub decrypted_records: u64,
    pub plaintext_bytes: u64,
}

impl TlsCounts {
    pub fn add(&mut self, f: &TlsFacts) {
        if f.state == TlsState::NotTls {
            return;
        }
        self.connections += 1;
        match f.state {
            TlsState::Decrypting => self.decrypted += 1,
            TlsState::NoKey => self.no_key += 1,
            TlsState::DecryptFailed => self.decrypt_failed += 1,
            TlsState::UnsupportedCipher => self.unsupported_cipher += 1,
            TlsState::HandshakeMissing => self.handshake_missing += 1,
            TlsState::Handshake | TlsState::NotTls => {}
        }
        self.with_gaps += f.anomalies.gap as u64;
        for d in &f.dirs {
            self.records += d.records;
            self.decrypted_records += d.decrypted_records;
            self.plaintext_bytes += d.plaintext_bytes;
        }
    }
}

impl fmt::Display for TlsCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TLS connections: {} ({} decrypted, {} without key, {} failed to decrypt, \
             {} unsupported cipher, {} handshake not seen, {} with gaps); \
             records {} of {} decrypted, {} plaintext bytes",
            self.connections,
            self.decrypted,
            self.no_key,
            self.decrypt_failed,
            self.unsupported_cipher,
            self.handshake_missing,
            self.with_gaps,
            self.decrypted_records,
            self.records,
            self.plaintext_bytes
        )
    }
}

/// Which keys a direction uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Epoch {
    /// Records are not protected (the start of the handshake).
    #[default]
    Plaintext,
    /// TLS 1.3 client_early_traffic_secret.
    Early,
    /// TLS 1.3 handshake traffic secret.
    Handshake,
    /// TLS 1.3 application traffic secret, generation N; TLS 1.2: after ChangeCipherSpec.
    Application(u32),
}

/// How a direction's bytes are being read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// Record by record.
    #[default]
    Framing,
    /// The rest of a record damaged by a gap: `remaining` bytes to skip, then the record
    /// counts as lost (its sequence number is used up).
    SkipRecord { remaining: usize, length: usize },
    /// Looking for a record header after a gap that hid one.
    Resync,
    /// Nothing more is decrypted; `gaps` says whether further bytes are reported as gaps
    /// (once plaintext has been handed on) or ignored.
    Dead { gaps: bool },
}

#[derive(Default)]
struct Resync {
    /// Ciphertext bytes between the end of the last good record and the scan position.
    lost_bytes: u64,
    /// Sequence number of the first record lost.
    first_seq: u64,
    candidates: u32,
    scanned: usize,
}

/// One handshake message being reassembled (messages may span records, §5.1).
#[derive(Default)]
struct HsReader {
    header: [u8; handshake::HEADER_LEN],
    header_len: usize,
    msg_type: u8,
    remaining: usize,
    keep: bool,
    body: Vec<u8>,
    /// A record of this epoch was lost: message boundaries are unknown until the next
    /// key change.
    lost: bool,
}

/// Handshake messages whose body is needed.
fn keep_body(msg_type: u8) -> bool {
    matches!(
        msg_type,
        hs::CLIENT_HELLO | hs::SERVER_HELLO | hs::ENCRYPTED_EXTENSIONS | hs::KEY_UPDATE
    )
}

impl HsReader {
    fn reset(&mut self) {
        self.header_len = 0;
        self.remaining = 0;
        self.body.clear();
        self.lost = false;
    }

    fn lose(&mut self) {
        self.reset();
        self.lost = true;
    }

    /// Feeds handshake bytes; `f(msg_type, body)` for each complete message (`body` is
    /// `None` when not kept or too long).
    fn feed(&mut self, mut data: &[u8], f: &mut impl FnMut(u8, Option<&[u8]>)) {
        if self.lost {
            return;
        }
        while !data.is_empty() {
            if self.header_len < handshake::HEADER_LEN {
                let n = (handshake::HEADER_LEN - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len < handshake::HEADER_LEN {
                    return;
                }
                let (_, (ty, len)) =
                    handshake::handshake_header(&self.header).expect("4 bytes are a header");
                self.msg_type = ty;
                self.remaining = len as usize;
                self.keep = keep_body(ty) && self.remaining <= MAX_HANDSHAKE_MESSAGE;
                self.body.clear();
                // The whole message in this piece: no copy.
                if data.len() >= self.remaining {
                    let (msg, rest) = data.split_at(self.remaining);
                    f(ty, self.keep.then_some(msg));
                    data = rest;
                    self.header_len = 0;
                    continue;
                }
            }
            let n = self.remaining.min(data.len());
            if self.keep {
                self.body.extend_from_slice(&data[..n]);
            }
            self.remaining -= n;
            data = &data[n..];
            if self.remaining == 0 {
                f(self.msg_type, self.keep.then_some(&self.body[..]));
                self.header_len = 0;
                self.body.clear();
            }
        }
    }
}

/// One direction.
#[derive(Default)]
struct Half {
    /// A partial record (framing) or the bytes being scanned (resync).
    buf: Vec<u8>,
    mode: Mode,
    keys: Option<Box<RecordKeys>>,
    /// Sequence number of the next record under `keys`.
    seq: u64,
    epoch: Epoch,
    /// TLS 1.3: the secret of the current keys (for the next generation).
    secret: Option<Secret>,
    /// A key change that takes effect after the current record.
    pending: Option<Epoch>,
    hs: HsReader,
    /// Records that may still fail and be skipped.
    skip_budget: u32,
    failures_in_row: u32,
    /// Records decrypted under the current keys.
    decrypted_under_keys: u64,
    resync: Resync,
}

/// Where a resync trial found the record.
enum Found {
    Current(u64),
    Next(Box<RecordKeys>, Epoch, Option<Secret>, u64),
}

/// The TLS layer of one TCP connection.
pub struct TlsConn {
    facts: TlsFacts,
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    client_session_id: Vec<u8>,
    /// The ClientHello offered TLS 1.3 (so a ChangeCipherSpec before the ServerHello is a
    /// compatibility one).
    client_offers_tls13: bool,
    /// The version and suite decided by the ServerHello.
    protection: Option<Protection>,
    /// The secrets found for the client random.
    secrets: Option<Box<Secrets>>,
    half: [Half; 2],
    /// Decrypted bytes of the current record (reused for every record).
    plain: Vec<u8>,
    /// Some record of this connection has been decrypted.
    any_decrypted: bool,
    /// 0-RTT records held until the server's EncryptedExtensions.
    early_held: Vec<u8>,
    early_held_frame: u64,
}

impl Default for TlsConn {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TlsConn {
    /// Facts only; never keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

impl TlsConn {
    pub fn new() -> TlsConn {
        TlsConn {
            facts: TlsFacts {
                state: TlsState::Handshake,
                version: None,
                cipher_suite: None,
                sni: String::new(),
                alpn: None,
                alpn_offered: Vec::new(),
                client_dir: None,
                resumed: false,
                hello_retry_request: false,
                encrypt_then_mac: false,
                early_data: EarlyData::None,
                anomalies: TlsAnomalies::default(),
                dirs: Default::default(),
                client_hello_frame: None,
            },
            client_random: None,
            server_random: None,
            client_session_id: Vec::new(),
            client_offers_tls13: false,
            protection: None,
            secrets: None,
            half: Default::default(),
            plain: Vec::new(),
            any_decrypted: false,
            early_held: Vec::new(),
            early_held_frame: 0,
        }
    }

    pub fn facts(&self) -> &TlsFacts {
        &self.facts
    }

    /// Bytes of an unfinished record held for direction `dir` (at the end of a capture:
    /// what was cut off), or scanned after a gap without finding a record yet.
    pub fn partial_record_bytes(&self, dir: usize) -> usize {
        self.half[dir].buf.len()
    }

    /// Bytes held in buffers (partial records, handshake messages, held 0-RTT data,
    /// the plaintext buffer) and by the stitched AES-GCM once keyed, for a memory budget.
    pub fn held_bytes(&self) -> usize {
        self.plain.capacity()
            + self.early_held.capacity()
            + self
                .half
                .iter()
                .map(|h| {
                    h.buf.capacity()
                        + h.hs.body.capacity()
                        + h.keys.as_ref().map_or(0, |k| k.held_bytes())
                })
                .sum::<usize>()
    }

    /// Frees buffers that hold nothing now (the plaintext scratch buffer, empty record
    /// and handshake buffers) and the stitched AES-GCM's tables (made again from the key
    /// at the next long record): nothing is lost.
    pub fn trim_memory(&mut self) {
        self.plain = Vec::new();
        for h in &mut self.half {
            if let Some(k) = &mut h.keys {
                k.trim();
            }
            if h.buf.is_empty() {
                h.buf = Vec::new();
            }
            if h.hs.body.is_empty() {
                h.hs.body = Vec::new();
            }
        }
    }

    /// Nothing more will be handed to this connection (its layer gave it up): every
    /// buffer is freed; the facts stay.
    pub fn free_buffers(&mut self) {
        self.trim_memory();
        self.early_held = Vec::new();
        for h in &mut self.half {
            h.buf = Vec::new();
            h.hs.body = Vec::new();
        }
    }

    /// The memory budget is spent (`flow::memory`): each direction lets go of what it
    /// holds. A partial record is skipped to its end and counts as lost (its plaintext is
    /// reported missing, as after a gap inside it); bytes scanned after a gap count as
    /// lost; a handshake message being gathered is lost. 0-RTT records waiting for the
    /// server's answer (at most [`MAX_EARLY_DATA_HELD`]) are kept. Returns whether
    /// anything that mattered was given up.
    pub fn release_memory(&mut self) -> bool {
        self.trim_memory();
        let mut lost = false;
        for h in &mut self.half {
            match h.mode {
                Mode::Framing if h.buf.len() >= HEADER_LEN => {
                    let (_, hd) = record::record_header(&h.buf).expect("a header");
                    let length = hd.length as usize;
                    h.mode = Mode::SkipRecord {
                        remaining: HEADER_LEN + length - h.buf.len(),
                        length,
                    };
                    h.buf = Vec::new();
                    lost = true;
                }
                Mode::Framing => h.buf.shrink_to_fit(),
                Mode::Resync => {
                    h.resync.lost_bytes += h.buf.len() as u64;
                    lost |= !h.buf.is_empty();
                    h.buf = Vec::new();
                }
                Mode::SkipRecord { .. } | Mode::Dead { .. } => h.buf = Vec::new(),
            }
            if !h.hs.body.is_empty() {
                h.hs.lose();
                h.hs.body = Vec::new();
                lost = true;
            }
        }
        if lost {
            self.facts.anomalies.gap = true;
        }
        lost
    }

    /// One event of direction `dir` (0 or 1) from reassembly, `ctx` naming the packet that
    /// delivered it. Plaintext goes to `sink.event(direction, event)`, in order per direction,
    /// before this returns — usually for `dir`, but the other direction's plaintext can come
    /// out too (held 0-RTT data, released when the server's answer arrives). Secrets are
    /// asked of `keys` only when they are needed, so `keys` may grow between calls.
    ///
    /// Nothing is handed on for a connection that is not decrypted (no key, wrong key,
    /// unsupported suite); once plaintext has been handed on, whatever cannot be decrypted
    /// any more is reported as [`Event::Gap`] (its size: the plaintext lost when the
    /// records are known, else the ciphertext bytes).
    pub fn on_event<K, F>(
        &mut self,
        dir: usize,
        ev: Event<'_>,
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        assert!(dir < 2, "direction index is 0 or 1");
        match ev {
            Event::Data(data) => {
                self.facts.dirs[dir].ciphertext_bytes += data.len() as u64;
                self.on_data(dir, data, ctx, keys, sink);
            }
            Event::Gap(n) => self.on_gap(dir, n, ctx, sink),
        }
    }

    // ------------------------------------------------------------ framing

    fn on_data<K, F>(&mut self, d: usize, mut data: &[u8], ctx: SegmentCtx, keys: &K, sink: &mut F)
    where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        while !data.is_empty() {
            match self.half[d].mode {
                Mode::Dead { gaps } => {
                    if gaps {
                        sink.event(d, Event::Gap(data.len() as u64));
                    }
                    return;
                }
                Mode::SkipRecord { remaining, length } => {
                    let n = remaining.min(data.len());
                    data = &data[n..];
                    if n == remaining {
                        self.half[d].mode = Mode::Framing;
                        self.record_lost(d, length, sink);
                    } else {
                        self.half[d].mode = Mode::SkipRecord {
                            remaining: remaining - n,
                            length,
                        };
                    }
                }
                Mode::Resync => {
                    let h = &mut self.half[d];
                    let n = (MAX_RECORD_BUFFER - h.buf.len()).min(data.len());
                    h.buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.resync(d, ctx, keys, sink);
                }
                Mode::Framing => {
                    data = self.frame(d, data, ctx, keys, sink);
                }
            }
        }
    }

    /// Reads whole records out of `data` (after completing the held partial one); keeps
    /// the partial record at the end. Returns what is left to process in another mode.
    fn frame<'a, K, F>(
        &mut self,
        d: usize,
        mut data: &'a [u8],
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) -> &'a [u8]
    where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        if !self.half[d].buf.is_empty() {
            let mut buf = std::mem::take(&mut self.half[d].buf);
            if buf.len() < HEADER_LEN {
                let n = (HEADER_LEN - buf.len()).min(data.len());
                buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                if buf.len() < HEADER_LEN {
                    self.half[d].buf = buf;
                    return &[];
                }
            }
            let Some(h) = self.header(d, &buf, ctx) else {
                self.half[d].buf = buf;
                self.half[d].buf.clear();
                return &[];
            };
            let total = HEADER_LEN + h.length as usize;
            let n = (total - buf.len()).min(data.len());
            buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if buf.len() < total {
                self.half[d].buf = buf;
                return &[];
            }
            self.on_record(d, h, &buf[HEADER_LEN..], ctx, keys, sink);
            buf.clear();
            self.half[d].buf = buf;
            if self.half[d].mode != Mode::Framing {
                return data;
            }
        }
        while data.len() >= HEADER_LEN {
            let Some(h) = self.header(d, data, ctx) else {
                return &[];
            };
            let total = HEADER_LEN + h.length as usize;
            if data.len() < total {
                break;
            }
            let (rec, rest) = data.split_at(total);
            data = rest;
            self.on_record(d, h, &rec[HEADER_LEN..], ctx, keys, sink);
            if self.half[d].mode != Mode::Framing {
                return data;
            }
        }
        self.half[d].buf.extend_from_slice(data);
        &[]
    }

    /// The header at the start of `bytes`, or `None` (and the direction given up) if it
    /// cannot be one.
    fn header(&mut self, d: usize, bytes: &[u8], ctx: SegmentCtx) -> Option<RecordHeader> {
        let (_, h) = record::record_header(bytes).expect("5 bytes are a header");
        if h.is_plausible() {
            return Some(h);
        }
        // Not a record where one must start: not TLS (if nothing was understood yet) or a
        // stream this layer cannot follow.
        if self.facts.dirs.iter().all(|f| f.records == 0) {
            self.facts.state = TlsState::NotTls;
            for h in &mut self.half {
                h.mode = Mode::Dead { gaps: false };
            }
        } else {
            self.facts.anomalies.decrypt_failed = true;
            self.give_up(d, ctx, 0, &mut discard);
        }
        None
    }

    fn on_gap<F>(&mut self, d: usize, n: u64, ctx: SegmentCtx, sink: &mut F)
    where
        F: PlaintextSink + ?Sized,
    {
        self.facts.dirs[d].gaps += 1;
        self.facts.anomalies.gap = true;
        let h = &mut self.half[d];
        match h.mode {
            Mode::Dead { gaps } => {
                if gaps {
                    sink.event(d, Event::Gap(n));
                }
            }
            Mode::SkipRecord { remaining, length } if n < remaining as u64 => {
                h.mode = Mode::SkipRecord {
                    remaining: remaining - n as usize,
                    length,
                };
            }
            Mode::SkipRecord { remaining, length } if n == remaining as u64 => {
                h.mode = Mode::Framing;
                self.record_lost(d, length, sink);
            }
            Mode::SkipRecord { remaining, length } => {
                // The gap runs past the damaged record: its successor's header is lost too.
                self.record_lost(d, length, sink);
                self.start_resync(d, n - remaining as u64, ctx, sink);
            }
            Mode::Framing if h.buf.len() >= HEADER_LEN => {
                let (_, hd) = record::record_header(&h.buf).expect("a header");
                let length = hd.length as usize;
                let remaining = HEADER_LEN + length - h.buf.len();
                let got = h.buf.len();
                h.buf.clear();
                if n <= remaining as u64 {
                    // Framing survives: skip the rest of this record.
                    h.mode = Mode::SkipRecord {
                        remaining: remaining - n as usize,
                        length,
                    };
                    if n == remaining as u64 {
                        h.mode = Mode::Framing;
                        self.record_lost(d, length, sink);
                    }
                } else {
                    self.record_lost(d, length, sink);
                    self.start_resync(d, got as u64 + n - (HEADER_LEN + length) as u64, ctx, sink);
                }
            }
            Mode::Framing => {
                let got = h.buf.len() as u64;
                h.buf.clear();
                self.start_resync(d, got + n, ctx, sink);
            }
            Mode::Resync => {
                let r = &mut h.resync;
                r.lost_bytes += h.buf.len() as u64 + n;
                h.buf.clear();
            }
        }
    }

    /// A record (`length` bytes of fragment) was damaged by a gap: its sequence number is
    /// used up and its plaintext is reported missing.
    fn record_lost<F>(&mut self, d: usize, length: usize, sink: &mut F)
    where
        F: PlaintextSink + ?Sized,
    {
        let h = &mut self.half[d];
        self.facts.dirs[d].skipped_records += 1;
        h.hs.lose();
        if let Some(k) = &h.keys {
            h.seq += 1;
            let est = length.saturating_sub(k.overhead().fixed).max(1);
            if self.any_decrypted {
                sink.event(d, Event::Gap(est as u64));
            }
        }
    }

    /// The framing of direction `d` is lost: `lost` ciphertext bytes since the end of the
    /// last whole record.
    fn start_resync<F>(&mut self, d: usize, lost: u64, ctx: SegmentCtx, sink: &mut F)
    where
        F: PlaintextSink + ?Sized,
    {
        let h = &mut self.half[d];
        h.hs.lose();
        h.buf.clear();
        if h.keys.is_none() && self.protection.is_none() {
            // Before the ServerHello: the hellos cannot be trusted any more.
            if self.client_random.is_none() || self.server_random.is_none() {
                self.facts.state = match self.facts.state {
                    TlsState::Handshake => TlsState::HandshakeMissing,
                    s => s,
                };
                self.give_up(d, ctx, 0, sink);
                return;
            }
        }
        h.resync = Resync {
            lost_bytes: lost,
            first_seq: h.seq,
            candidates: 0,
            scanned: 0,
        };
        h.mode = Mode::Resync;
    }

    /// The rest of direction `d` is undecryptable.
    fn give_up<F>(&mut self, d: usize, ctx: SegmentCtx, lost: u64, sink: &mut F)
    where
        F: PlaintextSink + ?Sized,
    {
        let gaps = self.any_decrypted;
        let h = &mut self.half[d];
        h.buf = Vec::new();
        h.hs = HsReader::default();
        h.mode = Mode::Dead { gaps };
        if gaps && lost > 0 {
            sink.event(d, Event::Gap(lost));
        }
        let f = &mut self.facts.dirs[d];
        if f.undecryptable_from_frame.is_none() && self.facts.state == TlsState::Decrypting {
            f.undecryptable_from_frame = Some(ctx.frame);
        }
    }

    // ------------------------------------------------------------ resync

    /// A candidate record header after a gap.
    fn candidate(&self, d: usize, h: &RecordHeader) -> bool {
        let keys = self.half[d].keys.as_deref();
        let min = keys.map_or(1, |k| k.overhead().fixed);
        let tls13 = matches!(self.protection, Some(Protection::Tls13(..)));
        let type_ok = if tls13 {
            h.content_type == ct::APPLICATION_DATA
        } else {
            matches!(
                h.content_type,
                ct::APPLICATION_DATA | ct::ALERT | ct::HANDSHAKE
            )
        };
        let max = if tls13 {
            record::MAX_PLAINTEXT_LEN + 256
        } else {
            record::MAX_CIPHERTEXT_LEN
        };
        type_ok
            && h.legacy_record_version == record::TLS12_RECORD_VERSION
            && (min..=max).contains(&(h.length as usize))
    }

    fn resync<K, F>(&mut self, d: usize, ctx: SegmentCtx, keys: &K, sink: &mut F)
    where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        loop {
            let buf = &self.half[d].buf;
            let found = (0..buf.len().saturating_sub(HEADER_LEN - 1)).find(|&i| {
                let (_, h) = record::record_header(&buf[i..]).expect("5 bytes");
                self.candidate(d, &h)
            });
            let h = &mut self.half[d];
            let Some(i) = found else {
                let drop = h.buf.len().saturating_sub(HEADER_LEN - 1);
                h.buf.drain(..drop);
                h.resync.lost_bytes += drop as u64;
                h.resync.scanned += drop;
                if h.resync.scanned > MAX_RESYNC_SCAN_BYTES {
                    let lost = h.resync.lost_bytes;
                    self.give_up(d, ctx, lost, sink);
                }
                return;
            };
            h.buf.drain(..i);
            h.resync.lost_bytes += i as u64;
            h.resync.scanned += i;
            let (_, hd) = record::record_header(&h.buf).expect("5 bytes");
            let total = HEADER_LEN + hd.length as usize;
            if h.buf.len() < total {
                return; // wait for the whole candidate
            }
            let buf = std::mem::take(&mut h.buf);
            match self.trial(d, &hd, &buf[HEADER_LEN..total]) {
                Some((found, ty, n)) => {
                    let h = &mut self.half[d];
                    let (seq, over) = match found {
                        Found::Current(seq) => {
                            let over = h.keys.as_ref().expect("current keys").overhead();
                            h.seq = seq + 1;
                            (seq.saturating_sub(h.resync.first_seq), over)
                        }
                        Found::Next(k, epoch, secret, seq) => {
                            let over = k.overhead();
                            h.keys = Some(k);
                            h.epoch = epoch;
                            h.secret = secret;
                            h.seq = seq + 1;
                            h.decrypted_under_keys = 0;
                            h.hs.reset();
                            // At least the rest of the old epoch and the key change.
                            (seq + 1, over)
                        }
                    };
                    let est = h
                        .resync
                        .lost_bytes
                        .saturating_sub(seq * (HEADER_LEN + over.fixed) as u64)
                        .max(1);
                    self.facts.dirs[d].gaps_recovered += 1;
                    self.facts.dirs[d].records += 1;
                    if self.any_decrypted {
                        sink.event(d, Event::Gap(est));
                    }
                    self.half[d].mode = Mode::Framing;
                    self.decrypted(d, ty, n, true, ctx, keys, sink);
                    // The rest of the buffer is framed as usual.
                    let rest = &buf[total..];
                    let mut left = rest;
                    while !left.is_empty() && self.half[d].mode == Mode::Framing {
                        left = self.frame(d, left, ctx, keys, sink);
                    }
                    if !left.is_empty() {
                        // Another mode took over (e.g. a second gap cannot happen here,
                        // but a new resync could after a failure): feed it.
                        self.on_data(d, left, ctx, keys, sink);
                    }
                    return;
                }
                None => {
                    let h = &mut self.half[d];
                    h.buf = buf;
                    h.resync.candidates += 1;
                    if h.resync.candidates >= MAX_RESYNC_CANDIDATES {
                        let lost = h.resync.lost_bytes + h.buf.len() as u64;
                        self.give_up(d, ctx, lost, sink);
                        return;
                    }
                    h.buf.drain(..1);
                    h.resync.lost_bytes += 1;
                    h.resync.scanned += 1;
                }
            }
        }
    }

    /// Tries a candidate record with the next sequence numbers of the current keys, then
    /// with the next keys. On success the plaintext is in `self.plain`.
    fn trial(&mut self, d: usize, h: &RecordHeader, frag: &[u8]) -> Option<(Found, u8, usize)> {
        let half = &self.half[d];
        let r = &half.resync;
        if let Some(k) = half.keys.as_deref() {
            let min_rec = (HEADER_LEN + k.overhead().fixed).max(1) as u64;
            let n = (r.lost_bytes / min_rec + 2).min(MAX_RESYNC_SEQ_TRIALS);
            // TLS 1.2 GCM: most implementations use the sequence number as the explicit
            // nonce (RFC 5288 §3 allows it); try that first.
            if k.format() == Format::Tls12Gcm && frag.len() >= 8 {
                let hint = u64::from_be_bytes(frag[..8].try_into().unwrap());
                if (half.seq..half.seq + n).contains(&hint) {
                    if let Ok((ty, len)) = k.open(hint, h, frag, &mut self.plain) {
                        return Some((Found::Current(hint), ty, len));
                    }
                }
            }
            for s in half.seq..half.seq + n {
                if let Ok((ty, len)) = k.open(s, h, frag, &mut self.plain) {
                    return Some((Found::Current(s), ty, len));
                }
            }
        }
        let (k, epoch, secret) = self.next_keys(d)?;
        for s in 0..MAX_RESYNC_NEXT_KEY_TRIALS {
            if let Ok((ty, len)) = k.open(s, h, frag, &mut self.plain) {
                return Some((Found::Next(k, epoch, secret, s), ty, len));
            }
        }
        None
    }

    /// The keys direction `d` changes to next, if known: TLS 1.3 handshake → application,
    /// application N → N+1, early → handshake; TLS 1.2 plaintext → after ChangeCipherSpec.
    fn next_keys(&self, d: usize) -> Option<(Box<RecordKeys>, Epoch, Option<Secret>)> {
        let half = &self.half[d];
        let is_client = self.facts.client_dir == Some(d);
        match (self.protection?, half.epoch) {
            (Protection::Tls13(aead, hash), epoch) => {
                let s = self.secrets.as_ref()?;
                let (secret, next) = match epoch {
                    Epoch::Plaintext | Epoch::Early => (
                        if is_client {
                            s.client_handshake_traffic
                        } else {
                            s.server_handshake_traffic
                        }?,
                        Epoch::Handshake,
                    ),
                    Epoch::Handshake => (
                        if is_client {
                            s.client_traffic_0
                        } else {
                            s.server_traffic_0
                        }?,
                        Epoch::Application(0),
                    ),
                    Epoch::Application(g) => (
                        key_schedule::next_traffic_secret(hash, half.secret.as_ref()?).ok()?,
                        Epoch::Application(g + 1),
                    ),
                };
                let k = RecordKeys::tls13(aead, hash, &secret).ok()?;
                Some((Box::new(k), next, Some(secret)))
            }
            (p, Epoch::Plaintext) => {
                let k = self.tls12_keys(p, is_client).ok()??;
                Some((Box::new(k), Epoch::Application(0), None))
            }
            _ => None,
        }
    }

    // ------------------------------------------------------------ records

    fn on_record<K, F>(
        &mut self,
        d: usize,
        h: RecordHeader,
        frag: &[u8],
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        self.facts.dirs[d].records += 1;
        let tls13 = matches!(self.protection, Some(Protection::Tls13(..)));
        match h.content_type {
            ct::CHANGE_CIPHER_SPEC => {
                // TLS 1.3: a middlebox-compatibility CCS, not protected and ignored
                // (RFC 8446 §5, §D.4). TLS 1.2: the sender's keys change (RFC 5246 §7.1).
                let maybe_tls13 = self.protection.is_none() && self.client_offers_tls13;
                if !tls13 && !maybe_tls13 && self.half[d].keys.is_none() {
                    self.change_cipher_spec(d, ctx, keys);
                }
                return;
            }
            // TLS 1.3 allows unprotected alerts before the keys are in use (§5); a 2-byte
            // alert record cannot be protected (the tag alone is 16 bytes).
            ct::ALERT if h.length == 2 => {
                self.on_alert(d, frag, ctx);
                return;
            }
            _ => {}
        }
        if self.half[d].keys.is_none() {
            self.on_plaintext_record(d, &h, frag, ctx, keys, sink);
            return;
        }
        let k = self.half[d].keys.as_deref().expect("keys");
        let seq = self.half[d].seq;
        // Records under 512 bytes mostly carry frame headers, which are read anyway: not
        // asking about them took generated wss:// chat from 0.343 to 0.331 s (1 thread).
        let unread = if frag.len() >= MIN_RECORD_PASSED_OVER {
            sink.unread(d)
        } else {
            0
        };
        if unread > 0 {
            if let Some(n) = k.open_unread(seq, &h, frag, &mut self.plain, unread) {
                self.half[d].seq += 1;
                self.facts.dirs[d].unread_records += 1;
                self.decrypted(d, ct::APPLICATION_DATA, n, false, ctx, keys, sink);
                return;
            }
        }
        match k.open(seq, &h, frag, &mut self.plain) {
            Ok((ty, n)) => {
                self.half[d].seq += 1;
                self.decrypted(d, ty, n, true, ctx, keys, sink);
            }
            Err(_) => self.on_failure(d, &h, frag, ctx, keys, sink),
        }
    }

    fn on_plaintext_record<K, F>(
        &mut self,
        d: usize,
        h: &RecordHeader,
        frag: &[u8],
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        match h.content_type {
            ct::HANDSHAKE => self.feed_handshake(d, frag, ctx, keys, sink),
            ct::ALERT => self.on_alert(d, frag, ctx),
            ct::APPLICATION_DATA => {
                let early = self.facts.early_data != EarlyData::None;
                if early && self.facts.client_dir == Some(d) && self.protection.is_none() {
                    // 0-RTT data before the ServerHello: hold it (bounded) until the
                    // server says whether it accepted it.
                    if self.early_held.len() + HEADER_LEN + frag.len() <= MAX_EARLY_DATA_HELD {
                        self.early_held.extend_from_slice(&h.to_bytes());
                        self.early_held.extend_from_slice(frag);
                        self.early_held_frame = ctx.frame;
                    } else {
                        self.facts.dirs[d].skipped_records += 1;
                        self.facts.anomalies.gap = true;
                    }
                } else if self.facts.state == TlsState::Decrypting
                    || self.facts.state == TlsState::Handshake
                {
                    // Protected data without keys for this direction: the handshake was
                    // not seen whole.
                    self.facts.dirs[d].skipped_records += 1;
                    if self.protection.is_none() {
                        self.facts.state = TlsState::HandshakeMissing;
                    }
                }
            }
            _ => {}
        }
    }

    /// A record decrypted into `self.plain[..n]` with inner content type `ty` — or, if not
    /// `read`, application data authenticated and passed over (`PlaintextSink::unread`).
    #[allow(clippy::too_many_arguments)]
    fn decrypted<K, F>(
        &mut self,
        d: usize,
        ty: u8,
        n: usize,
        read: bool,
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        self.any_decrypted = true;
        if matches!(
            self.facts.state,
            TlsState::Handshake | TlsState::DecryptFailed
        ) {
            self.facts.state = TlsState::Decrypting;
        }
        let h = &mut self.half[d];
        h.failures_in_row = 0;
        h.decrypted_under_keys += 1;
        self.facts.dirs[d].decrypted_records += 1;
        let plain = std::mem::take(&mut self.plain);
        match ty {
            ct::APPLICATION_DATA => {
                self.facts.dirs[d].plaintext_bytes += n as u64;
                if n > 0 {
                    if read {
                        sink.event(d, Event::Data(&plain[..n]));
                    } else {
                        sink.pass_over(d, n as u64);
                    }
                }
            }
            ct::HANDSHAKE => self.feed_handshake(d, &plain[..n], ctx, keys, sink),
            ct::ALERT => self.on_alert(d, &plain[..n], ctx),
            _ => {}
        }
        self.plain = plain;
        if let Some(next) = self.half[d].pending.take() {
            self.switch_keys(d, next, ctx);
        }
    }

    /// A record that did not authenticate with the current keys and sequence number.
    fn on_failure<K, F>(
        &mut self,
        d: usize,
        h: &RecordHeader,
        frag: &[u8],
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        // A key change whose message was not seen (a lost record): the next keys.
        if let Some((k, epoch, secret)) = self.next_keys(d) {
            if let Ok((ty, n)) = k.open(0, h, frag, &mut self.plain) {
                let half = &mut self.half[d];
                half.keys = Some(k);
                half.epoch = epoch;
                half.secret = secret;
                half.seq = 1;
                half.decrypted_under_keys = 0;
                half.hs.reset();
                self.decrypted(d, ty, n, true, ctx, keys, sink);
                return;
            }
        }
        let half = &mut self.half[d];
        if half.skip_budget > 0 {
            // Rejected 0-RTT data, or handshake records whose secret is not in the log.
            half.skip_budget -= 1;
            self.facts.dirs[d].skipped_records += 1;
            return;
        }
        self.facts.dirs[d].failed_records += 1;
        self.facts.anomalies.decrypt_failed = true;
        if !self.any_decrypted {
            // The very first protected record does not open: the key log is for another
            // capture (or the secrets do not belong to this suite).
            self.facts.state = TlsState::DecryptFailed;
            self.give_up(d, ctx, 0, sink);
            return;
        }
        half.failures_in_row += 1;
        half.seq += 1;
        let est = (h.length as usize)
            .saturating_sub(half.keys.as_ref().map_or(0, |k| k.overhead().fixed));
        sink.event(d, Event::Gap(est.max(1) as u64));
        if half.failures_in_row >= MAX_FAILURES_IN_ROW {
            self.give_up(d, ctx, 0, sink);
        }
    }

    fn on_alert(&mut self, d: usize, body: &[u8], ctx: SegmentCtx) {
        let Some(a) = Alert::parse(body) else { return };
        let f = &mut self.facts.dirs[d];
        if f.first_alert.is_none() {
            f.first_alert = Some((a, ctx.frame));
        }
        if a.description == Alert::CLOSE_NOTIFY && f.close_notify_frame.is_none() {
            f.close_notify_frame = Some(ctx.frame);
        }
    }

    // ------------------------------------------------------------ handshake

    fn feed_handshake<K, F>(
        &mut self,
        d: usize,
        bytes: &[u8],
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        let mut reader = std::mem::take(&mut self.half[d].hs);
        reader.feed(bytes, &mut |ty, body| {
            self.on_handshake(d, ty, body, ctx, keys, sink)
        });
        // Key changes take effect after the record (`pending`), so the reader's state
        // stays valid through it.
        self.half[d].hs = reader;
    }

    fn on_handshake<K, F>(
        &mut self,
        d: usize,
        ty: u8,
        body: Option<&[u8]>,
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        let epoch = self.half[d].epoch;
        match ty {
            hs::CLIENT_HELLO => {
                let Some(Ok((_, ch))) = body.map(handshake::client_hello) else {
                    return;
                };
                if self.facts.client_dir.is_none() {
                    self.facts.client_dir = Some(d);
                }
                if self.facts.client_hello_frame.is_none() {
                    self.facts.client_hello_frame = Some(ctx.frame);
                }
                // After a HelloRetryRequest the client repeats its random (RFC 8446
                // §4.1.2); a renegotiation (TLS 1.2) brings a new one.
                self.client_random = Some(*ch.random);
                self.client_session_id = ch.legacy_session_id.to_vec();
                self.client_offers_tls13 = ch.offers_tls13();
                self.facts.early_data = if ch.extensions.early_data {
                    EarlyData::Offered
                } else {
                    EarlyData::None
                };
                if let Some(sn) = ch
                    .extensions
                    .server_name
                    .and_then(handshake::server_name_host)
                {
                    self.facts.sni = text(sn);
                }
                if let Some(list) = ch.extensions.alpn {
                    self.facts.alpn_offered =
                        handshake::alpn_protocols(list).take(16).map(text).collect();
                }
            }
            hs::SERVER_HELLO => {
                let Some(Ok((_, sh))) = body.map(handshake::server_hello) else {
                    return;
                };
                if self.facts.client_dir.is_none() {
                    self.facts.client_dir = Some(1 - d);
                }
                self.facts.version = TlsVersion::from_wire(sh.selected_version());
                self.facts.cipher_suite = Some(CipherSuite(sh.cipher_suite));
                if sh.is_hello_retry_request() {
                    self.facts.hello_retry_request = true;
                    return;
                }
                self.server_random = Some(*sh.random);
                self.on_server_hello(d, &sh, ctx, keys, sink);
            }
            hs::ENCRYPTED_EXTENSIONS => {
                if let Some(Ok((_, ext))) = body.map(handshake::encrypted_extensions) {
                    self.set_alpn(&ext);
                    if self.facts.early_data == EarlyData::Offered {
                        let accepted = ext.early_data;
                        self.facts.early_data = if accepted {
                            EarlyData::Accepted
                        } else {
                            EarlyData::Rejected
                        };
                        self.release_early_data(accepted, sink);
                    }
                }
            }
            hs::FINISHED if epoch == Epoch::Handshake => {
                // The sender's next record uses its application traffic secret (§7.1).
                self.half[d].pending = Some(Epoch::Application(0));
            }
            hs::END_OF_EARLY_DATA if epoch == Epoch::Early => {
                self.half[d].pending = Some(Epoch::Handshake);
            }
            hs::KEY_UPDATE => {
                if let Epoch::Application(g) = epoch {
                    self.facts.dirs[d].key_updates += 1;
                    self.half[d].pending = Some(Epoch::Application(g + 1));
                }
            }
            _ => {}
        }
    }

    fn set_alpn(&mut self, ext: &HelloExtensions<'_>) {
        if let Some(list) = ext.alpn {
            self.facts.alpn = handshake::alpn_protocols(list).next().map(text);
        }
    }

    fn on_server_hello<K, F>(
        &mut self,
        d: usize,
        sh: &handshake::ServerHello<'_>,
        ctx: SegmentCtx,
        keys: &K,
        sink: &mut F,
    ) where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        let version = self.facts.version;
        let suite = CipherSuite(sh.cipher_suite);
        let protection = suite.protection().filter(|p| {
            matches!(
                (p, version),
                (Protection::Tls13(..), Some(TlsVersion::Tls13))
                    | (
                        Protection::Tls12Aead(..) | Protection::Tls12Cbc(..),
                        Some(TlsVersion::Tls12)
                    )
            )
        });
        let Some(protection) = protection else {
            self.facts.state = TlsState::UnsupportedCipher;
            self.facts.anomalies.unsupported_cipher = true;
            for h in &mut self.half {
                h.mode = Mode::Dead { gaps: false };
            }
            return;
        };
        self.protection = Some(protection);
        if let Protection::Tls13(..) = protection {
            self.facts.resumed = sh.extensions.pre_shared_key;
            self.tls13_handshake_keys(d, ctx, keys, sink);
        } else {
            // The master secret is looked up now (and again at ChangeCipherSpec if absent).
            if let Some(cr) = self.client_random {
                self.secrets = keys.secrets(&cr).map(|s| Box::new(*s));
            }
            self.set_alpn(&sh.extensions);
            self.facts.encrypt_then_mac =
                sh.extensions.encrypt_then_mac && matches!(protection, Protection::Tls12Cbc(..));
            // RFC 5246 §7.4.1.3 / RFC 5077 §3.4: echoing the client's session ID resumes.
            self.facts.resumed = !sh.legacy_session_id_echo.is_empty()
                && sh.legacy_session_id_echo == self.client_session_id.as_slice();
            if self.facts.early_data != EarlyData::None {
                self.facts.early_data = EarlyData::Rejected;
            }
        }
    }

    /// TLS 1.3, at the ServerHello: both directions switch to their handshake traffic
    /// secrets (the client's 0-RTT records, if any, stay under the early secret).
    fn tls13_handshake_keys<K, F>(&mut self, server: usize, ctx: SegmentCtx, keys: &K, sink: &mut F)
    where
        K: KeySource + ?Sized,
        F: PlaintextSink + ?Sized,
    {
        let client = 1 - server;
        let Some(cr) = self.client_random else {
            self.facts.state = TlsState::HandshakeMissing;
            return;
        };
        let Some(s) = keys.secrets(&cr).copied() else {
            self.no_key(ctx, sink);
            return;
        };
        self.secrets = Some(Box::new(s));
        for (d, hs_secret, app_secret) in [
            (server, s.server_handshake_traffic, s.server_traffic_0),
            (client, s.client_handshake_traffic, s.client_traffic_0),
        ] {
            match (hs_secret, app_secret) {
                (Some(_), _) => self.switch_keys(d, Epoch::Handshake, ctx),
                (None, Some(_)) => {
                    // Only the application secret: skip the handshake records (they fail)
                    // until the first that opens with it.
                    self.switch_keys(d, Epoch::Handshake, ctx);
                    self.half[d].skip_budget = MAX_SKIPPED_RECORDS;
                }
                (None, None) => {
                    self.no_key(ctx, sink);
                    return;
                }
            }
        }
        if self.facts.early_data == EarlyData::Offered {
            // Until the server answers, the client's undecryptable records may be rejected
            // 0-RTT data (the server skips them the same way, §4.2.10).
            self.half[client].skip_budget = MAX_SKIPPED_RECORDS;
        }
    }

    fn no_key<F>(&mut self, ctx: SegmentCtx, sink: &mut F)
    where
        F: PlaintextSink + ?Sized,
    {
        self.facts.state = TlsState::NoKey;
        self.facts.anomalies.no_key = true;
        for d in 0..2 {
            self.give_up(d, ctx, 0, sink);
        }
    }

    /// TLS 1.2 ChangeCipherSpec from direction `d`: its next records are protected.
    fn change_cipher_spec<K>(&mut self, d: usize, ctx: SegmentCtx, keys: &K)
    where
        K: KeySource + ?Sized,
    {
        let Some(p) = self.protection else {
            self.facts.state = TlsState::HandshakeMissing;
            self.give_up(d, ctx, 0, &mut discard);
            return;
        };
        let Some(cr) = self.client_random else {
            self.facts.state = TlsState::HandshakeMissing;
            self.give_up(d, ctx, 0, &mut discard);
            return;
        };
        if self
            .secrets
            .as_ref()
            .and_then(|s| s.master_secret)
            .is_none()
        {
            self.secrets = keys.secrets(&cr).map(|s| Box::new(*s));
        }
        let is_client = self.facts.client_dir == Some(d);
        match self.tls12_keys(p, is_client) {
            Ok(Some(k)) => {
                let h = &mut self.half[d];
                h.keys = Some(Box::new(k));
                h.seq = 0;
                h.epoch = Epoch::Application(0);
                h.decrypted_under_keys = 0;
                h.hs.reset();
            }
            Ok(None) => {
                self.facts.state = TlsState::NoKey;
                self.facts.anomalies.no_key = true;
                for d in 0..2 {
                    self.give_up(d, ctx, 0, &mut discard);
                }
            }
            Err(_) => {
                self.facts.state = TlsState::HandshakeMissing;
                self.give_up(d, ctx, 0, &mut discard);
            }
        }
    }

    /// TLS 1.2 keys of one side from the key block (RFC 5246 §6.3): `Ok(None)` without
    /// a master secret, `Err` without the randoms.
    fn tls12_keys(&self, p: Protection, is_client: bool) -> Result<Option<RecordKeys>, ()> {
        let (Some(cr), Some(sr)) = (self.client_random, self.server_random) else {
            return Err(());
        };
        let Some(ms) = self.secrets.as_ref().and_then(|s| s.master_secret) else {
            return Ok(None);
        };
        // client_write_MAC_key, server_write_MAC_key, client_write_key, server_write_key,
        // client_write_IV, server_write_IV.
        let (mac_len, key_len, iv_len, hash) = match p {
            Protection::Tls12Aead(a, h) => (
                0,
                a.key_len(),
                if a == Aead::ChaCha20Poly1305 { 12 } else { 4 },
                h,
            ),
            Protection::Tls12Cbc(c, m, h) => (m.output_len(), c.key_len(), 0, h),
            Protection::Tls13(..) => return Err(()),
        };
        let mut kb = [0u8; MAX_KEY_BLOCK];
        let kb = &mut kb[..2 * (mac_len + key_len + iv_len)];
        key_schedule::key_block(hash, ms.as_bytes(), &sr, &cr, kb);
        let side = usize::from(!is_client);
        let mac_key = &kb[side * mac_len..][..mac_len];
        let key = &kb[2 * mac_len + side * key_len..][..key_len];
        let iv = &kb[2 * (mac_len + key_len) + side * iv_len..][..iv_len];
        Ok(Some(match p {
            Protection::Tls12Aead(a, _) => RecordKeys::tls12_aead(a, key, iv),
            Protection::Tls12Cbc(c, m, _) => {
                RecordKeys::tls12_cbc(c, m, mac_key, key, self.facts.encrypt_then_mac)
            }
            Protection::Tls13(..) => unreachable!(),
        }))
    }

    /// TLS 1.3: direction `d` changes to the keys of `epoch`.
    fn switch_keys(&mut self, d: usize, epoch: Epoch, ctx: SegmentCtx) {
        let Some(Protection::Tls13(aead, hash)) = self.protection else {
            return;
        };
        let is_client = self.facts.client_dir == Some(d);
        let s = self.secrets.as_deref().copied().unwrap_or_default();
        let secret: Result<Option<Secret>, BadSecretLength> = match epoch {
            Epoch::Plaintext => Ok(None),
            Epoch::Early => Ok(s.client_early_traffic),
            Epoch::Handshake => Ok(if is_client {
                s.client_handshake_traffic.or(s.client_traffic_0)
            } else {
                s.server_handshake_traffic.or(s.server_traffic_0)
            }),
            Epoch::Application(0) => Ok(if is_client {
                s.client_traffic_0
            } else {
                s.server_traffic_0
            }),
            Epoch::Application(_) => match self.half[d].secret {
                Some(cur) => key_schedule::next_traffic_secret(hash, &cur).map(Some),
                None => Ok(None),
            },
        };
        // Handshake epoch with only the application secret: install those keys and let
        // the handshake records be skipped (their Finished is never seen, so the epoch
        // is already the application one).
        let epoch = match (epoch, is_client) {
            (Epoch::Handshake, true) if s.client_handshake_traffic.is_none() => {
                Epoch::Application(0)
            }
            (Epoch::Handshake, false) if s.server_handshake_traffic.is_none() => {
                Epoch::Application(0)
            }
            _ => epoch,
        };
        let keys = secret.and_then(|o| {
            o.map(|sec| RecordKeys::tls13(aead, hash, &sec).map(|k| (k, sec)))
                .transpose()
        });
        let h = &mut self.half[d];
        h.hs.reset();
        h.seq = 0;
        h.epoch = epoch;
        h.decrypted_under_keys = 0;
        match keys {
            Ok(Some((k, sec))) => {
                h.keys = Some(Box::new(k));
                h.secret = Some(sec);
            }
            Ok(None) => {
                // The key log lacks this secret: what follows cannot be decrypted.
                h.keys = None;
                h.secret = None;
                self.facts.anomalies.no_key = true;
                if !self.any_decrypted {
                    self.facts.state = TlsState::NoKey;
                }
                self.give_up(d, ctx, 0, &mut discard);
            }
            Err(BadSecretLength) => {
                h.keys = None;
                self.facts.anomalies.decrypt_failed = true;
                if !self.any_decrypted {
                    self.facts.state = TlsState::DecryptFailed;
                }
                self.give_up(d, ctx, 0, &mut discard);
            }
        }
    }

    /// The server answered the client's 0-RTT offer (in EncryptedExtensions). Accepted:
    /// the held early records are decrypted with the client's early traffic secret and
    /// handed on, and the client's next records stay under that secret until its
    /// EndOfEarlyData. Rejected: the held records are dropped (the server never read them)
    /// and the client's undecryptable records are skipped.
    fn release_early_data<F>(&mut self, accepted: bool, sink: &mut F)
    where
        F: PlaintextSink + ?Sized,
    {
        let Some(c) = self.facts.client_dir else {
            return;
        };
        let held = std::mem::take(&mut self.early_held);
        if !accepted {
            self.facts.dirs[c].skipped_records += record_count(&held);
            return;
        }
        let (Some(Protection::Tls13(aead, hash)), Some(secret)) = (
            self.protection,
            self.secrets.as_ref().and_then(|s| s.client_early_traffic),
        ) else {
            // Accepted, but the key log has no early secret: that data is lost.
            self.facts.dirs[c].skipped_records += record_count(&held);
            self.facts.anomalies.gap = true;
            self.facts.anomalies.no_key = true;
            if self.any_decrypted {
                sink.event(c, Event::Gap(held.len() as u64));
            }
            return;
        };
        let Ok(k) = RecordKeys::tls13(aead, hash, &secret) else {
            return;
        };
        let mut rest = &held[..];
        let mut seq = 0;
        let mut plain = std::mem::take(&mut self.plain);
        while let Ok((r, (h, frag))) = record::record(rest) {
            rest = r;
            match k.open(seq, &h, frag, &mut plain) {
                Ok((ty, n)) => {
                    seq += 1;
                    self.any_decrypted = true;
                    self.facts.dirs[c].decrypted_records += 1;
                    if ty == ct::APPLICATION_DATA && n > 0 {
                        self.facts.dirs[c].plaintext_bytes += n as u64;
                        sink.event(c, Event::Data(&plain[..n]));
                    }
                }
                Err(_) => {
                    self.facts.dirs[c].failed_records += 1;
                    self.facts.anomalies.decrypt_failed = true;
                }
            }
        }
        self.plain = plain;
        let h = &mut self.half[c];
        h.keys = Some(Box::new(k));
        h.secret = Some(secret);
        h.epoch = Epoch::Early;
        h.seq = seq;
        h.skip_budget = 0;
        h.decrypted_under_keys = 0;
    }
}

/// Records in a buffer of whole records.
fn record_count(mut b: &[u8]) -> u64 {
    let mut n = 0;
    while let Ok((r, _)) = record::record(b) {
        b = r;
        n += 1;
    }
    n
}

/// Protocol names and host names as text (they are ASCII in practice), at most 255 bytes.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(255)]).into_owned()
}
