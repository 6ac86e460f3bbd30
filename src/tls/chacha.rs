//! ChaCha20-Poly1305's two steps (RFC 8439 §2.8) for records nobody reads, as `gcm.rs` for
//! AES-GCM: the Poly1305 tag is computed over the ciphertext alone, and the ChaCha20
//! keystream is made only for the bytes that are read (block counter 1 onwards; block 0
//! makes the one-time Poly1305 key, §2.6). Records that are read are opened whole by the
//! `chacha20poly1305` crate (`protection.rs`).
//!
//! Built from the RustCrypto primitives that the `chacha20poly1305` crate composes the same
//! way (`chacha20`, `poly1305`); the tests hold it to that crate on random inputs.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;

/// Bytes of the tag (RFC 8439 §2.8).
pub const TAG_LEN: usize = 16;

/// Bytes of the nonce (96 bits, RFC 8439 §2.3).
pub const NONCE_LEN: usize = 12;

/// Bytes of ChaCha20's block: the keystream of block 0 is the Poly1305 key's.
const BLOCK_LEN: u64 = 64;

/// A 256-bit ChaCha20-Poly1305 key, for the tag check and ranges of keystream.
pub struct ChaCha20Poly1305Tag {
    key: [u8; 32],
}

impl ChaCha20Poly1305Tag {
    /// `None` when `key` is not 32 bytes.
    pub fn new(key: &[u8]) -> Option<ChaCha20Poly1305Tag> {
        Some(ChaCha20Poly1305Tag {
            key: key.try_into().ok()?,
        })
    }

    fn cipher(&self, nonce: &[u8; NONCE_LEN]) -> ChaCha20 {
        ChaCha20::new(&self.key.into(), nonce.into())
    }

    /// Whether `tag` is the tag of `ciphertext` with `aad` (§2.8: Poly1305 over aad, padding,
    /// ciphertext, padding and both lengths, keyed from block 0). Reads the ciphertext only.
    pub fn verify(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let mut one_time_key = poly1305::Key::default();
        self.cipher(nonce).apply_keystream(&mut one_time_key);
        let mut mac = Poly1305::new(&one_time_key);
        mac.update_padded(aad);
        mac.update_padded(ciphertext);
        let mut lengths = poly1305::Block::default();
        lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
        mac.update(&[lengths]);
        // Not constant time: the records are old news, and no answer goes back to a sender.
        mac.finalize().as_slice() == tag
    }

    /// The plaintext of `ciphertext[from..from + out.len()]` into `out`.
    pub fn decrypt_range(
        &self,
        nonce: &[u8; NONCE_LEN],
        ciphertext: &[u8],
        from: usize,
        out: &mut [u8],
    ) {
        let mut c = self.cipher(nonce);
        c.seek(BLOCK_LEN + from as u64);
        // Panics (in the crate) if the lengths differ; they are equal by construction.
        c.apply_keystream_b2b(&ciphertext[from..from + out.len()], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::random_bytes as bytes;
    use chacha20poly1305::aead::inout::InOutBuf;
    use chacha20poly1305::AeadInOut;

    /// Against the `chacha20poly1305` crate on random keys, nonces, lengths and ranges: the
    /// same verdict on the tag (also with a bit flipped), and every range of the plaintext.
    #[test]
    fn agrees_with_the_chacha20poly1305_crate() {
        let mut seed = 3;
        for len in [0usize, 1, 15, 16, 63, 64, 65, 100, 1000, 16 * 1024 + 17] {
            let key = bytes(&mut seed, 32);
            let nonce: [u8; NONCE_LEN] = bytes(&mut seed, NONCE_LEN).try_into().unwrap();
            let aad = bytes(&mut seed, (len % 13) + 1);
            let plain = bytes(&mut seed, len);
            let reference =
                <chacha20poly1305::ChaCha20Poly1305 as chacha20poly1305::KeyInit>::new_from_slice(
                    &key,
                )
                .unwrap();
            let mut ct = plain.clone();
            let tag: [u8; TAG_LEN] = reference
                .encrypt_inout_detached((&nonce).into(), &aad, InOutBuf::from(&mut ct[..]))
                .unwrap()
                .as_slice()
                .try_into()
                .unwrap();
            let c = ChaCha20Poly1305Tag::new(&key).unwrap();
            let mut out = vec![0u8; len];
            assert!(c.verify(&nonce, &aad, &ct, &tag), "len {len}");
            c.decrypt_range(&nonce, &ct, 0, &mut out);
            assert_eq!(out, plain, "len {len}");
            for _ in 0..20 {
                let r = bytes(&mut seed, 2);
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
            let r = bytes(&mut seed, 1)[0] as usize;
            if len > 0 {
                let mut bad = ct.clone();
                bad[r % len] ^= 1 << (r % 8);
                assert!(!c.verify(&nonce, &aad, &bad, &tag));
            }
            let mut bad_aad = aad.clone();
            bad_aad[r % aad.len()] ^= 0x80;
            assert!(!c.verify(&nonce, &bad_aad, &ct, &tag));
            let mut bad_tag = tag;
            bad_tag[r % TAG_LEN] ^= 0x01;
            assert!(!c.verify(&nonce, &aad, &ct, &bad_tag));
        }
        assert!(ChaCha20Poly1305Tag::new(&[0; 16]).is_none());
    }
}
