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
    /// Connections whose buffers were given up under the memory budget, and the bytes.
    pub memory_budget: u64,
    pub memory_budget_bytes: u64,
    /// Connections given up on without a handshake within the recognition window (10 s
    /// of capture time or 64 KiB per direction) whose later payload was not followed.
    pub unrecognised: u64,
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
        self.memory_budget += o.memory_budget;
        self.memory_budget_bytes += o.memory_budget_bytes;
        self.unrecognised += o.unrecognised;
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
        add(self.not_websocket, "connections not WebSocket");
        add(self.no_payload, "connections without payload");
        add(self.evicted, "connections evicted (too many open)");
        add(
            self.memory_budget,
            &format!(
                "connections over the memory budget ({} bytes of buffers given up; --memory raises it)",
                self.memory_budget_bytes
            ),
        );
        add(
            self.unrecognised,
            "connections given up on (no handshake within 10 s or 64 KiB)",
        );
        if not.is_empty() {
            write!(f, "; everything was analyzed")
        } else {
            write!(f, "; not analyzed: {}", not.join(", "))
        }
    }
}
