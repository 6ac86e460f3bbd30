//! Whole connections through [`TlsConn`]: TLS 1.3 with each suite, KeyUpdate, PSK,
//! HelloRetryRequest, 0-RTT; TLS 1.2 with each record format, resumption; wrong and
//! missing keys; gaps; any segmentation of the same bytes.
//!
//! The conversations are built here with the sealing side in `testing` (the RustCrypto
//! crates, encrypting) and keys from `key_schedule`, which its own tests check against
//! RFC 8448 and published PRF vectors.

use proptest::prelude::*;

use super::handshake::{extension_type as ext, handshake_type as hs, HELLO_RETRY_REQUEST_RANDOM};
use super::key_schedule;
use super::keylog::{KeyLog, Secret};
use super::record::content_type as ct;
use super::suite::{Aead, Hash, Protection};
use super::testing::{hex, Sealer};
use super::*;

// ---------------------------------------------------------------- building conversations

fn hs_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend(body);
    m
}

fn vec16(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend(b);
    v
}

fn exts(list: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut all = Vec::new();
    for (ty, data) in list {
        all.extend(ty.to_be_bytes());
        all.extend(vec16(data));
    }
    vec16(&all)
}

fn sni(name: &str) -> (u16, Vec<u8>) {
    let mut entry = vec![0u8];
    entry.extend(vec16(name.as_bytes()));
    (ext::SERVER_NAME, vec16(&entry))
}

fn alpn(names: &[&str]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for n in names {
        list.push(n.len() as u8);
        list.extend(n.as_bytes());
    }
    (ext::APPLICATION_LAYER_PROTOCOL_NEGOTIATION, vec16(&list))
}

fn client_hello(
    random: &[u8; 32],
    session_id: &[u8],
    suites: &[u16],
    extensions: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend(random);
    b.push(session_id.len() as u8);
    b.extend(session_id);
    b.extend(vec16(
        &suites
            .iter()
            .flat_map(|s| s.to_be_bytes())
            .collect::<Vec<_>>(),
    ));
    b.extend([1, 0]);
    b.extend(exts(extensions));
    hs_msg(hs::CLIENT_HELLO, &b)
}

fn server_hello(
    random: &[u8; 32],
    session_id: &[u8],
    suite: u16,
    extensions: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend(random);
    b.push(session_id.len() as u8);
    b.extend(session_id);
    b.extend(suite.to_be_bytes());
    b.push(0);
    if !extensions.is_empty() {
        b.extend(exts(extensions));
    }
    hs_msg(hs::SERVER_HELLO, &b)
}

fn plain_record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend((body.len() as u16).to_be_bytes());
    r.extend(body);
    r
}

fn filled(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
        .collect()
}

fn secret(seed: u8, n: usize) -> Secret {
    Secret::new(&filled(seed, n)).unwrap()
}

const C: usize = 0;
const S: usize = 1;

/// A conversation: what each side wrote, in order; the key log; the application data.
struct Conv {
    writes: Vec<(usize, Vec<u8>)>,
    keylog: KeyLog,
    expect: [Vec<u8>; 2],
    sealers: [Option<(Sealer, u64)>; 2],
    client_random: [u8; 32],
}

impl Conv {
    fn new(client_random: [u8; 32]) -> Conv {
        Conv {
            writes: Vec::new(),
            keylog: KeyLog::new(),
            expect: [Vec::new(), Vec::new()],
            sealers: [None, None],
            client_random,
        }
    }

    fn log(&mut self, label: &str, s: &Secret) {
        let line = format!(
            "{label} {} {}\n",
            hex(&self.client_random),
            hex(s.as_bytes())
        );
        self.keylog.add_text(line.as_bytes());
    }

    fn write(&mut self, d: usize, bytes: Vec<u8>) {
        self.writes.push((d, bytes));
    }

    fn plain(&mut self, d: usize, ty: u8, body: &[u8]) {
        self.write(d, plain_record(ty, body));
    }

    fn keys(&mut self, d: usize, s: Sealer) {
        self.sealers[d] = Some((s, 0));
    }

    fn sealed_record(&mut self, d: usize, ty: u8, body: &[u8]) -> Vec<u8> {
        let (s, seq) = self.sealers[d].as_mut().expect("keys");
        let r = s.seal(ty, body, *seq);
        *seq += 1;
        r
    }

    fn sealed(&mut self, d: usize, ty: u8, body: &[u8]) {
        let r = self.sealed_record(d, ty, body);
        self.write(d, r);
    }

    /// Application data, in records of at most `chunk` bytes, all in one write.
    fn app(&mut self, d: usize, data: &[u8], chunk: usize) {
        let mut w = Vec::new();
        for part in data.chunks(chunk.max(1)) {
            w.extend(self.sealed_record(d, ct::APPLICATION_DATA, part));
        }
        self.expect[d].extend(data);
        self.write(d, w);
    }
}

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

#[derive(Clone, Copy, Default)]
struct T13Opts {
    key_update: bool,
    psk: bool,
    hrr: bool,
    compat_ccs: bool,
    /// 0-RTT: Some(accepted).
    early: Option<bool>,
    /// Leave the handshake secrets out of the key log.
    app_secrets_only: bool,
}

fn tls13_secrets(suite: u16) -> (Hash, Aead, [Secret; 5]) {
    let Some(Protection::Tls13(aead, hash)) = CipherSuite(suite).protection() else {
        panic!("a TLS 1.3 suite")
    };
    let n = hash.output_len();
    let s = [
        secret(11, n),
        secret(22, n),
        secret(33, n),
        secret(44, n),
        secret(55, n),
    ];
    (hash, aead, s)
}

/// A TLS 1.3 WebSocket handshake and some messages each way, then close_notify.
fn tls13(suite: u16, o: T13Opts) -> Conv {
    let cr = [0x5a; 32];
    let mut c = Conv::new(cr);
    let (hash, aead, [chs, shs, cap, sap, cearly]) = tls13_secrets(suite);
    if !o.app_secrets_only {
        c.log("CLIENT_HANDSHAKE_TRAFFIC_SECRET", &chs);
        c.log("SERVER_HANDSHAKE_TRAFFIC_SECRET", &shs);
    }
    c.log("CLIENT_TRAFFIC_SECRET_0", &cap);
    c.log("SERVER_TRAFFIC_SECRET_0", &sap);
    c.log("CLIENT_EARLY_TRAFFIC_SECRET", &cearly);
    let mut ch_ext = vec![
        sni("example.com"),
        alpn(&["http/1.1"]),
        (ext::SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3]),
    ];
    if o.early.is_some() {
        ch_ext.push((ext::EARLY_DATA, vec![]));
    }
    if o.psk || o.early.is_some() {
        ch_ext.push((ext::PRE_SHARED_KEY, vec![0; 10]));
    }
    let ch = client_hello(&cr, &[7; 32], &[0x1301, 0x1302, 0x1303], &ch_ext);
    c.plain(C, ct::HANDSHAKE, &ch);
    let sv = (ext::SUPPORTED_VERSIONS, vec![3, 4]);
    if o.hrr {
        let hrr = server_hello(
            &HELLO_RETRY_REQUEST_RANDOM,
            &[7; 32],
            suite,
            std::slice::from_ref(&sv),
        );
        c.plain(S, ct::HANDSHAKE, &hrr);
        c.plain(S, ct::CHANGE_CIPHER_SPEC, &[1]);
        c.plain(C, ct::CHANGE_CIPHER_SPEC, &[1]);
        c.plain(C, ct::HANDSHAKE, &ch);
    }
    let early_data = b"0-RTT: GET /early HTTP/1.1\r\n\r\n".to_vec();
    if o.early.is_some() {
        if o.compat_ccs {
            c.plain(C, ct::CHANGE_CIPHER_SPEC, &[1]);
        }
        c.keys(C, Sealer::tls13(aead, hash, &cearly));
        c.sealed(C, ct::APPLICATION_DATA, &early_data);
    }
    let mut sh_ext = vec![sv];
    if o.psk || o.early.is_some() {
        sh_ext.push((ext::PRE_SHARED_KEY, vec![0, 0]));
    }
    c.plain(
        S,
        ct::HANDSHAKE,
        &server_hello(&[0xa5; 32], &[7; 32], suite, &sh_ext),
    );
    if o.compat_ccs {
        c.plain(S, ct::CHANGE_CIPHER_SPEC, &[1]);
    }
    c.keys(S, Sealer::tls13(aead, hash, &shs));
    // EncryptedExtensions + Certificate (spanning two records) + CertificateVerify + Finished.
    let mut ee_ext = vec![alpn(&["http/1.1"])];
    if o.early == Some(true) {
        ee_ext.push((ext::EARLY_DATA, vec![]));
    }
    let mut flight = hs_msg(hs::ENCRYPTED_EXTENSIONS, &exts(&ee_ext));
    if !o.psk {
        flight.extend(hs_msg(hs::CERTIFICATE, &filled(3, 1500)));
        flight.extend(hs_msg(hs::CERTIFICATE_VERIFY, &filled(4, 260)));
    }
    flight.extend(hs_msg(hs::FINISHED, &filled(5, hash.output_len())));
    let cut = flight.len() / 2;
    let r1 = c.sealed_record(S, ct::HANDSHAKE, &flight[..cut]);
    let r2 = c.sealed_record(S, ct::HANDSHAKE, &flight[cut..]);
    c.write(S, [r1, r2].concat());
    c.keys(S, Sealer::tls13(aead, hash, &sap));
    // Client: early data (if accepted: more of it and EndOfEarlyData), CCS, Finished.
    if let Some(accepted) = o.early {
        c.sealed(C, ct::APPLICATION_DATA, b"more early data");
        if accepted {
            c.expect[C].extend(&early_data);
            c.expect[C].extend(b"more early data");
            c.sealed(C, ct::HANDSHAKE, &hs_msg(hs::END_OF_EARLY_DATA, &[]));
        }
    }
    if o.compat_ccs && o.early.is_none() {
        c.plain(C, ct::CHANGE_CIPHER_SPEC, &[1]);
    }
    c.keys(C, Sealer::tls13(aead, hash, &chs));
    c.sealed(
        C,
        ct::HANDSHAKE,
        &hs_msg(hs::FINISHED, &filled(6, hash.output_len())),
    );
    c.keys(C, Sealer::tls13(aead, hash, &cap));
    c.app(C, REQUEST, 40);
    // Server: a NewSessionTicket, then the 101 and messages.
    c.sealed(
        S,
        ct::HANDSHAKE,
        &hs_msg(hs::NEW_SESSION_TICKET, &filled(7, 200)),
    );
    c.app(S, RESPONSE, 16384);
    for i in 0..5u8 {
        c.app(C, &filled(i, 100 + 700 * i as usize), 16384);
        c.app(S, &filled(i + 50, 3000 * i as usize + 1), 1000);
        if o.key_update && i == 2 {
            // KeyUpdate with update_requested: the client updates, then the server.
            c.sealed(C, ct::HANDSHAKE, &hs_msg(hs::KEY_UPDATE, &[1]));
            let next = key_schedule::next_traffic_secret(hash, &cap).unwrap();
            c.keys(C, Sealer::tls13(aead, hash, &next));
            c.sealed(S, ct::HANDSHAKE, &hs_msg(hs::KEY_UPDATE, &[0]));
            let next = key_schedule::next_traffic_secret(hash, &sap).unwrap();
            c.keys(S, Sealer::tls13(aead, hash, &next));
        }
    }
    c.sealed(C, ct::ALERT, &[1, 0]);
    c.sealed(S, ct::ALERT, &[1, 0]);
    c
}

#[derive(Clone, Copy, Default)]
struct T12Opts {
    etm: bool,
    resumed: bool,
}

/// A TLS 1.2 WebSocket handshake and messages, then close_notify.
fn tls12(suite: u16, o: T12Opts) -> Conv {
    let (cr, sr) = ([0x3c; 32], [0xc3; 32]);
    let mut c = Conv::new(cr);
    let ms = secret(99, 48);
    c.log("CLIENT_RANDOM", &ms);
    let p = CipherSuite(suite).protection().unwrap();
    let mut ch_ext = vec![sni("ws.example.org"), alpn(&["http/1.1"])];
    if o.etm {
        ch_ext.push((ext::ENCRYPT_THEN_MAC, vec![]));
    }
    let sid = [0x42; 32];
    c.plain(
        C,
        ct::HANDSHAKE,
        &client_hello(&cr, &sid, &[suite], &ch_ext),
    );
    let mut sh_ext = vec![alpn(&["http/1.1"])];
    if o.etm {
        sh_ext.push((ext::ENCRYPT_THEN_MAC, vec![]));
    }
    let echo: &[u8] = if o.resumed { &sid } else { &[0x24; 32] };
    // Key block: client MAC, server MAC, client key, server key, client IV, server IV.
    let (mac_len, key_len, iv_len, hash) = match p {
        Protection::Tls12Aead(a, h) => (
            0,
            a.key_len(),
            if a == Aead::ChaCha20Poly1305 { 12 } else { 4 },
            h,
        ),
        Protection::Tls12Cbc(cb, m, h) => (m.output_len(), cb.key_len(), 0, h),
        _ => unreachable!(),
    };
    let mut kb = vec![0u8; 2 * (mac_len + key_len + iv_len)];
    key_schedule::key_block(hash, ms.as_bytes(), &sr, &cr, &mut kb);
    let sealer = |side: usize| {
        let mk = &kb[side * mac_len..][..mac_len];
        let k = &kb[2 * mac_len + side * key_len..][..key_len];
        let iv = &kb[2 * (mac_len + key_len) + side * iv_len..][..iv_len];
        match p {
            Protection::Tls12Aead(a, _) => Sealer::tls12_aead(a, k, iv),
            Protection::Tls12Cbc(cb, m, _) => Sealer::tls12_cbc(cb, m, mk, k, o.etm),
            _ => unreachable!(),
        }
    };
    let mut flight = server_hello(&sr, echo, suite, &sh_ext);
    let fin = |seed| hs_msg(hs::FINISHED, &filled(seed, 12));
    if o.resumed {
        // Abbreviated handshake (RFC 5246 §7.3): the server's CCS and Finished come first.
        c.plain(S, ct::HANDSHAKE, &flight);
        c.plain(S, ct::CHANGE_CIPHER_SPEC, &[1]);
        c.keys(S, sealer(1));
        c.sealed(S, ct::HANDSHAKE, &fin(8));
        c.plain(C, ct::CHANGE_CIPHER_SPEC, &[1]);
        c.keys(C, sealer(0));
        c.sealed(C, ct::HANDSHAKE, &fin(9));
    } else {
        flight.extend(hs_msg(hs::CERTIFICATE, &filled(3, 1200)));
        flight.extend(hs_msg(hs::SERVER_KEY_EXCHANGE, &filled(4, 300)));
        flight.extend(hs_msg(hs::SERVER_HELLO_DONE, &[]));
        c.plain(S, ct::HANDSHAKE, &flight);
        c.plain(
            C,
            ct::HANDSHAKE,
            &hs_msg(hs::CLIENT_KEY_EXCHANGE, &filled(5, 66)),
        );
        c.plain(C, ct::CHANGE_CIPHER_SPEC, &[1]);
        c.keys(C, sealer(0));
        c.sealed(C, ct::HANDSHAKE, &fin(9));
        c.plain(
            S,
            ct::HANDSHAKE,
            &hs_msg(hs::NEW_SESSION_TICKET, &filled(6, 180)),
        );
        c.plain(S, ct::CHANGE_CIPHER_SPEC, &[1]);
        c.keys(S, sealer(1));
        c.sealed(S, ct::HANDSHAKE, &fin(8));
    }
    c.app(C, REQUEST, 16384);
    c.app(S, RESPONSE, 16384);
    for i in 0..5u8 {
        c.app(C, &filled(i, 33 + 900 * i as usize), 700);
        c.app(S, &filled(i + 9, 5000 * i as usize + 2), 16384);
    }
    c.sealed(C, ct::ALERT, &[1, 0]);
    c.sealed(S, ct::ALERT, &[1, 0]);
    c
}

// ---------------------------------------------------------------- running them

/// What came out of a connection.
#[derive(Debug, Default, PartialEq, Eq)]
struct Out {
    plain: [Vec<u8>; 2],
    /// (direction, bytes) of each Gap event.
    gaps: Vec<(usize, u64)>,
}

/// Feeds the writes (each cut where `cut` says) and collects the output.
fn run_with(
    c: &Conv,
    keys: &dyn Fn(usize) -> KeyLog,
    cut: &mut dyn FnMut(&[u8]) -> Vec<usize>,
) -> (TlsFacts, Out) {
    let mut conn = TlsConn::new();
    let mut out = Out::default();
    let mut frame = 0;
    for (i, (d, w)) in c.writes.iter().enumerate() {
        let k = keys(i);
        let mut at = 0;
        let mut cuts = cut(w);
        cuts.push(w.len());
        for end in cuts {
            let end = end.clamp(at, w.len());
            if end == at {
                continue;
            }
            frame += 1;
            let ctx = SegmentCtx {
                frame,
                ts_ns: frame as i64,
            };
            conn.on_event(*d, Event::Data(&w[at..end]), ctx, &k, &mut |dir: usize,
                                                                       ev: Event<
                '_,
            >| match ev {
                Event::Data(b) => out.plain[dir].extend(b),
                Event::Gap(n) => out.gaps.push((dir, n)),
            });
            at = end;
        }
    }
    (conn.facts().clone(), out)
}

fn run(c: &Conv) -> (TlsFacts, Out) {
    run_with(c, &|_| c.keylog.clone(), &mut |_| vec![])
}

fn assert_decrypted(c: &Conv, f: &TlsFacts, out: &Out, what: &str) {
    assert_eq!(f.state, TlsState::Decrypting, "{what}: {f:?}");
    assert_eq!(out.gaps, vec![], "{what}");
    assert!(
        out.plain[C] == c.expect[C],
        "{what}: client plaintext differs"
    );
    assert!(
        out.plain[S] == c.expect[S],
        "{what}: server plaintext differs"
    );
    assert!(
        out.plain[C].starts_with(b"GET /chat") || out.plain[C].starts_with(b"0-RTT"),
        "{what}"
    );
    assert_eq!(f.anomalies, TlsAnomalies::default(), "{what}");
    assert!(
        f.dirs.iter().all(|d| d.close_notify_frame.is_some()),
        "{what}"
    );
}

// ---------------------------------------------------------------- TLS 1.3

#[test]
fn tls13_each_suite() {
    for (suite, name) in [
        (0x1301, "TLS_AES_128_GCM_SHA256"),
        (0x1302, "TLS_AES_256_GCM_SHA384"),
        (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    ] {
        let c = tls13(suite, T13Opts::default());
        let (f, out) = run(&c);
        assert_decrypted(&c, &f, &out, name);
        assert_eq!(f.version, Some(TlsVersion::Tls13));
        assert_eq!(f.cipher_suite.unwrap().to_string(), name);
        assert_eq!(f.sni, "example.com");
        assert_eq!(f.alpn.as_deref(), Some("http/1.1"));
        assert_eq!(f.alpn_offered, ["http/1.1"]);
        assert_eq!(f.client_dir, Some(C));
        assert!(!f.resumed && !f.hello_retry_request);
        // Handshake (2) + NewSessionTicket + 101 + 5 messages in 1000-byte records + alert.
        assert_eq!(f.dirs[S].failed_records + f.dirs[S].skipped_records, 0);
    }
}

#[test]
fn tls13_key_update_psk_hrr_and_compat_ccs() {
    for (o, what) in [
        (
            T13Opts {
                key_update: true,
                ..Default::default()
            },
            "key update",
        ),
        (
            T13Opts {
                psk: true,
                ..Default::default()
            },
            "psk",
        ),
        (
            T13Opts {
                hrr: true,
                compat_ccs: true,
                ..Default::default()
            },
            "hrr",
        ),
        (
            T13Opts {
                compat_ccs: true,
                key_update: true,
                psk: true,
                ..Default::default()
            },
            "all",
        ),
    ] {
        for suite in [0x1301, 0x1302, 0x1303] {
            let c = tls13(suite, o);
            let (f, out) = run(&c);
            assert_decrypted(&c, &f, &out, what);
            assert_eq!(f.resumed, o.psk, "{what}");
            assert_eq!(f.hello_retry_request, o.hrr, "{what}");
            let ku = o.key_update as u32;
            assert_eq!(
                (f.dirs[C].key_updates, f.dirs[S].key_updates),
                (ku, ku),
                "{what}"
            );
        }
    }
}

#[test]
fn tls13_early_data_accepted_and_rejected() {
    let c = tls13(
        0x1301,
        T13Opts {
            early: Some(true),
            compat_ccs: true,
            ..Default::default()
        },
    );
    let (f, out) = run(&c);
    assert_decrypted(&c, &f, &out, "0-RTT accepted");
    assert!(out.plain[C].starts_with(b"0-RTT: GET /early"));
    assert_eq!(f.early_data, conn_early(true));

    let c = tls13(
        0x1302,
        T13Opts {
            early: Some(false),
            ..Default::default()
        },
    );
    let (f, out) = run(&c);
    assert_decrypted(&c, &f, &out, "0-RTT rejected");
    assert_eq!(f.early_data, conn_early(false));
    // Both early records were skipped, as the server skipped them.
    assert_eq!(f.dirs[C].skipped_records, 2);
}

fn conn_early(accepted: bool) -> EarlyData {
    if accepted {
        EarlyData::Accepted
    } else {
        EarlyData::Rejected
    }
}

#[test]
fn tls13_with_application_secrets_only() {
    let c = tls13(
        0x1303,
        T13Opts {
            app_secrets_only: true,
            ..Default::default()
        },
    );
    let (f, out) = run(&c);
    assert_eq!(f.state, TlsState::Decrypting);
    assert_eq!(out.plain, c.expect);
    // Without the handshake keys the server's ALPN is not known; the rest is.
    assert_eq!(f.alpn, None);
    assert!(f.dirs[S].skipped_records >= 1 && f.dirs[C].skipped_records == 1);
}

// ---------------------------------------------------------------- TLS 1.2

#[test]
fn tls12_each_record_format() {
    for (suite, etm) in [
        (0xC02F, false), // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        (0xC030, false), // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        (0xCCA8, false), // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        (0xC013, false), // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        (0xC013, true),
        (0xC027, false), // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
        (0xC028, true),  // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
        (0x0035, false), // TLS_RSA_WITH_AES_256_CBC_SHA
    ] {
        for resumed in [false, true] {
            let c = tls12(suite, T12Opts { etm, resumed });
            let (f, out) = run(&c);
            let what = format!("{} etm={etm} resumed={resumed}", CipherSuite(suite));
            assert_decrypted(&c, &f, &out, &what);
            assert_eq!(f.version, Some(TlsVersion::Tls12));
            assert_eq!(f.resumed, resumed, "{what}");
            assert_eq!(f.encrypt_then_mac, etm, "{what}");
            assert_eq!(f.sni, "ws.example.org");
            assert_eq!(f.alpn.as_deref(), Some("http/1.1"));
        }
    }
}

// ---------------------------------------------------------------- keys missing or wrong

#[test]
fn wrong_key_is_decrypt_failed_and_no_garbage() {
    for mut c in [
        tls13(0x1301, T13Opts::default()),
        tls12(0xC02F, T12Opts::default()),
        tls12(0xC013, T12Opts::default()),
    ] {
        // A key log of "another capture": same client random, other secrets.
        let mut wrong = KeyLog::new();
        let cr = hex(&c.client_random);
        for label in [
            "CLIENT_RANDOM",
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
        ] {
            let n = if label == "CLIENT_RANDOM" { 48 } else { 32 };
            wrong.add_text(format!("{label} {cr} {}\n", hex(&filled(200, n))).as_bytes());
        }
        c.keylog = wrong;
        let (f, out) = run(&c);
        assert_eq!(f.state, TlsState::DecryptFailed);
        assert!(f.anomalies.decrypt_failed && !f.anomalies.no_key);
        assert_eq!(out, Out::default(), "nothing is handed on");
    }
}

#[test]
fn no_key_and_unsupported_suite() {
    for c in [
        tls13(0x1301, T13Opts::default()),
        tls12(0xCCA8, T12Opts::default()),
    ] {
        let (f, out) = run_with(&c, &|_| KeyLog::new(), &mut |_| vec![]);
        assert_eq!(f.state, TlsState::NoKey);
        assert!(f.anomalies.no_key);
        assert_eq!(out, Out::default());
        // SNI, version and suite are known without keys.
        assert!(!f.sni.is_empty() && f.version.is_some() && f.cipher_suite.is_some());
    }
    // TLS_AES_128_CCM_SHA256: named, not decrypted.
    let mut c = Conv::new([1; 32]);
    c.plain(
        C,
        ct::HANDSHAKE,
        &client_hello(
            &[1; 32],
            &[],
            &[0x1304],
            &[(ext::SUPPORTED_VERSIONS, vec![2, 3, 4])],
        ),
    );
    c.plain(
        S,
        ct::HANDSHAKE,
        &server_hello(
            &[2; 32],
            &[],
            0x1304,
            &[(ext::SUPPORTED_VERSIONS, vec![3, 4])],
        ),
    );
    c.write(S, plain_record(ct::APPLICATION_DATA, &[0; 100]));
    let (f, out) = run(&c);
    assert_eq!(f.state, TlsState::UnsupportedCipher);
    assert!(f.anomalies.unsupported_cipher);
    assert_eq!(
        f.cipher_suite.unwrap().to_string(),
        "TLS_AES_128_CCM_SHA256"
    );
    assert_eq!(out, Out::default());
}

/// Secrets that arrive later in the capture (a Decryption Secrets Block after the
/// ClientHello) serve the connection: keys are asked for when needed.
#[test]
fn secrets_asked_for_when_needed() {
    let c = tls13(0x1301, T13Opts::default());
    let (f, out) = run_with(
        &c,
        &|i| {
            if i == 0 {
                KeyLog::new()
            } else {
                c.keylog.clone()
            }
        },
        &mut |_| vec![],
    );
    assert_decrypted(&c, &f, &out, "DSB after the ClientHello");
    let c = tls12(0xC030, T12Opts::default());
    // Known only from the client's ChangeCipherSpec on (write 3).
    let (f, out) = run_with(
        &c,
        &|i| {
            if i < 3 {
                KeyLog::new()
            } else {
                c.keylog.clone()
            }
        },
        &mut |_| vec![],
    );
    assert_decrypted(&c, &f, &out, "TLS 1.2, secrets at CCS");
}

#[test]
fn not_tls() {
    let mut conn = TlsConn::new();
    conn.on_event(
        0,
        Event::Data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        SegmentCtx::default(),
        &NoKeys,
        &mut |_: usize, _: Event<'_>| panic!("no output"),
    );
    assert_eq!(conn.facts().state, TlsState::NotTls);
    assert_eq!(probe_client_hello(b"GET / HTTP/1.1"), Probe::NotTls);
    let c = tls12(0xC02F, T12Opts::default());
    let ch = &c.writes[0].1;
    assert_eq!(probe_client_hello(ch), Probe::ClientHello);
    for n in 0..11 {
        assert_eq!(probe_client_hello(&ch[..n]), Probe::NeedMore, "prefix {n}");
    }
    assert_eq!(
        probe_client_hello(&c.writes[1].1),
        Probe::NotTls,
        "a ServerHello"
    );
}

// ---------------------------------------------------------------- gaps

/// Replaces bytes `[from, to)` of direction `d`'s stream (counted over all its writes) by
/// a gap; returns what comes out.
fn run_with_gap(c: &Conv, d: usize, from: usize, to: usize) -> (TlsFacts, Out) {
    let mut conn = TlsConn::new();
    let mut out = Out::default();
    let mut pos = [0usize; 2];
    let mut sink = |dir: usize, ev: Event<'_>| match ev {
        Event::Data(b) => out.plain[dir].extend(b),
        Event::Gap(n) => out.gaps.push((dir, n)),
    };
    for (i, (wd, w)) in c.writes.iter().enumerate() {
        let start = pos[*wd];
        pos[*wd] += w.len();
        let ctx = SegmentCtx {
            frame: i as u64 + 1,
            ts_ns: 0,
        };
        if *wd != d || to <= start || from >= start + w.len() {
            conn.on_event(*wd, Event::Data(w), ctx, &c.keylog, &mut sink);
            continue;
        }
        let a = from.max(start) - start;
        let b = to.min(start + w.len()) - start;
        if a > 0 {
            conn.on_event(*wd, Event::Data(&w[..a]), ctx, &c.keylog, &mut sink);
        }
        conn.on_event(*wd, Event::Gap((b - a) as u64), ctx, &c.keylog, &mut sink);
        if b < w.len() {
            conn.on_event(*wd, Event::Data(&w[b..]), ctx, &c.keylog, &mut sink);
        }
    }
    (conn.facts().clone(), out)
}

/// Offsets of the records of direction `d` in its stream: (start, total length).
fn records_of(c: &Conv, d: usize) -> Vec<(usize, usize)> {
    let stream: Vec<u8> = c
        .writes
        .iter()
        .filter(|w| w.0 == d)
        .flat_map(|w| w.1.clone())
        .collect();
    let mut v = Vec::new();
    let mut at = 0;
    while at + 5 <= stream.len() {
        let len = u16::from_be_bytes([stream[at + 3], stream[at + 4]]) as usize;
        v.push((at, 5 + len));
        at += 5 + len;
    }
    v
}

#[test]
fn gap_inside_one_record_costs_that_record_only() {
    let c = tls12(0xC02F, T12Opts::default());
    let recs = records_of(&c, S);
    // A large server record near the end: lose 100 bytes in its middle.
    let &(start, len) = recs.iter().rev().find(|r| r.1 > 10000).unwrap();
    let (f, out) = run_with_gap(&c, S, start + 2000, start + 2100);
    assert_eq!(f.state, TlsState::Decrypting);
    assert!(f.anomalies.gap);
    // Exactly that record's plaintext is reported missing (GCM: 8 + 16 bytes overhead).
    assert_eq!(out.gaps, vec![(S, (len - 5 - 24) as u64)]);
    assert!(out.plain[C] == c.expect[C]);
    let i = recs.iter().position(|r| r.0 == start).unwrap();
    assert!(out.plain[S] == expect_without(&c, S, i, i, 24));
    assert_eq!(f.dirs[S].gaps_recovered, 0);
}

/// The application data of direction `d` without the plaintext of its records
/// `first..=last` (AEAD: `overhead` bytes per record), counted from the end (the last
/// record is the close_notify).
fn expect_without(c: &Conv, d: usize, first: usize, last: usize, overhead: usize) -> Vec<u8> {
    let recs = records_of(c, d);
    let plain = |r: &(usize, usize)| r.1 - 5 - overhead;
    let lost: usize = recs[first..=last].iter().map(plain).sum();
    let after: usize = recs[last + 1..recs.len() - 1].iter().map(plain).sum();
    let e = &c.expect[d];
    [&e[..e.len() - after - lost], &e[e.len() - after..]].concat()
}

#[test]
fn gap_hiding_headers_is_recovered_by_trial() {
    for (c, overhead, what) in [
        (
            tls12(0xC02F, T12Opts::default()),
            24,
            "TLS 1.2 GCM (explicit nonce hint)",
        ),
        (tls12(0xCCA8, T12Opts::default()), 16, "TLS 1.2 ChaCha20"),
        (tls12(0xC013, T12Opts::default()), 0, "TLS 1.2 CBC"),
        (tls13(0x1302, T13Opts::default()), 17, "TLS 1.3"),
    ] {
        // Client side: records of the 4th and 5th messages (700-byte records); lose from
        // the middle of one record to the middle of a later one.
        let recs = records_of(&c, C);
        let n = recs.len();
        let (a, b) = (recs[n - 8], recs[n - 4]);
        let (from, to) = (a.0 + a.1 / 2, b.0 + 3);
        let (f, out) = run_with_gap(&c, C, from, to);
        assert_eq!(f.state, TlsState::Decrypting, "{what}");
        assert_eq!(f.dirs[C].gaps_recovered, 1, "{what}");
        assert!(f.anomalies.gap && !f.anomalies.decrypt_failed, "{what}");
        assert_eq!(out.plain[S], c.expect[S], "{what}");
        // Records n-8 ..= n-4 are lost (5 records); the rest is exact.
        let lost_plain: usize = recs[n - 8..=n - 4].iter().map(|r| r.1 - 5).sum::<usize>();
        let total: usize = out
            .gaps
            .iter()
            .filter(|g| g.0 == C)
            .map(|g| g.1 as usize)
            .sum();
        if overhead > 0 {
            let lost = lost_plain - 5 * overhead;
            assert!(
                out.plain[C] == expect_without(&c, C, n - 8, n - 4, overhead),
                "{what}"
            );
            // AEAD overhead is fixed: the missing plaintext is known exactly.
            assert_eq!(total, lost, "{what}");
        } else {
            // CBC: the plaintext after the gap is exact, the gap size an estimate.
            assert!(
                c.expect[C].ends_with(&out.plain[C][out.plain[C].len() - 600..]),
                "{what}"
            );
            assert!(total > 0);
        }
    }
}

#[test]
fn gap_over_a_key_update_is_recovered_with_the_next_generation() {
    let c = tls13(
        0x1301,
        T13Opts {
            key_update: true,
            ..Default::default()
        },
    );
    let stream: Vec<u8> = c
        .writes
        .iter()
        .filter(|w| w.0 == C)
        .flat_map(|w| w.1.clone())
        .collect();
    let recs = records_of(&c, C);
    // The client's KeyUpdate is the record after the 3rd message (index: handshake 1
    // (CH) + Finished + request records + ...): find the 1st 1-byte-body handshake record
    // by its length (header 5 + 1 type + 4 header + 1 body + 1 inner type + 16 tag).
    let ku = recs.iter().position(|r| r.1 == 5 + 4 + 1 + 1 + 16).unwrap();
    assert_eq!(stream[recs[ku].0], ct::APPLICATION_DATA);
    let (from, to) = (recs[ku - 1].0 + 10, recs[ku + 1].0 + 2);
    let (f, out) = run_with_gap(&c, C, from, to);
    assert_eq!(f.state, TlsState::Decrypting);
    assert_eq!(f.dirs[C].gaps_recovered, 1);
    assert_eq!(out.plain[S], c.expect[S]);
    assert!(c.expect[C].ends_with(&out.plain[C][out.plain[C].len() - 1000..]));
    assert!(
        f.dirs[C].close_notify_frame.is_some(),
        "decrypted to the end"
    );
}

#[test]
fn gap_without_recovery_gives_up_the_direction() {
    let mut c = tls12(0xC02F, T12Opts::default());
    // After the gap, only garbage that looks like records: nothing authenticates.
    let junk: Vec<u8> = (0..40)
        .flat_map(|i| plain_record(ct::APPLICATION_DATA, &filled(i, 300)))
        .collect();
    let n = c.writes.len();
    c.writes.insert(n - 2, (C, junk));
    let recs = records_of(&c, C);
    let junk_start = recs[recs.len() - 41].0; // first junk record
    let (f, out) = run_with_gap(&c, C, junk_start - 30, junk_start + 7);
    assert!(f.anomalies.gap);
    assert_eq!(f.dirs[C].gaps_recovered, 0);
    assert!(f.dirs[C].undecryptable_from_frame.is_some());
    assert_eq!(f.dirs[C].close_notify_frame, None);
    assert_eq!(
        out.plain[S], c.expect[S],
        "the other direction is unaffected"
    );
    assert!(out.gaps.iter().any(|g| g.0 == C));
}

#[test]
fn gap_in_the_client_hello_means_handshake_missing() {
    let c = tls13(0x1301, T13Opts::default());
    let (f, out) = run_with_gap(&c, C, 20, 60);
    assert_eq!(f.state, TlsState::HandshakeMissing);
    assert!(out.plain[C].is_empty() && out.plain[S].is_empty());
}

// ---------------------------------------------------------------- unread records

/// A sink that passes over a window `[from, to)` of each direction's plaintext unread, and
/// checks that the bytes it is given are the expected plaintext at their place.
struct Unreading<'a> {
    expect: &'a [Vec<u8>; 2],
    window: [(usize, usize); 2],
    pos: [usize; 2],
    passed: [u64; 2],
}

impl PlaintextSink for Unreading<'_> {
    fn event(&mut self, d: usize, ev: Event<'_>) {
        match ev {
            Event::Data(b) => {
                let p = self.pos[d];
                assert_eq!(b, &self.expect[d][p..p + b.len()], "direction {d} at {p}");
                self.pos[d] += b.len();
            }
            Event::Gap(n) => panic!("a gap of {n}"),
        }
    }

    fn unread(&self, d: usize) -> u64 {
        let (from, to) = self.window[d];
        let p = self.pos[d];
        if (from..to).contains(&p) {
            (to - p) as u64
        } else {
            0
        }
    }

    fn pass_over(&mut self, d: usize, n: u64) {
        assert!(n > 0 && n <= self.unread(d), "{n} bytes passed over");
        self.pos[d] += n as usize;
        self.passed[d] += n;
    }
}

/// Records wholly inside plaintext nobody reads are authenticated and passed over (the AEAD
/// suites, without `ring`); the others are decrypted as ever, KeyUpdates and alerts included; what
/// is read is the plaintext at its place, whatever the window.
#[test]
fn records_nobody_reads_are_passed_over_and_the_rest_read() {
    let key_update = T13Opts {
        key_update: true,
        ..Default::default()
    };
    let convs = [
        ("tls13-aes128gcm", tls13(0x1301, key_update), true),
        ("tls13-aes256gcm", tls13(0x1302, T13Opts::default()), true),
        ("tls13-chacha20", tls13(0x1303, T13Opts::default()), true),
        ("tls12-aes128gcm", tls12(0xC02F, T12Opts::default()), true),
        ("tls12-aes256gcm", tls12(0xC030, T12Opts::default()), true),
        ("tls12-chacha20", tls12(0xCCA8, T12Opts::default()), true),
        ("tls12-aes256cbc", tls12(0xC028, T12Opts::default()), false),
    ];
    for (name, c, aead) in &convs {
        // With `ring`, every record is opened whole (its AES-GCM is faster than GHASH alone).
        let aead = *aead && cfg!(not(feature = "ring"));
        let len = [c.expect[0].len(), c.expect[1].len()];
        for (w, window) in [
            [(0, len[0]), (0, len[1])],
            [(len[0] / 3, 2 * len[0] / 3), (len[1] / 3, 2 * len[1] / 3)],
            [(0, 0), (0, 0)],
        ]
        .into_iter()
        .enumerate()
        {
            let mut conn = TlsConn::new();
            let mut sink = Unreading {
                expect: &c.expect,
                window,
                pos: [0, 0],
                passed: [0, 0],
            };
            for (d, bytes) in &c.writes {
                conn.on_event(
                    *d,
                    Event::Data(bytes),
                    SegmentCtx::default(),
                    &c.keylog,
                    &mut sink,
                );
            }
            let f = conn.facts();
            assert_eq!(f.state, TlsState::Decrypting, "{name} window {w}");
            assert_eq!(
                sink.pos, len,
                "{name} window {w}: every byte, read or passed over"
            );
            for d in 0..2 {
                let unread = f.dirs[d].unread_records;
                assert_eq!(unread > 0, sink.passed[d] > 0, "{name} window {w} dir {d}");
                if !aead || w == 2 {
                    assert_eq!(unread, 0, "{name} window {w} dir {d}");
                }
                assert!(f.dirs[d].close_notify_frame.is_some(), "{name} dir {d}");
            }
            if aead && w == 0 {
                assert!(
                    sink.passed[0] > 0 && sink.passed[1] > 0,
                    "{name}: {:?}",
                    sink.passed
                );
            }
        }
    }
}

// ---------------------------------------------------------------- segmentation

fn conversations() -> Vec<Conv> {
    vec![
        tls13(
            0x1301,
            T13Opts {
                key_update: true,
                compat_ccs: true,
                ..Default::default()
            },
        ),
        tls13(
            0x1303,
            T13Opts {
                hrr: true,
                ..Default::default()
            },
        ),
        tls12(0xC030, T12Opts::default()),
        tls12(
            0xC028,
            T12Opts {
                etm: true,
                resumed: true,
            },
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any segmentation of the same TLS byte streams gives the same plaintext.
    #[test]
    fn any_segmentation_gives_the_same_plaintext(
        which in 0usize..4,
        seed in any::<u64>(),
        max_seg in prop_oneof![Just(1usize), 2usize..40, 40usize..3000],
    ) {
        let convs = conversations();
        let c = &convs[which];
        let mut state = seed | 1;
        let mut cut = |w: &[u8]| {
            let mut cuts = Vec::new();
            let mut at = 0;
            loop {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                at += 1 + (state % max_seg as u64) as usize;
                if at >= w.len() {
                    break;
                }
                cuts.push(at);
            }
            cuts
        };
        let (f, out) = run_with(c, &|_| c.keylog.clone(), &mut cut);
        prop_assert_eq!(f.state, TlsState::Decrypting);
        prop_assert!(out.gaps.is_empty());
        prop_assert!(out.plain == c.expect);
    }

    /// Any windows of plaintext nobody reads, in any segmentation: the bytes read are the
    /// plaintext at their place, the rest is passed over, and the facts are those of a
    /// whole decryption but for the count of records passed over.
    #[test]
    fn any_unread_windows_give_the_same_plaintext_and_facts(
        which in 0usize..4,
        seed in any::<u64>(),
        max_seg in prop_oneof![Just(7usize), 40usize..3000, Just(1 << 20)],
        windows in proptest::array::uniform2((0.0f64..1.0, 0.0f64..1.0)),
    ) {
        let convs = conversations();
        let c = &convs[which];
        let (whole, _) = run(c);
        let len = [c.expect[0].len(), c.expect[1].len()];
        let window = [0, 1].map(|d| {
            let (a, b) = windows[d];
            let (a, b) = ((a * len[d] as f64) as usize, (b * len[d] as f64) as usize);
            (a.min(b), a.max(b))
        });
        let mut conn = TlsConn::new();
        let mut sink = Unreading { expect: &c.expect, window, pos: [0, 0], passed: [0, 0] };
        let mut state = seed | 1;
        for (d, w) in &c.writes {
            for piece in w.chunks(1 + (state % max_seg as u64) as usize) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                conn.on_event(*d, Event::Data(piece), SegmentCtx::default(), &c.keylog, &mut sink);
            }
        }
        prop_assert_eq!(sink.pos, len);
        let mut f = conn.facts().clone();
        for d in 0..2 {
            prop_assert_eq!(f.dirs[d].unread_records > 0, sink.passed[d] > 0);
            f.dirs[d].unread_records = 0;
        }
        // Frame numbers differ with the segmentation; everything else is the same.
        prop_assert_eq!(format!("{:?}", f.state), format!("{:?}", whole.state));
        for d in 0..2 {
            let (a, b) = (&f.dirs[d], &whole.dirs[d]);
            prop_assert_eq!(
                (a.records, a.decrypted_records, a.plaintext_bytes, a.failed_records, a.key_updates),
                (b.records, b.decrypted_records, b.plaintext_bytes, b.failed_records, b.key_updates)
            );
        }
    }
}

/// Decrypt throughput through `TlsConn` for AES-128-GCM (TLS 1.3), with 16 KiB records
/// (bulk) and 120-byte records (chat), printed:
/// `cargo test --release --lib tls::tests::throughput -- --nocapture`.
#[test]
fn throughput_aes128gcm() {
    for (record, total) in [(16384usize, 64usize << 20), (120, 8 << 20)] {
        let hs = tls13(0x1301, T13Opts::default());
        let (hash, aead, [_, _, cap, _, _]) = tls13_secrets(0x1301);
        let sealer = Sealer::tls13(aead, hash, &cap);
        let n = if cfg!(debug_assertions) {
            total / record / 64
        } else {
            total / record
        };
        let payload = vec![0x42; record];
        let mut stream = Vec::with_capacity(n * (record + 22));
        for seq in 0..n as u64 {
            stream.extend(sealer.seal(ct::APPLICATION_DATA, &payload, seq));
        }
        // The handshake up to the client's Finished, then the stream in 1448-byte pieces
        // (TCP segments; records cross them) — the client's application keys start at
        // sequence number 0.
        let mut conn = TlsConn::new();
        let mut got = 0u64;
        let mut sink = |_: usize, ev: Event<'_>| {
            if let Event::Data(b) = ev {
                got += b.len() as u64
            }
        };
        for (d, w) in hs.writes.iter().take(4) {
            conn.on_event(
                *d,
                Event::Data(w),
                SegmentCtx::default(),
                &hs.keylog,
                &mut sink,
            );
        }
        let t = std::time::Instant::now();
        for piece in stream.chunks(1448) {
            conn.on_event(
                C,
                Event::Data(piece),
                SegmentCtx::default(),
                &hs.keylog,
                &mut sink,
            );
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(got, (n * record) as u64, "every record decrypted");
        eprintln!(
            "TLS 1.3 AES-128-GCM through TlsConn, {record}-byte records: {:.0} MB/s of ciphertext, \
             {:.2} M records/s ({} MiB in {:.3} s{})",
            stream.len() as f64 / secs / 1e6,
            n as f64 / secs / 1e6,
            stream.len() >> 20,
            secs,
            if cfg!(debug_assertions) { ", debug build" } else { "" }
        );
    }
}

// ---------------------------------------------------------------- damaged input

/// One way to damage a conversation's byte streams.
#[derive(Clone, Debug)]
enum Damage {
    /// XOR a byte of write `w` at `at` (both taken modulo the lengths).
    Flip { w: usize, at: usize, x: u8 },
    /// Replace `n` bytes of write `w` from `at` by a gap.
    Gap { w: usize, at: usize, n: usize },
    /// Insert garbage before write `w`.
    Garbage { w: usize, bytes: Vec<u8> },
    /// Drop everything from write `w` on.
    Truncate { w: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..).prop_map(|(w, at, x)| Damage::Flip { w, at, x }),
        (any::<usize>(), any::<usize>(), 1usize..3000).prop_map(|(w, at, n)| Damage::Gap {
            w,
            at,
            n
        }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(w, bytes)| Damage::Garbage { w, bytes }),
        any::<usize>().prop_map(|w| Damage::Truncate { w }),
    ]
}

/// Every byte handed on must be bytes the peer really sent: a substring of the original
/// application data of that direction (gaps may cut it into pieces).
fn pieces_are_genuine(expect: &[u8], got: &[Vec<u8>]) -> bool {
    got.iter()
        .all(|p| p.is_empty() || expect.windows(p.len()).any(|w| w == &p[..]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Damaged streams never panic, and nothing that did not authenticate is handed on.
    #[test]
    fn damaged_streams_never_panic_nor_invent_bytes(
        which in 0usize..4,
        damages in proptest::collection::vec(damage(), 1..4),
        seg in 1usize..2000,
    ) {
        let convs = conversations();
        let c = &convs[which];
        // (direction, bytes, gap: (offset, length)) per write.
        type Write = (usize, Vec<u8>, Option<(usize, usize)>);
        let mut writes: Vec<Write> =
            c.writes.iter().map(|(d, w)| (*d, w.clone(), None)).collect();
        for dmg in &damages {
            let nw = writes.len();
            match dmg.clone() {
                Damage::Flip { w, at, x } => {
                    let wr = &mut writes[w % nw].1;
                    let i = at % wr.len();
                    wr[i] ^= x;
                }
                Damage::Gap { w, at, n } => {
                    let (_, wr, gap) = &mut writes[w % nw];
                    let a = at % wr.len();
                    *gap = Some((a, n.min(wr.len() - a)));
                }
                Damage::Garbage { w, bytes } => {
                    let d = writes[w % nw].0;
                    writes.insert(w % nw, (d, bytes, None));
                }
                Damage::Truncate { w } => writes.truncate((w % nw).max(1)),
            }
        }
        let mut conn = TlsConn::new();
        // Pieces of plaintext between gaps, per direction.
        let mut pieces: [Vec<Vec<u8>>; 2] = [vec![vec![]], vec![vec![]]];
        let mut sink = |dir: usize, ev: Event<'_>| match ev {
            Event::Data(b) => pieces[dir].last_mut().unwrap().extend(b),
            Event::Gap(n) => {
                assert!(n > 0, "an empty gap");
                pieces[dir].push(vec![]);
            }
        };
        for (i, (d, w, gap)) in writes.iter().enumerate() {
            let ctx = SegmentCtx { frame: i as u64 + 1, ts_ns: 0 };
            let (a, n) = gap.unwrap_or((w.len(), 0));
            for part in w[..a].chunks(seg) {
                conn.on_event(*d, Event::Data(part), ctx, &c.keylog, &mut sink);
            }
            if n > 0 {
                conn.on_event(*d, Event::Gap(n as u64), ctx, &c.keylog, &mut sink);
            }
            for part in w[a + n..].chunks(seg) {
                conn.on_event(*d, Event::Data(part), ctx, &c.keylog, &mut sink);
            }
        }
        // Bounded buffers whatever happened.
        prop_assert!(conn.held_bytes() < 3 * MAX_RECORD_BUFFER + MAX_HANDSHAKE_MESSAGE);
        for (d, p) in pieces.iter().enumerate() {
            prop_assert!(pieces_are_genuine(&c.expect[d], p), "direction {}", d);
        }
    }
}

/// A KeyLog is shared by every thread (behind an Arc); a TlsConn lives in one shard and
/// may be moved to the thread that runs it.
#[test]
fn keylog_is_shareable_and_conn_is_sendable() {
    fn shared<T: Send + Sync>() {}
    fn sendable<T: Send>() {}
    shared::<KeyLog>();
    shared::<std::sync::Arc<KeyLog>>();
    sendable::<TlsConn>();
    // Small enough to sit in every connection's state; keys and buffers are on the heap.
    let size = std::mem::size_of::<TlsConn>();
    assert!(size <= 1024, "TlsConn is {size} bytes");
    eprintln!("size_of::<TlsConn>() = {size}");
}
