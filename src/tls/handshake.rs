//! Handshake messages: the message header (RFC 8446 §4), and the parts of ClientHello,
//! ServerHello (§4.1.2, §4.1.3; RFC 5246 §7.4.1) and EncryptedExtensions (§4.3.1) that
//! decryption and the report need. Pure parsers over byte slices; the bodies are parsed
//! whole (the caller has reassembled the message), the header is streaming.

use nom::bytes::complete::take;
use nom::combinator::{all_consuming, map_res};
use nom::multi::length_data;
use nom::number::complete::{be_u16 as be_u16_c, be_u8 as be_u8_c};
use nom::number::streaming::{be_u24, be_u8};
use nom::{IResult, Parser};

/// `HandshakeType` values (RFC 8446 §4, RFC 5246 §7.4).
pub mod handshake_type {
    pub const HELLO_REQUEST: u8 = 0;
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const END_OF_EARLY_DATA: u8 = 5;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CERTIFICATE_VERIFY: u8 = 15;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub const FINISHED: u8 = 20;
    pub const KEY_UPDATE: u8 = 24;
}

/// `ExtensionType` values used here (RFC 8446 §4.2, RFC 6066, RFC 7301, RFC 7366, RFC 7627).
pub mod extension_type {
    pub const SERVER_NAME: u16 = 0;
    pub const APPLICATION_LAYER_PROTOCOL_NEGOTIATION: u16 = 16;
    pub const ENCRYPT_THEN_MAC: u16 = 22;
    pub const EXTENDED_MASTER_SECRET: u16 = 23;
    pub const PRE_SHARED_KEY: u16 = 41;
    pub const EARLY_DATA: u16 = 42;
    pub const SUPPORTED_VERSIONS: u16 = 43;
}

/// Bytes of the handshake message header (`msg_type`, uint24 `length`).
pub const HEADER_LEN: usize = 4;

/// `ServerHello.random` of a HelloRetryRequest: SHA-256("HelloRetryRequest")
/// (RFC 8446 §4.1.3).
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

pub const TLS12: u16 = 0x0303;
pub const TLS13: u16 = 0x0304;

/// The handshake message header: `(msg_type, length)`. Streaming.
pub fn handshake_header(input: &[u8]) -> IResult<&[u8], (u8, u32)> {
    (be_u8, be_u24).parse(input)
}

/// `opaque x<0..2^16-1>`: a vector with a 2-byte length.
fn vector16(input: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u16_c).parse(input)
}

/// `opaque x<0..2^8-1>`: a vector with a 1-byte length.
fn vector8(input: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u8_c).parse(input)
}

/// What the hello extensions say, as far as this layer cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HelloExtensions<'a> {
    /// `server_name` extension data (RFC 6066 §3), if sent.
    pub server_name: Option<&'a [u8]>,
    /// `application_layer_protocol_negotiation` data: a `ProtocolNameList` (RFC 7301 §3.1).
    pub alpn: Option<&'a [u8]>,
    /// `supported_versions` data (RFC 8446 §4.2.1): a list in a ClientHello, the selected
    /// version in a ServerHello.
    pub supported_versions: Option<&'a [u8]>,
    pub encrypt_then_mac: bool,
    pub extended_master_secret: bool,
    pub pre_shared_key: bool,
    pub early_data: bool,
}

/// `Extension extensions<..2^16-1>`: a list of `(extension_type, extension_data)`. Unknown
/// extensions are skipped; an absent list (a TLS 1.2 hello may end before it) is empty.
fn extensions(input: &[u8]) -> IResult<&[u8], HelloExtensions<'_>> {
    let mut ext = HelloExtensions::default();
    if input.is_empty() {
        return Ok((input, ext));
    }
    let (rest, mut list) = vector16(input)?;
    while !list.is_empty() {
        let (i, (ty, data)) = (be_u16_c, vector16).parse(list)?;
        list = i;
        use extension_type::*;
        match ty {
            SERVER_NAME => ext.server_name = Some(data),
            APPLICATION_LAYER_PROTOCOL_NEGOTIATION => ext.alpn = Some(data),
            SUPPORTED_VERSIONS => ext.supported_versions = Some(data),
            ENCRYPT_THEN_MAC => ext.encrypt_then_mac = true,
            EXTENDED_MASTER_SECRET => ext.extended_master_secret = true,
            PRE_SHARED_KEY => ext.pre_shared_key = true,
            EARLY_DATA => ext.early_data = true,
            _ => {}
        }
    }
    Ok((rest, ext))
}

fn random(input: &[u8]) -> IResult<&[u8], &[u8; 32]> {
    map_res(take(32usize), <&[u8; 32]>::try_from).parse(input)
}

/// ```text
/// struct {
///     ProtocolVersion legacy_version = 0x0303;
///     Random random;
///     opaque legacy_session_id<0..32>;
///     CipherSuite cipher_suites<2..2^16-2>;
///     opaque legacy_compression_methods<1..2^8-1>;
///     Extension extensions<8..2^16-1>;
/// } ClientHello;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub legacy_version: u16,
    pub random: &'a [u8; 32],
    pub legacy_session_id: &'a [u8],
    /// Raw list of 2-byte suites.
    pub cipher_suites: &'a [u8],
    pub extensions: HelloExtensions<'a>,
}

impl ClientHello<'_> {
    /// Offers TLS 1.3 (`supported_versions` lists 0x0304).
    pub fn offers_tls13(&self) -> bool {
        self.extensions
            .supported_versions
            .and_then(|d| d.split_first())
            .is_some_and(|(_, list)| list.chunks_exact(2).any(|v| v == TLS13.to_be_bytes()))
    }
}

/// The body of a ClientHello (after the 4-byte handshake header).
pub fn client_hello(body: &[u8]) -> IResult<&[u8], ClientHello<'_>> {
    let (i, legacy_version) = be_u16_c(body)?;
    let (i, random) = random(i)?;
    let (i, legacy_session_id) = vector8(i)?;
    let (i, cipher_suites) = vector16(i)?;
    let (i, _compression) = vector8(i)?;
    let (i, extensions) = extensions(i)?;
    Ok((
        i,
        ClientHello {
            legacy_version,
            random,
            legacy_session_id,
            cipher_suites,
            extensions,
        },
    ))
}

/// ```text
/// struct {
///     ProtocolVersion legacy_version = 0x0303;
///     Random random;
///     opaque legacy_session_id_echo<0..32>;
///     CipherSuite cipher_suite;
///     uint8 legacy_compression_method = 0;
///     Extension extensions<6..2^16-1>;
/// } ServerHello;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello<'a> {
    pub legacy_version: u16,
    pub random: &'a [u8; 32],
    pub legacy_session_id_echo: &'a [u8],
    pub cipher_suite: u16,
    pub legacy_compression_method: u8,
    pub extensions: HelloExtensions<'a>,
}

impl ServerHello<'_> {
    /// A HelloRetryRequest is a ServerHello with this special random (RFC 8446 §4.1.3).
    pub fn is_hello_retry_request(&self) -> bool {
        *self.random == HELLO_RETRY_REQUEST_RANDOM
    }

    /// The negotiated version: `supported_versions` if present (RFC 8446 §4.2.1), else
    /// `legacy_version`.
    pub fn selected_version(&self) -> u16 {
        match self.extensions.supported_versions {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => self.legacy_version,
        }
    }
}

/// The body of a ServerHello (or HelloRetryRequest).
pub fn server_hello(body: &[u8]) -> IResult<&[u8], ServerHello<'_>> {
    let (i, legacy_version) = be_u16_c(body)?;
    let (i, random) = random(i)?;
    let (i, legacy_session_id_echo) = vector8(i)?;
    let (i, cipher_suite) = be_u16_c(i)?;
    let (i, legacy_compression_method) = be_u8_c(i)?;
    let (i, extensions) = extensions(i)?;
    Ok((
        i,
        ServerHello {
            legacy_version,
            random,
            legacy_session_id_echo,
            cipher_suite,
            legacy_compression_method,
            extensions,
        },
    ))
}

/// `struct { Extension extensions<0..2^16-1>; } EncryptedExtensions;` (RFC 8446 §4.3.1).
pub fn encrypted_extensions(body: &[u8]) -> IResult<&[u8], HelloExtensions<'_>> {
    all_consuming(extensions).parse(body)
}

/// The `host_name` of a `server_name` extension (RFC 6066 §3: a `ServerNameList` of
/// `(NameType, HostName)`, type 0 = host_name).
pub fn server_name_host(data: &[u8]) -> Option<&[u8]> {
    let (_, mut list) = vector16(data).ok()?;
    while !list.is_empty() {
        let (i, (name_type, name)) = (be_u8_c, vector16).parse(list).ok()?;
        if name_type == 0 {
            return Some(name);
        }
        list = i;
    }
    None
}

/// The protocol names of an ALPN `ProtocolNameList` (RFC 7301 §3.1), in order; parsing
/// stops at the first malformed entry.
pub fn alpn_protocols(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let list = vector16(data).map_or(&[][..], |(_, l)| l);
    let mut rest = list;
    std::iter::from_fn(move || {
        let (i, name) = vector8(rest).ok()?;
        rest = i;
        Some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::unhex;

    /// RFC 8448 §3: the ClientHello and ServerHello of the simple 1-RTT handshake.
    #[test]
    fn rfc8448_hellos() {
        let ch = unhex(
            "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006\
             130113031302010000910000000b0009000006736572766572ff01000100000a00140012001d0017\
             001800190100010101020103010400230000003300260024001d002099381de560e4bd43d23d8e43\
             5a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e04030503060302\
             0308040805080604010501060102010402050206020202002d00020101001c00024001",
        );
        let (rest, (ty, len)) = handshake_header(&ch).unwrap();
        assert_eq!(
            (ty, len as usize),
            (handshake_type::CLIENT_HELLO, rest.len())
        );
        let (_, hello) = client_hello(rest).unwrap();
        assert_eq!(hello.random[..4], [0xcb, 0x34, 0xec, 0xb1]);
        assert_eq!(hello.cipher_suites, &[0x13, 0x01, 0x13, 0x03, 0x13, 0x02]);
        assert!(hello.offers_tls13());
        assert_eq!(
            server_name_host(hello.extensions.server_name.unwrap()),
            Some(&b"server"[..])
        );
        assert!(hello.extensions.alpn.is_none());

        let sh = unhex(
            "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928001301\
             00002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e\
             751f0f002b00020304",
        );
        let (_, hello) = server_hello(&sh[4..]).unwrap();
        assert_eq!(hello.cipher_suite, 0x1301);
        assert_eq!(hello.selected_version(), TLS13);
        assert!(!hello.is_hello_retry_request());
    }

    #[test]
    fn alpn_list_and_tls12_hello_without_extensions() {
        let data = [
            0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
        ];
        let names: Vec<&[u8]> = alpn_protocols(&data).collect();
        assert_eq!(names, [&b"h2"[..], &b"http/1.1"[..]]);
        // ServerHello: version, random, empty session id, suite, compression; no extensions.
        let mut sh = vec![3, 3];
        sh.extend([9u8; 32]);
        sh.extend([0, 0xc0, 0x2f, 0]);
        let (_, hello) = server_hello(&sh).unwrap();
        assert_eq!(hello.selected_version(), TLS12);
        assert_eq!(hello.cipher_suite, 0xc02f);
        assert_eq!(hello.extensions, HelloExtensions::default());
        // Cut anywhere: an error, never a panic.
        for n in 0..sh.len() {
            assert!(server_hello(&sh[..n]).is_err(), "prefix {n}");
        }
    }
}
