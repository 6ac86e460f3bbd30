//! Hand-built fixture captures with their ground truth
//! (`<name>.pcap[ng]` + `<name>.expected-truth.csv`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::pcap::{Link, PcapOpts, PcapWriter, PcapngWriter, TPID_8021AD, TPID_8021Q};
use super::scenario::{expected_csv, generate, ExpectedSession, GenConfig, Mix, WsConn};
use super::tcp::{Impair, Side, TcpSim};
use super::ws::{self, ClientHandshake, OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT};
use super::Rng;

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// A captured packet of a fixture: timestamp, connection index, direction, IP bytes.
#[derive(Clone, Debug)]
pub struct Pkt {
    /// Timestamp (ns).
    pub ts: u64,
    /// Index of the connection (selects the link framing).
    pub conn: usize,
    /// Sent by the client.
    pub from_client: bool,
    /// IP packet.
    pub ip: Vec<u8>,
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn conn(client: &str, server: &str, cisn: u32, sisn: u32, start: u64, seed: u64) -> WsConn {
    let mut t = TcpSim::new(sa(client), sa(server), cisn, sisn, T0 + start);
    t.ip.ip_id = (seed as u16).wrapping_mul(977);
    WsConn::new(t, Rng::new(seed))
}

fn drain(ws: &mut WsConn, idx: usize, out: &mut Vec<Pkt>) {
    drain_tcp(&mut ws.tcp, idx, out);
}

fn drain_tcp(tcp: &mut TcpSim, idx: usize, out: &mut Vec<Pkt>) {
    while let Some(s) = tcp.pop() {
        out.push(Pkt {
            ts: s.ts_ns,
            conn: idx,
            from_client: s.from == Side::Client,
            ip: tcp.ip_packet(&s),
        });
    }
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v);
    v
}

fn open_ws(ws: &mut WsConn, handshake: bool) {
    if handshake {
        ws.tcp.handshake();
    }
    ws.tcp.wait(MS);
    let hs = ClientHandshake::browser("example.com", "/chat", &mut ws.rng);
    ws.request(&hs);
    ws.tcp.wait(2 * MS);
    ws.accept(&hs);
    ws.tcp.wait(MS);
}

fn chat(ws: &mut WsConn) {
    ws.text(Side::Client, "hello from the client");
    ws.tcp.wait(MS);
    ws.text(Side::Server, "hello from the server, how are you?");
    ws.tcp.wait(MS);
    ws.ping(Side::Client, b"p1");
    ws.pong(Side::Server, b"p1");
    ws.tcp.wait(MS);
    let bin = random_bytes(&mut ws.rng, 3000);
    ws.message(Side::Server, OP_BINARY, &bin);
    ws.tcp.wait(MS);
    ws.text(Side::Client, &"x".repeat(200));
    ws.tcp.wait(MS);
}

fn close_clean(ws: &mut WsConn, first: Side, code: Option<u16>) {
    ws.close(first, code, if code.is_some() { "bye" } else { "" });
    ws.tcp.wait(MS);
    ws.close(first.other(), code, "");
    ws.tcp.wait(MS);
    ws.fin(Side::Server);
    ws.tcp.wait(MS);
    ws.fin(Side::Client);
}

/// The standard small session: handshake, chat, clean close.
fn basic(ws: &mut WsConn) {
    open_ws(ws, true);
    chat(ws);
    close_clean(ws, Side::Client, Some(1000));
}

fn write_pcap(path: &Path, pkts: &[Pkt], links: &[Link], o: PcapOpts) -> io::Result<()> {
    let lt = links[0].linktype();
    assert!(links.iter().all(|l| l.linktype() == lt));
    let mut w = PcapWriter::new(BufWriter::new(File::create(path)?), lt, o)?;
    for p in pkts {
        w.write_packet(p.ts, &links[p.conn].frame(&p.ip, p.from_client))?;
    }
    w.into_inner()?.flush()
}

fn sort(mut v: Vec<Pkt>) -> Vec<Pkt> {
    v.sort_by_key(|p| p.ts);
    v
}

struct Out<'a> {
    dir: &'a Path,
    files: Vec<PathBuf>,
}

impl Out<'_> {
    fn truth(&mut self, name: &str, sessions: &[ExpectedSession]) -> io::Result<()> {
        let p = self.dir.join(format!("{name}.expected-truth.csv"));
        fs::write(&p, expected_csv(sessions))?;
        self.files.push(p);
        Ok(())
    }

    fn pcap(
        &mut self,
        name: &str,
        pkts: &[Pkt],
        links: &[Link],
        o: PcapOpts,
        truth: &[ExpectedSession],
    ) -> io::Result<()> {
        let p = self.dir.join(format!("{name}.pcap"));
        write_pcap(&p, pkts, links, o)?;
        self.files.push(p);
        self.truth(name, truth)
    }

    fn simple(&mut self, name: &str, sessions: Vec<WsConn>, links: &[Link]) -> io::Result<()> {
        let mut pk = Vec::new();
        let mut truth = Vec::new();
        for (i, mut s) in sessions.into_iter().enumerate() {
            drain(&mut s, i, &mut pk);
            truth.push(s.expected());
        }
        self.pcap(name, &sort(pk), links, PcapOpts::default(), &truth)
    }
}

/// Writes every fixture into `dir` (created if needed); returns the files.
pub fn write_fixtures(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir.join("bad"))?;
    fs::create_dir_all(dir.join("rotated"))?;
    let mut o = Out {
        dir,
        files: Vec::new(),
    };
    let eth = || vec![Link::ethernet(); 8];

    // wraparound: both ISNs just below 2^32; request and data cross the wrap
    {
        let mut ws = conn(
            "10.1.0.1:50001",
            "192.0.2.80:80",
            u32::MAX - 399,
            u32::MAX - 999,
            0,
            1,
        );
        open_ws(&mut ws, true);
        chat(&mut ws);
        let big = random_bytes(&mut ws.rng, 4000);
        ws.message(Side::Client, OP_BINARY, &big);
        close_clean(&mut ws, Side::Server, Some(1001));
        o.simple("wraparound", vec![ws], &eth())?;
    }

    // gap-in-payload: capture lost segments strictly inside frame payloads
    {
        let mut ws = conn("10.1.0.2:50002", "192.0.2.80:80", 1000, 2000, 0, 2);
        open_ws(&mut ws, true);
        ws.text(Side::Client, "send me the file");
        let big = random_bytes(&mut ws.rng, 20_000);
        ws.send_frame(
            Side::Server,
            true,
            OP_BINARY,
            &big,
            &[Impair::CaptureLoss(5)],
        );
        let up = random_bytes(&mut ws.rng, 8000);
        ws.send_frame(
            Side::Client,
            true,
            OP_BINARY,
            &up,
            &[Impair::CaptureLoss(2)],
        );
        ws.text(Side::Server, "thanks");
        close_clean(&mut ws, Side::Client, Some(1000));
        o.simple("gap-in-payload", vec![ws], &eth())?;
    }

    // gap-over-header: the segment holding a server frame header is lost
    {
        let mut ws = conn("10.1.0.3:50003", "192.0.2.80:80", 5000, 6000, 0, 3);
        open_ws(&mut ws, true);
        ws.text(Side::Server, "first message");
        let big = random_bytes(&mut ws.rng, 10_000);
        ws.send_frame(
            Side::Server,
            true,
            OP_BINARY,
            &big,
            &[Impair::CaptureLoss(0)],
        );
        ws.track.unknown[Side::Server.idx()] = true;
        ws.text(Side::Server, "after the gap");
        ws.text(Side::Client, "client is fine");
        close_clean(&mut ws, Side::Client, Some(1000));
        o.simple("gap-over-header", vec![ws], &eth())?;
    }

    // vlan: 802.1Q single tag and 802.1ad + 802.1Q double tag
    {
        let mut a = conn("10.1.1.1:50010", "192.0.2.80:80", 100, 200, 0, 4);
        basic(&mut a);
        let mut b = conn("10.1.1.2:50011", "192.0.2.81:8080", 300, 400, 5 * MS, 5);
        basic(&mut b);
        let links = [
            Link::Ethernet {
                vlans: vec![(TPID_8021Q, 100)],
            },
            Link::Ethernet {
                vlans: vec![(TPID_8021AD, 200), (TPID_8021Q, 300)],
            },
        ];
        o.simple("vlan", vec![a, b], &links)?;
    }

    // sll / sll2: one IPv4 and one IPv6 session each
    for (name, link) in [("sll", Link::Sll), ("sll2", Link::Sll2 { ifindex: 3 })] {
        let mut a = conn("10.1.2.1:50020", "192.0.2.80:80", 7, 9, 0, 6);
        basic(&mut a);
        let mut b = conn(
            "[2001:db8::2:1]:50021",
            "[2001:db8::80]:8080",
            11,
            13,
            3 * MS,
            7,
        );
        basic(&mut b);
        o.simple(name, vec![a, b], &[link.clone(), link])?;
    }

    // ipv6-exthdr: every packet carries a hop-by-hop options header
    {
        let mut a = conn("[2001:db8::3:1]:50030", "[2001:db8::80]:80", 17, 19, 0, 8);
        a.tcp.ip.ipv6_hop_by_hop = true;
        basic(&mut a);
        o.simple("ipv6-exthdr", vec![a], &eth())?;
    }

    // raw IP: LINKTYPE_RAW (v4 + v6), LINKTYPE_IPV4, LINKTYPE_IPV6
    {
        let mk = |seed: u64, v6: bool| {
            let mut c = if v6 {
                conn(
                    "[2001:db8::4:1]:50040",
                    "[2001:db8::80]:80",
                    21,
                    23,
                    2 * MS,
                    seed,
                )
            } else {
                conn("10.1.4.1:50041", "192.0.2.80:80", 25, 27, 0, seed)
            };
            basic(&mut c);
            c
        };
        o.simple(
            "raw-ip",
            vec![mk(9, false), mk(10, true)],
            &[Link::Raw, Link::Raw],
        )?;
        o.simple("linktype-ipv4", vec![mk(11, false)], &[Link::Ipv4])?;
        o.simple("linktype-ipv6", vec![mk(12, true)], &[Link::Ipv6])?;
    }

    // null-loopback: AF_INET and the three BSD AF_INET6 values
    {
        let mut v = Vec::new();
        let mut links = Vec::new();
        for (i, af) in [2u32, 30, 24, 28].into_iter().enumerate() {
            let (c, s) = if af == 2 {
                ("127.0.0.1:50050".to_string(), "127.0.0.1:8080".to_string())
            } else {
                (format!("[::1]:{}", 50051 + i), "[::1]:8080".to_string())
            };
            let mut w = conn(
                &c,
                &s,
                1000 * i as u32,
                77,
                i as u64 * 4 * MS,
                13 + i as u64,
            );
            basic(&mut w);
            v.push(w);
            links.push(Link::Null { af_inet6: af });
        }
        o.simple("null-loopback", v, &links)?;
    }

    // pcapng-multi-if: Ethernet (if_tsresol 6) + raw IP (if_tsresol 9), interleaved
    {
        let mut a = conn("10.1.5.1:50060", "192.0.2.80:80", 31, 33, 0, 20);
        basic(&mut a);
        let mut b = conn("10.1.5.2:50061", "192.0.2.82:80", 35, 37, 1_500_123, 21);
        basic(&mut b);
        let mut pk = Vec::new();
        drain(&mut a, 0, &mut pk);
        drain(&mut b, 1, &mut pk);
        let pk = sort(pk);
        let p = dir.join("pcapng-multi-if.pcapng");
        let mut w = PcapngWriter::new(BufWriter::new(File::create(&p)?), false)?;
        let if0 = w.add_interface(Link::ethernet().linktype(), 262_144, 6)?;
        let if1 = w.add_interface(Link::Raw.linktype(), 262_144, 9)?;
        for x in &pk {
            if x.conn == 0 {
                w.write_packet(if0, x.ts, &Link::ethernet().frame(&x.ip, x.from_client))?;
            } else {
                w.write_packet(if1, x.ts, &Link::Raw.frame(&x.ip, x.from_client))?;
            }
        }
        w.into_inner()?.flush()?;
        o.files.push(p);
        o.truth("pcapng-multi-if", &[a.expected(), b.expected()])?;
    }

    // pcapng-sections: big-endian pcapng, two sections with their own IDBs
    {
        let mut a = conn("10.1.6.1:50070", "192.0.2.80:80", 41, 43, 0, 22);
        basic(&mut a);
        let mut b = conn("10.1.6.2:50071", "192.0.2.80:80", 45, 47, 2000 * MS, 23);
        basic(&mut b);
        let mut pa = Vec::new();
        drain(&mut a, 0, &mut pa);
        let mut pb = Vec::new();
        drain(&mut b, 0, &mut pb);
        let p = dir.join("pcapng-sections.pcapng");
        let mut w = PcapngWriter::new(BufWriter::new(File::create(&p)?), true)?;
        let i = w.add_interface(1, 0, 6)?;
        for x in &pa {
            w.write_packet(i, x.ts, &Link::ethernet().frame(&x.ip, x.from_client))?;
        }
        w.new_section()?;
        let _unused = w.add_interface(Link::Raw.linktype(), 0, 6)?;
        let j = w.add_interface(Link::Sll2 { ifindex: 2 }.linktype(), 0, 9)?;
        for x in &pb {
            w.write_packet(
                j,
                x.ts,
                &Link::Sll2 { ifindex: 2 }.frame(&x.ip, x.from_client),
            )?;
        }
        w.into_inner()?.flush()?;
        o.files.push(p);
        o.truth("pcapng-sections", &[a.expected(), b.expected()])?;
    }

    // pcapng-tsresol-binary: big-endian pcapng, if_tsresol 0x94 (2^-20 s units) and an
    // if_tsoffset of 1,000,000,000 s (timestamps count from 2001-09-09)
    {
        let mut a = conn("10.1.9.1:50090", "192.0.2.80:80", 61, 63, 123_456_789, 26);
        basic(&mut a);
        let mut pa = Vec::new();
        drain(&mut a, 0, &mut pa);
        let p = dir.join("pcapng-tsresol-binary.pcapng");
        let mut w = PcapngWriter::new(BufWriter::new(File::create(&p)?), true)?;
        let i = w.add_interface_with(1, 0, 0x94, 1_000_000_000)?;
        for x in &pa {
            w.write_packet(i, x.ts, &Link::ethernet().frame(&x.ip, x.from_client))?;
        }
        w.into_inner()?.flush()?;
        o.files.push(p);
        o.truth("pcapng-tsresol-binary", &[a.expected()])?;
    }

    // pcap-be-nsec: big-endian classic pcap with nanosecond timestamps
    {
        let mut a = conn("10.1.7.1:50080", "192.0.2.80:80", 51, 53, 123_456_789, 24);
        a.tcp.gap_ns = 12_345;
        basic(&mut a);
        let mut pk = Vec::new();
        drain(&mut a, 0, &mut pk);
        let opts = PcapOpts {
            big_endian: true,
            nanos: true,
            ..PcapOpts::default()
        };
        o.pcap("pcap-be-nsec", &pk, &eth(), opts, &[a.expected()])?;
    }

    // port-reuse: same 4-tuple, closed, then a new SYN -> two sessions
    {
        let mut a = conn(
            "10.1.8.1:50090",
            "192.0.2.80:80",
            1_000_000,
            2_000_000,
            0,
            25,
        );
        basic(&mut a);
        let start = a.tcp.clock_ns - T0 + 2000 * MS;
        let mut b = conn(
            "10.1.8.1:50090",
            "192.0.2.80:80",
            3_000_000_000,
            4_000_000_000,
            start,
            26,
        );
        open_ws(&mut b, true);
        b.text(Side::Client, "second connection on the same port");
        b.text(Side::Server, "welcome back");
        close_clean(&mut b, Side::Server, Some(4000));
        o.simple("port-reuse", vec![a, b], &eth())?;
    }

    // long-request-head / long-response-head: a handshake head of 40 KB (header lines
    // after the ones that matter), past the 16 KiB the analyzer buffers
    for (name, client_long) in [("long-request-head", true), ("long-response-head", false)] {
        let mut ws = conn("10.1.9.1:50090", "192.0.2.80:80", 900, 1900, 0, 90);
        ws.tcp.handshake();
        ws.tcp.wait(MS);
        let hs = ClientHandshake::browser("example.com", "/long", &mut ws.rng);
        let padding: String = (0..400)
            .map(|i| format!("X-Padding-{i:03}: {}\r\n", "p".repeat(80)))
            .collect();
        let with_padding = |head: Vec<u8>| {
            let mut h = head[..head.len() - 2].to_vec();
            h.extend_from_slice(padding.as_bytes());
            h.extend_from_slice(b"\r\n");
            h
        };
        let mut request = hs.to_bytes();
        if client_long {
            request = with_padding(request);
        }
        ws.tcp.send(Side::Client, &request);
        ws.tcp.wait(2 * MS);
        let mut response = ws::server_accept(&hs.key, None);
        if !client_long {
            response = with_padding(response);
        }
        ws.track.http_status = Some(101);
        ws.tcp.send(Side::Server, &response);
        ws.tcp.wait(MS);
        chat(&mut ws);
        close_clean(&mut ws, Side::Client, Some(1000));
        o.simple(name, vec![ws], &eth())?;
    }

    // midstream-handshake: capture starts with the GET (no SYN)
    {
        let mut a = conn(
            "10.1.9.1:50100",
            "192.0.2.80:80",
            0x1234_5678,
            0x8765_4321,
            0,
            27,
        );
        a.tcp.skip_handshake();
        open_ws(&mut a, false);
        chat(&mut a);
        close_clean(&mut a, Side::Client, None);
        o.simple("midstream-handshake", vec![a], &eth())?;
    }

    // syn-twice: SYN retransmitted once
    {
        let mut a = conn("10.1.10.1:50110", "192.0.2.80:80", 61, 63, 0, 28);
        a.tcp.handshake_with(2);
        open_ws(&mut a, false);
        chat(&mut a);
        close_clean(&mut a, Side::Server, Some(1000));
        o.simple("syn-twice", vec![a], &eth())?;
    }

    // keepalive-zero-window
    {
        let mut a = conn("10.1.11.1:50120", "192.0.2.80:80", 71, 73, 0, 29);
        open_ws(&mut a, true);
        a.text(Side::Client, "hello");
        a.tcp.wait(1000 * MS);
        a.tcp.keepalive(Side::Client, false);
        a.tcp.wait(1000 * MS);
        a.tcp.keepalive(Side::Server, true);
        let data = random_bytes(&mut a.rng, 6000);
        let f = a.encode(Side::Server, true, OP_BINARY, &data);
        a.tcp.zero_window_probe(Side::Server, f[0]);
        a.tcp.send(Side::Server, &f);
        a.text(Side::Client, "got it");
        a.tcp.keepalive(Side::Client, true);
        close_clean(&mut a, Side::Client, Some(1000));
        o.simple("keepalive-zero-window", vec![a], &eth())?;
    }

    // snaplen-cut: snaplen 96; frame headers at segment starts stay visible
    {
        let mut a = conn("10.1.12.1:50130", "192.0.2.80:80", 81, 83, 0, 30);
        open_ws(&mut a, true);
        let t = ws_text(&mut a.rng, 300);
        a.text(Side::Client, &t);
        let big = random_bytes(&mut a.rng, 5000);
        a.message(Side::Server, OP_BINARY, &big);
        let t = ws_text(&mut a.rng, 130);
        a.text(Side::Server, &t);
        a.ping(Side::Server, b"");
        a.pong(Side::Client, b"");
        let big = random_bytes(&mut a.rng, 70_000);
        a.message(Side::Client, OP_BINARY, &big);
        close_clean(&mut a, Side::Client, Some(1000));
        let mut pk = Vec::new();
        drain(&mut a, 0, &mut pk);
        let opts = PcapOpts {
            snaplen: 96,
            ..PcapOpts::default()
        };
        o.pcap("snaplen-cut", &pk, &eth(), opts, &[a.expected()])?;
    }

    // split-handshake: headers split over segments, frames in the 101 segment,
    // a frame header split across two segments
    {
        let mut a = conn("10.1.13.1:50140", "192.0.2.80:80", 91, 93, 0, 31);
        a.tcp.handshake();
        let hs = ClientHandshake::browser("example.com", "/split", &mut a.rng);
        let req = hs.to_bytes();
        a.tcp
            .send_segments(Side::Client, &[&req[..10], &req[10..60], &req[60..]], &[]);
        a.tcp.wait(MS);
        a.track.http_status = Some(101);
        let mut resp = ws::server_accept(&hs.key, Some("chat"));
        resp.extend(a.encode(Side::Server, true, OP_TEXT, b"welcome"));
        resp.extend(a.encode(Side::Server, true, OP_BINARY, &[7u8; 100]));
        a.tcp
            .send_segments(Side::Server, &[&resp[..20], &resp[20..]], &[]);
        a.tcp.wait(MS);
        let t = ws_text(&mut a.rng, 300);
        let f = a.encode(Side::Client, true, OP_TEXT, t.as_bytes());
        a.tcp.send_segments(
            Side::Client,
            &[&f[..1], &f[1..3], &f[3..150], &f[150..]],
            &[],
        );
        let p = a.encode(Side::Client, true, OP_PING, b"x");
        let q = a.encode(Side::Client, true, OP_TEXT, b"two frames in one segment");
        let both = [p, q].concat();
        a.tcp.send(Side::Client, &both);
        a.pong(Side::Server, b"x");
        close_clean(&mut a, Side::Server, Some(1000));
        o.simple("split-handshake", vec![a], &eth())?;
    }

    // control-interleaved: fragmented messages with control frames between fragments
    {
        let mut a = conn("10.1.14.1:50150", "192.0.2.80:80", 101, 103, 0, 32);
        open_ws(&mut a, true);
        a.send_frame(Side::Client, false, OP_TEXT, b"part one, ", &[]);
        a.ping(Side::Client, b"between");
        a.send_frame(Side::Client, false, OP_CONT, b"part two, ", &[]);
        a.pong(Side::Server, b"between");
        a.send_frame(Side::Client, true, OP_CONT, b"the end", &[]);
        let d = random_bytes(&mut a.rng, 2500);
        a.send_frame(Side::Server, false, OP_BINARY, &d[..1000], &[]);
        a.ping(Side::Server, b"");
        a.send_frame(Side::Server, false, OP_CONT, &d[1000..2000], &[]);
        a.pong(Side::Client, b"");
        a.send_frame(Side::Server, false, OP_CONT, &d[2000..], &[]);
        a.send_frame(Side::Server, true, OP_CONT, b"", &[]);
        a.message(Side::Server, OP_PONG, b"unsolicited");
        a.text(Side::Client, "single");
        close_clean(&mut a, Side::Client, Some(1000));
        o.simple("control-interleaved", vec![a], &eth())?;
    }

    // reordered-dup: in-capture reordering, duplicates, overlapping retransmission
    {
        let mut a = conn("10.1.15.1:50160", "192.0.2.80:80", 111, 113, 0, 33);
        open_ws(&mut a, true);
        let big = random_bytes(&mut a.rng, 10_000);
        a.send_frame(
            Side::Server,
            true,
            OP_BINARY,
            &big,
            &[
                Impair::Reorder(1),
                Impair::Duplicate(3),
                Impair::OverlapRetransmit(4),
                Impair::DropRetransmit(5),
            ],
        );
        let m: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let t = format!("burst message {i}");
                a.encode(Side::Client, true, OP_TEXT, t.as_bytes())
            })
            .collect();
        let segs: Vec<&[u8]> = m.iter().map(|x| x.as_slice()).collect();
        a.tcp.send_segments(
            Side::Client,
            &segs,
            &[Impair::Reorder(0), Impair::Duplicate(2)],
        );
        let up = random_bytes(&mut a.rng, 5000);
        a.send_frame(
            Side::Client,
            true,
            OP_BINARY,
            &up,
            &[Impair::DropRetransmit(0)],
        );
        close_clean(&mut a, Side::Server, Some(1000));
        o.simple("reordered-dup", vec![a], &eth())?;
    }

    // rotated: one capture, plus the same packets split into two files
    {
        let mut a = conn("10.1.16.1:50170", "192.0.2.80:80", 121, 123, 0, 34);
        open_ws(&mut a, true);
        chat(&mut a);
        let big = random_bytes(&mut a.rng, 12_000);
        a.message(Side::Server, OP_BINARY, &big);
        close_clean(&mut a, Side::Client, Some(1000));
        let mut b = conn("10.1.16.2:50171", "192.0.2.80:80", 125, 127, 4 * MS, 35);
        basic(&mut b);
        let mut pk = Vec::new();
        drain(&mut a, 0, &mut pk);
        drain(&mut b, 1, &mut pk);
        let pk = sort(pk);
        let truth = [a.expected(), b.expected()];
        o.pcap("rotated", &pk, &eth(), PcapOpts::default(), &truth)?;
        // split inside the server's big binary message
        let cut = pk
            .iter()
            .position(|p| !p.from_client && p.conn == 0 && p.ip.len() > 1400)
            .unwrap()
            + 3;
        for (n, part) in [(1, &pk[..cut]), (2, &pk[cut..])] {
            let p = dir.join(format!("rotated/file-{n}.pcap"));
            write_pcap(&p, part, &eth(), PcapOpts::default())?;
            o.files.push(p);
        }
    }

    // generated-small: output of the scenario generator
    {
        let cfg = GenConfig {
            seed: 1,
            sessions: 4,
            mix: Mix::CHAT,
            concurrency: 3,
            gap_fraction: 0.0,
            header_gap_fraction: 0.0,
            reorder_fraction: 0.3,
            http_fraction: 0.34,
            udp_fraction: 0.34,
            ..GenConfig::default()
        };
        let p = dir.join("generated-small.pcap");
        let mut f = BufWriter::new(File::create(&p)?);
        let exp = generate(&cfg, &mut f)?;
        f.flush()?;
        o.files.push(p);
        o.truth("generated-small", &exp)?;
    }

    bad_inputs(&mut o)?;
    Ok(o.files)
}

fn ws_text(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

fn bad_inputs(o: &mut Out) -> io::Result<()> {
    let bad = o.dir.join("bad");
    let mut valid = Vec::new();
    {
        let mut a = conn("10.1.20.1:50200", "192.0.2.80:80", 1, 2, 0, 40);
        basic(&mut a);
        let mut pk = Vec::new();
        drain(&mut a, 0, &mut pk);
        let mut w = PcapWriter::new(&mut valid, 1, PcapOpts::default())?;
        for p in &pk {
            w.write_packet(p.ts, &Link::ethernet().frame(&p.ip, p.from_client))?;
        }
        w.into_inner()?;
    }
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "not-a-capture.txt",
            b"This is not a capture file.\nJust some text, e.g. a README.\n".to_vec(),
        ),
        ("truncated-global-header.pcap", valid[..13].to_vec()),
        ("record-cut-off.pcap", valid[..valid.len() - 25].to_vec()),
        ("huge-caplen.pcap", {
            let mut v = valid[..24].to_vec();
            v.extend_from_slice(&valid[24..32]);
            v.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
            v.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
            v.extend_from_slice(&valid[40..200]);
            v
        }),
        ("bogus-block-length.pcapng", {
            let mut w = PcapngWriter::new(Vec::new(), false)?;
            let i = w.add_interface(1, 0, 6)?;
            w.write_packet(i, T0, &[0u8; 60])?;
            let mut v = w.into_inner()?;
            let start = v.len();
            let mut body = PcapngWriter::new(Vec::new(), false)?;
            let j = body.add_interface(1, 0, 6)?;
            body.write_packet(j, T0, &[0u8; 60])?;
            let blk = body.into_inner()?;
            // copy the EPB of the second writer, with a block length of 7
            let epb_off = blk.len() - (12 + 20 + 60);
            v.extend_from_slice(&blk[epb_off..]);
            v[start + 4..start + 8].copy_from_slice(&7u32.to_le_bytes());
            v
        }),
    ];
    for (name, data) in files {
        let p = bad.join(name);
        fs::write(&p, data)?;
        o.files.push(p);
    }
    Ok(())
}
