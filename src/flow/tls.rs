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
use crate::tls::{
    self, KeyLog, KeySource, PlaintextSink, Probe, Secrets, TlsConn, TlsFacts, TlsState,
};
use crate::ws::session::Lent;

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
    /// on a connection never becoming a candidate again). Decided after each event.
    dropped: bool,
}

/// Hands one reassembled event of the direction from `key.lo` (`from_lo`) to the
/// application layer: through TLS when the connection carries it. TLS is recognised by
/// the first bytes of the connection's payload (a ClientHello, RFC 8446 §4.1.2).
/// `started`: the connection's first bytes are in the capture (its SYN was seen).
#[inline(always)]
pub fn deliver(
    tls: &mut Option<Box<TlsLayer>>,
    app: &mut App,
    from_lo: bool,
    ev: Event<'_>,
    started: bool,
    ctx: &SegmentCtx<'_>,
    tl: &mut Lent,
) {
    // A plaintext connection whose application is known: straight on (the hot path).
    if tls.is_none() && !matches!(app, App::Unknown) {
        app.on_event(from_lo, ev, started, ctx, tl);
    } else {
        deliver_tls(tls, app, from_lo, ev, started, ctx, tl);
    }
}

#[inline(never)]
fn deliver_tls(
    tls: &mut Option<Box<TlsLayer>>,
    app: &mut App,
    from_lo: bool,
    ev: Event<'_>,
    started: bool,
    ctx: &SegmentCtx<'_>,
    tl: &mut Lent,
) {
    if let Some(t) = tls {
        t.on_event(app, from_lo, ev, ctx, tl);
        return;
    }
    if let Event::Data(bytes) = ev {
        // An HTTP request never starts with 0x16: a few bytes that may still be a
        // ClientHello go to the TLS layer, which says NotTls if they are not.
        if tls::probe_client_hello(bytes) != Probe::NotTls {
            let t = tls.insert(Box::new(TlsLayer {
                conn: TlsConn::new(),
                client_is_lo: from_lo,
                opts: ctx.tls.opts,
                dropped: false,
            }));
            t.on_event(app, from_lo, ev, ctx, tl);
            return;
        }
    }
    app.on_event(from_lo, ev, started, ctx, tl);
}

/// The plaintext of a connection's TLS layer, to its application (direction 0: from the
/// lower endpoint).
struct ToApp<'a, 'c> {
    app: &'a mut App,
    ctx: &'a SegmentCtx<'c>,
    tl: &'a mut Lent,
}

impl PlaintextSink for ToApp<'_, '_> {
    #[inline]
    fn event(&mut self, dir: usize, ev: Event<'_>) {
        // The plaintext starts with the TLS stream (a ClientHello): its first bytes are the
        // application's first.
        self.app.on_event(dir == 0, ev, true, self.ctx, self.tl);
    }

    #[inline]
    fn unread(&self, dir: usize) -> u64 {
        self.app.unread(dir == 0, self.tl)
    }

    #[inline]
    fn pass_over(&mut self, dir: usize, n: u64) {
        self.app.pass_over(dir == 0, n, self.ctx, self.tl);
    }
}

impl TlsLayer {
    fn on_event(
        &mut self,
        app: &mut App,
        from_lo: bool,
        ev: Event<'_>,
        ctx: &SegmentCtx<'_>,
        tl: &mut Lent,
    ) {
        if self.dropped {
            return;
        }
        let tctx = tls::SegmentCtx {
            frame: ctx.at.packet,
            ts_ns: ctx.at.ts_ns,
        };
        let dir = usize::from(!from_lo);
        self.conn
            .on_event(dir, ev, tctx, &*ctx.tls.keys, &mut ToApp { app, ctx, tl });
        if !self.may_give_record(app) {
            self.drop_record();
        }
    }

    pub fn facts(&self) -> &TlsFacts {
        self.conn.facts()
    }

    pub fn client_is_lo(&self) -> bool {
        self.client_is_lo
    }

    /// Could this connection still give a record (a session over TLS, or a row of its own)?
    /// Decided after each event (what it depends on changes only with events).
    #[inline]
    pub fn may_be_session(&self) -> bool {
        !self.dropped
    }

    #[inline]
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
            _ if app.is_session() => TlsCarries::WebSocket,
            App::Unknown if f.state == TlsState::Decrypting => TlsCarries::Nothing,
            App::Unknown => TlsCarries::Unknown,
            App::Http(_) => TlsCarries::Http,
            App::WebSocket { .. } | App::Probe(_) | App::Other => TlsCarries::Other,
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
    /// plaintext buffer), for the memory budget (`flow::memory`).
    #[inline]
    pub fn held_bytes(&self) -> usize {
        self.conn.held_bytes()
    }

    /// Not yet known to give a record or not (for the recognition window): the handshake
    /// is under way, or the decrypted application is undecided (`App::undecided`).
    pub fn undecided(&self, app: &App) -> bool {
        if self.dropped || self.opts.every_connection {
            return false;
        }
        match self.conn.facts().state {
            TlsState::Handshake => true,
            TlsState::Decrypting => app.undecided(),
            _ => false,
        }
    }

    /// Frees buffers that hold nothing now: nothing is lost.
    pub fn trim_memory(&mut self) {
        self.conn.trim_memory();
    }

    /// The memory budget is spent: partial records and handshake messages being gathered
    /// are given up (see `TlsConn::release_memory`); what that loses of the plaintext
    /// reaches `app` as gaps when the records are skipped.
    pub fn release_memory(&mut self, app: &App, _ctx: &SegmentCtx<'_>) {
        self.conn.release_memory();
        if !self.may_give_record(app) {
            self.drop_record();
        }
    }

    /// The recognition window gave up on this connection: no record, nothing more
    /// decrypted.
    pub fn give_up(&mut self) {
        self.drop_record();
    }

    /// This connection can no longer give a record: nothing more is decrypted, and the
    /// buffers go.
    #[cold]
    fn drop_record(&mut self) {
        self.dropped = true;
        self.conn.free_buffers();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::flow::ConnLimits;
    use crate::record::At;
    use crate::tls::TlsVersion;

    fn facts(version: Option<TlsVersion>, alpn: Option<&str>, offered: &[&str]) -> TlsFacts {
        let mut f = TlsConn::new().facts().clone();
        f.version = version;
        f.alpn = alpn.map(str::to_string);
        f.alpn_offered = offered.iter().map(|s| s.to_string()).collect();
        f
    }

    #[test]
    fn where_websocket_may_live() {
        use TlsVersion::*;
        let table = [
            (
                facts(Some(Tls12), Some("http/1.1"), &["h2", "http/1.1"]),
                true,
            ),
            (facts(Some(Tls12), Some("h2"), &["h2", "http/1.1"]), false),
            // TLS 1.2: the ServerHello is in the clear, so no ALPN means none was chosen.
            (facts(Some(Tls12), None, &["h2"]), true),
            // TLS 1.3 without keys: the choice is encrypted; the offer decides.
            (facts(Some(Tls13), None, &[]), true),
            (facts(Some(Tls13), None, &["h2", "http/1.1"]), true),
            (facts(Some(Tls13), None, &["h2"]), false),
            (facts(None, None, &["h2"]), false),
        ];
        for (i, (f, want)) in table.iter().enumerate() {
            assert_eq!(may_be_http1(f), *want, "case {i}");
        }
    }

    fn run(events: &[(bool, &[u8])]) -> (Option<Box<TlsLayer>>, App) {
        let limits = ConnLimits::new(&Limits::default());
        let tls_ctx = TlsCtx::default();
        let mut tls = None;
        let mut app = App::Unknown;
        for (i, (from_lo, bytes)) in events.iter().enumerate() {
            let ctx = SegmentCtx {
                at: At {
                    packet: i as u64 + 1,
                    ts_ns: 0,
                },
                limits: &limits,
                tls: &tls_ctx,
            };
            let ev = Event::Data(bytes);
            deliver(
                &mut tls,
                &mut app,
                *from_lo,
                ev,
                true,
                &ctx,
                &mut Lent::default(),
            );
        }
        (tls, app)
    }

    /// The start of a TLS 1.2 ClientHello record (length 0x200).
    const HELLO: [u8; 11] = [22, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3];

    #[test]
    fn tls_is_recognised_by_the_clienthello_on_any_port() {
        let (tls, app) = run(&[(false, &HELLO)]);
        let t = tls.expect("a TLS layer");
        assert!(!t.client_is_lo() && t.may_be_session());
        assert!(matches!(app, App::Unknown));
        // A plaintext request never enters the TLS layer.
        let (tls, app) = run(&[(true, b"GET /chat HTTP/1.1\r\n")]);
        assert!(tls.is_none() && matches!(app, App::Http(_)));
        // Three bytes that may still be a ClientHello go to TLS, which gives up on them
        // (and the connection) when the rest is not TLS.
        let (tls, _) = run(&[(true, &HELLO[..3])]);
        assert!(tls.as_ref().is_some_and(|t| t.may_be_session()));
        let (tls, _) = run(&[(true, &HELLO[..3]), (true, b"xxxxxxxxxxxxxxxx")]);
        let t = tls.unwrap();
        assert_eq!(t.facts().state, TlsState::NotTls);
        assert!(!t.may_be_session());
    }

    #[test]
    fn keys_answer_in_order() {
        let cr = [9u8; 32];
        let line = |s: &str| format!("CLIENT_RANDOM {} {}\n", "09".repeat(32), s.repeat(48));
        let mut a = KeyLog::new();
        a.add_text(line("aa").as_bytes());
        let mut b = KeyLog::new();
        b.add_text(line("bb").as_bytes());
        let keys = TlsKeys::new(vec![Arc::new(KeyLog::new())]);
        assert!(keys.is_empty() && keys.secrets(&cr).is_none());
        let keys = keys.with(Arc::new(a)).with(Arc::new(b));
        let got = keys.secrets(&cr).unwrap().master_secret.unwrap();
        assert_eq!(
            got.as_bytes(),
            &[0xaa; 48][..],
            "the first log that knows it"
        );
    }
}
