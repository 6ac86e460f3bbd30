//! The NSS key log format (RFC 9850; the `SSLKEYLOGFILE` of browsers, OpenSSL, Python's
//! `keylog_filename`, Node's `keylog` event), and the secrets of a pcapng Decryption
//! Secrets Block (which holds the same text, secrets type `0x544c534b`, "TLSK").
//!
//! ```text
//! # comment
//! CLIENT_RANDOM <client random, 64 hex> <master secret, 96 hex>          (TLS 1.2)
//! CLIENT_HANDSHAKE_TRAFFIC_SECRET <client random> <secret>               (TLS 1.3)
//! SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0,
//! CLIENT_EARLY_TRAFFIC_SECRET, EXPORTER_SECRET, EARLY_EXPORTER_SECRET     (TLS 1.3)
//! ```
//!
//! Secrets are looked up by client random. A [`KeyLog`] is immutable once loaded, so it
//! can be shared by every thread behind an `Arc`; a connection asks for its secrets (through
//! [`KeySource`]) only when it needs them, so secrets that arrive later in a capture (a
//! Decryption Secrets Block in the middle of a pcapng file) serve every connection whose
//! keys are needed after that point. Secret bytes are never printed: `Debug` shows lengths
//! and counts only.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// `Secrets Type` of a pcapng Decryption Secrets Block holding a TLS key log.
pub const DSB_SECRETS_TYPE_TLS: u32 = 0x544c_534b;

/// One secret: a TLS 1.2 master secret (48 bytes) or a TLS 1.3 traffic secret (32 or 48).
#[derive(Clone, Copy)]
pub struct Secret {
    len: u8,
    bytes: [u8; Secret::MAX_LEN],
}

impl Secret {
    pub const MAX_LEN: usize = 48;

    /// `None` when empty or longer than 48 bytes.
    pub fn new(bytes: &[u8]) -> Option<Secret> {
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return None;
        }
        let mut s = Secret {
            len: bytes.len() as u8,
            bytes: [0; Self::MAX_LEN],
        };
        s.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(s)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Never the bytes.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// The secrets logged for one client random.
#[derive(Clone, Copy, Debug, Default)]
pub struct Secrets {
    /// `CLIENT_RANDOM`: the TLS 1.2 master secret (RFC 5246 §8.1).
    pub master_secret: Option<Secret>,
    /// `CLIENT_EARLY_TRAFFIC_SECRET` (0-RTT data, RFC 8446 §7.1).
    pub client_early_traffic: Option<Secret>,
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    pub client_handshake_traffic: Option<Secret>,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    pub server_handshake_traffic: Option<Secret>,
    /// `CLIENT_TRAFFIC_SECRET_0`.
    pub client_traffic_0: Option<Secret>,
    /// `SERVER_TRAFFIC_SECRET_0`.
    pub server_traffic_0: Option<Secret>,
}

impl Secrets {
    /// Fills what `self` lacks from `other`.
    fn merge(&mut self, other: &Secrets) {
        let pairs = [
            (&mut self.master_secret, other.master_secret),
            (&mut self.client_early_traffic, other.client_early_traffic),
            (
                &mut self.client_handshake_traffic,
                other.client_handshake_traffic,
            ),
            (
                &mut self.server_handshake_traffic,
                other.server_handshake_traffic,
            ),
            (&mut self.client_traffic_0, other.client_traffic_0),
            (&mut self.server_traffic_0, other.server_traffic_0),
        ];
        for (mine, theirs) in pairs {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }
}

/// What loading a key log text found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Lines with a secret that is used (one of the labels of [`Secrets`]).
    pub secrets: usize,
    /// Well-formed lines with a label this layer does not use (`EXPORTER_SECRET`, `RSA`, …).
    pub ignored: usize,
    /// Lines that are neither comments, blank, nor `LABEL HEX HEX`.
    pub malformed: usize,
    /// 1-based number of the first malformed line, for the message.
    pub first_malformed_line: Option<usize>,
}

/// Secrets by client random, from key log files and Decryption Secrets Blocks.
#[derive(Clone, Default)]
pub struct KeyLog {
    by_client_random: HashMap<[u8; 32], Secrets>,
}

/// Counts only, never secrets.
impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyLog({} client randoms)", self.by_client_random.len())
    }
}

impl KeyLog {
    pub fn new() -> KeyLog {
        KeyLog::default()
    }

    /// Reads a key log file and adds its secrets.
    pub fn add_file(&mut self, path: impl AsRef<Path>) -> io::Result<LoadStats> {
        let text = std::fs::read(path)?;
        Ok(self.add_text(&text))
    }

    /// Adds the secrets of a key log text (any line ending; bad lines are counted and
    /// skipped, the rest is used).
    pub fn add_text(&mut self, text: &[u8]) -> LoadStats {
        let mut stats = LoadStats::default();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            match parse_line(line) {
                Line::Blank => {}
                Line::Secret(cr, label, secret) => {
                    let e = self.by_client_random.entry(cr).or_default();
                    let slot = match label {
                        Label::ClientRandom => &mut e.master_secret,
                        Label::ClientEarlyTraffic => &mut e.client_early_traffic,
                        Label::ClientHandshakeTraffic => &mut e.client_handshake_traffic,
                        Label::ServerHandshakeTraffic => &mut e.server_handshake_traffic,
                        Label::ClientTraffic0 => &mut e.client_traffic_0,
                        Label::ServerTraffic0 => &mut e.server_traffic_0,
                    };
                    *slot = Some(secret);
                    stats.secrets += 1;
                }
                Line::Ignored => stats.ignored += 1,
                Line::Malformed => {
                    stats.malformed += 1;
                    stats.first_malformed_line.get_or_insert(i + 1);
                }
            }
        }
        stats
    }

    /// Adds the secrets of a pcapng Decryption Secrets Block: `None` if the block holds
    /// another kind of secrets than a TLS key log.
    pub fn add_decryption_secrets_block(
        &mut self,
        secrets_type: u32,
        secrets_data: &[u8],
    ) -> Option<LoadStats> {
        (secrets_type == DSB_SECRETS_TYPE_TLS).then(|| self.add_text(secrets_data))
    }

    /// Adds every secret of `other` (secrets already known for a client random stay).
    pub fn extend(&mut self, other: &KeyLog) {
        for (cr, s) in &other.by_client_random {
            self.by_client_random.entry(*cr).or_default().merge(s);
        }
    }

    /// Number of client randoms with at least one secret.
    pub fn len(&self) -> usize {
        self.by_client_random.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client_random.is_empty()
    }

    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.by_client_random.get(client_random)
    }
}

/// Where a connection gets its secrets, asked at the moment it needs them.
pub trait KeySource {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<&Secrets>;
}

impl KeySource for KeyLog {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.get(client_random)
    }
}

impl<T: KeySource + ?Sized> KeySource for &T {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        (**self).secrets(client_random)
    }
}

impl<T: KeySource + ?Sized> KeySource for Arc<T> {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        (**self).secrets(client_random)
    }
}

/// Several key logs (e.g. the `--keylog` files, then each Decryption Secrets Block met so
/// far): the first that knows the client random answers.
impl<T: KeySource> KeySource for [T] {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.iter().find_map(|k| k.secrets(client_random))
    }
}

impl<T: KeySource> KeySource for Vec<T> {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.as_slice().secrets(client_random)
    }
}

/// No keys at all (a capture read without a key log).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKeys;

impl KeySource for NoKeys {
    fn secrets(&self, _: &[u8; 32]) -> Option<&Secrets> {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    ClientRandom,
    ClientEarlyTraffic,
    ClientHandshakeTraffic,
    ServerHandshakeTraffic,
    ClientTraffic0,
    ServerTraffic0,
}

enum Line {
    Blank,
    Secret([u8; 32], Label, Secret),
    Ignored,
    Malformed,
}

fn parse_line(line: &[u8]) -> Line {
    let line = line.trim_ascii();
    if line.is_empty() || line[0] == b'#' {
        return Line::Blank;
    }
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let (Some(label), Some(cr_hex), Some(secret_hex), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Line::Malformed;
    };
    let label = match label {
        b"CLIENT_RANDOM" => Label::ClientRandom,
        b"CLIENT_EARLY_TRAFFIC_SECRET" => Label::ClientEarlyTraffic,
        b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Label::ClientHandshakeTraffic,
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => Label::ServerHandshakeTraffic,
        b"CLIENT_TRAFFIC_SECRET_0" => Label::ClientTraffic0,
        b"SERVER_TRAFFIC_SECRET_0" => Label::ServerTraffic0,
        l if l
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_') =>
        {
            return Line::Ignored
        }
        _ => return Line::Malformed,
    };
    let mut cr = [0u8; 32];
    let mut secret = [0u8; Secret::MAX_LEN];
    if cr_hex.len() != 64 || !unhex_into(cr_hex, &mut cr) {
        return Line::Malformed;
    }
    let n = secret_hex.len() / 2;
    // A master secret is 48 bytes (RFC 5246 §8.1); traffic secrets are Hash.length.
    let len_ok = match label {
        Label::ClientRandom => n == 48,
        _ => n == 32 || n == 48,
    };
    if secret_hex.len() % 2 != 0 || !len_ok || !unhex_into(secret_hex, &mut secret[..n]) {
        return Line::Malformed;
    }
    Line::Secret(cr, label, Secret::new(&secret[..n]).expect("1..=48 bytes"))
}

/// Hex (either case) into `out`, whose length is half the text's; false if not hex.
fn unhex_into(hex: &[u8], out: &mut [u8]) -> bool {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";

    #[test]
    fn parses_every_label_and_skips_the_rest() {
        let text = format!(
            "# SSL/TLS secrets log file, generated by NSS\r\n\
             CLIENT_RANDOM {CR} {ms}\r\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {CR} {s32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {CR} {s48}\n\
             CLIENT_TRAFFIC_SECRET_0 {CR} {s32}\n\
             SERVER_TRAFFIC_SECRET_0 {CR} {s32}\n\
             CLIENT_EARLY_TRAFFIC_SECRET {CR} {s32}\n\
             EXPORTER_SECRET {CR} {s32}\n\
             \n\
             CLIENT_RANDOM {CR} 00\n\
             CLIENT_RANDOM nothex {ms}\n\
             just garbage\n",
            ms = "ab".repeat(48),
            s32 = "CD".repeat(32),
            s48 = "ef".repeat(48),
        );
        let mut log = KeyLog::new();
        let stats = log.add_text(text.as_bytes());
        assert_eq!(
            stats,
            LoadStats {
                secrets: 6,
                ignored: 1,
                malformed: 3,
                first_malformed_line: Some(10)
            }
        );
        let cr: [u8; 32] = crate::tls::testing::unhex(CR).try_into().unwrap();
        let s = log.secrets(&cr).unwrap();
        assert_eq!(s.master_secret.unwrap().as_bytes(), &[0xab; 48][..]);
        assert_eq!(
            s.client_handshake_traffic.unwrap().as_bytes(),
            &[0xcd; 32][..]
        );
        assert_eq!(
            s.server_handshake_traffic.unwrap().as_bytes(),
            &[0xef; 48][..]
        );
        assert!(s.client_early_traffic.is_some() && s.server_traffic_0.is_some());
        assert!(log.secrets(&[0; 32]).is_none());
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let mut log = KeyLog::new();
        log.add_text(format!("CLIENT_RANDOM {CR} {}", "5a".repeat(48)).as_bytes());
        let cr: [u8; 32] = crate::tls::testing::unhex(CR).try_into().unwrap();
        let shown = format!("{log:?} {:?}", log.get(&cr).unwrap());
        assert!(!shown.to_lowercase().contains("5a5a"), "{shown}");
        assert!(!shown.contains("90, 90"), "{shown}");
        assert!(shown.contains("48 bytes"), "{shown}");
    }

    #[test]
    fn decryption_secrets_block_and_several_logs() {
        let line = format!("CLIENT_RANDOM {CR} {}\n", "11".repeat(48));
        let mut dsb = KeyLog::new();
        assert_eq!(
            dsb.add_decryption_secrets_block(0x5353_4844, line.as_bytes()),
            None
        );
        assert_eq!(
            dsb.add_decryption_secrets_block(DSB_SECRETS_TYPE_TLS, line.as_bytes())
                .unwrap()
                .secrets,
            1
        );
        let cr: [u8; 32] = crate::tls::testing::unhex(CR).try_into().unwrap();
        let logs = vec![Arc::new(KeyLog::new()), Arc::new(dsb.clone())];
        assert!(logs.secrets(&cr).is_some());
        let mut merged = KeyLog::new();
        merged.add_text(format!("SERVER_TRAFFIC_SECRET_0 {CR} {}", "22".repeat(32)).as_bytes());
        merged.extend(&dsb);
        let s = merged.get(&cr).unwrap();
        assert!(s.master_secret.is_some() && s.server_traffic_0.is_some());
    }
}
