//! Record protection: the keys of one direction in one epoch, and the decryption of one
//! record with them.
//!
//! - TLS 1.3 (RFC 8446 §5.2, §5.3): AEAD, nonce = `iv` XOR the 64-bit sequence number,
//!   additional data = the record header; the plaintext ends with the real content type
//!   and zero padding (`TLSInnerPlaintext`).
//! - TLS 1.2 AES-GCM (RFC 5288 §3): nonce = 4-byte salt from the key block + the 8-byte
//!   `nonce_explicit` that starts the record; additional data = seq_num + type + version +
//!   length (RFC 5246 §6.2.3.3).
//! - TLS 1.2 ChaCha20-Poly1305 (RFC 7905 §2): nonce = 12-byte IV XOR the sequence
//!   number, no explicit part; the same additional data.
//! - TLS 1.2 AES-CBC (RFC 5246 §6.2.3.2): explicit IV, then MAC-then-encrypt with HMAC
//!   (§6.2.3.1) and padding; or Encrypt-then-MAC (RFC 7366 §3) when negotiated.
//!
//! Every algorithm comes from the RustCrypto crates — or, with the `ring` feature, the AEAD
//! suites from `ring` (stitched AES-GCM assembly, about 3 times faster on large records);
//! the plaintext is written into the caller's reused buffer (RustCrypto: straight from the
//! ciphertext; ring: the ciphertext copied there, then opened in place). AES-GCM is composed
//! from the `aes`, `ctr` and `ghash` crates (`gcm.rs`: faster than the `aes-gcm` crate on
//! small records, and held to it by the tests); ChaCha20-Poly1305 records that are read are
//! opened by `chacha20poly1305`. A record nobody reads has only its tag checked
//! (`open_unread`: `gcm.rs`, `chacha.rs`).

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, InnerIvInit, KeyInit};
use hmac::Hmac;
use sha1::Sha1;
use sha2::{Sha256, Sha384};

#[cfg(not(feature = "ring"))]
use chacha20poly1305::aead::inout::InOutBuf;
#[cfg(not(feature = "ring"))]
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305};

#[cfg(not(feature = "ring"))]
use super::chacha::ChaCha20Poly1305Tag;
#[cfg(not(feature = "ring"))]
use super::gcm::{Gcm, TwoStep};
use super::key_schedule::{self, BadSecretLength, IV_LEN};
use super::keylog::Secret;
use super::record::RecordHeader;
#[cfg(not(feature = "ring"))]
use super::stitched::Stitched;
use super::suite::{Aead, Cbc, Hash, Mac};

#[cfg(not(feature = "ring"))]
thread_local! {
    /// Where a long record nobody reads is opened whole (`open_unread`).
    static UNREAD_PLAINTEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Why a record did not decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecryptError {
    /// The AEAD tag or the record MAC (or, for MAC-then-encrypt CBC, the padding) is wrong:
    /// wrong key, wrong sequence number, or damaged bytes.
    BadRecordMac,
    /// Too short for the cipher's overhead, or not a whole number of blocks.
    BadLength,
    /// A TLS 1.3 inner plaintext of zeros only: no content type (RFC 8446 §5.4).
    NoContentType,
}

// The variants differ in size (the ChaCha20 variant holds two keyed ciphers; with `ring`,
// the CBC ones stand out); `RecordKeys` is boxed by its owner (`Half::keys`) anyway.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    /// Records read or not (`gcm.rs`).
    #[cfg(not(feature = "ring"))]
    Aes128Gcm(Gcm<aes::Aes128>),
    #[cfg(not(feature = "ring"))]
    Aes256Gcm(Gcm<aes::Aes256>),
    /// The crate's cipher for records that are read, and the same key's tag check for
    /// records nobody reads.
    #[cfg(not(feature = "ring"))]
    ChaCha20Poly1305(ChaCha20Poly1305, ChaCha20Poly1305Tag),
    /// Any AEAD suite, opened by `ring`.
    #[cfg(feature = "ring")]
    Ring(ring::aead::LessSafeKey),
    Aes128Cbc(aes::Aes128, MacKey, bool),
    Aes256Cbc(aes::Aes256, MacKey, bool),
}

/// A keyed HMAC, cloned for each record.
#[derive(Clone)]
enum MacKey {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
}

impl MacKey {
    fn new(mac: Mac, key: &[u8]) -> MacKey {
        let k = "HMAC takes keys of any length";
        match mac {
            Mac::Sha1 => MacKey::Sha1(KeyInit::new_from_slice(key).expect(k)),
            Mac::Sha256 => MacKey::Sha256(KeyInit::new_from_slice(key).expect(k)),
            Mac::Sha384 => MacKey::Sha384(KeyInit::new_from_slice(key).expect(k)),
        }
    }

    fn len(&self) -> usize {
        match self {
            MacKey::Sha1(_) => 20,
            MacKey::Sha256(_) => 32,
            MacKey::Sha384(_) => 48,
        }
    }

    /// True if HMAC(key, parts...) equals `expected` (constant time, by the hmac crate).
    fn verify(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        fn run<M: hmac::Mac + Clone>(m: &M, parts: &[&[u8]], expected: &[u8]) -> bool {
            let mut m = m.clone();
            for p in parts {
                m.update(p);
            }
            m.verify_slice(expected).is_ok()
        }
        match self {
            MacKey::Sha1(m) => run(m, parts, expected),
            MacKey::Sha256(m) => run(m, parts, expected),
            MacKey::Sha384(m) => run(m, parts, expected),
        }
    }
}

/// Which record format the keys are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tls13,
    Tls12Gcm,
    Tls12ChaCha,
    Tls12Cbc,
}

/// The keys of one direction in one epoch. Never printed.
pub struct RecordKeys {
    cipher: Cipher,
    /// TLS 1.3 and ChaCha20 in TLS 1.2: the whole 12-byte IV; GCM in TLS 1.2: the salt in
    /// the first 4 bytes; CBC: unused.
    iv: [u8; IV_LEN],
    format: Format,
}

/// The bytes a cipher adds to the plaintext of a record (header excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overhead {
    /// Added to every record: tag, explicit nonce or IV, MAC, TLS 1.3 content type.
    pub fixed: usize,
    /// Records are a whole number of blocks of this size (CBC), else 1.
    pub block: usize,
}

impl RecordKeys {
    fn aead(aead: Aead, key: &[u8], iv: [u8; IV_LEN], format: Format) -> RecordKeys {
        let k = "key length fits the AEAD";
        #[cfg(not(feature = "ring"))]
        let cipher = match aead {
            Aead::Aes128Gcm => Cipher::Aes128Gcm(Gcm::new(key).expect(k)),
            Aead::Aes256Gcm => Cipher::Aes256Gcm(Gcm::new(key).expect(k)),
            Aead::ChaCha20Poly1305 => Cipher::ChaCha20Poly1305(
                KeyInit::new_from_slice(key).expect(k),
                ChaCha20Poly1305Tag::new(key).expect(k),
            ),
        };
        #[cfg(feature = "ring")]
        let cipher = {
            use ring::aead::{
                LessSafeKey, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
            };
            let alg = match aead {
                Aead::Aes128Gcm => &AES_128_GCM,
                Aead::Aes256Gcm => &AES_256_GCM,
                Aead::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            };
            Cipher::Ring(LessSafeKey::new(UnboundKey::new(alg, key).expect(k)))
        };
        RecordKeys { cipher, iv, format }
    }

    /// TLS 1.3 keys from a traffic secret (RFC 8446 §7.3).
    pub fn tls13(aead: Aead, hash: Hash, secret: &Secret) -> Result<RecordKeys, BadSecretLength> {
        let (key, iv) = key_schedule::traffic_key_iv(hash, secret, aead.key_len())?;
        Ok(Self::aead(aead, &key[..aead.key_len()], iv, Format::Tls13))
    }

    /// TLS 1.2 AEAD keys: `write_key` and `write_IV` from the key block (RFC 5246 §6.3;
    /// the IV is 4 bytes for GCM, RFC 5288 §3, and 12 for ChaCha20, RFC 7905 §2).
    pub fn tls12_aead(aead: Aead, write_key: &[u8], write_iv: &[u8]) -> RecordKeys {
        let mut iv = [0u8; IV_LEN];
        iv[..write_iv.len()].copy_from_slice(write_iv);
        let format = match aead {
            Aead::ChaCha20Poly1305 => Format::Tls12ChaCha,
            _ => Format::Tls12Gcm,
        };
        Self::aead(aead, write_key, iv, format)
    }

    /// TLS 1.2 CBC keys: `write_MAC_key` and `write_key` (RFC 5246 §6.3), and whether
    /// Encrypt-then-MAC was negotiated (RFC 7366).
    pub fn tls12_cbc(
        cbc: Cbc,
        mac: Mac,
        mac_key: &[u8],
        write_key: &[u8],
        etm: bool,
    ) -> RecordKeys {
        let k = "key length fits AES";
        let mac = MacKey::new(mac, mac_key);
        let cipher = match cbc {
            Cbc::Aes128 => {
                Cipher::Aes128Cbc(aes::Aes128::new_from_slice(write_key).expect(k), mac, etm)
            }
            Cbc::Aes256 => {
                Cipher::Aes256Cbc(aes::Aes256::new_from_slice(write_key).expect(k), mac, etm)
            }
        };
        RecordKeys {
            cipher,
            iv: [0; IV_LEN],
            format: Format::Tls12Cbc,
        }
    }

    /// The stitched cipher of long AES-GCM records (`stitched.rs`), for AES-GCM keys.
    #[cfg(not(feature = "ring"))]
    fn stitched(&self) -> Option<&Stitched> {
        match &self.cipher {
            Cipher::Aes128Gcm(g) => Some(&g.stitched),
            Cipher::Aes256Gcm(g) => Some(&g.stitched),
            _ => None,
        }
    }

    #[cfg(not(feature = "ring"))]
    fn stitched_mut(&mut self) -> Option<&mut Stitched> {
        match &mut self.cipher {
            Cipher::Aes128Gcm(g) => Some(&mut g.stitched),
            Cipher::Aes256Gcm(g) => Some(&mut g.stitched),
            _ => None,
        }
    }

    /// Bytes held beyond the keys themselves: the stitched AES-GCM's round keys and
    /// tables, once a long record keyed them (for the memory budget).
    pub fn held_bytes(&self) -> usize {
        #[cfg(not(feature = "ring"))]
        if let Some(s) = self.stitched() {
            return s.held_bytes();
        }
        0
    }

    /// Gives up what [`held_bytes`](Self::held_bytes) counts; nothing is lost (it is made
    /// again from the key when needed).
    pub fn trim(&mut self) {
        #[cfg(not(feature = "ring"))]
        if let Some(s) = self.stitched_mut() {
            s.trim();
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// What the cipher adds to each record's plaintext (for gap estimates; TLS 1.3
    /// padding, which is rare, is not counted).
    pub fn overhead(&self) -> Overhead {
        let tag = Aead::TAG_LEN;
        match (&self.cipher, self.format) {
            (_, Format::Tls13) => Overhead {
                fixed: tag + 1,
                block: 1,
            },
            (_, Format::Tls12Gcm) => Overhead {
                fixed: 8 + tag,
                block: 1,
            },
            (_, Format::Tls12ChaCha) => Overhead {
                fixed: tag,
                block: 1,
            },
            (Cipher::Aes128Cbc(_, m, _) | Cipher::Aes256Cbc(_, m, _), _) => Overhead {
                // IV + MAC + at least the padding_length byte.
                fixed: Cbc::BLOCK_LEN + m.len() + 1,
                block: Cbc::BLOCK_LEN,
            },
            _ => unreachable!("CBC format has a CBC cipher"),
        }
    }

    /// The nonce of record `seq`: `iv` XOR the sequence number, left-padded (RFC 8446 §5.3,
    /// RFC 7905 §2).
    fn xor_nonce(&self, seq: u64) -> [u8; IV_LEN] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// Decrypts record number `seq` (`header` and `fragment` as on the wire) into `out`,
    /// which is grown as needed and reused between records. Returns the content type (the
    /// inner one in TLS 1.3) and the plaintext length (at the start of `out`).
    pub fn open(
        &self,
        seq: u64,
        header: &RecordHeader,
        fragment: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(u8, usize), DecryptError> {
        // Grown to the longest record seen (small for chat traffic), never shrunk.
        if out.len() < fragment.len() {
            out.resize(fragment.len(), 0);
        }
        let tag = Aead::TAG_LEN;
        match self.format {
            Format::Tls13 => {
                let n = fragment
                    .len()
                    .checked_sub(tag)
                    .ok_or(DecryptError::BadLength)?;
                let (ct, t) = fragment.split_at(n);
                self.aead_open(
                    &self.xor_nonce(seq),
                    &header.to_bytes(),
                    ct,
                    t,
                    &mut out[..n],
                )?;
                // TLSInnerPlaintext: content, then ContentType type, then zeros (§5.2).
                let end = out[..n]
                    .iter()
                    .rposition(|&b| b != 0)
                    .ok_or(DecryptError::NoContentType)?;
                Ok((out[end], end))
            }
            Format::Tls12Gcm | Format::Tls12ChaCha => {
                let (nonce, ct, t) = self
                    .tls12_aead_parts(seq, fragment)
                    .ok_or(DecryptError::BadLength)?;
                let n = ct.len();
                let aad = tls12_aad(seq, header, n);
                self.aead_open(&nonce, &aad, ct, t, &mut out[..n])?;
                Ok((header.content_type, n))
            }
            Format::Tls12Cbc => self.cbc_open(seq, header, fragment, out),
        }
    }

    /// A record whose plaintext will be passed over unread, when there are at most `unread`
    /// such bytes ahead: if it opens as application data, its tag is checked and only what
    /// tells its content type is decrypted (TLS 1.3's inner type, found from the end; in TLS
    /// 1.2 the header says it). Returns the plaintext length — the bytes themselves are not
    /// written to `out` (a long AES-GCM record, which the stitched cipher opens whole faster
    /// than its tag is checked alone, is decrypted into a buffer of the thread's). `None`:
    /// not so (CBC keys, or `ring`'s; a longer plaintext, another content type, a bad tag):
    /// [`open`](Self::open) reads the record and says why.
    pub fn open_unread(
        &self,
        seq: u64,
        header: &RecordHeader,
        fragment: &[u8],
        out: &mut Vec<u8>,
        unread: u64,
    ) -> Option<usize> {
        // With `ring`, records are opened whole: its stitched AES-GCM is faster than GHASH
        // alone here.
        #[cfg(feature = "ring")]
        {
            let _ = (seq, header, fragment, out, unread);
            None
        }
        #[cfg(not(feature = "ring"))]
        {
            use super::record::content_type::APPLICATION_DATA;
            let whole = |len: usize| self.stitched().is_some_and(|s| s.takes(len));
            // Opened whole into the thread's buffer (the connection's, `out`, stays the size
            // of what it reads): the content's length if it is application data.
            let open_whole = || {
                let (ty, n) = UNREAD_PLAINTEXT
                    .with_borrow_mut(|buf| self.open(seq, header, fragment, buf).ok())?;
                (ty == APPLICATION_DATA).then_some(n)
            };
            let g: &dyn TwoStep = match &self.cipher {
                Cipher::Aes128Gcm(g) => g,
                Cipher::Aes256Gcm(g) => g,
                Cipher::ChaCha20Poly1305(_, c) => c,
                _ => return None,
            };
            let tag_len = Aead::TAG_LEN;
            match self.format {
                Format::Tls13 => {
                    let n = fragment.len().checked_sub(tag_len)?;
                    // The content is at most n - 1 bytes (the type follows it, §5.2).
                    if n == 0 || (n - 1) as u64 > unread {
                        return None;
                    }
                    if whole(n) {
                        return open_whole();
                    }
                    let (ct, tag) = fragment.split_at(n);
                    let nonce = self.xor_nonce(seq);
                    if !g.verify(&nonce, &header.to_bytes(), ct, tag.try_into().ok()?) {
                        return None;
                    }
                    // TLSInnerPlaintext: content, type, zeros: decrypted from the end, a block
                    // at a time, up to the first byte that is not zero.
                    if out.len() < 16 {
                        out.resize(16, 0);
                    }
                    let mut end = n;
                    while end > 0 {
                        let start = end.saturating_sub(16);
                        let buf = &mut out[..end - start];
                        g.decrypt_range(&nonce, ct, start, buf);
                        if let Some(p) = buf.iter().rposition(|&b| b != 0) {
                            return (buf[p] == APPLICATION_DATA).then_some(start + p);
                        }
                        end = start;
                    }
                    None
                }
                Format::Tls12Gcm | Format::Tls12ChaCha => {
                    let (nonce, ct, tag) = self.tls12_aead_parts(seq, fragment)?;
                    let n = ct.len();
                    if n as u64 > unread || header.content_type != APPLICATION_DATA {
                        return None;
                    }
                    if whole(n) {
                        return open_whole();
                    }
                    let aad = tls12_aad(seq, header, n);
                    g.verify(&nonce, &aad, ct, tag).then_some(n)
                }
                Format::Tls12Cbc => None,
            }
        }
    }

    /// A TLS 1.2 AEAD record's nonce, ciphertext and tag: GCM's nonce is the salt and the
    /// 8-byte `nonce_explicit` that starts the record (RFC 5288 §3), ChaCha20's the IV XOR
    /// the sequence number (RFC 7905 §2). `None`: too short.
    fn tls12_aead_parts<'f>(
        &self,
        seq: u64,
        fragment: &'f [u8],
    ) -> Option<([u8; IV_LEN], &'f [u8], &'f [u8; 16])> {
        let (nonce, body) = if self.format == Format::Tls12Gcm {
            let explicit = fragment.get(..8)?;
            let mut nonce = self.iv;
            nonce[4..].copy_from_slice(explicit);
            (nonce, &fragment[8..])
        } else {
            (self.xor_nonce(seq), fragment)
        };
        let n = body.len().checked_sub(Aead::TAG_LEN)?;
        let (ct, tag) = body.split_at(n);
        Some((nonce, ct, tag.try_into().ok()?))
    }

    fn aead_open(
        &self,
        nonce: &[u8; IV_LEN],
        aad: &[u8],
        ct: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), DecryptError> {
        let tag: &[u8; 16] = tag.try_into().expect("16-byte tag");
        #[cfg(feature = "ring")]
        let opened = match &self.cipher {
            Cipher::Ring(k) => {
                use ring::aead::{Aad, Nonce, Tag};
                out.copy_from_slice(ct);
                k.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    Tag::from(*tag),
                    out,
                    0..,
                )
                .is_ok()
            }
            _ => unreachable!("AEAD format has an AEAD cipher"),
        };
        #[cfg(not(feature = "ring"))]
        let opened = match &self.cipher {
            Cipher::Aes128Gcm(g) => g.open(nonce, aad, ct, tag, out),
            Cipher::Aes256Gcm(g) => g.open(nonce, aad, ct, tag, out),
            Cipher::ChaCha20Poly1305(c, _) => {
                let buf = InOutBuf::new(ct, out).expect("same lengths");
                c.decrypt_inout_detached(nonce.into(), aad, buf, tag.into())
                    .is_ok()
            }
            _ => unreachable!("AEAD format has an AEAD cipher"),
        };
        if opened {
            Ok(())
        } else {
            Err(DecryptError::BadRecordMac)
        }
    }

    /// RFC 5246 §6.2.3.2 (and RFC 7366 §3 for Encrypt-then-MAC):
    ///
    /// ```text
    /// struct {
    ///     opaque IV[SecurityParameters.record_iv_length];
    ///     block-ciphered struct {
    ///         opaque content[TLSCompressed.length];
    ///         opaque MAC[SecurityParameters.mac_length];     /* not with EtM */
    ///         uint8 padding[GenericBlockCipher.padding_length];
    ///         uint8 padding_length;
    ///     };
    /// } GenericBlockCipher;                                  /* EtM: then the MAC */
    /// ```
    fn cbc_open(
        &self,
        seq: u64,
        header: &RecordHeader,
        fragment: &[u8],
        out: &mut [u8],
    ) -> Result<(u8, usize), DecryptError> {
        let (mac, etm) = match &self.cipher {
            Cipher::Aes128Cbc(_, m, e) | Cipher::Aes256Cbc(_, m, e) => (m, *e),
            _ => unreachable!("CBC format has a CBC cipher"),
        };
        let bl = Cbc::BLOCK_LEN;
        let mac_len = mac.len();
        let seq_bytes = seq.to_be_bytes();
        let version = header.legacy_record_version.to_be_bytes();
        let body = if etm {
            // RFC 7366 §3: MAC(MAC_write_key, seq_num + type + version + length + IV +
            // ENC(content + padding + padding_length)), length being that of IV + ciphertext.
            let n = fragment
                .len()
                .checked_sub(mac_len)
                .ok_or(DecryptError::BadLength)?;
            let (body, tag) = fragment.split_at(n);
            let len = (n as u16).to_be_bytes();
            let ok = mac.verify(
                &[&seq_bytes, &[header.content_type], &version, &len, body],
                tag,
            );
            if !ok {
                return Err(DecryptError::BadRecordMac);
            }
            body
        } else {
            fragment
        };
        if body.len() < 2 * bl || body.len() % bl != 0 {
            return Err(DecryptError::BadLength);
        }
        let (iv, ct) = body.split_at(bl);
        let out = &mut out[..ct.len()];
        let r = match &self.cipher {
            Cipher::Aes128Cbc(c, ..) => {
                cbc::Decryptor::<aes::Aes128>::inner_iv_slice_init(c.clone(), iv)
                    .expect("16-byte IV")
                    .decrypt_padded_b2b::<NoPadding>(ct, out)
                    .map(|p| p.len())
            }
            Cipher::Aes256Cbc(c, ..) => {
                cbc::Decryptor::<aes::Aes256>::inner_iv_slice_init(c.clone(), iv)
                    .expect("16-byte IV")
                    .decrypt_padded_b2b::<NoPadding>(ct, out)
                    .map(|p| p.len())
            }
            _ => unreachable!(),
        };
        let n = r.map_err(|_| DecryptError::BadLength)?;
        // padding_length, then that many bytes each equal to it (§6.2.3.2).
        let pad = out[n - 1] as usize;
        let unpadded = n.checked_sub(pad + 1).ok_or(DecryptError::BadRecordMac)?;
        if out[unpadded..n - 1].iter().any(|&b| b as usize != pad) {
            return Err(DecryptError::BadRecordMac);
        }
        if etm {
            return Ok((header.content_type, unpadded));
        }
        // MAC(MAC_write_key, seq_num + type + version + length + content) (§6.2.3.1).
        let content_len = unpadded
            .checked_sub(mac_len)
            .ok_or(DecryptError::BadRecordMac)?;
        let (content, tag) = out[..unpadded].split_at(content_len);
        let len = (content_len as u16).to_be_bytes();
        if !mac.verify(
            &[&seq_bytes, &[header.content_type], &version, &len, content],
            tag,
        ) {
            return Err(DecryptError::BadRecordMac);
        }
        Ok((header.content_type, content_len))
    }
}

/// TLS 1.2 `additional_data = seq_num + TLSCompressed.type + TLSCompressed.version +
/// TLSCompressed.length` (RFC 5246 §6.2.3.3), the length being the plaintext's.
fn tls12_aad(seq: u64, header: &RecordHeader, plaintext_len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = header.content_type;
    aad[9..11].copy_from_slice(&header.legacy_record_version.to_be_bytes());
    aad[11..].copy_from_slice(&(plaintext_len as u16).to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::record::record;
    use crate::tls::testing::{unhex, Sealer};

    /// RFC 8448 §3: the server's encrypted handshake flight, the client's Finished, the
    /// application data and close_notify records, decrypted with keys derived from the
    /// traffic secrets.
    #[test]
    fn rfc8448_records_decrypt() {
        let secret = |h: &str| Secret::new(&unhex(h)).unwrap();
        let keys = |h: &str| RecordKeys::tls13(Aead::Aes128Gcm, Hash::Sha256, &secret(h)).unwrap();
        let server_hs = keys("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let client_hs = keys("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21");
        let server_ap = keys("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
        let client_ap = keys("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
        let payload = unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031");
        let mut out = Vec::new();
        let mut open = |k: &RecordKeys, seq: u64, rec: &str| {
            let bytes = unhex(rec);
            let (_, (h, frag)) = record(&bytes).unwrap();
            let (ty, n) = k.open(seq, &h, frag, &mut out).unwrap();
            (ty, out[..n].to_vec())
        };
        // Server flight: EncryptedExtensions ... Finished, 0x2a2 bytes; check both ends.
        let (ty, flight) = open(&server_hs, 0, SERVER_FLIGHT);
        assert_eq!(ty, 22);
        assert_eq!(&flight[..4], &[0x08, 0x00, 0x00, 0x24]);
        assert_eq!(
            &flight[flight.len() - 36..flight.len() - 32],
            &[0x14, 0, 0, 0x20]
        );
        let (ty, fin) = open(&client_hs, 0, "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546");
        assert_eq!((ty, &fin[..4]), (22, &[0x14, 0, 0, 0x20][..]));
        let (ty, data) = open(&client_ap, 0, "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4");
        assert_eq!((ty, &data), (23, &payload));
        // The server's application keys protected a NewSessionTicket first (seq 0).
        let (ty, data) = open(&server_ap, 1, "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d");
        assert_eq!((ty, &data), (23, &payload));
        // close_notify: client seq 1, server seq 2.
        assert_eq!(
            open(
                &client_ap,
                1,
                "1703030013c9872760655666b74d7ff1153efd6db6d0b0e3"
            ),
            (21, vec![1, 0])
        );
        assert_eq!(
            open(
                &server_ap,
                2,
                "1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9"
            ),
            (21, vec![1, 0])
        );
    }

    #[test]
    fn wrong_key_or_sequence_is_bad_record_mac_never_garbage() {
        let s = |b| Secret::new(&[b; 32]).unwrap();
        let good = RecordKeys::tls13(Aead::Aes128Gcm, Hash::Sha256, &s(1)).unwrap();
        let wrong = RecordKeys::tls13(Aead::Aes128Gcm, Hash::Sha256, &s(2)).unwrap();
        let rec = Sealer::tls13(Aead::Aes128Gcm, Hash::Sha256, &s(1)).seal(23, b"hello", 0);
        let (_, (h, frag)) = record(&rec).unwrap();
        let mut out = Vec::new();
        assert_eq!(good.open(0, &h, frag, &mut out), Ok((23, 5)));
        assert_eq!(&out[..5], b"hello");
        assert_eq!(
            wrong.open(0, &h, frag, &mut out),
            Err(DecryptError::BadRecordMac)
        );
        assert_eq!(
            good.open(1, &h, frag, &mut out),
            Err(DecryptError::BadRecordMac)
        );
        assert_eq!(
            good.open(0, &h, &frag[..10], &mut out),
            Err(DecryptError::BadLength)
        );
    }

    /// `open_unread` says what `open` says of the content type and length — TLS 1.3 with
    /// any padding (the type found from the end, across blocks of zeros), TLS 1.2 GCM —
    /// and declines whatever `open` would have to read or refuse.
    #[test]
    #[cfg(not(feature = "ring"))]
    fn open_unread_agrees_with_open() {
        let s = |hash: Hash| Secret::new(&vec![1; hash.output_len()]).unwrap();
        let mut out = Vec::new();
        for (aead, hash) in [
            (Aead::Aes128Gcm, Hash::Sha256),
            (Aead::Aes256Gcm, Hash::Sha384),
            (Aead::ChaCha20Poly1305, Hash::Sha256),
        ] {
            let keys = RecordKeys::tls13(aead, hash, &s(hash)).unwrap();
            for padding in [0, 1, 15, 16, 17, 40] {
                let mut sealer = Sealer::tls13(aead, hash, &s(hash));
                sealer.padding = padding;
                for len in [0usize, 1, 16, 100, 16384 - padding] {
                    let body = vec![0u8; len]; // zeros: the type is found past them
                    let rec = sealer.seal(23, &body, 7);
                    let (_, (h, frag)) = record(&rec).unwrap();
                    assert_eq!(keys.open(7, &h, frag, &mut out), Ok((23, len)));
                    // At most content + padding bytes unread: enough, one fewer is not.
                    let bound = (len + padding) as u64;
                    let what = format!("{aead:?} padding {padding} len {len}");
                    assert_eq!(
                        keys.open_unread(7, &h, frag, &mut out, bound),
                        Some(len),
                        "{what}"
                    );
                    if bound > 0 {
                        let fewer = keys.open_unread(7, &h, frag, &mut out, bound - 1);
                        assert_eq!(fewer, None, "{what}");
                    }
                    assert_eq!(keys.open_unread(8, &h, frag, &mut out, u64::MAX), None);
                    if len > 0 {
                        let mut bad = frag.to_vec();
                        bad[len / 2] ^= 4;
                        assert_eq!(keys.open_unread(7, &h, &bad, &mut out, u64::MAX), None);
                    }
                }
                // Plaintext longer than the bytes nobody reads, or not application data.
                let rec = sealer.seal(23, &[1; 100], 0);
                let (_, (h, frag)) = record(&rec).unwrap();
                assert_eq!(
                    keys.open_unread(0, &h, frag, &mut out, 99 + padding as u64),
                    None
                );
                assert_eq!(
                    keys.open_unread(0, &h, frag, &mut out, 100 + padding as u64),
                    Some(100)
                );
                let rec = sealer.seal(22, &[1; 100], 0);
                let (_, (h, frag)) = record(&rec).unwrap();
                assert_eq!(keys.open_unread(0, &h, frag, &mut out, u64::MAX), None);
            }
        }
        for (name, sealer, keys) in crate::tls::testing::tls12_pairs() {
            let rec = sealer.seal(23, &[5; 300], 3);
            let (_, (h, frag)) = record(&rec).unwrap();
            let aead = !name.contains("cbc");
            assert_eq!(keys.open(3, &h, frag, &mut out), Ok((23, 300)), "{name}");
            let want = aead.then_some(300);
            assert_eq!(keys.open_unread(3, &h, frag, &mut out, 300), want, "{name}");
            assert_eq!(keys.open_unread(3, &h, frag, &mut out, 299), None, "{name}");
            assert_eq!(keys.open_unread(4, &h, frag, &mut out, 300), None, "{name}");
            let rec = sealer.seal(21, &[1, 0], 3);
            let (_, (h, frag)) = record(&rec).unwrap();
            assert_eq!(keys.open_unread(3, &h, frag, &mut out, 300), None, "{name}");
        }
    }

    /// Every TLS 1.2 record format against the sealing side in `testing` (which uses the
    /// same crates in the encrypting direction): right key opens, wrong sequence does not.
    #[test]
    fn tls12_each_cipher_round_trips() {
        let plaintexts: [&[u8]; 4] = [b"", b"x", &[7u8; 15], &[9u8; 1000]];
        for (name, sealer, keys) in crate::tls::testing::tls12_pairs() {
            let mut out = Vec::new();
            for (seq, p) in plaintexts.iter().enumerate() {
                let rec = sealer.seal(23, p, seq as u64);
                let (_, (h, frag)) = record(&rec).unwrap();
                assert_eq!(
                    keys.open(seq as u64, &h, frag, &mut out)
                        .map(|(t, n)| (t, out[..n].to_vec())),
                    Ok((23, p.to_vec())),
                    "{name} record {seq}"
                );
                assert_eq!(
                    keys.open(seq as u64 + 1, &h, frag, &mut out),
                    Err(DecryptError::BadRecordMac),
                    "{name} record {seq} with the next sequence number"
                );
                // One flipped bit anywhere in the fragment: never accepted.
                let mut bad = rec.clone();
                let i = 5 + (seq * 7919) % (rec.len() - 5);
                bad[i] ^= 0x10;
                let (_, (h, frag)) = record(&bad).unwrap();
                assert!(
                    keys.open(seq as u64, &h, frag, &mut out).is_err(),
                    "{name} bit flip at {i}"
                );
            }
        }
    }

    const SERVER_FLIGHT: &str = "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73f848a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f526134aadc7fc78c4b729df828b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d7477609aee6e122a4cf51427325250c7d0e509289444c9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb360987255cc744110c453baa4fcd610928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead686945ba246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd596eea520a56a8d650f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27034272968a264ed6540c84838d89f72c24461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b659622245317b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e1b7a6c7178af36879018e3f252107f243d243dc7339d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e4599426f7d461e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe5a37668936b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76913fa388cb5630c8ca01e0c65d11c66a1e2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b845e275592c12335ee340bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e750edc53370d2b";
}
