//! RFC 6455 §5.2 base framing: the frame header only, never the payload.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! ```

use nom::bytes::streaming::take;
use nom::number::streaming::{be_u16, be_u64, be_u8};
use nom::{IResult, Parser};

/// Longest possible frame header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// Opcodes of RFC 6455 §5.2 (§11.8 registry).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;

    /// Control frames have the high bit of the opcode set (§5.5).
    pub fn is_control(op: u8) -> bool {
        op & 0x8 != 0
    }

    /// Opcodes 0x3-0x7 and 0xB-0xF are reserved (§5.2).
    pub fn is_reserved(op: u8) -> bool {
        matches!(op, 0x3..=0x7 | 0xB..=0xF)
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: u8,
    pub masking_key: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header took on the wire (2 to 14).
    pub header_len: u8,
    /// The length was not in its shortest form (§5.2: "the minimal number of bytes MUST be used").
    pub non_minimal_len: bool,
    /// A 64-bit length with its most significant bit set (§5.2 forbids it).
    pub len_msb_set: bool,
}

/// Parses one frame header. Streaming: `Err(Incomplete)` says how many more bytes are
/// needed, and nothing is consumed until the whole header is there.
pub fn frame_header(input: &[u8]) -> IResult<&[u8], FrameHeader> {
    let (i, b0) = be_u8(input)?;
    let (i, b1) = be_u8(i)?;
    let len7 = b1 & 0x7f;
    let (i, payload_len, non_minimal_len, len_msb_set) = match len7 {
        126 => {
            let (i, n) = be_u16(i)?;
            (i, n as u64, n < 126, false)
        }
        127 => {
            let (i, n) = be_u64(i)?;
            (i, n & !(1 << 63), n <= 0xffff, n >> 63 == 1)
        }
        n => (i, n as u64, false, false),
    };
    let (i, masking_key) = if b1 & 0x80 != 0 {
        let (i, k) = take(4usize).parse(i)?;
        (i, Some([k[0], k[1], k[2], k[3]]))
    } else {
        (i, None)
    };
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        masking_key,
        payload_len,
        header_len: (input.len() - i.len()) as u8,
        non_minimal_len,
        len_msb_set,
    };
    Ok((i, header))
}

/// Header length implied by the first two bytes.
pub fn header_len_from_prefix(b0_b1: [u8; 2]) -> usize {
    let ext = match b0_b1[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b0_b1[1] & 0x80 != 0 { 4 } else { 0 }
}

/// The first bytes of a frame header cut off by the end of a delivery, kept until the
/// rest arrives (at most [`MAX_HEADER_LEN`]; the two frame parsers, `FrameStream` and the
/// mid-stream probe, share it).
#[derive(Clone, Copy, Debug, Default)]
pub struct HeaderCarry {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeaderCarry {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps `d`, the start of a header that `frame_header` found incomplete.
    pub fn keep(&mut self, d: &[u8]) {
        self.bytes[..d.len()].copy_from_slice(d);
        self.len = d.len() as u8;
    }

    /// Takes from the front of `d` what the kept header still needs; returns the header
    /// once it is whole (and is empty again), `None` while `d` ran out first.
    pub fn complete(&mut self, d: &mut &[u8]) -> Option<FrameHeader> {
        let have = self.len as usize;
        let need = if have >= 2 {
            header_len_from_prefix([self.bytes[0], self.bytes[1]])
        } else {
            2
        };
        let take = (need - have).min(d.len());
        self.bytes[have..have + take].copy_from_slice(&d[..take]);
        self.len += take as u8;
        *d = &d[take..];
        let have = self.len as usize;
        if have < 2 || have < header_len_from_prefix([self.bytes[0], self.bytes[1]]) {
            return None;
        }
        self.len = 0;
        let (_, h) = frame_header(&self.bytes[..have]).expect("header length checked");
        Some(h)
    }
}

/// A frame on the wire, for tests: FIN, RSV bits (RSV1 = 0b100), opcode, payload, and
/// a masking key to mask it with (client frames).
#[cfg(test)]
pub(crate) fn wire_frame(
    fin: bool,
    rsv: u8,
    op: u8,
    payload: &[u8],
    key: Option<[u8; 4]>,
) -> Vec<u8> {
    let mut v = vec![(fin as u8) << 7 | (rsv & 7) << 4 | op];
    let m = if key.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => v.push(m | n as u8),
        n if n <= 0xffff => {
            v.push(m | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(m | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mut p = payload.to_vec();
    if let Some(k) = key {
        v.extend_from_slice(&k);
        crate::ws::close::unmask(&mut p, k, 0);
    }
    v.extend_from_slice(&p);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header delivered a byte at a time through the carry is the header parsed whole.
    #[test]
    fn a_header_carried_over_deliveries_is_the_whole_header() {
        let full = [0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4];
        let whole = frame_header(&full).unwrap().1;
        let mut carry = HeaderCarry::default();
        carry.keep(&full[..1]);
        for i in 1..full.len() {
            let mut d = &full[i..=i];
            let got = carry.complete(&mut d);
            assert!(d.is_empty());
            assert_eq!(got.is_some(), i == full.len() - 1, "byte {i}");
            if let Some(h) = got {
                assert_eq!(h, whole);
                assert!(carry.is_empty());
            }
        }
    }

    #[test]
    fn lengths_7_16_64() {
        let (_, h) = frame_header(&[0x81, 0x05, b'H']).unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, h.header_len),
            (true, 1, 5, 2)
        );
        let (_, h) = frame_header(&[0x82, 126, 0x01, 0x00]).unwrap();
        assert_eq!(
            (h.payload_len, h.header_len, h.non_minimal_len),
            (256, 4, false)
        );
        let (_, h) = frame_header(&[0x82, 126, 0x00, 0x10]).unwrap();
        assert!(h.non_minimal_len);
        let (_, h) = frame_header(&[0x02, 127, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap();
        assert_eq!((h.fin, h.payload_len, h.header_len), (false, 65536, 10));
        let (_, h) = frame_header(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]).unwrap();
        assert!(h.len_msb_set);
    }

    #[test]
    fn masked_header_and_rsv() {
        let (rest, h) = frame_header(&[0xC1, 0x85, 1, 2, 3, 4, 9]).unwrap();
        assert_eq!(h.masking_key, Some([1, 2, 3, 4]));
        assert_eq!(h.rsv, 0b100);
        assert_eq!(h.header_len, 6);
        assert_eq!(rest, &[9]);
    }

    #[test]
    fn every_prefix_is_incomplete_never_an_error() {
        let full = [0x82u8, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9];
        assert_eq!(header_len_from_prefix([full[0], full[1]]), 14);
        for n in 0..full.len() {
            assert!(
                matches!(frame_header(&full[..n]), Err(nom::Err::Incomplete(_))),
                "prefix {n}"
            );
        }
        assert_eq!(frame_header(&full).unwrap().1.header_len, 14);
    }
}
