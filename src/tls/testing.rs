//! Test helpers: hex, and the sending side of the record layer (sealing records with the
//! same RustCrypto crates, encrypting), and whole TLS 1.2 / 1.3 conversations built from
//! it, to feed [`super::TlsConn`] in unit tests.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes128Gcm, Aes256Gcm, KeyInit};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use sha2::{Sha256, Sha384};

use super::key_schedule::{self, IV_LEN};
use super::keylog::Secret;
use super::protection::RecordKeys;
use super::suite::{Aead, Cbc, Hash, Mac};

pub fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// `n` bytes of SplitMix64 from `seed` (advanced), for test inputs (of `gcm.rs` and
/// `chacha.rs`, which the `ring` build leaves out).
#[cfg_attr(feature = "ring", allow(dead_code))]
pub fn random_bytes(seed: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

/// A two-step AEAD (`gcm.rs`, `chacha.rs`) against the crate that opens records whole, on
/// random keys, nonces, lengths and ranges: `seal(key, nonce, aad, plaintext)` is the
/// reference (ciphertext, tag); `new(key)` the two-step cipher. The same verdict on the tag
/// (also with one bit flipped in the ciphertext, the aad or the tag), and every range of
/// the plaintext.
#[cfg(not(feature = "ring"))]
pub fn two_step_agrees<T: super::gcm::TwoStep>(
    key_len: usize,
    seal: impl Fn(&[u8], &[u8; 12], &[u8], &[u8]) -> (Vec<u8>, [u8; 16]),
    new: impl Fn(&[u8]) -> T,
) {
    let mut seed = key_len as u64;
    for len in [
        0usize,
        1,
        15,
        16,
        17,
        31,
        63,
        64,
        65,
        100,
        1000,
        16 * 1024 + 17,
    ] {
        let key = random_bytes(&mut seed, key_len);
        let nonce: [u8; 12] = random_bytes(&mut seed, 12).try_into().unwrap();
        let aad = random_bytes(&mut seed, (len % 13) + 1);
        let plain = random_bytes(&mut seed, len);
        let (ct, tag) = seal(&key, &nonce, &aad, &plain);
        let c = new(&key);
        assert!(c.verify(&nonce, &aad, &ct, &tag), "len {len}");
        let mut out = vec![0u8; len];
        c.decrypt_range(&nonce, &ct, 0, &mut out);
        assert_eq!(out, plain, "len {len}");
        for _ in 0..20 {
            let r = random_bytes(&mut seed, 2);
            let from = if len == 0 {
                0
            } else {
                r[0] as usize * len / 256
            };
            let to = from + (r[1] as usize * (len - from)) / 256;
            let mut part = vec![0u8; to - from];
            c.decrypt_range(&nonce, &ct, from, &mut part);
            assert_eq!(part, plain[from..to], "len {len} range {from}..{to}");
        }
        let r = random_bytes(&mut seed, 1)[0] as usize;
        if len > 0 {
            let mut bad = ct.clone();
            bad[r % len] ^= 1 << (r % 8);
            assert!(
                !c.verify(&nonce, &aad, &bad, &tag),
                "len {len}: bad ciphertext"
            );
        }
        let mut bad_aad = aad.clone();
        bad_aad[r % aad.len()] ^= 0x80;
        assert!(!c.verify(&nonce, &bad_aad, &ct, &tag), "len {len}: bad aad");
        let mut bad_tag = tag;
        bad_tag[r % 16] ^= 0x01;
        assert!(!c.verify(&nonce, &aad, &ct, &bad_tag), "len {len}: bad tag");
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[allow(clippy::large_enum_variant)]
enum AeadCipher {
    Aes128Gcm(Aes128Gcm),
    Aes256Gcm(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
}

impl AeadCipher {
    fn new(aead: Aead, key: &[u8]) -> AeadCipher {
        match aead {
            Aead::Aes128Gcm => AeadCipher::Aes128Gcm(Aes128Gcm::new_from_slice(key).unwrap()),
            Aead::Aes256Gcm => AeadCipher::Aes256Gcm(Aes256Gcm::new_from_slice(key).unwrap()),
            Aead::ChaCha20Poly1305 => {
                AeadCipher::ChaCha(ChaCha20Poly1305::new_from_slice(key).unwrap())
            }
        }
    }

    /// Encrypts `buf` in place, returns the tag.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let b: InOutBuf<'_, '_, u8> = buf.into();
        let t = match self {
            AeadCipher::Aes128Gcm(c) => c.encrypt_inout_detached(nonce.into(), aad, b),
            AeadCipher::Aes256Gcm(c) => c.encrypt_inout_detached(nonce.into(), aad, b),
            AeadCipher::ChaCha(c) => c.encrypt_inout_detached(nonce.into(), aad, b),
        };
        t.unwrap().into()
    }
}

enum Kind {
    Tls13(AeadCipher, [u8; IV_LEN]),
    Tls12Gcm(AeadCipher, [u8; 4]),
    Tls12ChaCha(AeadCipher, [u8; IV_LEN]),
    Tls12Cbc {
        cbc: Cbc,
        key: Vec<u8>,
        mac: Mac,
        mac_key: Vec<u8>,
        etm: bool,
    },
}

/// Seals records of one direction (the sender's side of RFC 8446 §5.2 / RFC 5246 §6.2.3).
pub struct Sealer {
    kind: Kind,
    /// TLS 1.3 zero padding added to each record (RFC 8446 §5.4).
    pub padding: usize,
}

fn xor_seq(iv: &[u8; 12], seq: u64) -> [u8; 12] {
    let mut n = *iv;
    for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    n
}

fn hmac_parts(mac: Mac, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    macro_rules! run {
        ($h:ty) => {{
            let mut m = <Hmac<$h> as KeyInit>::new_from_slice(key).unwrap();
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }};
    }
    match mac {
        Mac::Sha1 => run!(Sha1),
        Mac::Sha256 => run!(Sha256),
        Mac::Sha384 => run!(Sha384),
    }
}

fn cbc_encrypt(cbc: Cbc, key: &[u8], iv: &[u8], buf: &mut [u8]) {
    let n = buf.len();
    match cbc {
        Cbc::Aes128 => {
            cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
                .unwrap()
                .encrypt_padded::<NoPadding>(buf, n)
                .unwrap();
        }
        Cbc::Aes256 => {
            cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
                .unwrap()
                .encrypt_padded::<NoPadding>(buf, n)
                .unwrap();
        }
    }
}

impl Sealer {
    pub fn tls13(aead: Aead, hash: Hash, secret: &Secret) -> Sealer {
        let (key, iv) = key_schedule::traffic_key_iv(hash, secret, aead.key_len()).unwrap();
        Sealer {
            kind: Kind::Tls13(AeadCipher::new(aead, &key[..aead.key_len()]), iv),
            padding: 0,
        }
    }

    pub fn tls12_aead(aead: Aead, key: &[u8], iv: &[u8]) -> Sealer {
        let c = AeadCipher::new(aead, key);
        let kind = match aead {
            Aead::ChaCha20Poly1305 => Kind::Tls12ChaCha(c, iv.try_into().unwrap()),
            _ => Kind::Tls12Gcm(c, iv.try_into().unwrap()),
        };
        Sealer { kind, padding: 0 }
    }

    pub fn tls12_cbc(cbc: Cbc, mac: Mac, mac_key: &[u8], key: &[u8], etm: bool) -> Sealer {
        Sealer {
            kind: Kind::Tls12Cbc {
                cbc,
                key: key.to_vec(),
                mac,
                mac_key: mac_key.to_vec(),
                etm,
            },
            padding: 0,
        }
    }

    /// One whole protected record (header included) of `content_type` holding
    /// `plaintext`, with sequence number `seq`.
    pub fn seal(&self, content_type: u8, plaintext: &[u8], seq: u64) -> Vec<u8> {
        let version = [3u8, 3];
        let header = |ty: u8, len: usize| {
            let mut h = vec![ty, 3, 3];
            h.extend((len as u16).to_be_bytes());
            h
        };
        let aad12 = |len: usize| {
            let mut a = seq.to_be_bytes().to_vec();
            a.push(content_type);
            a.extend(version);
            a.extend((len as u16).to_be_bytes());
            a
        };
        match &self.kind {
            Kind::Tls13(c, iv) => {
                let mut inner = plaintext.to_vec();
                inner.push(content_type);
                inner.extend(std::iter::repeat_n(0, self.padding));
                let mut rec = header(23, inner.len() + 16);
                let tag = c.seal(&xor_seq(iv, seq), &rec.clone(), &mut inner);
                rec.extend(inner);
                rec.extend(tag);
                rec
            }
            Kind::Tls12Gcm(c, salt) => {
                // The explicit nonce is the sequence number, as OpenSSL writes it.
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(salt);
                nonce[4..].copy_from_slice(&seq.to_be_bytes());
                let mut body = plaintext.to_vec();
                let tag = c.seal(&nonce, &aad12(body.len()), &mut body);
                let mut rec = header(content_type, 8 + body.len() + 16);
                rec.extend(seq.to_be_bytes());
                rec.extend(body);
                rec.extend(tag);
                rec
            }
            Kind::Tls12ChaCha(c, iv) => {
                let mut body = plaintext.to_vec();
                let tag = c.seal(&xor_seq(iv, seq), &aad12(body.len()), &mut body);
                let mut rec = header(content_type, body.len() + 16);
                rec.extend(body);
                rec.extend(tag);
                rec
            }
            Kind::Tls12Cbc {
                cbc,
                key,
                mac,
                mac_key,
                etm,
            } => {
                let iv: Vec<u8> = (0..16).map(|i| (seq as u8).wrapping_mul(31) ^ i).collect();
                let mut body = plaintext.to_vec();
                if !etm {
                    let len = (plaintext.len() as u16).to_be_bytes();
                    let m = hmac_parts(
                        *mac,
                        mac_key,
                        &[
                            &seq.to_be_bytes(),
                            &[content_type],
                            &version,
                            &len,
                            plaintext,
                        ],
                    );
                    body.extend(m);
                }
                let pad = 15 - body.len() % 16;
                body.extend(std::iter::repeat_n(pad as u8, pad + 1));
                cbc_encrypt(*cbc, key, &iv, &mut body);
                let mut frag = iv;
                frag.extend(body);
                if *etm {
                    let len = (frag.len() as u16).to_be_bytes();
                    let m = hmac_parts(
                        *mac,
                        mac_key,
                        &[&seq.to_be_bytes(), &[content_type], &version, &len, &frag],
                    );
                    frag.extend(m);
                }
                let mut rec = header(content_type, frag.len());
                rec.extend(frag);
                rec
            }
        }
    }
}

/// One sealer per TLS 1.2 record format with matching [`RecordKeys`], random-looking keys.
pub fn tls12_pairs() -> Vec<(&'static str, Sealer, RecordKeys)> {
    let key: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(97).wrapping_add(5))
        .collect();
    let mk: Vec<u8> = (0..48u8)
        .map(|i| i.wrapping_mul(13).wrapping_add(200))
        .collect();
    let iv: Vec<u8> = (0..12u8).map(|i| i ^ 0x5c).collect();
    let mut v = Vec::new();
    for (name, aead) in [
        ("tls12-aes128gcm", Aead::Aes128Gcm),
        ("tls12-aes256gcm", Aead::Aes256Gcm),
        ("tls12-chacha20", Aead::ChaCha20Poly1305),
    ] {
        let kl = aead.key_len();
        let ivl = if aead == Aead::ChaCha20Poly1305 {
            12
        } else {
            4
        };
        v.push((
            name,
            Sealer::tls12_aead(aead, &key[..kl], &iv[..ivl]),
            RecordKeys::tls12_aead(aead, &key[..kl], &iv[..ivl]),
        ));
    }
    for (name, cbc, mac, etm) in [
        ("tls12-aes128cbc-sha1", Cbc::Aes128, Mac::Sha1, false),
        ("tls12-aes256cbc-sha384", Cbc::Aes256, Mac::Sha384, false),
        ("tls12-aes128cbc-sha256-etm", Cbc::Aes128, Mac::Sha256, true),
        ("tls12-aes256cbc-sha1-etm", Cbc::Aes256, Mac::Sha1, true),
    ] {
        let (kl, ml) = (cbc.key_len(), mac.output_len());
        v.push((
            name,
            Sealer::tls12_cbc(cbc, mac, &mk[..ml], &key[..kl], etm),
            RecordKeys::tls12_cbc(cbc, mac, &mk[..ml], &key[..kl], etm),
        ));
    }
    v
}
