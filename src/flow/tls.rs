//! The TLS layer of a connection (`wss://`, issue 11): between reassembly and the
//! application parsers. A connection whose client's first bytes are a ClientHello (on any
//! port) gets a [`TlsLayer`]; reassembly's events go through it ([`TlsConn`] decrypts
//! them) and its plaintext events go to the connection's [`App`], so that the HTTP
//! Upgrade and the WebSocket frames are read by the same code for `ws://` and `wss://`.
//! The packet and time of each event travel with it ([`SegmentCtx`]).
//!
//! ```text
//! reassembly ── Event ──▶ deliver ──(plaintext connection)──────────────▶ App
//!                            └─(ClientHello)─▶ TlsLayer ── plaintext Event ─▶ App
//! ```
//!
//! Keys: [`TlsKeys`] are the `--keylog` files and the Decryption Secrets Blocks met so far,
//! shared by every shard behind an `Arc`; they change only at batch boundaries
//! (`pipeline.rs`), so what a connection finds does not depend on the thread count.

use std::sync::Arc;

use super::app::App;
use super::reassembly::Event;
use super::SegmentCtx;
use crate::record::{Anomalies, Anomaly, TlsCarries, TlsInfo};
use crate::tls::{self, KeyLog, KeySource, Probe, Secrets, TlsConn, TlsFacts, TlsState};

/// The secrets a shard can use now: the `--keylog` files, then each Decryption Secrets
/// Block read so far, in capture order (the first that knows a client random answers).
#[derive(Clone, Debug, Default)]
pub struct TlsKeys {
    logs: Vec<Arc<KeyLog>>,
}

impl TlsKeys {
    pub fn new(logs: Vec<Arc<KeyLog>>) -> Self {
        TlsKeys { logs }
    }

    /// These keys and one more key log.
    pub fn with(&self, log: Arc<KeyLog>) -> Self {
        let mut logs = self.logs.clone();
        logs.push(log);
        TlsKeys { logs }
    }

    pub fn is_empty(&self) -> bool {
        self.logs.iter().all(|l| l.is_empty())
    }
}

impl KeySource for TlsKeys {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.logs.secrets(client_random)
    }
}

/// Which TLS connections give a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// A row for each TLS connection that could not be decrypted and whose ALPN is absent,
    /// `http/1.1` or unknown (where WebSocket lives); `--no-undecrypted` turns it off.
    pub undecrypted_rows: bool,
    /// A record for every TLS connection, whatever it carries (`wsclose tls`).
    pub every_connection: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            undecrypted_rows: true,
            every_connection: false,
        }
    }
}

/// What the shards' connections need of TLS: the keys known now, and the options.
#[derive(Clone, Debug, Default)]
pub struct TlsCtx {
    pub keys: Arc<TlsKeys>,
    pub opts: TlsOptions,
}

/// The TLS layer of one connection.
#[derive(Debug)]
pub struct TlsLayer {
    conn: TlsConn,
    /// The side that sent the ClientHello.
    client_is_lo: bool,
    opts: TlsOptions,
    /// This connection can no longer give a record (latched: the shard's watermark relies
    /// on a connection never becoming a candidate again).
    dropped: bool,
}

/// Hands one reassembled event of the direction from `key.lo` (`from_lo`) to the
/// application layer: through TLS when the connection carries it. TLS is recognised by
/// the first bytes of the connection's payload (a ClientHello, RFC 8446 §4.1.2).
#[inline]
pub fn deliver(
    tls: &mut Option<Box<TlsLayer>>,
    app: &mut App,
    from_lo: bool,
    ev: Event<'_>,
    ctx: &SegmentCtx<'_>,
) {
    if let Some(t) = tls {
        t.on_event(app, from_lo, ev, ctx);
        return;
    }
    if let (App::Unknown, Event::Data(bytes)) = (&*app, &ev) {
        // An HTTP request never starts with 0x16: a few bytes that may still be a
        // ClientHello go to the TLS layer, which says NotTls if they are not.
        if tls::probe_client_hello(bytes) != Probe::NotTls {
            let t = tls.insert(Box::new(TlsLayer {
                conn: TlsConn::new(),
                client_is_lo: from_lo,
                opts: ctx.tls.opts,
                dropped: false,
            }));
            t.on_event(app, from_lo, ev, ctx);
            return;
        }
    }
    app.on_event(from_lo, ev, ctx);
}

impl TlsLayer {
    fn on_event(&mut self, app: &mut App, from_lo: bool, ev: Event<'_>, ctx: &SegmentCtx<'_>) {
        if self.dropped {
            return;
        }
        let tctx = tls::SegmentCtx {
            frame: ctx.at.packet,
            ts_ns: ctx.at.ts_ns,
        };
        let dir = usize::from(!from_lo);
        self.conn
            .on_event(dir, ev, tctx, &*ctx.tls.keys, &mut |d, ev| {
                app.on_event(d == 0, ev, ctx)
            });
        if !self.may_give_record(app) {
            self.dropped = true;
        }
    }

    pub fn facts(&self) -> &TlsFacts {
        self.conn.facts()
    }

    pub fn client_is_lo(&self) -> bool {
        self.client_is_lo
    }

    /// Could this connection still give a record (a session over TLS, or a row of its own)?
    pub fn may_be_session(&self, app: &App) -> bool {
        !self.dropped && self.may_give_record(app)
    }

    fn may_give_record(&self, app: &App) -> bool {
        let f = self.conn.facts();
        match f.state {
            TlsState::NotTls => false,
            TlsState::Handshake => true,
            TlsState::Decrypting => self.opts.every_connection || app.may_be_session(),
            TlsState::NoKey
            | TlsState::DecryptFailed
            | TlsState::UnsupportedCipher
            | TlsState::HandshakeMissing => {
                self.opts.every_connection || (self.opts.undecrypted_rows && may_be_http1(f))
            }
        }
    }

    /// Whether the connection gives a row of its own: not decrypted (or, for `wsclose
    /// tls`, whatever it carried), and not already a WebSocket session.
    pub fn gives_own_record(&self, app: &App) -> bool {
        if self.dropped {
            return false;
        }
        let f = self.conn.facts();
        if self.opts.every_connection {
            return f.state != TlsState::NotTls;
        }
        match f.state {
            TlsState::NotTls | TlsState::Handshake | TlsState::Decrypting => false,
            _ => self.opts.undecrypted_rows && may_be_http1(f) && !app.is_session(),
        }
    }

    /// The record's TLS facts.
    pub fn info(&self, app: &App) -> TlsInfo {
        let f = self.conn.facts();
        let carries = match app {
            App::Unknown if f.state == TlsState::Decrypting => TlsCarries::Nothing,
            App::Unknown => TlsCarries::Unknown,
            App::Request { .. } => TlsCarries::Http,
            App::WebSocket { .. } => TlsCarries::WebSocket,
            App::Other => TlsCarries::Other,
        };
        TlsInfo {
            version: f.version,
            cipher: f.cipher_suite,
            sni: f.sni.clone(),
            alpn: f.alpn.clone(),
            alpn_offered: f.alpn_offered.join(","),
            state: f.state,
            resumed: f.resumed,
            carries,
            records: f.dirs.iter().map(|d| d.records).sum(),
            decrypted_records: f.dirs.iter().map(|d| d.decrypted_records).sum(),
        }
    }

    /// The record's TLS anomalies; each one makes the counts inexact.
    pub fn anomalies(&self) -> Anomalies {
        let a = &self.conn.facts().anomalies;
        let mut out = Anomalies::default();
        for (on, x) in [
            (a.no_key, Anomaly::TlsNoKey),
            (a.decrypt_failed, Anomaly::TlsDecryptFailed),
            (a.unsupported_cipher, Anomaly::TlsUnsupportedCipher),
            (a.gap, Anomaly::TlsGap),
        ] {
            if on {
                out.insert(x);
            }
        }
        out
    }

    /// Bytes held in the layer's buffers (partial records, handshake messages, the
    /// plaintext buffer), for a memory budget.
    pub fn held_bytes(&self) -> usize {
        self.conn.held_bytes()
    }
}

/// Could the connection carry HTTP/1.1 (where WebSocket lives)? Yes when the server
/// selected `http/1.1` or nothing, and when its choice is unknown (TLS 1.3 without keys:
/// EncryptedExtensions is encrypted) unless the client offered protocols and none was
/// `http/1.1`.
pub fn may_be_http1(f: &TlsFacts) -> bool {
    match &f.alpn {
        Some(p) => p == "http/1.1",
        None if f.version == Some(tls::TlsVersion::Tls12) => true,
        None => f.alpn_offered.is_empty() || f.alpn_offered.iter().any(|p| p == "http/1.1"),
    }
}
