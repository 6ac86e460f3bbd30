//! Counters for everything read, and for everything that could not be analyzed.

use std::fmt;

use crate::decode::Skip;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    pub bytes: u64,
    pub files: u64,
    /// Packets the --filter expression rejected.
    pub filtered: u64,
    pub tcp_packets: u64,
    pub non_ip: u64,
    pub non_tcp: u64,
    pub ip_fragments: u64,
    pub unknown_linktype: u64,
    pub malformed: u64,
    /// Packets cut inside their headers by the snapshot length.
    pub cut_headers: u64,
    /// TCP packets whose payload the snapshot length cut short.
    pub cut_payload: u64,
    pub tcp_connections: u64,
    pub sessions: u64,
    /// Connections with payload that was not a WebSocket Upgrade.
    pub not_websocket: u64,
    /// Connections that carried no payload at all.
    pub no_payload: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub evicted: u64,
    /// Connections that started with a TLS record (a ClientHello): encrypted, not read.
    pub tls_connections: u64,
    /// Time of the first packet in capture order, and the latest packet time (ns).
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
}

impl Stats {
    pub fn skip(&mut self, s: Skip) {
        match s {
            Skip::UnknownLinktype => self.unknown_linktype += 1,
            Skip::NotIp => self.non_ip += 1,
            Skip::NotTcp => self.non_tcp += 1,
            Skip::IpFragment => self.ip_fragments += 1,
            Skip::Malformed => self.malformed += 1,
            Skip::CutOff => self.cut_headers += 1,
        }
    }

    pub fn add(&mut self, o: &Stats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.files += o.files;
        self.filtered += o.filtered;
        self.tcp_packets += o.tcp_packets;
        self.non_ip += o.non_ip;
        self.non_tcp += o.non_tcp;
        self.ip_fragments += o.ip_fragments;
        self.unknown_linktype += o.unknown_linktype;
        self.malformed += o.malformed;
        self.cut_headers += o.cut_headers;
        self.cut_payload += o.cut_payload;
        self.tcp_connections += o.tcp_connections;
        self.sessions += o.sessions;
        self.not_websocket += o.not_websocket;
        self.no_payload += o.no_payload;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.evicted += o.evicted;
        self.tls_connections += o.tls_connections;
        // The first packet is the first batch's (batches are added in capture order).
        self.first_ts_ns = self.first_ts_ns.or(o.first_ts_ns);
        self.last_ts_ns = self.last_ts_ns.max(o.last_ts_ns);
    }
}

impl Stats {
    /// Every counter by name, in a fixed order (the JSON report's `"kind": "capture"` line
    /// writes them; `summary --records` reads them back). Destructured without `..`: a
    /// counter added to `Stats` and forgotten here fails to compile.
    pub fn counters(&self) -> [(&'static str, u64); 20] {
        let Stats {
            packets,
            bytes,
            files,
            filtered,
            tcp_packets,
            non_ip,
            non_tcp,
            ip_fragments,
            unknown_linktype,
            malformed,
            cut_headers,
            cut_payload,
            tcp_connections,
            sessions,
            not_websocket,
            no_payload,
            gaps,
            gap_bytes,
            evicted,
            tls_connections,
            first_ts_ns: _,
            last_ts_ns: _,
        } = *self;
        [
            ("packets", packets),
            ("bytes", bytes),
            ("files", files),
            ("filtered", filtered),
            ("tcp_packets", tcp_packets),
            ("non_ip", non_ip),
            ("non_tcp", non_tcp),
            ("ip_fragments", ip_fragments),
            ("unknown_linktype", unknown_linktype),
            ("malformed", malformed),
            ("cut_headers", cut_headers),
            ("cut_payload", cut_payload),
            ("tcp_connections", tcp_connections),
            ("sessions", sessions),
            ("not_websocket", not_websocket),
            ("no_payload", no_payload),
            ("gaps", gaps),
            ("gap_bytes", gap_bytes),
            ("evicted", evicted),
            ("tls_connections", tls_connections),
        ]
    }

    /// Sets the counter named `name` (as [`Stats::counters`] names it); false if unknown.
    pub fn set_counter(&mut self, name: &str, v: u64) -> bool {
        let slot = match name {
            "packets" => &mut self.packets,
            "bytes" => &mut self.bytes,
            "files" => &mut self.files,
            "filtered" => &mut self.filtered,
            "tcp_packets" => &mut self.tcp_packets,
            "non_ip" => &mut self.non_ip,
            "non_tcp" => &mut self.non_tcp,
            "ip_fragments" => &mut self.ip_fragments,
            "unknown_linktype" => &mut self.unknown_linktype,
            "malformed" => &mut self.malformed,
            "cut_headers" => &mut self.cut_headers,
            "cut_payload" => &mut self.cut_payload,
            "tcp_connections" => &mut self.tcp_connections,
            "sessions" => &mut self.sessions,
            "not_websocket" => &mut self.not_websocket,
            "no_payload" => &mut self.no_payload,
            "gaps" => &mut self.gaps,
            "gap_bytes" => &mut self.gap_bytes,
            "evicted" => &mut self.evicted,
            "tls_connections" => &mut self.tls_connections,
            _ => return false,
        };
        *slot = v;
        true
    }
}

/// The closing line on stderr: what was read, and everything not analyzed, counted.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {} packets ({} bytes) from {} input(s): {} TCP connections, {} WebSocket sessions",
            self.packets, self.bytes, self.files, self.tcp_connections, self.sessions
        )?;
        let mut not = Vec::new();
        let mut add = |n: u64, what: &str| {
            if n > 0 {
                not.push(format!("{n} {what}"));
            }
        };
        add(self.filtered, "packets filtered out");
        add(self.non_ip, "non-IP packets");
        add(self.non_tcp, "non-TCP packets");
        add(self.ip_fragments, "IP fragments");
        add(self.unknown_linktype, "packets of unsupported link types");
        add(self.malformed, "undecodable packets");
        add(self.cut_headers, "packets cut off inside their headers");
        add(self.cut_payload, "packets with payload cut off");
        add(
            self.gaps,
            &format!("gaps ({} bytes missing)", self.gap_bytes),
        );
        add(self.tls_connections, "TLS connections (encrypted)");
        add(self.not_websocket, "connections not WebSocket");
        add(self.no_payload, "connections without payload");
        add(self.evicted, "connections evicted (too many open)");
        if not.is_empty() {
            write!(f, "; everything was analyzed")
        } else {
            write!(f, "; not analyzed: {}", not.join(", "))
        }
    }
}
