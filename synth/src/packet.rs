//! IPv4 / IPv6 + TCP / UDP packet builders with correct checksums.

use std::net::{IpAddr, SocketAddr};

/// TCP flag bits.
pub const FIN: u8 = 0x01;
/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP RST flag.
pub const RST: u8 = 0x04;
/// TCP PSH flag.
pub const PSH: u8 = 0x08;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;

/// IP protocol numbers.
pub const PROTO_TCP: u8 = 6;
/// UDP protocol number.
pub const PROTO_UDP: u8 = 17;

/// IP-layer options.
#[derive(Clone, Debug)]
pub struct IpOpts {
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 identification field.
    pub ip_id: u16,
    /// IPv6 only: insert an 8-byte hop-by-hop options header (PadN).
    pub ipv6_hop_by_hop: bool,
}

impl Default for IpOpts {
    fn default() -> Self {
        IpOpts {
            ttl: 64,
            ip_id: 0,
            ipv6_hop_by_hop: false,
        }
    }
}

/// TCP header fields (ports come from the socket addresses).
#[derive(Clone, Debug, Default)]
pub struct TcpFields {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (only meaningful with [`ACK`]).
    pub ack: u32,
    /// Flag bits.
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// Raw TCP options (padded to a multiple of 4 with EOL bytes).
    pub options: Vec<u8>,
}

/// Adds `data` (as big-endian 16-bit words) to a running one's-complement sum.
pub fn checksum_add(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u64::from(*b) << 8;
    }
    sum
}

/// Folds and complements a running sum.
pub fn checksum_finish(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 1071 internet checksum of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    checksum_finish(checksum_add(0, data))
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u64 {
    let mut s = 0u64;
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            s = checksum_add(s, &a.octets());
            s = checksum_add(s, &b.octets());
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            s = checksum_add(s, &a.octets());
            s = checksum_add(s, &b.octets());
        }
        _ => panic!("address family mismatch"),
    }
    s + u64::from(proto) + (len as u64 >> 16) + (len as u64 & 0xffff)
}

/// MSS option (kind 2).
pub fn mss_option(mss: u16) -> Vec<u8> {
    let m = mss.to_be_bytes();
    vec![2, 4, m[0], m[1]]
}

fn ip_header(out: &mut Vec<u8>, src: IpAddr, dst: IpAddr, proto: u8, l4: usize, o: &IpOpts) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + l4).expect("IPv4 packet too large");
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&o.ip_id.to_be_bytes());
            out.extend_from_slice(&[0x40, 0, o.ttl, proto, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let c = internet_checksum(&out[start..start + 20]);
            out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ext = if o.ipv6_hop_by_hop { 8 } else { 0 };
            let plen = u16::try_from(ext + l4).expect("IPv6 packet too large");
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&plen.to_be_bytes());
            out.push(if o.ipv6_hop_by_hop { 0 } else { proto });
            out.push(o.ttl);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            if o.ipv6_hop_by_hop {
                // next header, hdr ext len 0 (8 bytes), PadN option of 4 bytes
                out.extend_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]);
            }
        }
        _ => panic!("address family mismatch"),
    }
}

/// Builds a complete IP packet carrying one TCP segment.
pub fn build_tcp(
    src: SocketAddr,
    dst: SocketAddr,
    t: &TcpFields,
    payload: &[u8],
    o: &IpOpts,
) -> Vec<u8> {
    let mut opts = t.options.clone();
    while opts.len() % 4 != 0 {
        opts.push(0);
    }
    let hlen = 20 + opts.len();
    let l4 = hlen + payload.len();
    let mut out = Vec::with_capacity(l4 + 48);
    ip_header(&mut out, src.ip(), dst.ip(), PROTO_TCP, l4, o);
    let start = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&t.seq.to_be_bytes());
    out.extend_from_slice(&t.ack.to_be_bytes());
    out.push(((hlen / 4) as u8) << 4);
    out.push(t.flags);
    out.extend_from_slice(&t.window.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&opts);
    out.extend_from_slice(payload);
    let sum = checksum_add(pseudo_sum(src.ip(), dst.ip(), PROTO_TCP, l4), &out[start..]);
    let c = checksum_finish(sum);
    out[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    out
}

/// Builds a complete IP packet carrying one UDP datagram.
pub fn build_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8], o: &IpOpts) -> Vec<u8> {
    let l4 = 8 + payload.len();
    let mut out = Vec::with_capacity(l4 + 48);
    ip_header(&mut out, src.ip(), dst.ip(), PROTO_UDP, l4, o);
    let start = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&(l4 as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let sum = checksum_add(pseudo_sum(src.ip(), dst.ip(), PROTO_UDP, l4), &out[start..]);
    let c = match checksum_finish(sum) {
        0 => 0xffff,
        c => c,
    };
    out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
    out
}

/// Parses an IP packet built here and recomputes every checksum
/// (IPv4 header, TCP or UDP). Returns a description of the first error.
pub fn verify_checksums(pkt: &[u8]) -> Result<(), String> {
    let (src, dst, proto, l4): (IpAddr, IpAddr, u8, &[u8]) = match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(pkt[0] & 15) * 4;
            if internet_checksum(&pkt[..ihl]) != 0 {
                return Err("bad IPv4 header checksum".into());
            }
            let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
            let s: [u8; 4] = pkt[12..16].try_into().unwrap();
            let d: [u8; 4] = pkt[16..20].try_into().unwrap();
            (s.into(), d.into(), pkt[9], &pkt[ihl..total])
        }
        Some(6) => {
            let plen = usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
            let s: [u8; 16] = pkt[8..24].try_into().unwrap();
            let d: [u8; 16] = pkt[24..40].try_into().unwrap();
            let mut nh = pkt[6];
            let mut off = 40;
            while nh == 0 {
                nh = pkt[off];
                off += (usize::from(pkt[off + 1]) + 1) * 8;
            }
            (s.into(), d.into(), nh, &pkt[off..40 + plen])
        }
        _ => return Err("not IP".into()),
    };
    let sum = checksum_add(pseudo_sum(src, dst, proto, l4.len()), l4);
    if checksum_finish(sum) != 0 {
        return Err(format!("bad L4 checksum (proto {proto})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc1071_example() {
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&d), !0xddf2u16);
    }

    #[test]
    fn checksums_verify() {
        let t = TcpFields {
            seq: 0xffff_fff0,
            ack: 7,
            flags: ACK | PSH,
            window: 65535,
            options: mss_option(1460),
        };
        for payload in [&b""[..], b"x", b"hello world, odd length!"] {
            let p4 = build_tcp(
                sa("10.0.0.1:1234"),
                sa("192.0.2.1:80"),
                &t,
                payload,
                &IpOpts::default(),
            );
            verify_checksums(&p4).unwrap();
            assert_eq!(p4.len(), 20 + 24 + payload.len());
            for hbh in [false, true] {
                let o = IpOpts {
                    ipv6_hop_by_hop: hbh,
                    ..IpOpts::default()
                };
                let p6 = build_tcp(
                    sa("[2001:db8::1]:1234"),
                    sa("[2001:db8::2]:80"),
                    &t,
                    payload,
                    &o,
                );
                verify_checksums(&p6).unwrap();
                let u = build_udp(sa("[2001:db8::1]:53"), sa("[2001:db8::2]:53"), payload, &o);
                verify_checksums(&u).unwrap();
            }
            let u4 = build_udp(
                sa("10.0.0.1:53"),
                sa("10.0.0.2:53"),
                payload,
                &IpOpts::default(),
            );
            verify_checksums(&u4).unwrap();
            // corrupting a byte must be detected
            let mut bad = p4.clone();
            let n = bad.len() - 1;
            bad[n] ^= 0x55;
            if !payload.is_empty() {
                assert!(verify_checksums(&bad).is_err());
            }
        }
    }
}
