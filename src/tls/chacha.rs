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

use super::gcm::{TwoStep, NONCE_LEN, TAG_LEN};

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
}

impl TwoStep for ChaCha20Poly1305Tag {
    /// §2.8: Poly1305 over aad, padding, ciphertext, padding and both lengths, keyed from
    /// block 0.
    fn verify(
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

    /// The keystream from block 1 (block 0 keyed Poly1305).
    fn decrypt_range(
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
    use crate::tls::testing::two_step_agrees;
    use chacha20poly1305::aead::inout::InOutBuf;
    use chacha20poly1305::AeadInOut;

    /// Against the `chacha20poly1305` crate (see `two_step_agrees`).
    #[test]
    fn agrees_with_the_chacha20poly1305_crate() {
        let seal = |key: &[u8], nonce: &[u8; NONCE_LEN], aad: &[u8], plain: &[u8]| {
            let reference = chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).unwrap();
            let mut ct = plain.to_vec();
            let tag = reference
                .encrypt_inout_detached(nonce.into(), aad, InOutBuf::from(&mut ct[..]))
                .unwrap();
            (ct, tag.as_slice().try_into().unwrap())
        };
        two_step_agrees(32, seal, |k| ChaCha20Poly1305Tag::new(k).unwrap());
        assert!(ChaCha20Poly1305Tag::new(&[0; 16]).is_none());
    }
}
