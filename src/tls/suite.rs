//! Cipher suites: the name Wireshark shows, and how the records of the suites this layer
//! decrypts are protected.

use std::fmt;

use super::suite_table;

/// The hash of a suite: HKDF's in TLS 1.3 (RFC 8446 §7.1), the PRF's in TLS 1.2
/// (RFC 5246 §5: SHA-256 unless the suite says otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    /// Output length in bytes (`Hash.length` of RFC 8446).
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// AEAD algorithms (RFC 5116; RFC 5288 for GCM in TLS 1.2, RFC 7905 for ChaCha20-Poly1305).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Aead {
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }

    /// Length of the authentication tag.
    pub const TAG_LEN: usize = 16;
}

/// Block ciphers of CBC suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cbc {
    Aes128,
    Aes256,
}

impl Cbc {
    pub fn key_len(self) -> usize {
        match self {
            Cbc::Aes128 => 16,
            Cbc::Aes256 => 32,
        }
    }

    pub const BLOCK_LEN: usize = 16;
}

/// The record MAC of CBC suites (RFC 5246 §6.2.3.1, HMAC with this hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mac {
    Sha1,
    Sha256,
    Sha384,
}

impl Mac {
    /// `mac_length` = `mac_key_length` (RFC 5246 Appendix C).
    pub fn output_len(self) -> usize {
        match self {
            Mac::Sha1 => 20,
            Mac::Sha256 => 32,
            Mac::Sha384 => 48,
        }
    }
}

/// How the records of a suite are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// A TLS 1.3 suite (RFC 8446 §B.4): AEAD and HKDF hash.
    Tls13(Aead, Hash),
    /// A TLS 1.2 AEAD suite: AEAD and PRF hash.
    Tls12Aead(Aead, Hash),
    /// A TLS 1.2 CBC suite: block cipher, record MAC and PRF hash.
    Tls12Cbc(Cbc, Mac, Hash),
}

/// A cipher suite by its IANA value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    /// The name Wireshark shows (IANA's), or `None` for a value it does not know.
    pub fn name(self) -> Option<&'static str> {
        suite_table::NAMES
            .binary_search_by_key(&self.0, |&(v, _)| v)
            .ok()
            .map(|i| suite_table::NAMES[i].1)
    }

    /// How its records are protected, if this layer decrypts it.
    pub fn protection(self) -> Option<Protection> {
        suite_table::protection(self.0)
    }

    /// True for the TLS 1.3 suites (0x13XX, RFC 8446 §B.4).
    pub fn is_tls13(self) -> bool {
        self.0 >> 8 == 0x13
    }
}

/// The name, or `0xABCD` for a value without one.
impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "0x{:04X}", self.0),
        }
    }
}

impl fmt::Debug for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} (0x{:04X})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_wireshark_shows_them() {
        assert_eq!(
            CipherSuite(0xC02F).to_string(),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(
            CipherSuite(0x1303).to_string(),
            "TLS_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(CipherSuite(0x0A0A).to_string(), "Reserved (GREASE)");
        assert_eq!(CipherSuite(0xABCD).to_string(), "0xABCD");
        assert!(suite_table::NAMES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn protection_follows_the_name() {
        use Protection::*;
        let p = |v| CipherSuite(v).protection();
        assert_eq!(p(0x1302), Some(Tls13(Aead::Aes256Gcm, Hash::Sha384)));
        assert_eq!(p(0xC030), Some(Tls12Aead(Aead::Aes256Gcm, Hash::Sha384)));
        assert_eq!(
            p(0xCCA8),
            Some(Tls12Aead(Aead::ChaCha20Poly1305, Hash::Sha256))
        );
        assert_eq!(
            p(0xC013),
            Some(Tls12Cbc(Cbc::Aes128, Mac::Sha1, Hash::Sha256))
        );
        assert_eq!(
            p(0xC028),
            Some(Tls12Cbc(Cbc::Aes256, Mac::Sha384, Hash::Sha384))
        );
        assert_eq!(
            p(0x003D),
            Some(Tls12Cbc(Cbc::Aes256, Mac::Sha256, Hash::Sha256))
        );
        // Named, not decrypted: CCM, 3DES, the ChaCha20 draft, RC4.
        for v in [0x1304, 0x000A, 0xCC13, 0x0005] {
            assert!(CipherSuite(v).name().is_some() && p(v).is_none(), "{v:#x}");
        }
    }
}
