//! Long AES-GCM records opened by a stitched AES-GCM: graviola's, which runs the AES
//! counter blocks and the GHASH multiplies interleaved (AES-NI or VAES, PCLMULQDQ or
//! VPCLMULQDQ; written in Rust, no C compiler). On a 16 KiB record — what bulk transfers
//! send — it decrypts and checks the tag in about a third of the time RustCrypto's GHASH
//! takes to check the tag alone (`gcm.rs`), so past [`STITCHED_MIN`] bytes even a record
//! nobody reads is opened whole; shorter records stay with `gcm.rs`, which is faster
//! there.
//!
//! The cipher is keyed at the first long record (a chat connection never pays for its
//! tables), and only where the CPU has what graviola requires (it asserts its features
//! at every call, so they are checked first, once). Elsewhere, and on other
//! architectures, `gcm.rs` opens every record. The tests hold it to the `aes-gcm` crate.

use std::cell::OnceCell;

/// Records (ciphertext bytes) from this length on are opened here.
pub const STITCHED_MIN: usize = 768;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
type Cipher = graviola::aead::AesGcm;

/// An AES-GCM key for long records, keyed into graviola's cipher at the first one, where
/// the CPU and the architecture can run it (else [`Stitched::takes`] says no).
pub struct Stitched {
    /// The key (16 or 32 bytes), to key the cipher at the first long record and again
    /// after a trim. Never printed.
    key: [u8; 32],
    key_len: u8,
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    cipher: OnceCell<Option<Box<Cipher>>>,
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    cipher: OnceCell<()>,
}

/// What graviola requires of the CPU (its `verify_cpu_features`, which panics otherwise).
#[cfg(target_arch = "x86_64")]
fn cpu_runs_it() -> bool {
    use std::is_x86_feature_detected as has;
    has!("aes")
        && has!("pclmulqdq")
        && has!("bmi1")
        && has!("bmi2")
        && has!("adx")
        && has!("avx")
        && has!("avx2")
        && has!("ssse3")
}

#[cfg(target_arch = "aarch64")]
fn cpu_runs_it() -> bool {
    use std::arch::is_aarch64_feature_detected as has;
    has!("neon") && has!("aes") && has!("pmull") && has!("sha2")
}

impl Stitched {
    /// For a 16- or 32-byte key (AES-128 or AES-256).
    pub fn new(key: &[u8]) -> Stitched {
        assert!(
            key.len() == 16 || key.len() == 32,
            "an AES-128 or AES-256 key"
        );
        let mut k = [0u8; 32];
        k[..key.len()].copy_from_slice(key);
        Stitched {
            key: k,
            key_len: key.len() as u8,
            cipher: OnceCell::new(),
        }
    }

    /// Whether a record of `len` ciphertext bytes is opened here.
    pub fn takes(&self, len: usize) -> bool {
        len >= STITCHED_MIN && self.ready()
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn ready(&self) -> bool {
        self.cipher
            .get_or_init(|| {
                cpu_runs_it().then(|| Box::new(Cipher::new(&self.key[..self.key_len as usize])))
            })
            .is_some()
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn ready(&self) -> bool {
        false
    }

    /// Bytes the keyed cipher holds (its round keys and GHASH tables), for the memory
    /// budget: 0 until the first long record.
    pub fn held_bytes(&self) -> usize {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(Some(_)) = self.cipher.get() {
            return size_of::<Cipher>();
        }
        0
    }

    /// Gives the keyed cipher up (the memory budget): the next long record keys it again
    /// from the key kept here, so nothing is lost but the time.
    pub fn trim(&mut self) {
        if self.held_bytes() > 0 {
            self.cipher = OnceCell::new();
        }
    }

    /// Opens a record [`takes`](Self::takes) accepted: its plaintext into `out` (as long
    /// as `ciphertext`) when the tag is right; otherwise false, and `out` zeroed.
    pub fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> bool {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(Some(c)) = self.cipher.get() {
            out.copy_from_slice(ciphertext);
            return c.decrypt(nonce, aad, out, tag).is_ok();
        }
        let _ = (nonce, aad, ciphertext, tag, out);
        unreachable!("opened only after takes() said yes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::random_bytes;
    use aes_gcm::aead::inout::InOutBuf;
    use aes_gcm::{AeadInOut, KeyInit};

    /// The same plaintext as the `aes-gcm` crate's on every length around the threshold
    /// and past a few records' worth, both key sizes; a flipped bit in the ciphertext, the
    /// additional data or the tag is refused, and no plaintext is left in `out`.
    #[test]
    fn opens_as_the_aes_gcm_crate_does() {
        let mut seed = 11;
        let lens = (STITCHED_MIN - 2..STITCHED_MIN + 40).chain([
            1000,
            4096,
            16 * 1024 + 17,
            16 * 1024 + 256,
        ]);
        let mut opened = 0;
        for key_len in [16, 32] {
            for len in lens.clone() {
                let key = random_bytes(&mut seed, key_len);
                let nonce: [u8; 12] = random_bytes(&mut seed, 12).try_into().unwrap();
                let aad = random_bytes(&mut seed, 5 + len % 9);
                let plain = random_bytes(&mut seed, len);
                let mut ct = plain.clone();
                let buf = InOutBuf::from(&mut ct[..]);
                let tag: [u8; 16] = if key_len == 16 {
                    let a = aes_gcm::Aes128Gcm::new_from_slice(&key).unwrap();
                    a.encrypt_inout_detached((&nonce).into(), &aad, buf)
                        .unwrap()
                        .into()
                } else {
                    let a = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
                    a.encrypt_inout_detached((&nonce).into(), &aad, buf)
                        .unwrap()
                        .into()
                };
                let s = Stitched::new(&key);
                if !s.takes(len) {
                    // Not on this CPU (or too short): nothing to check.
                    assert!(len < STITCHED_MIN || !cpu_runs_it_here());
                    continue;
                }
                let mut out = vec![0u8; len];
                assert!(s.open(&nonce, &aad, &ct, &tag, &mut out), "{key_len} {len}");
                opened += 1;
                assert_eq!(out, plain, "key {key_len}, len {len}");
                let r = random_bytes(&mut seed, 2);
                let (mut c, mut a, mut t) = (ct.clone(), aad.clone(), tag);
                match r[0] % 3 {
                    0 => c[r[1] as usize % len] ^= 1 << (r[1] % 8),
                    1 => {
                        let i = r[1] as usize % a.len();
                        a[i] ^= 1 << (r[1] % 8)
                    }
                    _ => t[r[1] as usize % 16] ^= 1 << (r[1] % 8),
                }
                let mut out = vec![0xa5u8; len];
                assert!(
                    !s.open(&nonce, &a, &c, &t, &mut out),
                    "{key_len} {len}: flipped"
                );
                assert!(
                    out.iter().all(|&b| b == 0),
                    "{key_len} {len}: plaintext left"
                );
            }
        }
        assert!(
            opened > 80 || !cpu_runs_it_here(),
            "{opened} records opened"
        );
    }

    /// Keyed at the first long record only, charged while keyed, given up by a trim and
    /// keyed again by the next long record, which opens as before.
    #[test]
    fn keyed_when_needed_and_given_up_on_a_trim() {
        let key = [9u8; 16];
        let nonce = [3u8; 12];
        let plain = vec![0x5au8; 4096];
        let mut ct = plain.clone();
        let a = aes_gcm::Aes128Gcm::new_from_slice(&key).unwrap();
        let tag: [u8; 16] = a
            .encrypt_inout_detached((&nonce).into(), b"aad", InOutBuf::from(&mut ct[..]))
            .unwrap()
            .into();
        let mut s = Stitched::new(&key);
        assert!(!s.takes(STITCHED_MIN - 1));
        assert_eq!(s.held_bytes(), 0, "not keyed by a short record");
        if !cpu_runs_it_here() {
            assert!(!s.takes(plain.len()));
            return;
        }
        for _ in 0..2 {
            assert!(s.takes(plain.len()));
            assert!(s.held_bytes() > 0);
            let mut out = vec![0u8; plain.len()];
            assert!(s.open(&nonce, b"aad", &ct, &tag, &mut out));
            assert_eq!(out, plain);
            s.trim();
            assert_eq!(s.held_bytes(), 0);
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn cpu_runs_it_here() -> bool {
        cpu_runs_it()
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn cpu_runs_it_here() -> bool {
        false
    }
}
