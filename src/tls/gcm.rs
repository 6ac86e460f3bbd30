//! AES-GCM's two steps, which GCM keeps apart (NIST SP 800-38D §7.2). For records nobody
//! reads, the tag is checked over the ciphertext alone (GHASH needs no plaintext), and the
//! keystream is made only for the bytes that are read (CTR mode: each plaintext byte
//! depends on its own ciphertext byte and position only, §6.5).
//!
//! A wss:// record that lies wholly inside a frame payload nobody reads (a large binary
//! message) is then authenticated like any other, and only its last bytes are decrypted
//! (TLS 1.3's inner content type): every record is still proven to come from the key log's
//! keys, and what is read is exactly what a whole decryption gives.
//!
//! Records of [`STITCHED_MIN`](super::stitched::STITCHED_MIN) bytes or more, read or not,
//! are opened whole by `stitched.rs` where the CPU allows: faster there than GHASH alone.
//!
//! Records that are read are opened here too (`Gcm::open`): the same two steps, with the
//! GHASH input laid out so that the hash runs on whole groups of blocks, never one block at
//! a time. A wss:// chat record (a few hundred bytes) opens in about two thirds of the time
//! the `aes-gcm` crate takes for it (that crate hashes the additional data, the ciphertext's
//! last partial block and the lengths block one by one, each a serial multiply).
//!
//! Built from the RustCrypto primitives that the `aes-gcm` crate composes the same way
//! (`aes`, `ctr`, `ghash`); the tests hold it to `aes-gcm` on every length of ciphertext up
//! to a few blocks past each grouping case, and on random inputs.

use aes::cipher::consts::U16;
use aes::cipher::{
    Block, BlockCipherEncrypt, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher, StreamCipherSeek,
};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;

use super::stitched::Stitched;

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

/// Blocks the `ghash` crate hashes together (POLYVAL's `ParBlocksSize`, 4 on x86-64 and
/// AArch64): a slice of a multiple of this many blocks is hashed with no single-block step.
const LANES: usize = 4;

/// The GHASH key `H = E(K, 0^128)` beside the block cipher (§6.4, §7.1 step 1).
pub struct Gcm<C> {
    cipher: C,
    ghash: GHash,
    /// Long records (`stitched.rs`): opened whole there, faster than the tag is checked
    /// alone here; `protection.rs` asks it about records nobody reads and the memory budget.
    pub(super) stitched: Stitched,
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
            stitched: Stitched::new(key),
        })
    }

    /// The whole record: its tag checked, then its plaintext into `out` (as long as
    /// `ciphertext`). False when the tag is wrong, and no plaintext in `out` (untouched,
    /// or zeroed by the stitched cipher).
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        out: &mut [u8],
    ) -> bool {
        if self.stitched.takes(ciphertext.len()) {
            return self.stitched.open(nonce, aad, ciphertext, tag, out);
        }
        if !self.verify(nonce, aad, ciphertext, tag) {
            return false;
        }
        self.decrypt_range(nonce, ciphertext, 0, out);
        true
    }

    /// `S = GHASH_H(A || 0^v || C || 0^u || [len(A)]_64 || [len(C)]_64)` (§7.2 step 5).
    ///
    /// GHASH is `X_i = (X_{i-1} xor B_i) * H` from `X_0 = 0`, so blocks of zeros in front of
    /// the input leave it unchanged: enough of them make the input a whole number of
    /// [`LANES`]-block groups, and it is hashed as three such slices — the front (zeros,
    /// the additional data, the first ciphertext blocks), the ciphertext's whole blocks
    /// straight from the record, and the back (the last blocks, the partial one padded, the
    /// lengths) — copying at most a few blocks.
    fn ghash(&self, aad: &[u8], ciphertext: &[u8]) -> ghash::Block {
        const B: usize = 16;
        let mut g = self.ghash.clone();
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
        if aad.len() > B {
            // Not TLS's (5 or 13 bytes): the plain way.
            g.update_padded(aad);
            g.update_padded(ciphertext);
            g.update(&[lengths]);
            return g.finalize();
        }
        let (whole, last) = ghash::Block::slice_as_chunks(ciphertext);
        let aad_blocks = usize::from(!aad.is_empty());
        let total = aad_blocks + whole.len() + usize::from(!last.is_empty()) + 1;
        // At most 2 * LANES blocks are ever gathered here (see below).
        let mut blocks = [ghash::Block::default(); 2 * LANES];
        let mut n = (LANES - total % LANES) % LANES;
        if aad_blocks == 1 {
            blocks[n][..aad.len()].copy_from_slice(aad);
            n += 1;
        }
        // The front: up to the end of the first group (n is now at most LANES).
        let front = whole.len().min((LANES - n % LANES) % LANES);
        blocks[n..n + front].copy_from_slice(&whole[..front]);
        n += front;
        let middle = (whole.len() - front) / LANES * LANES;
        if middle > 0 {
            // The front filled its group (front was not cut short by `whole`): n is 0 or LANES.
            g.update(&blocks[..n]);
            g.update(&whole[front..front + middle]);
            n = 0;
        }
        // The back: fewer than LANES whole blocks, the partial block, the lengths; with the
        // front when there was no middle (then at most LANES + LANES - 1 + 2 blocks, and a
        // whole number of groups: at most 2 * LANES).
        let rest = &whole[front + middle..];
        blocks[n..n + rest.len()].copy_from_slice(rest);
        n += rest.len();
        if !last.is_empty() {
            blocks[n] = ghash::Block::default();
            blocks[n][..last.len()].copy_from_slice(last);
            n += 1;
        }
        blocks[n] = lengths;
        n += 1;
        debug_assert_eq!(n % LANES, 0);
        g.update(&blocks[..n]);
        g.finalize()
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
        let s = self.ghash(aad, ciphertext);
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
    use crate::tls::testing::{random_bytes, two_step_agrees};
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

    /// `Gcm::open` and `verify` against the crate on every ciphertext length up to 12 blocks
    /// (every way the GHASH input falls into groups: the zeros in front, a cut-short front,
    /// a middle or none, the back's whole and partial blocks) and longer ones, with no
    /// additional data, TLS's (5 and 13 bytes), a whole block and more than one; and a
    /// flipped bit anywhere is refused with no plaintext in `out` (left alone, or zeroed by
    /// the stitched cipher for long records).
    fn open_agrees<C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + KeyInit>(
        key_len: usize,
        seal: impl Fn(&[u8], &[u8; NONCE_LEN], &[u8], &[u8]) -> (Vec<u8>, [u8; TAG_LEN]),
    ) {
        let mut seed = 7;
        let lens = (0..=12 * 16 + 1).chain([255, 256, 257, 496, 767, 1000, 16 * 1024 + 17]);
        for aad_len in [0, 1, 5, 13, 16, 17, 40] {
            for len in lens.clone() {
                let key = random_bytes(&mut seed, key_len);
                let nonce: [u8; NONCE_LEN] = random_bytes(&mut seed, NONCE_LEN).try_into().unwrap();
                let aad = random_bytes(&mut seed, aad_len);
                let plain = random_bytes(&mut seed, len);
                let (ct, tag) = seal(&key, &nonce, &aad, &plain);
                let g = Gcm::<C>::new(&key).unwrap();
                let mut out = vec![0u8; len];
                assert!(g.open(&nonce, &aad, &ct, &tag, &mut out), "{aad_len} {len}");
                assert_eq!(out, plain, "aad {aad_len}, len {len}");
                let r = random_bytes(&mut seed, 2);
                let bit = 1 << (r[1] % 8);
                let mut bad = (ct.clone(), aad.clone(), tag);
                match r[0] % 3 {
                    0 if len > 0 => bad.0[r[1] as usize % len] ^= bit,
                    1 if aad_len > 0 => bad.1[r[1] as usize % aad_len] ^= bit,
                    _ => bad.2[r[1] as usize % TAG_LEN] ^= bit,
                }
                let mut untouched = vec![0xa5u8; len];
                assert!(
                    !g.open(&nonce, &bad.1, &bad.0, &bad.2, &mut untouched),
                    "aad {aad_len}, len {len}: a flipped bit"
                );
                assert!(
                    untouched.iter().all(|&b| b == 0xa5) || untouched.iter().all(|&b| b == 0),
                    "aad {aad_len}, len {len}: plaintext left"
                );
            }
        }
    }

    #[test]
    fn aes_128_gcm_opens_as_the_aes_gcm_crate_does() {
        open_agrees::<aes::Aes128>(16, sealed::<aes_gcm::Aes128Gcm>);
    }

    #[test]
    fn aes_256_gcm_opens_as_the_aes_gcm_crate_does() {
        open_agrees::<aes::Aes256>(32, sealed::<aes_gcm::Aes256Gcm>);
    }

    proptest::proptest! {
        /// Any key, nonce, additional data (up to 64 bytes) and plaintext (up to 2 KiB):
        /// `Gcm::open` gives the crate's plaintext, and refuses a tag one bit off.
        #[test]
        fn any_record_opens_as_the_crate_opens_it(
            key in proptest::collection::vec(proptest::num::u8::ANY, 16),
            nonce in proptest::array::uniform12(proptest::num::u8::ANY),
            aad in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            plain in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            bit in 0..128usize,
        ) {
            let (ct, tag) = sealed::<aes_gcm::Aes128Gcm>(&key, &nonce, &aad, &plain);
            let g = Gcm::<aes::Aes128>::new(&key).unwrap();
            let mut out = vec![0u8; plain.len()];
            proptest::prop_assert!(g.open(&nonce, &aad, &ct, &tag, &mut out));
            proptest::prop_assert_eq!(&out, &plain);
            let mut bad = tag;
            bad[bit / 8] ^= 1 << (bit % 8);
            proptest::prop_assert!(!g.open(&nonce, &aad, &ct, &bad, &mut out));
        }
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(Gcm::<aes::Aes128>::new(&[0; 32]).is_none());
        assert!(Gcm::<aes::Aes256>::new(&[0; 16]).is_none());
    }
}
