//! The real wss:// captures of `fixtures/tls/` (recorded by `fixtures/record/record_tls.sh`)
//! through capture reading, decoding, TCP reassembly and [`TlsConn`]: every connection
//! decrypts; its plaintext holds the HTTP Upgrade request and the 101; the WebSocket frames
//! in it give the messages, pings and close codes the programs logged; version, suite, SNI,
//! ALPN and resumption match what they negotiated. The same with the key log from the
//! pcapng's Decryption Secrets Block, without keys, and with the wrong keys.

use std::collections::HashMap;

use serde_json::Value;

use super::*;
use crate::capture::{Batch, Capture, Fill};
use crate::config::Limits;
use crate::decode::{decode, ACK, RST, SYN};
use crate::flow::reassembly::{HalfStream, ReassemblyLimits};
use crate::net::FlowKey;
use crate::ws::frame::{frame_header, opcode};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
const CAPTURES: [&str; 5] = [
    "tls13-suites",
    "tls12",
    "tls-resume",
    "tls13-keyupdate",
    "tls-browser",
];

/// One TCP connection after decryption.
struct Decrypted {
    /// `ip:port` of each direction's sender (0: the lower endpoint).
    sender: [String; 2],
    facts: TlsFacts,
    plain: [Vec<u8>; 2],
    gaps: u32,
    /// Where Gap events fell in `plain` (offset, bytes), which holds zeros for them when
    /// `fill_gaps`.
    holes: [Vec<(usize, usize)>; 2],
}

fn analyze(path: &str, keys: &dyn Fn() -> KeyLog) -> Vec<Decrypted> {
    analyze_with(path, keys, false)
}

fn analyze_with(path: &str, keys: &dyn Fn() -> KeyLog, fill_gaps: bool) -> Vec<Decrypted> {
    struct Conn {
        half: [HalfStream; 2],
        tls: TlsConn,
        out: Decrypted,
    }
    let limits = ReassemblyLimits {
        max_held_bytes: 1 << 20,
        max_held_segments: 512,
        max_seq_ahead: 1 << 30,
    };
    let keys = keys();
    let mut conns: HashMap<FlowKey, Conn> = HashMap::new();
    let mut order = Vec::new();
    let mut capture = Capture::open(&[path.to_string()], &Limits::default());
    let mut batch = Batch::default();
    loop {
        batch.clear();
        let fill = capture.fill(&mut batch);
        for p in &batch.packets {
            let data = batch.data(p);
            let Ok(seg) = decode(p.linktype, data) else {
                continue;
            };
            let d = usize::from(!seg.from_lo);
            let c = conns.entry(seg.key).or_insert_with(|| {
                order.push(seg.key);
                Conn {
                    half: Default::default(),
                    tls: TlsConn::new(),
                    out: Decrypted {
                        sender: [seg.key.lo.to_string(), seg.key.hi.to_string()],
                        facts: TlsConn::new().facts().clone(),
                        plain: Default::default(),
                        gaps: 0,
                        holes: Default::default(),
                    },
                }
            });
            let Conn { half, tls, out } = c;
            let ctx = SegmentCtx {
                frame: p.number,
                ts_ns: p.ts_ns,
            };
            let mut sink = |dir: usize, ev: Event<'_>| match ev {
                Event::Data(b) => out.plain[dir].extend_from_slice(b),
                Event::Gap(n) => {
                    out.gaps += 1;
                    out.holes[dir].push((out.plain[dir].len(), n as usize));
                    if fill_gaps {
                        out.plain[dir].resize(out.plain[dir].len() + n as usize, 0);
                    }
                }
            };
            if seg.flags & SYN != 0 {
                half[d].syn(seg.seq);
            }
            // As flow/conn.rs: an ACK tells the other direction that bytes it has not seen
            // were sent (a gap).
            if seg.flags & ACK != 0 {
                half[1 - d].acked(seg.ack, &limits, &mut |ev| {
                    tls.on_event(1 - d, ev, ctx, &keys, &mut sink)
                });
            }
            if seg.flags & RST != 0 {
                continue;
            }
            let payload = &data[seg.payload_off as usize..][..seg.payload_len as usize];
            let fin = seg.flags & crate::decode::FIN != 0;
            half[d].segment(
                seg.seq,
                payload,
                seg.payload_missing,
                fin,
                &limits,
                &mut |ev| tls.on_event(d, ev, ctx, &keys, &mut sink),
            );
        }
        if let Fill::End = fill {
            break;
        }
    }
    assert!(capture.take_errors().is_empty());
    order
        .into_iter()
        .map(|k| {
            let mut c = conns.remove(&k).unwrap();
            let Conn { half, tls, out } = &mut c;
            for (d, h) in half.iter_mut().enumerate() {
                h.flush(&mut |ev| {
                    tls.on_event(
                        d,
                        ev,
                        SegmentCtx::default(),
                        &keys,
                        &mut |dir: usize, ev: Event<'_>| match ev {
                            Event::Data(b) => out.plain[dir].extend_from_slice(b),
                            Event::Gap(n) => {
                                out.gaps += 1;
                                out.holes[dir].push((out.plain[dir].len(), n as usize));
                            }
                        },
                    )
                });
            }
            c.out.facts = c.tls.facts().clone();
            c.out
        })
        .collect()
}

fn truth(name: &str) -> Vec<Value> {
    std::fs::read_to_string(format!("{DIR}/{name}.truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn keylog(name: &str) -> KeyLog {
    let mut k = KeyLog::new();
    let stats = k.add_file(format!("{DIR}/{name}.keys")).unwrap();
    assert_eq!((stats.malformed, stats.secrets > 0), (0, true));
    k
}

/// The key log of the pcapng's Decryption Secrets Block(s).
fn dsb_keylog(name: &str) -> KeyLog {
    use pcap_parser::pcapng::Block;
    use pcap_parser::{PcapBlockOwned, PcapNGSlice};
    let bytes = std::fs::read(format!("{DIR}/{name}.pcapng")).unwrap();
    let mut k = KeyLog::new();
    let mut blocks = 0;
    for b in PcapNGSlice::from_slice(&bytes).unwrap() {
        if let Ok(PcapBlockOwned::NG(Block::DecryptionSecrets(dsb))) = b {
            blocks += 1;
            let stats = k
                .add_decryption_secrets_block(dsb.secrets_type.0, dsb.data)
                .expect("a TLS key log");
            assert!(stats.secrets > 0);
        }
    }
    assert_eq!(blocks, 1);
    k
}

/// Data messages, pings and the close code (`None`: no close frame; `Some(None)`: a close
/// frame without a code) of one direction's WebSocket frames.
#[derive(Debug, PartialEq)]
struct Frames {
    messages: u64,
    pings: u64,
    close: Option<Option<u16>>,
}

fn frames(mut b: &[u8]) -> Frames {
    let mut f = Frames {
        messages: 0,
        pings: 0,
        close: None,
    };
    while !b.is_empty() {
        let (rest, h) = frame_header(b).expect("a whole frame header");
        let n = h.payload_len as usize;
        assert!(rest.len() >= n, "a whole frame");
        let payload = &rest[..n];
        match h.opcode {
            opcode::TEXT | opcode::BINARY | opcode::CONTINUATION if h.fin => f.messages += 1,
            opcode::PING => f.pings += 1,
            opcode::CLOSE if f.close.is_none() => {
                f.close = Some((n >= 2).then(|| {
                    let m = h.masking_key.unwrap_or([0; 4]);
                    u16::from_be_bytes([payload[0] ^ m[0], payload[1] ^ m[1]])
                }));
            }
            _ => {}
        }
        b = &rest[n..];
    }
    f
}

fn close_code(v: &Value) -> Option<Option<u16>> {
    if v.is_null() {
        None
    } else {
        Some(v["code"].as_u64().map(|c| c as u16))
    }
}

/// Checks every connection of `name` decrypted with `keys` against the truth file.
fn check(name: &str, path: &str, keys: &dyn Fn() -> KeyLog) {
    let conns = analyze(path, keys);
    let truth = truth(name);
    // Every connection decrypts whole; those that are not sessions are the browser's page
    // loads (HTTP/1.1 GETs over TLS).
    for c in &conns {
        assert_eq!(c.facts.state, TlsState::Decrypting, "{name}");
        assert_eq!(
            (c.facts.anomalies, c.gaps),
            (TlsAnomalies::default(), 0),
            "{name}"
        );
    }
    let sessions = conns
        .iter()
        .filter(|c| c.plain.iter().any(|p| p.starts_with(b"GET /s?sid=")))
        .count();
    assert_eq!(
        sessions,
        truth.len(),
        "{name}: one TCP connection per session"
    );
    for c in conns
        .iter()
        .filter(|c| !c.plain.iter().any(|p| p.starts_with(b"GET /s?")))
    {
        let cd = c.facts.client_dir.unwrap();
        assert!(
            name == "tls-browser",
            "{name}: a connection that is not a session"
        );
        if c.plain[cd].is_empty() {
            // Chromium's preconnect: a handshake, no request.
            assert!(c.facts.dirs.iter().all(|d| d.decrypted_records > 0));
            continue;
        }
        assert!(
            c.plain[cd].starts_with(b"GET /page?"),
            "{name}: the page request"
        );
        assert!(
            c.plain[1 - cd].starts_with(b"HTTP/1.1 200 "),
            "{name}: the page"
        );
    }
    for t in &truth {
        let sid = t["sid"].as_str().unwrap();
        let what = format!("{name} {sid}");
        let c = conns
            .iter()
            .find(|c| {
                c.facts
                    .client_dir
                    .is_some_and(|d| c.sender[d] == t["client"])
            })
            .unwrap_or_else(|| panic!("{what}: no decrypted connection from {}", t["client"]));
        let f = &c.facts;
        let (cd, sd) = (f.client_dir.unwrap(), 1 - f.client_dir.unwrap());
        assert_eq!(f.state, TlsState::Decrypting, "{what}");
        assert_eq!(f.anomalies, TlsAnomalies::default(), "{what}");
        assert_eq!(c.gaps, 0, "{what}");
        let tt = &t["tls"];
        assert_eq!(
            f.version.map(|v| v.as_str()),
            tt["version"].as_str(),
            "{what}"
        );
        assert_eq!(
            f.cipher_suite.map(|s| s.to_string()).as_deref(),
            tt["cipher"].as_str(),
            "{what}"
        );
        assert_eq!(Some(f.sni.as_str()), tt["sni"].as_str(), "{what}");
        assert_eq!(f.alpn.as_deref(), tt["alpn"].as_str(), "{what}");
        assert_eq!(f.resumed, tt["resumed"].as_bool().unwrap(), "{what}");
        // The HTTP Upgrade request and the 101, then frames to the end of each direction.
        let (req, resp) = (&c.plain[cd], &c.plain[sd]);
        let head_end = |b: &[u8]| b.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(
            req.starts_with(format!("GET /s?sid={sid}&").as_bytes()),
            "{what}: {:?}",
            String::from_utf8_lossy(&req[..req.len().min(80)])
        );
        let req_head = String::from_utf8_lossy(&req[..head_end(req)]).to_lowercase();
        assert!(req_head.contains("upgrade: websocket"), "{what}");
        assert!(resp.starts_with(b"HTTP/1.1 101 "), "{what}");
        let client = frames(&req[head_end(req)..]);
        let server = frames(&resp[head_end(resp)..]);
        assert_eq!(
            (client.messages, client.pings, client.close),
            (
                t["c2s"]["messages"].as_u64().unwrap(),
                t["c2s"]["pings"].as_u64().unwrap(),
                close_code(&t["client_close"])
            ),
            "{what}: client side"
        );
        assert_eq!(
            (server.messages, server.pings, server.close),
            (
                t["s2c"]["messages"].as_u64().unwrap(),
                t["s2c"]["pings"].as_u64().unwrap(),
                close_code(&t["server_close"])
            ),
            "{what}: server side"
        );
        // KeyUpdates (tls13-keyupdate): each `K` or `k` the client sent, and the server's
        // answer to each `K` (update_requested).
        if let Some(sent) = t["client_view"]["key_updates_sent"].as_array() {
            let asked = sent.iter().filter(|l| *l == "K").count() as u32;
            assert_eq!(
                (f.dirs[cd].key_updates, f.dirs[sd].key_updates),
                (sent.len() as u32, asked),
                "{what}"
            );
            assert!(asked > 0);
        }
        // Every record was decrypted.
        for d in [cd, sd] {
            let df = &f.dirs[d];
            assert_eq!(
                df.records,
                df.decrypted_records + handshake_records(f, d),
                "{what} dir {d}"
            );
            assert_eq!(df.failed_records + df.skipped_records, 0, "{what}");
        }
    }
}

/// Records of direction `d` that are not protected: the hellos and the rest of the
/// plaintext handshake, ChangeCipherSpec.
fn handshake_records(f: &TlsFacts, d: usize) -> u64 {
    let df = &f.dirs[d];
    // Everything not decrypted must be plaintext handshake: at most a handful per side.
    let n = df.records - df.decrypted_records;
    assert!((1..=8).contains(&n), "{n} unprotected records");
    n
}

#[test]
fn every_fixture_decrypts_with_its_key_log() {
    for name in CAPTURES {
        check(name, &format!("{DIR}/{name}.pcap"), &|| keylog(name));
    }
}

#[test]
fn the_pcapng_carries_its_own_secrets() {
    for name in CAPTURES {
        check(name, &format!("{DIR}/{name}.pcapng"), &|| dsb_keylog(name));
    }
}

#[test]
fn without_keys_every_connection_is_no_key_and_nothing_is_handed_on() {
    for name in CAPTURES {
        let conns = analyze(&format!("{DIR}/{name}.pcap"), &KeyLog::new);
        for c in &conns {
            assert_eq!(c.facts.state, TlsState::NoKey, "{name}");
            assert!(c.facts.anomalies.no_key);
            assert!(c.plain[0].is_empty() && c.plain[1].is_empty() && c.gaps == 0);
            assert_eq!(c.facts.sni, "wsclose.test");
            assert!(c.facts.cipher_suite.is_some() && c.facts.version.is_some());
        }
    }
}

#[test]
fn the_key_log_of_another_capture_decrypts_nothing() {
    // The client randoms differ, so that is "no key"; with this capture's client randoms
    // and another capture's secrets, it is "decrypt failed".
    let conns = analyze(&format!("{DIR}/tls12.pcap"), &|| keylog("tls13-suites"));
    assert!(conns.iter().all(|c| c.facts.state == TlsState::NoKey));
    let mixed = || {
        let ours = std::fs::read_to_string(format!("{DIR}/tls12.keys")).unwrap();
        // Same labels and client randoms, every secret byte flipped.
        let flipped: String = ours
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                if f.len() != 3 {
                    return String::new();
                }
                let s: String = f[2]
                    .chars()
                    .map(|c| char::from_digit(15 - c.to_digit(16).unwrap(), 16).unwrap())
                    .collect();
                format!("{} {} {s}\n", f[0], f[1])
            })
            .collect();
        let mut k = KeyLog::new();
        k.add_text(flipped.as_bytes());
        k
    };
    let conns = analyze(&format!("{DIR}/tls12.pcap"), &mixed);
    assert_eq!(conns.len(), 6);
    for c in &conns {
        assert_eq!(c.facts.state, TlsState::DecryptFailed);
        assert!(c.facts.anomalies.decrypt_failed);
        assert!(c.plain[0].is_empty() && c.plain[1].is_empty(), "no garbage");
    }
}

/// tls-gap.pcap is tls13-suites.pcap without two segments of its first session: one inside
/// a client record, one over a server record header. Decryption goes on after both; each
/// gap is reported with the exact size of the plaintext lost (whole records); everything
/// else is the source's plaintext, byte for byte, to the close frames at the end.
#[test]
fn a_real_capture_with_gaps_decrypts_around_them() {
    let src = analyze(&format!("{DIR}/tls13-suites.pcap"), &|| {
        keylog("tls13-suites")
    });
    let gap = analyze_with(&format!("{DIR}/tls-gap.pcap"), &|| keylog("tls-gap"), true);
    assert_eq!(src.len(), gap.len());
    let t = &truth("tls-gap")[0];
    assert_eq!(t["gaps"].as_array().unwrap().len(), 2);
    for (s, g) in src.iter().zip(&gap).skip(1) {
        assert!(
            s.plain == g.plain && g.gaps == 0,
            "the other sessions are untouched"
        );
    }
    let (s, g) = (&src[0], &gap[0]);
    assert_eq!(g.facts.state, TlsState::Decrypting);
    assert!(g.facts.anomalies.gap && !g.facts.anomalies.decrypt_failed);
    let c = g.facts.client_dir.unwrap();
    // Client: the record is lost, the framing kept; server: recovered by trial.
    assert_eq!(
        (
            g.facts.dirs[c].gaps_recovered,
            g.facts.dirs[1 - c].gaps_recovered
        ),
        (0, 1)
    );
    for d in 0..2 {
        // One missing range each way (the server side reports the damaged record and the
        // records up to the one found again as two adjacent gaps).
        let holes = &g.holes[d];
        assert!(
            holes.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0),
            "{holes:?}"
        );
        let (at, n) = (holes[0].0, holes.iter().map(|h| h.1).sum::<usize>());
        assert_eq!(
            g.plain[d].len(),
            s.plain[d].len(),
            "the gap has the exact size"
        );
        assert!(n >= 16384, "at least one whole record");
        assert!(g.plain[d][..at] == s.plain[d][..at]);
        // After the gap, to the close frame at the end: the source's bytes.
        assert!(at + n < s.plain[d].len() && g.plain[d][at + n..] == s.plain[d][at + n..]);
        assert!(g.facts.dirs[d].close_notify_frame.is_some());
    }
}
