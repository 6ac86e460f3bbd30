//! A compact binary form of a [`SessionRecord`], for records spilled to disk while they
//! wait for their turn (`reorder.rs`). It never leaves the process, so it has no version.
//!
//! Every struct is destructured without `..`: a field added to the record and forgotten
//! here fails to compile. The verdict is not stored; it is drawn again from the facts.

use std::io::{self, Read};

use super::{
    Anomalies, Anomaly, AnomalyMarks, At, CipherSuite, Close, ClosedBy, Fields, FileNumbers,
    HandshakeHeaders, Peer, PingRtt, SessionRecord, SideStats, TcpDir, TcpEnds, TlsCarries,
    TlsInfo, TlsState, TlsVersion,
};
use crate::net::Endpoint;
use crate::verdict::Upgrade;
use crate::ws::timeline::TimelineRef;

/// Appends `r`, length-prefixed, to `b`.
pub fn encode(r: &SessionRecord, b: &mut Vec<u8>) {
    let SessionRecord {
        first_packet,
        tcp_stream,
        client,
        server,
        start_ns,
        end_ns,
        packets,
        upgrade,
        host,
        path,
        origin,
        user_agent,
        subprotocol,
        extensions,
        client_side,
        server_side,
        tcp,
        exact,
        anomalies,
        requests_before_upgrade,
        peer,
        peer_session,
        closed_by,
        anomaly_marks,
        last_payload_before_end,
        handshake_headers,
        timeline,
        tls,
        verdict: _,
        file,
    } = r;
    let start = b.len();
    b.extend_from_slice(&[0; 4]);
    let mut w = Writer(b);
    for x in [*first_packet, *tcp_stream, *packets, anomalies.bits()] {
        w.u64(x);
    }
    w.i64(*start_ns);
    w.i64(*end_ns);
    w.endpoint(client);
    w.endpoint(server);
    w.upgrade(*upgrade);
    for s in [host, path, origin, user_agent, subprotocol, extensions] {
        w.str(s);
    }
    w.side(client_side);
    w.side(server_side);
    let TcpEnds {
        client_fin,
        server_fin,
        client_rst,
        server_rst,
    } = tcp;
    for at in [client_fin, server_fin, client_rst, server_rst] {
        w.opt_at(*at);
    }
    w.0.push(*exact as u8);
    w.u64(*requests_before_upgrade);
    match peer {
        Some(Peer {
            first_packet,
            requests_before_upgrade,
            front,
        }) => {
            w.0.push(1 + *front as u8);
            w.u64(*first_packet);
            w.u64(*requests_before_upgrade);
        }
        None => w.0.push(0),
    }
    w.opt64(*peer_session);
    w.0.push(match closed_by {
        None => 0,
        Some(ClosedBy::Client) => 1,
        Some(ClosedBy::Server) => 2,
        Some(ClosedBy::Proxy) => 3,
    });
    match file {
        Some(FileNumbers {
            file,
            tcp_stream,
            first_frame,
        }) => {
            w.0.push(1);
            w.str(file);
            w.u64(*tcp_stream);
            w.u64(*first_frame);
        }
        None => w.0.push(0),
    }
    w.u64(anomaly_marks.iter().count() as u64);
    for m in anomaly_marks.iter() {
        w.0.push(m.anomaly as u8);
        w.u64(m.first_packet);
        w.u64(m.count);
    }
    w.opt_at(*last_payload_before_end);
    let HandshakeHeaders { request, response } = handshake_headers;
    for head in [request, response] {
        w.str(head.encoded());
    }
    match timeline {
        Some(TimelineRef {
            last_chunk,
            events,
            omitted,
        }) => {
            w.0.push(1);
            for x in [*last_chunk, *events, *omitted] {
                w.u64(x);
            }
        }
        None => w.0.push(0),
    }
    w.tls(tls.as_deref());
    let len = (b.len() - start - 4) as u32;
    b[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reads the next record that [`encode`] wrote; `None` at the end of the input.
pub fn decode(r: &mut impl Read) -> io::Result<Option<SessionRecord>> {
    let mut len = [0u8; 4];
    // The end of the input is only allowed between records.
    let first = loop {
        match r.read(&mut len[..1]) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if first == 0 {
        return Ok(None);
    }
    r.read_exact(&mut len[1..])?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut buf)?;
    let mut c = Reader(&buf);
    let (first_packet, tcp_stream, packets, anomalies) = (c.u64()?, c.u64()?, c.u64()?, c.u64()?);
    let (start_ns, end_ns) = (c.i64()?, c.i64()?);
    let (client, server) = (c.endpoint()?, c.endpoint()?);
    let upgrade = c.upgrade()?;
    let (host, path, origin, user_agent, subprotocol, extensions) = (
        c.string()?,
        c.string()?,
        c.string()?,
        c.string()?,
        c.string()?,
        c.string()?,
    );
    let (client_side, server_side) = (c.side()?, c.side()?);
    let tcp = TcpEnds {
        client_fin: c.opt_at()?,
        server_fin: c.opt_at()?,
        client_rst: c.opt_at()?,
        server_rst: c.opt_at()?,
    };
    let exact = c.u8()? == 1;
    let requests_before_upgrade = c.u64()?;
    let peer = match c.u8()? {
        0 => None,
        t @ (1 | 2) => Some(Peer {
            first_packet: c.u64()?,
            requests_before_upgrade: c.u64()?,
            front: t == 2,
        }),
        _ => return Err(bad("spilled record has a bad peer tag")),
    };
    let peer_session = c.opt64()?;
    let closed_by = match c.u8()? {
        0 => None,
        1 => Some(ClosedBy::Client),
        2 => Some(ClosedBy::Server),
        3 => Some(ClosedBy::Proxy),
        _ => return Err(bad("spilled record has a bad closed_by tag")),
    };
    let file = if c.u8()? == 1 {
        Some(FileNumbers {
            file: c.string()?.into(),
            tcp_stream: c.u64()?,
            first_frame: c.u64()?,
        })
    } else {
        None
    };
    let mut anomaly_marks = AnomalyMarks::default();
    for _ in 0..c.u64()? {
        let a = c.u8()?;
        let a = *Anomaly::ALL
            .get(a as usize)
            .ok_or_else(|| bad("spilled record has a bad anomaly"))?;
        let (first, count) = (c.u64()?, c.u64()?);
        anomaly_marks.add(a, first, count);
    }
    let last_payload_before_end = c.opt_at()?;
    let handshake_headers = HandshakeHeaders {
        request: Fields::from_encoded(c.string()?),
        response: Fields::from_encoded(c.string()?),
    };
    let timeline = if c.u8()? == 1 {
        Some(TimelineRef {
            last_chunk: c.u64()?,
            events: c.u64()?,
            omitted: c.u64()?,
        })
    } else {
        None
    };
    let tls = c.tls()?;
    if !c.0.is_empty() {
        return Err(bad("spilled record has trailing bytes"));
    }
    let verdict = crate::verdict::verdict(&super::facts(upgrade, &client_side, &server_side, tcp));
    Ok(Some(SessionRecord {
        first_packet,
        tcp_stream,
        client,
        server,
        start_ns,
        end_ns,
        packets,
        upgrade,
        host,
        path,
        origin,
        user_agent,
        subprotocol,
        extensions,
        client_side,
        server_side,
        tcp,
        exact,
        anomalies: Anomalies::from_bits(anomalies),
        requests_before_upgrade,
        peer,
        peer_session,
        closed_by,
        anomaly_marks,
        last_payload_before_end,
        handshake_headers,
        timeline,
        tls,
        verdict,
        file,
    }))
}

/// TLS versions and states by their index in the spilled form.
const TLS_VERSIONS: [TlsVersion; 5] = [
    TlsVersion::Ssl30,
    TlsVersion::Tls10,
    TlsVersion::Tls11,
    TlsVersion::Tls12,
    TlsVersion::Tls13,
];
const TLS_STATES: [TlsState; 7] = [
    TlsState::Handshake,
    TlsState::Decrypting,
    TlsState::NoKey,
    TlsState::DecryptFailed,
    TlsState::UnsupportedCipher,
    TlsState::HandshakeMissing,
    TlsState::NotTls,
];

fn index_of<T: PartialEq>(all: &[T], x: &T) -> u8 {
    all.iter().position(|a| a == x).expect("listed") as u8
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn i64(&mut self, x: i64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt64(&mut self, x: Option<u64>) {
        match x {
            Some(v) => {
                self.0.push(1);
                self.u64(v);
            }
            None => self.0.push(0),
        }
    }
    fn opt16(&mut self, x: Option<u16>) {
        match x {
            Some(v) => {
                self.0.push(1);
                self.0.extend_from_slice(&v.to_le_bytes());
            }
            None => self.0.push(0),
        }
    }
    fn at(&mut self, at: At) {
        let At { packet, ts_ns } = at;
        self.u64(packet);
        self.i64(ts_ns);
    }
    fn opt_at(&mut self, at: Option<At>) {
        match at {
            Some(a) => {
                self.0.push(1);
                self.at(a);
            }
            None => self.0.push(0),
        }
    }
    fn endpoint(&mut self, e: &Endpoint) {
        let Endpoint { addr, port } = *e;
        self.0.extend_from_slice(&u128::from(addr).to_le_bytes());
        self.0.extend_from_slice(&port.to_le_bytes());
    }
    fn upgrade(&mut self, u: Upgrade) {
        let (tag, status) = match u {
            Upgrade::Answered(s) => (0, s),
            Upgrade::Unanswered => (1, 0),
            Upgrade::Inferred => (2, 0),
            Upgrade::Unknown => (3, 0),
            Upgrade::Midstream => (4, 0),
            Upgrade::Undecrypted => (5, 0),
        };
        self.0.push(tag);
        self.0.extend_from_slice(&status.to_le_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }
    fn tls(&mut self, t: Option<&TlsInfo>) {
        let Some(t) = t else {
            self.0.push(0);
            return;
        };
        let TlsInfo {
            version,
            cipher,
            sni,
            alpn,
            alpn_offered,
            state,
            resumed,
            carries,
            records,
            decrypted_records,
        } = t;
        self.0.push(1);
        self.0
            .push(version.map_or(u8::MAX, |v| index_of(&TLS_VERSIONS, &v)));
        self.opt16(cipher.map(|c| c.0));
        self.str(sni);
        self.opt_str(alpn.as_deref());
        self.str(alpn_offered);
        self.0.push(index_of(&TLS_STATES, state));
        self.0.push(*resumed as u8);
        self.0.push(index_of(&TlsCarries::ALL, carries));
        self.u64(*records);
        self.u64(*decrypted_records);
    }
    fn side(&mut self, s: &SideStats) {
        let SideStats {
            messages,
            bytes,
            pings,
            pongs,
            close,
            missing_bytes,
            bytes_inflated,
            largest_message,
            messages_before_close,
            bytes_before_close,
            unfinished_message,
            last_data,
            ping_rtt,
            tcp,
            in_progress_at_end,
        } = s;
        for x in [
            *messages,
            *bytes,
            *pings,
            *pongs,
            *missing_bytes,
            *messages_before_close,
            *bytes_before_close,
        ] {
            self.u64(x);
        }
        self.opt64(*unfinished_message);
        self.opt_at(*last_data);
        let PingRtt {
            answered,
            min_ns,
            p50_ns,
            max_ns,
            unanswered,
            first_unanswered,
        } = ping_rtt;
        self.u64(*answered);
        for x in [*min_ns, *p50_ns, *max_ns] {
            self.i64(x);
        }
        self.u64(*unanswered);
        self.opt_at(*first_unanswered);
        let TcpDir {
            segments,
            retransmitted,
            out_of_order,
            gaps,
            unacked_bytes,
            last_retransmission,
            last_payload,
        } = tcp;
        for x in [
            *segments,
            *retransmitted,
            *out_of_order,
            *gaps,
            *unacked_bytes,
        ] {
            self.u64(x);
        }
        self.opt_at(*last_retransmission);
        self.opt_at(*last_payload);
        self.0.push(match in_progress_at_end {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        self.opt64(*bytes_inflated);
        self.opt64(*largest_message);
        match close {
            Some(Close { code, reason, at }) => {
                self.0.push(1);
                self.opt16(*code);
                self.str(reason);
                self.at(*at);
            }
            None => self.0.push(0),
        }
    }
}

/// Reads back what [`Writer`] wrote.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad("spilled record is cut short"));
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(a)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn opt64(&mut self) -> io::Result<Option<u64>> {
        Ok(if self.u8()? == 1 {
            Some(self.u64()?)
        } else {
            None
        })
    }
    fn opt16(&mut self) -> io::Result<Option<u16>> {
        Ok(if self.u8()? == 1 {
            Some(self.u16()?)
        } else {
            None
        })
    }
    fn string(&mut self) -> io::Result<String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| bad("spilled text is not UTF-8"))
    }
    fn at(&mut self) -> io::Result<At> {
        Ok(At {
            packet: self.u64()?,
            ts_ns: self.i64()?,
        })
    }
    fn opt_at(&mut self) -> io::Result<Option<At>> {
        Ok(if self.u8()? == 1 {
            Some(self.at()?)
        } else {
            None
        })
    }
    fn endpoint(&mut self) -> io::Result<Endpoint> {
        let addr = u128::from_le_bytes(self.take(16)?.try_into().unwrap()).into();
        Ok(Endpoint {
            addr,
            port: self.u16()?,
        })
    }
    fn upgrade(&mut self) -> io::Result<Upgrade> {
        let tag = self.u8()?;
        let status = self.u16()?;
        Ok(match tag {
            0 => Upgrade::Answered(status),
            1 => Upgrade::Unanswered,
            2 => Upgrade::Inferred,
            3 => Upgrade::Unknown,
            4 => Upgrade::Midstream,
            5 => Upgrade::Undecrypted,
            _ => return Err(bad("spilled record has a bad upgrade tag")),
        })
    }
    fn opt_string(&mut self) -> io::Result<Option<String>> {
        Ok(if self.u8()? == 1 {
            Some(self.string()?)
        } else {
            None
        })
    }
    fn tls(&mut self) -> io::Result<Option<Box<TlsInfo>>> {
        if self.u8()? == 0 {
            return Ok(None);
        }
        let version = match self.u8()? {
            u8::MAX => None,
            i => Some(
                *TLS_VERSIONS
                    .get(i as usize)
                    .ok_or_else(|| bad("spilled record has a bad TLS version"))?,
            ),
        };
        let cipher = self.opt16()?.map(CipherSuite);
        let (sni, alpn, alpn_offered) = (self.string()?, self.opt_string()?, self.string()?);
        let state = *TLS_STATES
            .get(self.u8()? as usize)
            .ok_or_else(|| bad("spilled record has a bad TLS state"))?;
        let resumed = self.u8()? == 1;
        let carries = *TlsCarries::ALL
            .get(self.u8()? as usize)
            .ok_or_else(|| bad("spilled record has a bad TLS payload kind"))?;
        let (records, decrypted_records) = (self.u64()?, self.u64()?);
        Ok(Some(Box::new(TlsInfo {
            version,
            cipher,
            sni,
            alpn,
            alpn_offered,
            state,
            resumed,
            carries,
            records,
            decrypted_records,
        })))
    }
    fn side(&mut self) -> io::Result<SideStats> {
        let (messages, bytes, pings, pongs, missing_bytes) = (
            self.u64()?,
            self.u64()?,
            self.u64()?,
            self.u64()?,
            self.u64()?,
        );
        let (messages_before_close, bytes_before_close) = (self.u64()?, self.u64()?);
        let unfinished_message = self.opt64()?;
        let last_data = self.opt_at()?;
        let ping_rtt = PingRtt {
            answered: self.u64()?,
            min_ns: self.i64()?,
            p50_ns: self.i64()?,
            max_ns: self.i64()?,
            unanswered: self.u64()?,
            first_unanswered: self.opt_at()?,
        };
        let tcp = TcpDir {
            segments: self.u64()?,
            retransmitted: self.u64()?,
            out_of_order: self.u64()?,
            gaps: self.u64()?,
            unacked_bytes: self.u64()?,
            last_retransmission: self.opt_at()?,
            last_payload: self.opt_at()?,
        };
        let in_progress_at_end = match self.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return Err(bad("spilled record has a bad in-progress flag")),
        };
        let (bytes_inflated, largest_message) = (self.opt64()?, self.opt64()?);
        let close = if self.u8()? == 1 {
            Some(Close {
                code: self.opt16()?,
                reason: self.string()?,
                at: self.at()?,
            })
        } else {
            None
        };
        Ok(SideStats {
            messages,
            bytes,
            pings,
            pongs,
            close,
            missing_bytes,
            bytes_inflated,
            largest_message,
            messages_before_close,
            bytes_before_close,
            unfinished_message,
            last_data,
            ping_rtt,
            tcp,
            in_progress_at_end,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at() -> impl Strategy<Value = At> {
        (any::<u64>(), any::<i64>()).prop_map(|(packet, ts_ns)| At { packet, ts_ns })
    }

    fn ping_rtt() -> impl Strategy<Value = PingRtt> {
        (
            any::<[u64; 2]>(),
            any::<[i64; 3]>(),
            proptest::option::of(at()),
        )
            .prop_map(|(n, t, first_unanswered)| PingRtt {
                answered: n[0],
                min_ns: t[0],
                p50_ns: t[1],
                max_ns: t[2],
                unanswered: n[1],
                first_unanswered,
            })
    }

    fn tcp_dir() -> impl Strategy<Value = TcpDir> {
        (
            any::<[u64; 5]>(),
            proptest::option::of(at()),
            proptest::option::of(at()),
        )
            .prop_map(|(n, last_retransmission, last_payload)| TcpDir {
                segments: n[0],
                retransmitted: n[1],
                out_of_order: n[2],
                gaps: n[3],
                unacked_bytes: n[4],
                last_retransmission,
                last_payload,
            })
    }

    pub(crate) fn side() -> impl Strategy<Value = SideStats> {
        (
            any::<[u64; 7]>(),
            proptest::option::of((proptest::option::of(any::<u16>()), ".{0,8}", at())),
            any::<[Option<u64>; 3]>(),
            proptest::option::of(at()),
            ping_rtt(),
            tcp_dir(),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(
                |(n, close, opt, last_data, ping_rtt, tcp, in_progress_at_end)| SideStats {
                    in_progress_at_end,
                    bytes_inflated: opt[0],
                    largest_message: opt[1],
                    messages: n[0],
                    bytes: n[1],
                    pings: n[2],
                    pongs: n[3],
                    missing_bytes: n[4],
                    messages_before_close: n[5],
                    bytes_before_close: n[6],
                    close: close.map(|(code, reason, at)| Close { code, reason, at }),
                    unfinished_message: opt[2],
                    last_data,
                    ping_rtt,
                    tcp,
                },
            )
    }

    pub(crate) fn marks() -> impl Strategy<Value = AnomalyMarks> {
        proptest::collection::vec((0..Anomaly::ALL.len(), any::<u64>(), 1..1000u64), 0..4).prop_map(
            |v| {
                let mut m = AnomalyMarks::default();
                for (a, p, n) in v {
                    m.add(Anomaly::ALL[a], p, n);
                }
                m
            },
        )
    }

    pub(crate) fn headers() -> impl Strategy<Value = HandshakeHeaders> {
        let head = || {
            proptest::collection::vec(("[A-Za-z-]{1,8}", ".{0,10}"), 0..3).prop_map(
                |v: Vec<(String, String)>| {
                    v.iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect::<Fields>()
                },
            )
        };
        (head(), head()).prop_map(|(request, response)| HandshakeHeaders { request, response })
    }

    fn upgrade() -> impl Strategy<Value = Upgrade> {
        prop_oneof![
            any::<u16>().prop_map(Upgrade::Answered),
            Just(Upgrade::Unanswered),
            Just(Upgrade::Inferred),
            Just(Upgrade::Unknown),
            Just(Upgrade::Midstream),
            Just(Upgrade::Undecrypted),
        ]
    }

    fn tls() -> impl Strategy<Value = Option<Box<TlsInfo>>> {
        proptest::option::of(
            (
                (
                    proptest::option::of(proptest::sample::select(&TLS_VERSIONS[..])),
                    proptest::option::of(any::<u16>()),
                    ".{0,8}",
                    proptest::option::of(".{0,8}"),
                    ".{0,8}",
                ),
                (
                    proptest::sample::select(&TLS_STATES[..]),
                    any::<bool>(),
                    proptest::sample::select(&TlsCarries::ALL[..]),
                    any::<[u64; 2]>(),
                ),
            )
                .prop_map(
                    |((version, cipher, sni, alpn, alpn_offered), (state, resumed, carries, n))| {
                        Box::new(TlsInfo {
                            version,
                            cipher: cipher.map(CipherSuite),
                            sni,
                            alpn,
                            alpn_offered,
                            state,
                            resumed,
                            carries,
                            records: n[0],
                            decrypted_records: n[1],
                        })
                    },
                ),
        )
    }

    /// Any record (with its verdict drawn from its facts, as the analysis makes them).
    pub(crate) fn record() -> impl Strategy<Value = SessionRecord> {
        (
            (any::<[u64; 3]>(), any::<[i64; 2]>()),
            (any::<(u128, u16)>(), any::<(u128, u16)>(), upgrade()),
            proptest::collection::vec(".{0,12}", 6),
            (side(), side()),
            proptest::array::uniform4(proptest::option::of(at())),
            (any::<bool>(), 0u64..(1 << Anomaly::ALL.len()), tls()),
            (
                any::<u64>(),
                proptest::option::of(any::<(u64, u64, bool)>()),
                any::<Option<u64>>(),
                proptest::option::of(prop_oneof![
                    Just(ClosedBy::Client),
                    Just(ClosedBy::Server),
                    Just(ClosedBy::Proxy)
                ]),
            ),
            (
                proptest::option::of((".{0,12}", any::<[u64; 2]>())),
                marks(),
                proptest::option::of(at()),
                headers(),
                proptest::option::of(any::<[u64; 3]>()),
            ),
        )
            .prop_map(
                |(
                    (n, ts),
                    (c, s, upgrade),
                    texts,
                    (cs, ss),
                    tcp,
                    (exact, bits, tls),
                    (requests_before_upgrade, peer, peer_session, closed_by),
                    (file, anomaly_marks, last_payload_before_end, handshake_headers, tl),
                )| {
                    let tcp = TcpEnds {
                        client_fin: tcp[0],
                        server_fin: tcp[1],
                        client_rst: tcp[2],
                        server_rst: tcp[3],
                    };
                    SessionRecord {
                        verdict: crate::verdict::verdict(&crate::record::facts(
                            upgrade, &cs, &ss, tcp,
                        )),
                        first_packet: n[0],
                        tcp_stream: n[1],
                        packets: n[2],
                        start_ns: ts[0],
                        end_ns: ts[1],
                        client: Endpoint {
                            addr: c.0.into(),
                            port: c.1,
                        },
                        server: Endpoint {
                            addr: s.0.into(),
                            port: s.1,
                        },
                        upgrade,
                        host: texts[0].clone(),
                        path: texts[1].clone(),
                        origin: texts[2].clone(),
                        user_agent: texts[3].clone(),
                        subprotocol: texts[4].clone(),
                        extensions: texts[5].clone(),
                        client_side: cs,
                        server_side: ss,
                        tcp,
                        exact,
                        anomalies: Anomalies::from_bits(bits),
                        requests_before_upgrade,
                        peer: peer.map(|(first_packet, requests_before_upgrade, front)| Peer {
                            first_packet,
                            requests_before_upgrade,
                            front,
                        }),
                        peer_session,
                        closed_by,
                        file: file.map(|(f, n)| FileNumbers {
                            file: f.into(),
                            tcp_stream: n[0],
                            first_frame: n[1],
                        }),
                        anomaly_marks,
                        last_payload_before_end,
                        handshake_headers,
                        timeline: tl.map(|t| TimelineRef {
                            last_chunk: t[0],
                            events: t[1],
                            omitted: t[2],
                        }),
                        tls,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(recs in proptest::collection::vec(record(), 0..4)) {
            let mut buf = Vec::new();
            for r in &recs {
                encode(r, &mut buf);
            }
            let mut input = &buf[..];
            for r in &recs {
                let back = decode(&mut input).unwrap().unwrap();
                prop_assert_eq!(&back, r);
            }
            prop_assert!(decode(&mut input).unwrap().is_none());
        }
    }

    #[test]
    fn a_cut_record_is_an_error_not_a_panic() {
        let rec = SessionRecord::example();
        let mut buf = Vec::new();
        encode(&rec, &mut buf);
        for cut in 1..buf.len() {
            let mut input = &buf[..cut];
            assert!(decode(&mut input).is_err(), "cut at {cut}");
        }
    }
}
