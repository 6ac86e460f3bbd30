//! RFC 6455 helpers: SHA-1, base64, handshake messages, frame encoder.

use super::Rng;

/// Continuation frame opcode.
pub const OP_CONT: u8 = 0x0;
/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xa;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// SHA-1 digest (FIPS 180-1).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (wi, c) in w.iter_mut().zip(block.chunks_exact(4)) {
            *wi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{key}{WS_GUID}").as_bytes()))
}

/// A client opening handshake.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    /// Host header value.
    pub host: String,
    /// Request target.
    pub path: String,
    /// Sec-WebSocket-Key.
    pub key: String,
    /// Optional Origin.
    pub origin: Option<String>,
    /// Optional User-Agent.
    pub user_agent: Option<String>,
    /// Optional Sec-WebSocket-Protocol.
    pub protocol: Option<String>,
    /// Optional Sec-WebSocket-Extensions (never accepted by our servers).
    pub extensions: Option<String>,
}

impl ClientHandshake {
    /// Minimal request with a seeded 16-byte key.
    pub fn new(host: &str, path: &str, rng: &mut Rng) -> Self {
        let mut k = [0u8; 16];
        rng.fill(&mut k);
        ClientHandshake {
            host: host.to_string(),
            path: path.to_string(),
            key: base64(&k),
            origin: None,
            user_agent: None,
            protocol: None,
            extensions: None,
        }
    }

    /// Browser-like request with Origin, User-Agent, protocol, extensions.
    pub fn browser(host: &str, path: &str, rng: &mut Rng) -> Self {
        let mut h = Self::new(host, path, rng);
        h.origin = Some(format!("http://{host}"));
        h.user_agent =
            Some("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0".into());
        h.protocol = Some("chat, superchat".into());
        h.extensions = Some("permessage-deflate; client_max_window_bits".into());
        h
    }

    /// Request bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.path, self.host, self.key
        );
        let opt = [
            ("Origin", &self.origin),
            ("User-Agent", &self.user_agent),
            ("Sec-WebSocket-Protocol", &self.protocol),
            ("Sec-WebSocket-Extensions", &self.extensions),
        ];
        for (name, v) in opt {
            if let Some(v) = v {
                s.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// `101 Switching Protocols` response.
pub fn server_accept(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut s = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(p) = protocol {
        s.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A non-101 response with a small body (`Connection: close`).
pub fn server_reject(status: u16, body: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        426 => "Upgrade Required",
        503 => "Service Unavailable",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Frame header bytes (including the masking key if any).
pub fn frame_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(14);
    h.push(u8::from(fin) << 7 | (rsv & 7) << 4 | (opcode & 15));
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= 0xffff {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        h.extend_from_slice(&k);
    }
    h
}

/// XORs `data` with the masking key, `offset` bytes into the payload.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: u64) {
    let o = (offset % 4) as usize;
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(i + o) % 4];
    }
}

/// Encodes a whole frame (payload masked when `mask` is given).
pub fn encode_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = frame_header(fin, rsv, opcode, mask, payload.len() as u64);
    let start = f.len();
    f.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut f[start..], k, 0);
    }
    f
}

/// Close frame payload: empty, or 2-byte code + UTF-8 reason.
pub fn close_payload(code: Option<u16>, reason: &str) -> Vec<u8> {
    match code {
        None => Vec::new(),
        Some(c) => {
            let mut p = c.to_be_bytes().to_vec();
            p.extend_from_slice(reason.as_bytes());
            p
        }
    }
}

/// Splits `len` bytes into `n` fragments (sizes), all > 0 when possible.
pub fn fragment_sizes(len: u64, n: usize, rng: &mut Rng) -> Vec<u64> {
    let n = (n.max(1) as u64).min(len.max(1));
    let mut cuts: Vec<u64> = (1..n)
        .map(|_| rng.range(1, len.saturating_sub(1).max(1)))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut sizes = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain(std::iter::once(len)) {
        sizes.push(c - prev);
        prev = c;
    }
    sizes.retain(|&s| s > 0);
    if sizes.is_empty() {
        sizes.push(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(
            hex(&sha1(&[b'a'; 1000])),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
    }

    #[test]
    fn base64_and_accept() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // RFC 6455 section 1.3 (verified against Python hashlib)
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let h = ClientHandshake::new("h", "/", &mut Rng::new(1));
        assert_eq!(h.key.len(), 24);
    }

    #[test]
    fn frame_lengths() {
        for (len, hlen) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let p = vec![0x41u8; len];
            let f = encode_frame(true, 0, OP_BINARY, None, &p);
            assert_eq!(f.len(), hlen + len, "len {len}");
            let m = encode_frame(true, 0, OP_BINARY, Some([1, 2, 3, 4]), &p);
            assert_eq!(m.len(), hlen + 4 + len);
            assert_eq!(m[1] & 0x80, 0x80);
        }
        let f = encode_frame(true, 0, OP_TEXT, None, &[0; 126]);
        assert_eq!(&f[..4], &[0x81, 126, 0, 126]);
        let f = encode_frame(false, 0, OP_BINARY, None, &[0; 65536]);
        assert_eq!(&f[..10], &[0x02, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        // RFC 6455 5.7 masked "Hello"
        let m = encode_frame(true, 0, OP_TEXT, Some([0x37, 0xfa, 0x21, 0x3d]), b"Hello");
        assert_eq!(hex(&m), "818537fa213d7f9f4d5158");
        // masking in two pieces equals masking at once
        let mut a = b"abcdefghij".to_vec();
        let (x, y) = a.split_at_mut(3);
        apply_mask(x, [9, 8, 7, 6], 0);
        apply_mask(y, [9, 8, 7, 6], 3);
        let mut b = b"abcdefghij".to_vec();
        apply_mask(&mut b, [9, 8, 7, 6], 0);
        assert_eq!(a, b);
    }

    #[test]
    fn fragments_sum() {
        let mut r = Rng::new(3);
        for n in 1..6 {
            let s = fragment_sizes(100_000, n, &mut r);
            assert_eq!(s.iter().sum::<u64>(), 100_000);
            assert!(s.len() <= n);
        }
    }
}
