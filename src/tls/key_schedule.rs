//! From the key log's secrets to record keys: the TLS 1.3 traffic key calculation
//! (RFC 8446 §7.1-§7.3) and the TLS 1.2 PRF and key block (RFC 5246 §5, §6.3).
//!
//! Only derivations: every primitive (HKDF, HMAC, SHA-2) comes from the RustCrypto crates.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384};

use super::keylog::Secret;
use super::suite::Hash;

/// The traffic secret's length does not fit the suite's hash (a malformed key log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSecretLength;

/// `HKDF-Expand-Label(Secret, Label, Context, Length)` of RFC 8446 §7.1:
///
/// ```text
/// struct {
///     uint16 length = Length;
///     opaque label<7..255> = "tls13 " + Label;
///     opaque context<0..255> = Context;
/// } HkdfLabel;
/// ```
///
/// `out.len()` is `Length`.
pub fn hkdf_expand_label(
    hash: Hash,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), BadSecretLength> {
    const PREFIX: &[u8] = b"tls13 ";
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(PREFIX.len() + label.len()) as u8];
    let context_len = [context.len() as u8];
    let info: [&[u8]; 6] = [&length, &label_len, PREFIX, label, &context_len, context];
    // A secret must be exactly Hash.length long (RFC 8446 §7.1: Derive-Secret outputs
    // Hash.length bytes); HKDF itself only refuses shorter ones.
    if secret.len() != hash.output_len() {
        return Err(BadSecretLength);
    }
    let r = match hash {
        Hash::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .map_err(|_| BadSecretLength)?
            .expand_multi_info(&info, out),
        Hash::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .map_err(|_| BadSecretLength)?
            .expand_multi_info(&info, out),
    };
    r.map_err(|_| BadSecretLength)
}

/// Longest AEAD key (AES-256, ChaCha20).
pub const MAX_KEY_LEN: usize = 32;
/// `iv_length` of every TLS 1.3 AEAD (RFC 8446 §5.3: max(8 bytes, N_MIN) = 12).
pub const IV_LEN: usize = 12;

/// Record key and IV of one traffic secret (RFC 8446 §7.3):
/// `[sender]_write_key = HKDF-Expand-Label(Secret, "key", "", key_length)`,
/// `[sender]_write_iv = HKDF-Expand-Label(Secret, "iv", "", iv_length)`.
/// The key is the first `key_len` bytes of the returned array.
pub fn traffic_key_iv(
    hash: Hash,
    secret: &Secret,
    key_len: usize,
) -> Result<([u8; MAX_KEY_LEN], [u8; IV_LEN]), BadSecretLength> {
    let mut key = [0u8; MAX_KEY_LEN];
    let mut iv = [0u8; IV_LEN];
    hkdf_expand_label(hash, secret.as_bytes(), b"key", b"", &mut key[..key_len])?;
    hkdf_expand_label(hash, secret.as_bytes(), b"iv", b"", &mut iv)?;
    Ok((key, iv))
}

/// The next generation of a traffic secret after a KeyUpdate (RFC 8446 §7.2):
/// `application_traffic_secret_N+1 = HKDF-Expand-Label(application_traffic_secret_N,
/// "traffic upd", "", Hash.length)`.
pub fn next_traffic_secret(hash: Hash, secret: &Secret) -> Result<Secret, BadSecretLength> {
    let mut out = [0u8; Secret::MAX_LEN];
    let n = hash.output_len();
    hkdf_expand_label(hash, secret.as_bytes(), b"traffic upd", b"", &mut out[..n])?;
    Ok(Secret::new(&out[..n]).expect("hash length fits"))
}

/// `P_hash(secret, seed)` of RFC 5246 §5 with HMAC `M`, `seed` given in pieces:
///
/// ```text
/// P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) + HMAC_hash(secret, A(2) + seed) + ...
/// A(0) = seed, A(i) = HMAC_hash(secret, A(i-1))
/// ```
fn p_hash<M: Mac + KeyInit + Clone>(secret: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    let keyed = <M as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    // A(1) = HMAC(secret, seed)
    let mut a = {
        let mut m = keyed.clone();
        for s in seed {
            m.update(s);
        }
        m.finalize().into_bytes()
    };
    for chunk in out.chunks_mut(a.len()) {
        let mut m = keyed.clone();
        m.update(&a);
        for s in seed {
            m.update(s);
        }
        let block = m.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
        let mut m = keyed.clone();
        m.update(&a);
        a = m.finalize().into_bytes();
    }
}

/// `PRF(secret, label, seed) = P_<hash>(secret, label + seed)` (RFC 5246 §5), the seed
/// given in pieces (e.g. server_random, client_random).
pub fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    let mut parts: [&[u8]; 4] = [label, &[], &[], &[]];
    assert!(seed.len() <= 3, "at most three seed pieces");
    parts[1..=seed.len()].copy_from_slice(seed);
    let parts = &parts[..=seed.len()];
    match hash {
        Hash::Sha256 => p_hash::<Hmac<Sha256>>(secret, parts, out),
        Hash::Sha384 => p_hash::<Hmac<Sha384>>(secret, parts, out),
    }
}

/// Longest TLS 1.2 key block this layer needs: 2 × (48 MAC key + 32 key + 12 IV).
pub const MAX_KEY_BLOCK: usize = 2 * (48 + 32 + 12);

/// `key_block = PRF(SecurityParameters.master_secret, "key expansion",
/// SecurityParameters.server_random + SecurityParameters.client_random)` (RFC 5246 §6.3),
/// `out.len()` bytes of it.
pub fn key_block(
    hash: Hash,
    master_secret: &[u8],
    server_random: &[u8; 32],
    client_random: &[u8; 32],
    out: &mut [u8],
) {
    prf(
        hash,
        master_secret,
        b"key expansion",
        &[server_random, client_random],
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::unhex;

    fn secret(hex: &str) -> Secret {
        Secret::new(&unhex(hex)).unwrap()
    }

    /// RFC 8448 §3 (simple 1-RTT handshake, TLS_AES_128_GCM_SHA256): the handshake and
    /// application traffic secrets and the write keys and IVs derived from them.
    #[test]
    fn key_and_iv_match_rfc8448() {
        let cases = [
            // {server} derive write traffic keys for handshake data
            (
                "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38",
                "3fce516009c21727d0f2e4e86ee403bc",
                "5d313eb2671276ee13000b30",
            ),
            // {server} derive read traffic keys for handshake data (the client's)
            (
                "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21",
                "dbfaa693d1762c5b666af5d950258d01",
                "5bd3c71b836e0b76bb73265f",
            ),
            // {server} derive write traffic keys for application data
            (
                "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643",
                "9f02283b6c9c07efc26bb9f2ac92e356",
                "cf782b88dd83549aadf1e984",
            ),
            // {client} derive write traffic keys for application data
            (
                "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5",
                "17422dda596ed5d9acd890e3c63f5051",
                "5b78923dee08579033e523d9",
            ),
        ];
        for (s, key, iv) in cases {
            let (k, i) = traffic_key_iv(Hash::Sha256, &secret(s), 16).unwrap();
            assert_eq!(&k[..16], &unhex(key)[..], "key of {s}");
            assert_eq!(&i[..], &unhex(iv)[..], "iv of {s}");
        }
    }

    /// RFC 8448 §3: "tls13 finished" from the server handshake traffic secret, a label
    /// with a different length than "key"/"iv".
    #[test]
    fn expand_label_finished_key_matches_rfc8448() {
        let mut out = [0u8; 32];
        hkdf_expand_label(
            Hash::Sha256,
            &unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38"),
            b"finished",
            b"",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..],
            &unhex("008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8")[..]
        );
    }

    /// RFC 8448 has no KeyUpdate, so the expected value of "traffic upd" applied to its
    /// server application traffic secret comes from a second implementation (OpenSSL 3.0):
    /// `openssl kdf -keylen 32 -kdfopt digest:SHA2-256 -kdfopt mode:EXPAND_ONLY
    ///  -kdfopt hexkey:a11af9f0…631643 -kdfopt hexinfo:002011746c73313320747261666669632075706400 HKDF`.
    #[test]
    fn traffic_update_matches_openssl() {
        let s0 = secret("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
        let s1 = next_traffic_secret(Hash::Sha256, &s0).unwrap();
        assert_eq!(
            s1.as_bytes(),
            &unhex("51921b8aa3001976eb401d0a4319a8516416a6c56001a357e5d162031e84f916")[..]
        );
    }

    #[test]
    fn secret_of_the_wrong_length_is_refused() {
        let s = Secret::new(&[7u8; 32]).unwrap();
        assert_eq!(
            traffic_key_iv(Hash::Sha384, &s, 32).unwrap_err(),
            BadSecretLength
        );
    }

    /// The P_SHA256 vector circulated on the IETF TLS list for TLS 1.2, and the P_SHA384
    /// one from the same set; OpenSSL 3.0 (`openssl kdf TLS1-PRF`) gives the same bytes.
    #[test]
    fn prf_matches_published_vectors() {
        let mut out = [0u8; 100];
        prf(
            Hash::Sha256,
            &unhex("9bbe436ba940f017b17652849a71db35"),
            b"test label",
            &[&unhex("a0ba9f936cda311827a6f796ffd5198c")],
            &mut out,
        );
        assert_eq!(
            &out[..],
            &unhex(
                "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a\
                 6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab\
                 4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701\
                 87347b66"
            )[..]
        );
        let mut out = [0u8; 148];
        // The seed in two pieces, as key_block passes server_random + client_random.
        let seed = unhex("cd665cf6a8447dd6ff8b27555edb7465");
        prf(
            Hash::Sha384,
            &unhex("b80b733d6ceefcdc71566ea48e5567df"),
            b"test label",
            &[&seed[..5], &seed[5..]],
            &mut out,
        );
        assert_eq!(
            &out[..],
            &unhex(
                "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd\
                 e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd\
                 8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425\
                 9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6\
                 91c8f3a26854308d5eaa3be85e0990703d73e56f"
            )[..]
        );
    }
}
