//! TLS 1.3 with `TLS_AES_128_GCM_SHA256` over a simulated connection, and its key log
//! (RFC 9850, the `SSLKEYLOGFILE` format): the sending side of a `wss://` capture.
//!
//! The generator does not run a key exchange: it draws the four traffic secrets at
//! random and logs them, as a client with `SSLKEYLOGFILE` would. Everything the analyzer
//! reads is real TLS 1.3 (RFC 8446): a ClientHello (SNI, ALPN `http/1.1`,
//! supported_versions, key_share), a ServerHello and a compatibility ChangeCipherSpec, the
//! server's encrypted flight (EncryptedExtensions with ALPN, Certificate,
//! CertificateVerify, Finished) and the client's Finished under the handshake traffic
//! secrets, then application data under the application traffic secrets, in records of
//! at most 2^14 bytes (§5.1), sealed with AES-128-GCM (§5.2, §5.3) by the RustCrypto
//! crates wsclose itself uses.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes128Gcm, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;

use super::Rng;

/// `TLS_AES_128_GCM_SHA256` (RFC 8446 §B.4).
pub const TLS_AES_128_GCM_SHA256: u16 = 0x1301;

/// Largest plaintext of one record (RFC 8446 §5.1).
pub const MAX_RECORD_PLAINTEXT: usize = 1 << 14;

/// Bytes a record adds to its plaintext: header, content type, tag.
pub const RECORD_OVERHEAD: usize = 5 + 1 + 16;

const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const CHANGE_CIPHER_SPEC: u8 = 20;

/// `HKDF-Expand-Label(secret, label, "", out.len())` with SHA-256 (RFC 8446 §7.1).
fn expand_label(secret: &[u8; 32], label: &[u8], out: &mut [u8]) {
    const PREFIX: &[u8] = b"tls13 ";
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(PREFIX.len() + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, PREFIX, label, &[0]];
    Hkdf::<Sha256>::from_prk(secret)
        .expect("a 32-byte secret")
        .expand_multi_info(&info, out)
        .expect("a short output");
}

/// Seals the records of one direction under one traffic secret (RFC 8446 §7.3 keys,
/// §5.3 per-record nonce, §5.2 record).
pub struct Sealer {
    cipher: Aes128Gcm,
    iv: [u8; 12],
    seq: u64,
}

impl Sealer {
    pub fn new(secret: &[u8; 32]) -> Sealer {
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        expand_label(secret, b"key", &mut key);
        expand_label(secret, b"iv", &mut iv);
        Sealer {
            cipher: Aes128Gcm::new_from_slice(&key).expect("16-byte key"),
            iv,
            seq: 0,
        }
    }

    /// Appends one record of `content_type` holding `plaintext` (≤ 2^14 bytes) to `out`.
    pub fn seal(&mut self, content_type: u8, plaintext: &[u8], out: &mut Vec<u8>) {
        debug_assert!(plaintext.len() <= MAX_RECORD_PLAINTEXT);
        let len = plaintext.len() + 1 + 16;
        let start = out.len();
        out.extend_from_slice(&[APPLICATION_DATA, 3, 3]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(plaintext);
        out.push(content_type);
        let mut nonce = self.iv;
        for (b, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq += 1;
        let (head, body) = out[start..].split_at_mut(5);
        let buf: InOutBuf<'_, '_, u8> = body.into();
        let tag = self
            .cipher
            .encrypt_inout_detached((&nonce).into(), head, buf)
            .expect("a record fits");
        out.extend_from_slice(&tag);
    }

    /// Appends `data` as application data records of at most 2^14 bytes.
    pub fn seal_data(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for part in data.chunks(MAX_RECORD_PLAINTEXT) {
            self.seal(APPLICATION_DATA, part, out);
        }
    }
}

/// One connection's TLS: secrets, and the keys each direction uses now.
pub struct TlsConn {
    client_random: [u8; 32],
    server_random: [u8; 32],
    session_id: [u8; 32],
    key_share: [[u8; 32]; 2],
    /// client_handshake, server_handshake, client_application, server_application.
    secrets: [[u8; 32]; 4],
    sni: String,
    /// Per side (client, server): the sealer of application data once the handshake is
    /// done.
    app: [Option<Sealer>; 2],
    /// Certificate, CertificateVerify and Finished bytes.
    rng: Rng,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").field("sni", &self.sni).finish()
    }
}

impl Clone for TlsConn {
    /// A copy before the handshake (sealers are not cloned; they are made by it).
    fn clone(&self) -> Self {
        TlsConn {
            client_random: self.client_random,
            server_random: self.server_random,
            session_id: self.session_id,
            key_share: self.key_share,
            secrets: self.secrets,
            sni: self.sni.clone(),
            app: [None, None],
            rng: self.rng.clone(),
        }
    }
}

fn hs_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

fn vec16(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend(vec16(data));
    v
}

fn plain_record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn alpn_http11() -> Vec<u8> {
    let mut list = vec![8];
    list.extend_from_slice(b"http/1.1");
    ext(16, &vec16(&list))
}

impl TlsConn {
    /// A connection to `sni`, its randoms and secrets drawn from `rng`.
    pub fn new(rng: &mut Rng, sni: &str) -> TlsConn {
        let mut t = TlsConn {
            client_random: [0; 32],
            server_random: [0; 32],
            session_id: [0; 32],
            key_share: [[0; 32]; 2],
            secrets: [[0; 32]; 4],
            sni: sni.to_string(),
            app: [None, None],
            rng: rng.fork(),
        };
        rng.fill(&mut t.client_random);
        rng.fill(&mut t.server_random);
        rng.fill(&mut t.session_id);
        for k in &mut t.key_share {
            rng.fill(k);
        }
        for s in &mut t.secrets {
            rng.fill(s);
        }
        t
    }

    /// The key log lines of this connection (what a client with `SSLKEYLOGFILE` writes).
    pub fn keylog_lines(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let cr = hex(&self.client_random);
        let labels = [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
        ];
        labels
            .iter()
            .zip(&self.secrets)
            .map(|(l, s)| format!("{l} {cr} {}\n", hex(s)))
            .collect()
    }

    /// The client's first flight: a ClientHello record (RFC 8446 §4.1.2).
    pub fn client_hello(&self) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&self.client_random);
        body.push(32);
        body.extend_from_slice(&self.session_id);
        body.extend(vec16(&[0x13, 0x01, 0x13, 0x02, 0x13, 0x03]));
        body.extend_from_slice(&[1, 0]);
        let mut sni = vec![0];
        sni.extend(vec16(self.sni.as_bytes()));
        let mut share = 29u16.to_be_bytes().to_vec();
        share.extend(vec16(&self.key_share[0]));
        let exts = [
            ext(0, &vec16(&sni)),
            ext(10, &vec16(&[0, 29, 0, 23])),
            ext(13, &vec16(&[4, 3, 8, 4, 4, 1])),
            alpn_http11(),
            ext(43, &[4, 3, 4, 3, 3]),
            ext(45, &[1, 1]),
            ext(51, &vec16(&share)),
        ]
        .concat();
        body.extend(vec16(&exts));
        plain_record(HANDSHAKE, &hs_msg(1, &body))
    }

    /// The server's flight: ServerHello, a compatibility ChangeCipherSpec (§D.4), then
    /// EncryptedExtensions, Certificate, CertificateVerify and Finished under the server
    /// handshake traffic secret. From here the server sends under its application secret.
    pub fn server_flight(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        let mut body = vec![3, 3];
        body.extend_from_slice(&self.server_random);
        body.push(32);
        body.extend_from_slice(&self.session_id);
        body.extend_from_slice(&TLS_AES_128_GCM_SHA256.to_be_bytes());
        body.push(0);
        let mut share = 29u16.to_be_bytes().to_vec();
        share.extend(vec16(&self.key_share[1]));
        let exts = [ext(43, &[3, 4]), ext(51, &share)].concat();
        body.extend(vec16(&exts));
        let mut out = plain_record(HANDSHAKE, &hs_msg(2, &body));
        out.extend(plain_record(CHANGE_CIPHER_SPEC, &[1]));
        let mut cert = vec![0u8; 700 + rng.below(400) as usize];
        rng.fill(&mut cert);
        let mut verify = vec![0u8; 260];
        rng.fill(&mut verify);
        let mut finished = [0u8; 32];
        rng.fill(&mut finished);
        let flight = [
            hs_msg(8, &vec16(&alpn_http11())),
            hs_msg(11, &cert),
            hs_msg(15, &verify),
            hs_msg(20, &finished),
        ]
        .concat();
        Sealer::new(&self.secrets[1]).seal(HANDSHAKE, &flight, &mut out);
        self.app[1] = Some(Sealer::new(&self.secrets[3]));
        out
    }

    /// The client's second flight: ChangeCipherSpec and Finished under the client
    /// handshake traffic secret. From here the client sends under its application secret.
    pub fn client_finished(&mut self) -> Vec<u8> {
        let mut out = plain_record(CHANGE_CIPHER_SPEC, &[1]);
        let mut finished = [0u8; 32];
        self.rng.fill(&mut finished);
        Sealer::new(&self.secrets[0]).seal(HANDSHAKE, &hs_msg(20, &finished), &mut out);
        self.app[0] = Some(Sealer::new(&self.secrets[2]));
        out
    }

    /// `data` sent by side `side` (0: client, 1: server) as application data records.
    pub fn seal(&mut self, side: usize, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + RECORD_OVERHEAD);
        self.app[side]
            .as_mut()
            .expect("application data after the handshake")
            .seal_data(data, &mut out);
        out
    }

    /// Whether the handshake has given `side` its application keys.
    pub fn established(&self, side: usize) -> bool {
        self.app[side].is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8448 §3 (simple 1-RTT handshake): the server's handshake traffic key and IV.
    #[test]
    fn traffic_keys_as_rfc_8448() {
        let unhex = |s: &str| -> Vec<u8> {
            let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            s.chunks(2)
                .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
                .collect()
        };
        let secret: [u8; 32] = unhex(
            "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d
             42 be fd 59 d3 91 ad 38",
        )
        .try_into()
        .unwrap();
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        expand_label(&secret, b"key", &mut key);
        expand_label(&secret, b"iv", &mut iv);
        assert_eq!(
            key.to_vec(),
            unhex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
        );
        assert_eq!(iv.to_vec(), unhex("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
    }

    #[test]
    fn records_are_at_most_2_14_bytes_and_numbered() {
        let mut rng = Rng::new(3);
        let mut t = TlsConn::new(&mut rng, "example.com");
        let ch = t.client_hello();
        assert_eq!(&ch[..2], &[22, 3]);
        assert_eq!(ch[5], 1);
        t.server_flight();
        t.client_finished();
        let out = t.seal(0, &vec![7u8; 40_000]);
        assert_eq!(out.len(), 40_000 + 3 * RECORD_OVERHEAD);
        let mut lens = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let n = u16::from_be_bytes([rest[3], rest[4]]) as usize;
            lens.push(n);
            rest = &rest[5 + n..];
        }
        assert_eq!(lens, [16384 + 17, 16384 + 17, 40_000 - 32768 + 17]);
        assert_eq!(t.keylog_lines().lines().count(), 4);
    }
}
