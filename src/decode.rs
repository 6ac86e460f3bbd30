//! Packet decode: link layer by link type, then IPv4/IPv6 and TCP with `etherparse`'s lax
//! slicing, which keeps whatever a snapshot length left of a packet.
//!
//! A pure function from bytes to a [`TcpSegment`] or a [`Skip`]; it never fails the run: what it cannot use
//! is classified so that it can be counted.

use crate::net::{Addr, Endpoint, FlowKey, V4_MAPPED};
use etherparse::{
    EtherType, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, LaxNetSlice, LaxSlicedPacket,
    TcpHeaderSlice, TransportSlice,
};

/// LINKTYPE_* values (tcpdump.org link-layer header types).
pub mod linktype {
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const RAW: u16 = 101;
    pub const LOOP: u16 = 108;
    pub const LINUX_SLL: u16 = 113;
    pub const IPV4: u16 = 228;
    pub const IPV6: u16 = 229;
    pub const LINUX_SLL2: u16 = 276;
    /// DLT_RAW as OpenBSD and some old writers put it in files.
    pub const RAW_OPENBSD: u16 = 14;
    pub const RAW_BSD: u16 = 12;
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// What decode makes of one TCP packet. The payload is a range of the packet's bytes.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment {
    pub key: FlowKey,
    /// True when the sender is `key.lo`.
    pub from_lo: bool,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Offset of the TCP payload in the packet's captured bytes.
    pub payload_off: u32,
    /// Payload bytes present in the capture.
    pub payload_len: u32,
    /// Payload bytes the packet had on the wire but the capture cut off (snaplen).
    pub payload_missing: u32,
}

/// Why a packet is not a usable TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// A link type this tool does not decode.
    UnknownLinktype,
    /// Not IP (ARP, LLDP, …).
    NotIp,
    /// IP, but not TCP (UDP, ICMP, …).
    NotTcp,
    /// A fragment of a fragmented IP datagram.
    IpFragment,
    /// Headers that do not parse.
    Malformed,
    /// The capture cut the packet inside its IP or TCP header.
    CutOff,
}

/// Decodes one captured packet.
#[inline]
pub fn decode(linktype: u16, data: &[u8]) -> Result<TcpSegment, Skip> {
    if linktype == linktype::ETHERNET {
        if let Some(seg) = ethernet_ipv4_tcp(data) {
            return Ok(seg);
        }
    }
    let r = match fast_path(linktype, data) {
        Some(r) => r,
        None => decode_lax(linktype, data),
    };
    match r {
        Err(Skip::NotTcp) => gtp_u(linktype, data).unwrap_or(Err(Skip::NotTcp)),
        r => r,
    }
}

/// UDP port of GTP-U (3GPP TS 29.281 §4.4.2).
const GTP_U_PORT: u16 = 2152;

/// TCP inside a GTP-U tunnel (mobile networks): the G-PDU's inner IP packet, decoded as
/// raw IP. One level only.
#[cold]
fn gtp_u(linktype: u16, data: &[u8]) -> Option<Result<TcpSegment, Skip>> {
    let p = match linktype {
        linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok()?,
        linktype::LINUX_SLL if data.len() >= 16 => {
            LaxSlicedPacket::from_ether_type(EtherType(be16(data, 14)), &data[16..])
        }
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => LaxSlicedPacket::from_ip(data).ok()?,
        _ => return None,
    };
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        return None;
    };
    if udp.destination_port() != GTP_U_PORT && udp.source_port() != GTP_U_PORT {
        return None;
    }
    let g = udp.payload();
    // TS 29.281 §5.1: version 1, PT 1, message type 255 (G-PDU); 8 bytes, or 12 when any
    // of E, S, PN is set, followed by extension headers when E is set.
    if g.len() < 8 || g[0] >> 5 != 1 || g[0] & 0x10 == 0 || g[1] != 0xff {
        return None;
    }
    let mut off = 8;
    if g[0] & 0x07 != 0 {
        off = 12;
        let mut next = *g.get(11)?;
        while g[0] & 0x04 != 0 && next != 0 {
            let units = *g.get(off)? as usize;
            if units == 0 {
                return None;
            }
            off += units * 4;
            next = *g.get(off - 1)?;
        }
    }
    let inner = g.get(off..)?;
    let mut seg = match fast_path(linktype::RAW, inner) {
        Some(r) => r,
        None => decode_lax(linktype::RAW, inner),
    }
    .ok()?;
    seg.payload_off += (inner.as_ptr() as usize - data.as_ptr() as usize) as u32;
    Some(Ok(seg))
}

#[inline]
fn be16(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([d[i], d[i + 1]])
}

/// The most common case of all, read from one 54-byte array: Ethernet II, IPv4 without
/// options (RFC 791 §3.1), not a fragment, TCP. `None` for anything else, which
/// [`fast_path`] and the lax slicer take (they give the same segment for these packets).
#[inline(always)]
fn ethernet_ipv4_tcp(data: &[u8]) -> Option<TcpSegment> {
    const L3: usize = 14;
    const L4: usize = L3 + 20;
    let h: &[u8; L4 + 20] = data.get(..L4 + 20)?.try_into().ok()?;
    // EtherType IPv4; version 4 and a 20-byte header; protocol TCP.
    if u16::from_be_bytes([h[12], h[13]]) != 0x0800 || h[L3] != 0x45 || h[L3 + 9] != 6 {
        return None;
    }
    // More Fragments or a fragment offset: a fragment.
    if u16::from_be_bytes([h[L3 + 6], h[L3 + 7]]) & 0x3fff != 0 {
        return None;
    }
    let total = u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]) as usize;
    // The TCP header's length (RFC 9293 §3.1: Data Offset, in 32-bit words).
    let th = (h[L4 + 12] >> 4) as usize * 4;
    // The TCP bytes present (the IP total length bounds them: Ethernet pads short frames);
    // the header must be among them, and so within the total length.
    let l4_len = total.min(data.len() - L3).checked_sub(20)?;
    if th < 20 || l4_len < th {
        return None;
    }
    let src = u32::from_be_bytes([h[L3 + 12], h[L3 + 13], h[L3 + 14], h[L3 + 15]]);
    let dst = u32::from_be_bytes([h[L3 + 16], h[L3 + 17], h[L3 + 18], h[L3 + 19]]);
    Some(tcp_segment(
        V4_MAPPED | src as u128,
        V4_MAPPED | dst as u128,
        &h[L4..],
        L4 + th,
        l4_len - th,
        total - 20 - l4_len,
    ))
}

/// The common case (Ethernet with optional VLAN tags, Linux cooked, NULL or raw IP; IPv4
/// or IPv6 without extension headers; TCP) with etherparse's header slices, which are
/// small. `None` hands anything else (and every error) to the lax slicer.
#[inline(always)]
fn fast_path(linktype: u16, data: &[u8]) -> Option<Result<TcpSegment, Skip>> {
    let (ether_type, l3_off) = match linktype {
        linktype::ETHERNET => {
            if data.len() < 14 {
                return None;
            }
            let (mut et, mut off) = (be16(data, 12), 14);
            // 802.1Q / 802.1ad tags (IEEE 802.1Q §9.6).
            while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
                if data.len() < off + 4 {
                    return None;
                }
                et = be16(data, off + 2);
                off += 4;
            }
            (et, off)
        }
        linktype::LINUX_SLL if data.len() >= 16 => (be16(data, 14), 16),
        linktype::LINUX_SLL2 if data.len() >= 20 => (be16(data, 0), 20),
        linktype::RAW
        | linktype::RAW_BSD
        | linktype::RAW_OPENBSD
        | linktype::IPV4
        | linktype::IPV6 => match data.first()? >> 4 {
            4 => (0x0800, 0),
            6 => (0x86dd, 0),
            _ => return None,
        },
        _ => return None,
    };
    let l3 = &data[l3_off..];
    let (src, dst, l4, wire_l4_len) = match ether_type {
        0x0800 => {
            let ip = Ipv4HeaderSlice::from_slice(l3).ok()?;
            if ip.protocol() != IpNumber::TCP {
                return Some(Err(Skip::NotTcp));
            }
            if ip.is_fragmenting_payload() {
                return Some(Err(Skip::IpFragment));
            }
            let hl = ip.slice().len();
            let total = ip.total_len() as usize;
            if total < hl {
                return None;
            }
            (
                V4_MAPPED | u32::from_be_bytes(ip.source()) as u128,
                V4_MAPPED | u32::from_be_bytes(ip.destination()) as u128,
                &l3[hl..total.min(l3.len())],
                total - hl,
            )
        }
        0x86dd => {
            let ip = Ipv6HeaderSlice::from_slice(l3).ok()?;
            if ip.next_header() != IpNumber::TCP {
                return None;
            }
            let total = 40 + ip.payload_length() as usize;
            (
                u128::from_be_bytes(ip.source()),
                u128::from_be_bytes(ip.destination()),
                &l3[40..total.min(l3.len())],
                total - 40,
            )
        }
        _ => return None,
    };
    let tcp = TcpHeaderSlice::from_slice(l4).ok()?;
    let th = tcp.slice().len();
    if wire_l4_len < th {
        return None;
    }
    let payload_len = l4.len() - th;
    let payload_off = l4.as_ptr() as usize - data.as_ptr() as usize + th;
    Some(Ok(tcp_segment(
        src,
        dst,
        tcp.slice(),
        payload_off,
        payload_len,
        wire_l4_len - th - payload_len,
    )))
}

/// A segment from the fixed TCP header fields (RFC 9293 §3.1: ports, sequence and
/// acknowledgment numbers, flags in byte 13) and where its payload is.
#[inline(always)]
fn tcp_segment(
    src: u128,
    dst: u128,
    h: &[u8],
    payload_off: usize,
    payload_len: usize,
    missing: usize,
) -> TcpSegment {
    // The fixed header is 20 bytes (TcpHeaderSlice checked it): one bounds check here, none
    // per field.
    let h: &[u8; 20] = h[..20].try_into().expect("a TCP header");
    let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let (key, from_lo) = FlowKey::new(
        Endpoint {
            addr: Addr::from(src),
            port: be16(0),
        },
        Endpoint {
            addr: Addr::from(dst),
            port: be16(2),
        },
    );
    TcpSegment {
        key,
        from_lo,
        seq: be32(4),
        ack: be32(8),
        // FIN, SYN, RST, PSH and ACK are the low five bits of byte 13.
        flags: h[13] & (FIN | SYN | RST | PSH | ACK),
        payload_off: payload_off as u32,
        payload_len: payload_len as u32,
        payload_missing: missing as u32,
    }
}

/// Everything else, with etherparse's lax slicing (keeps partial packets).
fn decode_lax(linktype: u16, data: &[u8]) -> Result<TcpSegment, Skip> {
    let sliced = match linktype {
        linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data).map_err(|_| Skip::CutOff)?,
        linktype::RAW
        | linktype::RAW_BSD
        | linktype::RAW_OPENBSD
        | linktype::IPV4
        | linktype::IPV6 => from_ip(data)?,
        linktype::NULL | linktype::LOOP => {
            // 4-byte address family, in the capturing host's byte order for NULL and in
            // network order for LOOP; IPv6 has several values across BSDs (2, 24, 28, 30).
            if data.len() < 4 {
                return Err(Skip::CutOff);
            }
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let af = if le < 256 { le } else { be };
            match af {
                2 | 24 | 28 | 30 => from_ip(&data[4..])?,
                _ => return Err(Skip::NotIp),
            }
        }
        linktype::LINUX_SLL => {
            // 16-byte header; protocol type (an EtherType for IP) in bytes 14..16.
            if data.len() < 16 {
                return Err(Skip::CutOff);
            }
            let proto = u16::from_be_bytes([data[14], data[15]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[16..])
        }
        linktype::LINUX_SLL2 => {
            // 20-byte header; protocol type in bytes 0..2.
            if data.len() < 20 {
                return Err(Skip::CutOff);
            }
            let proto = u16::from_be_bytes([data[0], data[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[20..])
        }
        _ => return Err(Skip::UnknownLinktype),
    };
    segment(&sliced, data)
}

fn from_ip(data: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    if data.is_empty() {
        return Err(Skip::CutOff);
    }
    match data[0] >> 4 {
        4 | 6 => LaxSlicedPacket::from_ip(data).map_err(|_| Skip::CutOff),
        _ => Err(Skip::Malformed),
    }
}

fn segment(p: &LaxSlicedPacket<'_>, data: &[u8]) -> Result<TcpSegment, Skip> {
    let (src, dst, ip_payload, full_payload_len) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let pl = v4.payload();
            let full = (h.total_len() as usize).saturating_sub(h.ihl() as usize * 4);
            (
                u128::from(Endpoint::v4(h.source(), 0).addr),
                u128::from(Endpoint::v4(h.destination(), 0).addr),
                pl,
                full,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let pl = v6.payload();
            let full = (h.payload_length() as usize).saturating_sub(v6.extensions().slice().len());
            (
                u128::from_be_bytes(h.source()),
                u128::from_be_bytes(h.destination()),
                pl,
                full,
            )
        }
        Some(LaxNetSlice::Arp(_)) => return Err(Skip::NotIp),
        None => {
            return Err(match &p.stop_err {
                Some(_) => Skip::CutOff,
                None => Skip::NotIp,
            })
        }
    };
    if ip_payload.fragmented {
        return Err(Skip::IpFragment);
    }
    if ip_payload.ip_number != IpNumber::TCP {
        return Err(Skip::NotTcp);
    }
    let tcp = match &p.transport {
        Some(TransportSlice::Tcp(t)) => t,
        _ => {
            return Err(if ip_payload.incomplete {
                Skip::CutOff
            } else {
                Skip::Malformed
            })
        }
    };
    let payload = tcp.payload();
    let hdr_len = tcp.header_slice().len();
    let payload_off = payload.as_ptr() as usize - data.as_ptr() as usize;
    // Bytes on the wire: the IP length says how long the payload was; the capture
    // may hold fewer (snaplen). Ethernet padding beyond the IP length is not payload.
    let wire_len = if ip_payload.incomplete {
        full_payload_len.saturating_sub(hdr_len).max(payload.len())
    } else {
        payload.len()
    };
    Ok(tcp_segment(
        src,
        dst,
        tcp.header_slice(),
        payload_off,
        payload.len(),
        wire_len - payload.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsclose_synth::packet::{build_tcp, build_udp, IpOpts, TcpFields};

    fn tcp_packet(payload: &[u8]) -> Vec<u8> {
        let t = TcpFields {
            seq: 7,
            ack: 9,
            flags: 0x18,
            window: 512,
            ..Default::default()
        };
        build_tcp(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            &t,
            payload,
            &IpOpts::default(),
        )
    }

    #[test]
    fn raw_ipv4_tcp() {
        let p = tcp_packet(b"GET / HTTP/1.1\r\n");
        let s = decode(linktype::RAW, &p).unwrap();
        assert_eq!(
            (s.seq, s.ack, s.flags, s.payload_len, s.payload_missing),
            (7, 9, 0x18, 16, 0)
        );
        assert_eq!(&p[s.payload_off as usize..][..3], b"GET");
        assert_eq!(s.key.lo.to_string(), "10.0.0.1:40000");
        // Cut by a snapshot length: the missing payload is known from the IP length.
        let cut = decode(linktype::RAW, &p[..p.len() - 6]).unwrap();
        assert_eq!((cut.payload_len, cut.payload_missing), (10, 6));
        assert_eq!(decode(linktype::RAW, &p[..30]).unwrap_err(), Skip::CutOff);
    }

    #[test]
    fn tcp_inside_gtp_u() {
        let inner = tcp_packet(b"hello");
        let mut gtp = vec![0x30, 0xff, 0, inner.len() as u8, 0, 0, 0, 1];
        gtp.extend_from_slice(&inner);
        let outer = build_udp(
            "192.0.2.1:2152".parse().unwrap(),
            "192.0.2.2:2152".parse().unwrap(),
            &gtp,
            &IpOpts::default(),
        );
        let s = decode(linktype::RAW, &outer).unwrap();
        assert_eq!(
            &outer[s.payload_off as usize..][..s.payload_len as usize],
            b"hello"
        );
        assert_eq!(s.key.hi.to_string(), "10.0.0.2:80");
        let plain = build_udp(
            "192.0.2.1:53".parse().unwrap(),
            "192.0.2.2:53".parse().unwrap(),
            &gtp,
            &IpOpts::default(),
        );
        assert_eq!(decode(linktype::RAW, &plain).unwrap_err(), Skip::NotTcp);
    }

    /// The segment as the general paths make it (without `ethernet_ipv4_tcp`).
    fn general(data: &[u8]) -> Result<TcpSegment, Skip> {
        match fast_path(linktype::ETHERNET, data) {
            Some(r) => r,
            None => decode_lax(linktype::ETHERNET, data),
        }
    }

    proptest::proptest! {
        /// Ethernet + IPv4 + TCP with any header bytes (version, IHL, total length,
        /// fragment fields, protocol, data offset), any length cut, and padding:
        /// wherever the 54-byte path gives a segment, it is the general paths' one.
        #[test]
        fn ethernet_ipv4_tcp_is_the_general_paths_segment(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            cut in 0usize..140,
            pad in 0usize..8,
            ver_ihl in proptest::prop_oneof![proptest::strategy::Just(0x45u8), proptest::prelude::any::<u8>()],
            total_delta in -60i32..60,
            frag in proptest::prop_oneof![proptest::strategy::Just(0x4000u16), proptest::prelude::any::<u16>()],
            proto in proptest::prop_oneof![proptest::strategy::Just(6u8), proptest::prelude::any::<u8>()],
            doff in 0u8..16,
            ethertype in proptest::prop_oneof![proptest::strategy::Just(0x0800u16), proptest::prelude::any::<u16>()],
            swap in proptest::prelude::any::<bool>(),
        ) {
            let (a, b) = ("10.0.0.1:40000", "10.0.0.2:80");
            let (src, dst) = if swap { (b, a) } else { (a, b) };
            let ip = build_tcp(
                src.parse().unwrap(),
                dst.parse().unwrap(),
                &TcpFields { seq: 7, ack: 9, flags: 0x1f, window: 512, ..Default::default() },
                &payload,
                &IpOpts::default(),
            );
            let mut p = vec![0u8; 12];
            p.extend_from_slice(&ethertype.to_be_bytes());
            p.extend_from_slice(&ip);
            p.extend(std::iter::repeat_n(0u8, pad));
            p[14] = ver_ihl;
            let total = (ip.len() as i32 + total_delta).clamp(0, 0xffff) as u16;
            p[16..18].copy_from_slice(&total.to_be_bytes());
            p[20..22].copy_from_slice(&frag.to_be_bytes());
            p[23] = proto;
            p[46] = doff << 4 | (p[46] & 0x0f);
            let p = &p[..p.len().saturating_sub(cut)];
            if let Some(fast) = ethernet_ipv4_tcp(p) {
                let g = general(p);
                proptest::prop_assert!(g.is_ok(), "general: {g:?}, fast: {fast:?}");
                proptest::prop_assert_eq!(format!("{fast:?}"), format!("{:?}", g.unwrap()));
            }
        }
    }
}
