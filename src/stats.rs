//! Counters for everything read, and for everything that could not be analyzed.

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
    pub tls: TlsStats,
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
        self.tls.merge(&o.tls);
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
        if self.tls.connections > 0 {
            write!(f, "; {}", self.tls)?;
        }
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
            self.tls.no_key
                + self.tls.decrypt_failed
                + self.tls.unsupported_cipher
                + self.tls.handshake_missing,
            "TLS connections not decrypted",
        );
        if not.is_empty() {
            write!(f, "; everything was analyzed")
        } else {
            write!(f, "; not analyzed: {}", not.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{TlsConn, TlsVersion};

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
