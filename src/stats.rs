//! Counters for everything read, and for everything that could not be analyzed, and the
//! closing line on stderr that says them.

use std::collections::BTreeMap;
use std::fmt;

use crate::decode::Skip;
use crate::tls::{CipherSuite, TlsFacts, TlsState};

/// TLS connections (recognised by their ClientHello) and what became of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsStats {
    pub connections: u64,
    pub decrypted: u64,
    pub no_key: u64,
    pub decrypt_failed: u64,
    pub unsupported_cipher: u64,
    /// The hellos were not seen whole (a gap).
    pub handshake_missing: u64,
    /// The handshake did not get as far as needing keys (no ServerHello, or cut short).
    pub handshake_incomplete: u64,
    pub with_gaps: u64,
    /// ALPN `h2`: HTTP/2, where WebSocket (RFC 8441) is not analyzed.
    pub h2: u64,
    /// Rows written for connections that were not decrypted (outcome `undecrypted`).
    pub rows: u64,
    /// Unsupported (version, suite) pairs and how many connections used each: a suite this
    /// layer does not decrypt, or one it does in a version it does not (SSL 3.0 to TLS 1.1).
    pub unsupported_suites: BTreeMap<(&'static str, u16), u64>,
    /// Decryption Secrets Blocks read from pcapng inputs, and the secrets they held.
    pub secrets_blocks: u64,
    pub secrets_block_secrets: u64,
    /// Decryption Secrets Blocks that came after packets of their file: their secrets serve
    /// only connections whose keys were needed after them.
    pub late_secrets_blocks: u64,
}

impl TlsStats {
    /// Counts one TLS connection at its end.
    pub fn add(&mut self, f: &TlsFacts) {
        if f.state == TlsState::NotTls {
            return;
        }
        self.connections += 1;
        match f.state {
            TlsState::Decrypting => self.decrypted += 1,
            TlsState::NoKey => self.no_key += 1,
            TlsState::DecryptFailed => self.decrypt_failed += 1,
            TlsState::UnsupportedCipher => {
                self.unsupported_cipher += 1;
                let version = f.version.map_or("?", |v| v.as_str());
                let suite = f.cipher_suite.map_or(0, |c| c.0);
                *self.unsupported_suites.entry((version, suite)).or_default() += 1;
            }
            TlsState::HandshakeMissing => self.handshake_missing += 1,
            TlsState::Handshake => self.handshake_incomplete += 1,
            TlsState::NotTls => {}
        }
        self.with_gaps += f.anomalies.gap as u64;
        self.h2 += (f.alpn.as_deref() == Some("h2")) as u64;
    }

    pub fn merge(&mut self, o: &TlsStats) {
        self.connections += o.connections;
        self.decrypted += o.decrypted;
        self.no_key += o.no_key;
        self.decrypt_failed += o.decrypt_failed;
        self.unsupported_cipher += o.unsupported_cipher;
        self.handshake_missing += o.handshake_missing;
        self.handshake_incomplete += o.handshake_incomplete;
        self.with_gaps += o.with_gaps;
        self.h2 += o.h2;
        self.rows += o.rows;
        for (k, v) in &o.unsupported_suites {
            *self.unsupported_suites.entry(*k).or_default() += v;
        }
        self.secrets_blocks += o.secrets_blocks;
        self.secrets_block_secrets += o.secrets_block_secrets;
        self.late_secrets_blocks += o.late_secrets_blocks;
    }
}

/// `TLS: 5 connections (3 decrypted, 1 without key, …)`, naming unsupported suites.
impl fmt::Display for TlsStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} TLS connection{} ({} decrypted",
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.decrypted
        )?;
        let mut add = |n: u64, what: &str| -> fmt::Result {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
            Ok(())
        };
        add(self.no_key, "without key")?;
        add(self.decrypt_failed, "failed to decrypt")?;
        if self.unsupported_cipher > 0 {
            let names: Vec<String> = self
                .unsupported_suites
                .iter()
                .map(|(&(v, s), n)| {
                    let name = if s == 0 {
                        "suite not seen".to_string()
                    } else {
                        CipherSuite(s).to_string()
                    };
                    let v = if v == "ssl3" {
                        "SSL 3.0".into()
                    } else {
                        format!("TLS {v}")
                    };
                    format!("{name} in {v} ({n})")
                })
                .collect();
            add(
                self.unsupported_cipher,
                &format!("with an unsupported cipher: {}", names.join(", ")),
            )?;
        }
        add(self.handshake_missing, "with the handshake not captured")?;
        add(self.handshake_incomplete, "with the handshake not finished")?;
        add(self.with_gaps, "with gaps")?;
        add(
            self.h2,
            "HTTP/2 (ALPN h2: WebSocket over HTTP/2 is not analyzed)",
        )?;
        add(self.rows, "reported as undecrypted")?;
        f.write_str(")")
    }
}

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
    /// The unsupported link types met, with their packet counts, by link type.
    pub unknown_linktypes: Vec<(u16, u64)>,
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
    /// Connections none of whose packets `--filter` selected (counted in
    /// `tcp_connections`, which numbers the connections of the whole capture).
    pub filtered_connections: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub evicted: u64,
    /// Connections whose buffers were given up under the memory budget, and the bytes.
    pub memory_budget: u64,
    pub memory_budget_bytes: u64,
    /// Connections given up on without a handshake within the recognition window (10 s
    /// of capture time or 64 KiB per direction) whose later payload was not followed.
    pub unrecognised: u64,
    pub tls: TlsStats,
    /// Time of the first packet in capture order, and the latest packet time (ns).
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
}

impl Stats {
    /// A packet of link type `linktype` that is not a usable TCP segment.
    pub fn skip(&mut self, s: Skip, linktype: u16) {
        match s {
            Skip::UnknownLinktype => {
                self.unknown_linktype += 1;
                self.note_linktype(linktype, 1);
            }
            Skip::NotIp => self.non_ip += 1,
            Skip::NotTcp => self.non_tcp += 1,
            Skip::IpFragment => self.ip_fragments += 1,
            Skip::Malformed => self.malformed += 1,
            Skip::CutOff => self.cut_headers += 1,
        }
    }

    fn note_linktype(&mut self, linktype: u16, n: u64) {
        match self
            .unknown_linktypes
            .binary_search_by_key(&linktype, |&(l, _)| l)
        {
            Ok(i) => self.unknown_linktypes[i].1 += n,
            Err(i) => self.unknown_linktypes.insert(i, (linktype, n)),
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
        for &(l, n) in &o.unknown_linktypes {
            self.note_linktype(l, n);
        }
        self.malformed += o.malformed;
        self.cut_headers += o.cut_headers;
        self.cut_payload += o.cut_payload;
        self.tcp_connections += o.tcp_connections;
        self.sessions += o.sessions;
        self.not_websocket += o.not_websocket;
        self.no_payload += o.no_payload;
        self.filtered_connections += o.filtered_connections;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.evicted += o.evicted;
        self.memory_budget += o.memory_budget;
        self.memory_budget_bytes += o.memory_budget_bytes;
        self.unrecognised += o.unrecognised;
        self.tls.merge(&o.tls);
        // The first packet is the first batch's (batches are added in capture order).
        self.first_ts_ns = self.first_ts_ns.or(o.first_ts_ns);
        self.last_ts_ns = self.last_ts_ns.max(o.last_ts_ns);
    }
}

impl Stats {
    /// Every counter by name, in a fixed order (the JSON report's `"kind": "capture"` line
    /// writes them; `summary --records` reads them back). Destructured without `..`: a
    /// counter added to `Stats` and forgotten here fails to compile.
    pub fn counters(&self) -> [(&'static str, u64); 33] {
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
            unknown_linktypes: _,
            malformed,
            cut_headers,
            cut_payload,
            tcp_connections,
            sessions,
            not_websocket,
            no_payload,
            filtered_connections,
            gaps,
            gap_bytes,
            evicted,
            ref tls,
            // Said on stderr and on the sessions (`memory_budget`); not (yet) keys of the
            // capture line, which stays as it was.
            memory_budget: _,
            memory_budget_bytes: _,
            unrecognised: _,
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
            ("filtered_connections", filtered_connections),
            ("gaps", gaps),
            ("gap_bytes", gap_bytes),
            ("evicted", evicted),
            ("tls_connections", tls.connections),
            ("tls_decrypted", tls.decrypted),
            ("tls_no_key", tls.no_key),
            ("tls_decrypt_failed", tls.decrypt_failed),
            ("tls_unsupported_cipher", tls.unsupported_cipher),
            ("tls_handshake_missing", tls.handshake_missing),
            ("tls_handshake_incomplete", tls.handshake_incomplete),
            ("tls_with_gaps", tls.with_gaps),
            ("tls_h2", tls.h2),
            ("tls_rows", tls.rows),
            ("tls_secrets_blocks", tls.secrets_blocks),
            ("tls_secrets_block_secrets", tls.secrets_block_secrets),
            ("tls_late_secrets_blocks", tls.late_secrets_blocks),
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
            "filtered_connections" => &mut self.filtered_connections,
            "gaps" => &mut self.gaps,
            "gap_bytes" => &mut self.gap_bytes,
            "evicted" => &mut self.evicted,
            "tls_connections" => &mut self.tls.connections,
            "tls_decrypted" => &mut self.tls.decrypted,
            "tls_no_key" => &mut self.tls.no_key,
            "tls_decrypt_failed" => &mut self.tls.decrypt_failed,
            "tls_unsupported_cipher" => &mut self.tls.unsupported_cipher,
            "tls_handshake_missing" => &mut self.tls.handshake_missing,
            "tls_handshake_incomplete" => &mut self.tls.handshake_incomplete,
            "tls_with_gaps" => &mut self.tls.with_gaps,
            "tls_h2" => &mut self.tls.h2,
            "tls_rows" => &mut self.tls.rows,
            "tls_secrets_blocks" => &mut self.tls.secrets_blocks,
            "tls_secrets_block_secrets" => &mut self.tls.secrets_block_secrets,
            "tls_late_secrets_blocks" => &mut self.tls.late_secrets_blocks,
            _ => return false,
        };
        *slot = v;
        true
    }

    /// The closing line, for a run in which `input_errors` inputs could not be read to
    /// their end (each said on its own line before it).
    pub fn closing(&self, input_errors: usize) -> Closing<'_> {
        Closing {
            stats: self,
            input_errors,
        }
    }
}

/// `n` and the noun, in the singular for 1 ("1 packet", "2 packets").
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The name tcpdump.org gives a LINKTYPE_ value, for the ones a capture is likely to hold.
pub fn linktype_name(l: u16) -> Option<&'static str> {
    Some(match l {
        0 => "NULL",
        1 => "ETHERNET",
        3 => "AX25",
        6 => "IEEE802_5",
        7 => "ARCNET_BSD",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        100 => "ATM_RFC1483",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        113 => "LINUX_SLL",
        114 => "LTALK",
        117 => "PFLOG",
        119 => "IEEE802_11_PRISM",
        122 => "IP_OVER_FC",
        123 => "SUNATM",
        127 => "IEEE802_11_RADIOTAP",
        129 => "ARCNET_LINUX",
        138 => "APPLE_IP_OVER_IEEE1394",
        139 => "MTP2_WITH_PHDR",
        140 => "MTP2",
        141 => "MTP3",
        142 => "SCCP",
        143 => "DOCSIS",
        144 => "LINUX_IRDA",
        147..=162 => return Some(USER[(l - 147) as usize]),
        163 => "IEEE802_11_AVS",
        165 => "BACNET_MS_TP",
        166 => "PPP_PPPD",
        169 => "GPRS_LLC",
        177 => "LINUX_LAPD",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        220 => "USB_LINUX_MMAPPED",
        224 => "FC_2",
        227 => "CAN_SOCKETCAN",
        228 => "IPV4",
        229 => "IPV6",
        235 => "DVB_CI",
        239 => "NFLOG",
        240 => "NETANALYZER",
        249 => "USBPCAP",
        251 => "BLUETOOTH_LE_LL",
        252 => "WIRESHARK_UPPER_PDU",
        253 => "NETLINK",
        254 => "BLUETOOTH_LINUX_MONITOR",
        256 => "BLUETOOTH_LE_LL_WITH_PHDR",
        263 => "NORDIC_BLE",
        264 => "DOCSIS31_XRA31",
        266 => "DISPLAYPORT_AUX",
        276 => "LINUX_SLL2",
        279 => "VPP_DISPATCH",
        _ => return None,
    })
}

const USER: [&str; 16] = [
    "USER0", "USER1", "USER2", "USER3", "USER4", "USER5", "USER6", "USER7", "USER8", "USER9",
    "USER10", "USER11", "USER12", "USER13", "USER14", "USER15",
];

/// "link type 147 (USER0)" or "link type 300".
fn linktype_label(l: u16) -> String {
    match linktype_name(l) {
        Some(n) => format!("link type {l} ({n})"),
        None => format!("link type {l}"),
    }
}

/// The closing line on stderr: what was read, and everything not analyzed, counted.
/// "everything was analyzed" only when it is true: every input was read to its end.
pub struct Closing<'a> {
    stats: &'a Stats,
    input_errors: usize,
}

impl fmt::Display for Closing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stats;
        write!(
            f,
            "read {} ({}) from {}: {}, {}",
            plural(s.packets, "packet", "packets"),
            plural(s.bytes, "byte", "bytes"),
            plural(s.files, "input", "inputs"),
            plural(
                s.tcp_connections - s.filtered_connections,
                "TCP connection",
                "TCP connections"
            ),
            plural(s.sessions, "WebSocket session", "WebSocket sessions"),
        )?;
        if s.tls.connections > 0 {
            write!(f, "; {}", s.tls)?;
        }
        let mut not = Vec::new();
        let mut add = |n: u64, one: &str, many: &str| {
            if n > 0 {
                not.push(plural(n, one, many));
            }
        };
        if s.filtered_connections > 0 {
            let conns = plural(s.filtered_connections, "connection", "connections");
            add(
                s.filtered,
                &format!("packet filtered out ({conns})"),
                &format!("packets filtered out ({conns})"),
            );
        } else {
            add(s.filtered, "packet filtered out", "packets filtered out");
        }
        add(s.non_ip, "non-IP packet", "non-IP packets");
        add(s.non_tcp, "non-TCP packet", "non-TCP packets");
        add(s.ip_fragments, "IP fragment", "IP fragments");
        for &(l, n) in &s.unknown_linktypes {
            let label = linktype_label(l);
            add(
                n,
                &format!("packet of unsupported {label}"),
                &format!("packets of unsupported {label}"),
            );
        }
        add(s.malformed, "undecodable packet", "undecodable packets");
        add(
            s.cut_headers,
            "packet cut off inside its headers",
            "packets cut off inside their headers",
        );
        add(
            s.cut_payload,
            "packet with payload cut off",
            "packets with payload cut off",
        );
        add(
            s.gaps,
            &format!("gap ({} missing)", plural(s.gap_bytes, "byte", "bytes")),
            &format!("gaps ({} missing)", plural(s.gap_bytes, "byte", "bytes")),
        );
        add(
            s.not_websocket,
            "connection not WebSocket",
            "connections not WebSocket",
        );
        add(
            s.no_payload,
            "connection without payload",
            "connections without payload",
        );
        add(
            s.evicted,
            "connection evicted (too many open)",
            "connections evicted (too many open)",
        );
        let given_up = format!(
            "memory budget ({} of buffers given up; --memory raises it)",
            plural(s.memory_budget_bytes, "byte", "bytes")
        );
        add(
            s.memory_budget,
            &format!("connection over the {given_up}"),
            &format!("connections over the {given_up}"),
        );
        add(
            s.unrecognised,
            "connection given up on (no handshake within 10 s or 64 KiB)",
            "connections given up on (no handshake within 10 s or 64 KiB)",
        );
        add(
            self.input_errors as u64,
            "input not read to its end (said above)",
            "inputs not read to their end (said above)",
        );
        add(
            s.tls.no_key
                + s.tls.decrypt_failed
                + s.tls.unsupported_cipher
                + s.tls.handshake_missing,
            "TLS connection not decrypted",
            "TLS connections not decrypted",
        );
        if not.is_empty() {
            write!(f, "; everything was analyzed")
        } else {
            write!(f, "; not analyzed: {}", not.join(", "))
        }
    }
}

/// The closing line of a run without input errors.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.closing(0).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{TlsConn, TlsVersion};

    #[test]
    fn singular_plural_and_errors() {
        let s = Stats {
            packets: 1,
            bytes: 1,
            files: 1,
            tcp_connections: 1,
            sessions: 1,
            ..Stats::default()
        };
        assert_eq!(
            s.to_string(),
            "read 1 packet (1 byte) from 1 input: 1 TCP connection, 1 WebSocket session; \
             everything was analyzed"
        );
        assert_eq!(
            s.closing(1).to_string(),
            "read 1 packet (1 byte) from 1 input: 1 TCP connection, 1 WebSocket session; \
             not analyzed: 1 input not read to its end (said above)"
        );
        let s = Stats {
            packets: 2,
            files: 2,
            ..Stats::default()
        };
        assert!(s
            .closing(2)
            .to_string()
            .starts_with("read 2 packets (0 bytes) from 2 inputs: 0 TCP connections, 0 WebSocket sessions; not analyzed: 2 inputs not read to their end"));
    }

    #[test]
    fn unsupported_link_types_are_named() {
        let mut s = Stats::default();
        s.skip(Skip::UnknownLinktype, 147);
        s.skip(Skip::UnknownLinktype, 147);
        let mut o = Stats::default();
        o.skip(Skip::UnknownLinktype, 9);
        o.skip(Skip::UnknownLinktype, 4000);
        s.add(&o);
        assert_eq!(s.unknown_linktype, 4);
        let line = s.to_string();
        assert!(
            line.ends_with(
                "not analyzed: 1 packet of unsupported link type 9 (PPP), \
                 2 packets of unsupported link type 147 (USER0), \
                 1 packet of unsupported link type 4000"
            ),
            "{line}"
        );
    }

    #[test]
    fn tls_connections_are_counted_and_unsupported_suites_named() {
        let mut t = TlsStats::default();
        let mut f = TlsConn::new().facts().clone();
        f.state = TlsState::Decrypting;
        f.alpn = Some("h2".into());
        t.add(&f);
        f.alpn = None;
        f.state = TlsState::NoKey;
        t.add(&f);
        f.state = TlsState::UnsupportedCipher;
        f.version = Some(TlsVersion::Tls12);
        f.cipher_suite = Some(CipherSuite(0xC0AC));
        t.add(&f);
        t.add(&f);
        f.state = TlsState::NotTls;
        t.add(&f);
        let mut all = TlsStats::default();
        all.merge(&t);
        assert_eq!(
            all.to_string(),
            "4 TLS connections (1 decrypted, 1 without key, 2 with an unsupported cipher: \
             TLS_ECDHE_ECDSA_WITH_AES_128_CCM in TLS 1.2 (2), \
             1 HTTP/2 (ALPN h2: WebSocket over HTTP/2 is not analyzed))"
        );
    }
}
