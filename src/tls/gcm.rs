//! AES-GCM's two steps, which GCM keeps apart (NIST SP 800-38D §7.2), for records nobody
//! reads: the tag is checked over the ciphertext alone (GHASH needs no plaintext), and the
//! keystream is made only for the bytes that are read (CTR mode: each plaintext byte
//! depends on its own ciphertext byte and position only, §6.5). Records that are read are
//! opened whole by the `aes-gcm` crate (`protection.rs`).
//!
//! A wss:// record that lies wholly inside a frame payload nobody reads (a large binary
//! message) is then authenticated like any other, and only its last bytes are decrypted
//! (TLS 1.3's inner content type): every record is still proven to come from the key log's
//! keys, and what is read is exactly what a whole decryption gives.
//!
//! Built from the RustCrypto primitives that the `aes-gcm` crate composes the same way
//! (`aes`, `ctr`, `ghash`); the tests hold it to `aes-gcm` on random inputs.

use aes::cipher::consts::U16;
use aes::cipher::{
    Block, BlockCipherEncrypt, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher, StreamCipherSeek,
};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;

/// Bytes of a tag (TLS uses the full 16: RFC 5116 §5.1, RFC 8439 §2.8).
pub const TAG_LEN: usize = 16;

/// Bytes of the nonce TLS uses (96 bits: RFC 5116 §5.1, RFC 8439 §2.3; RFC 8446 §5.3;
/// RFC 5288 §3).
pub const NONCE_LEN: usize = 12;

/// An AEAD whose tag is checked apart from the decryption, which can be made for any range
/// of the plaintext: AES-GCM here, ChaCha20-Poly1305 in `chacha.rs`.
pub trait TwoStep {
    /// Whether `tag` is the tag of `ciphertext` with `aad`. Reads the ciphertext only.
    fn verify(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
    ) -> bool;

    /// The plaintext of `ciphertext[from..from + out.len()]` into `out` (`ciphertext` being
    /// the whole record's).
    fn decrypt_range(
        &self,
        nonce: &[u8; NONCE_LEN],
        ciphertext: &[u8],
        from: usize,
        out: &mut [u8],
    );
}

/// The GHASH key `H = E(K, 0^128)` beside the block cipher (§6.4, §7.1 step 1).
pub struct Gcm<C> {
    cipher: C,
    ghash: GHash,
}

type Ctr<'a, C> = ctr::Ctr32BE<&'a C>;

impl<C> Gcm<C>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + KeyInit,
{
    /// `None` when `key` is not the cipher's key length.
    pub fn new(key: &[u8]) -> Option<Gcm<C>> {
        let cipher = C::new_from_slice(key).ok()?;
        let mut h = Block::<C>::default();
        cipher.encrypt_block(&mut h);
        Some(Gcm {
            ghash: GHash::new(&h),
            cipher,
        })
    }

    /// `J0 = IV || 0^31 || 1` for a 96-bit IV (§7.2 step 2), and the counter blocks after it.
    fn counter_block(nonce: &[u8; NONCE_LEN], counter: u8) -> Block<C> {
        let mut b = Block::<C>::default();
        b[..NONCE_LEN].copy_from_slice(nonce);
        b[15] = counter;
        b
    }
}

impl<C> TwoStep for Gcm<C>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + KeyInit,
{
    /// §7.2 steps 5-8.
    fn verify(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let mut g = self.ghash.clone();
        g.update_padded(aad);
        g.update_padded(ciphertext);
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
        g.update(&[lengths]);
        let s = g.finalize();
        let mut mask = Self::counter_block(nonce, 1);
        self.cipher.encrypt_block(&mut mask);
        // Not constant time: the records are old news, and no answer goes back to a sender.
        s.iter()
            .zip(mask.iter())
            .zip(tag)
            .all(|((s, m), t)| s ^ m == *t)
    }

    /// The keystream starts at `inc32(J0)` (§7.2 step 3).
    fn decrypt_range(
        &self,
        nonce: &[u8; NONCE_LEN],
        ciphertext: &[u8],
        from: usize,
        out: &mut [u8],
    ) {
        let core = ctr::CtrCore::<&C, ctr::flavors::Ctr32BE>::inner_iv_init(
            &self.cipher,
            &Self::counter_block(nonce, 2),
        );
        let mut ctr = Ctr::<C>::from_core(core);
        ctr.seek(from as u64);
        // Panics (in the crate) if the lengths differ; they are equal by construction.
        ctr.apply_keystream_b2b(&ciphertext[from..from + out.len()], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::two_step_agrees;
    use aes_gcm::aead::inout::InOutBuf;
    use aes_gcm::AeadInOut;

    /// Sealed by the `aes-gcm` crate `A`.
    fn sealed<A: AeadInOut + aes_gcm::KeyInit>(
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plain: &[u8],
    ) -> (Vec<u8>, [u8; TAG_LEN])
    where
        for<'a> &'a aes_gcm::Nonce<A::NonceSize>: From<&'a [u8; NONCE_LEN]>,
    {
        let a = A::new_from_slice(key).unwrap();
        let mut ct = plain.to_vec();
        let tag = a
            .encrypt_inout_detached(nonce.into(), aad, InOutBuf::from(&mut ct[..]))
            .unwrap();
        (ct, tag.as_slice().try_into().unwrap())
    }

    #[test]
    fn aes_128_gcm_agrees_with_the_aes_gcm_crate() {
        two_step_agrees(16, sealed::<aes_gcm::Aes128Gcm>, |k| {
            Gcm::<aes::Aes128>::new(k).unwrap()
        });
    }

    #[test]
    fn aes_256_gcm_agrees_with_the_aes_gcm_crate() {
        two_step_agrees(32, sealed::<aes_gcm::Aes256Gcm>, |k| {
            Gcm::<aes::Aes256>::new(k).unwrap()
        });
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(Gcm::<aes::Aes128>::new(&[0; 32]).is_none());
        assert!(Gcm::<aes::Aes256>::new(&[0; 16]).is_none());
    }
}
