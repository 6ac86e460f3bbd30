//! Classic pcap and pcapng writers plus link-layer framing.

use std::io::{self, Write};

/// LINKTYPE_NULL (BSD loopback, 4-byte address family in host byte order).
pub const LINKTYPE_NULL: u32 = 0;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW (raw IPv4 or IPv6).
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_LINUX_SLL (Linux cooked capture v1).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_IPV4.
pub const LINKTYPE_IPV4: u32 = 228;
/// LINKTYPE_IPV6.
pub const LINKTYPE_IPV6: u32 = 229;
/// LINKTYPE_LINUX_SLL2 (Linux cooked capture v2).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// 802.1Q customer tag TPID.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad service tag TPID.
pub const TPID_8021AD: u16 = 0x88a8;

const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// How IP packets are wrapped into link-layer frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Ethernet II; `vlans` = (TPID, VLAN id) tags, outermost first.
    /// Frames shorter than 60 bytes are zero-padded like on the wire.
    Ethernet {
        /// VLAN tags, outermost first.
        vlans: Vec<(u16, u16)>,
    },
    /// BSD NULL/loopback; the family is written little-endian (x86 host).
    /// `af_inet6` is 24 (NetBSD/OpenBSD), 28 (FreeBSD) or 30 (macOS).
    Null {
        /// AF value used for IPv6 packets.
        af_inet6: u32,
    },
    /// LINKTYPE_RAW (101).
    Raw,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// Linux cooked v1 (113).
    Sll,
    /// Linux cooked v2 (276).
    Sll2 {
        /// Interface index written in the header.
        ifindex: u32,
    },
}

impl Link {
    /// Plain untagged Ethernet.
    pub fn ethernet() -> Link {
        Link::Ethernet { vlans: Vec::new() }
    }

    /// The pcap LINKTYPE value.
    pub fn linktype(&self) -> u32 {
        match self {
            Link::Ethernet { .. } => LINKTYPE_ETHERNET,
            Link::Null { .. } => LINKTYPE_NULL,
            Link::Raw => LINKTYPE_RAW,
            Link::Ipv4 => LINKTYPE_IPV4,
            Link::Ipv6 => LINKTYPE_IPV6,
            Link::Sll => LINKTYPE_LINUX_SLL,
            Link::Sll2 { .. } => LINKTYPE_LINUX_SLL2,
        }
    }

    /// Wraps an IP packet; `from_client` picks MAC addresses / packet type.
    pub fn frame(&self, ip: &[u8], from_client: bool) -> Vec<u8> {
        let v6 = ip.first().map(|b| b >> 4) == Some(6);
        let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
        let mut f = Vec::with_capacity(ip.len() + 28);
        match self {
            Link::Ethernet { vlans } => {
                let (src, dst) = if from_client {
                    (CLIENT_MAC, SERVER_MAC)
                } else {
                    (SERVER_MAC, CLIENT_MAC)
                };
                f.extend_from_slice(&dst);
                f.extend_from_slice(&src);
                for (tpid, vid) in vlans {
                    f.extend_from_slice(&tpid.to_be_bytes());
                    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
                }
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(ip);
                if f.len() < 60 {
                    f.resize(60, 0);
                }
                return f;
            }
            Link::Null { af_inet6 } => {
                let af = if v6 { *af_inet6 } else { 2 };
                f.extend_from_slice(&af.to_le_bytes());
            }
            Link::Raw | Link::Ipv4 | Link::Ipv6 => {}
            Link::Sll => {
                let ptype: u16 = if from_client { 4 } else { 0 };
                f.extend_from_slice(&ptype.to_be_bytes());
                f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                f.extend_from_slice(&6u16.to_be_bytes());
                f.extend_from_slice(if from_client {
                    &CLIENT_MAC
                } else {
                    &SERVER_MAC
                });
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&ethertype.to_be_bytes());
            }
            Link::Sll2 { ifindex } => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&ifindex.to_be_bytes());
                f.extend_from_slice(&1u16.to_be_bytes());
                f.push(if from_client { 4 } else { 0 });
                f.push(6);
                f.extend_from_slice(if from_client {
                    &CLIENT_MAC
                } else {
                    &SERVER_MAC
                });
                f.extend_from_slice(&[0, 0]);
            }
        }
        f.extend_from_slice(ip);
        f
    }
}

fn u16x(v: u16, be: bool) -> [u8; 2] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn u32x(v: u32, be: bool) -> [u8; 4] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// Options of a classic pcap file.
#[derive(Clone, Copy, Debug)]
pub struct PcapOpts {
    /// Write all header fields big-endian.
    pub big_endian: bool,
    /// Nanosecond magic (0xa1b23c4d) instead of microseconds.
    pub nanos: bool,
    /// Snapshot length; longer packets are cut (caplen < origlen).
    pub snaplen: u32,
}

impl Default for PcapOpts {
    fn default() -> Self {
        PcapOpts {
            big_endian: false,
            nanos: false,
            snaplen: 262_144,
        }
    }
}

/// Classic libpcap file writer.
pub struct PcapWriter<W: Write> {
    w: W,
    o: PcapOpts,
    /// Number of records written.
    pub packets: u64,
}

/// Global header of a classic pcap file.
pub fn pcap_global_header(linktype: u32, o: &PcapOpts) -> Vec<u8> {
    let be = o.big_endian;
    let magic = if o.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&u32x(magic, be));
    h.extend_from_slice(&u16x(2, be));
    h.extend_from_slice(&u16x(4, be));
    h.extend_from_slice(&u32x(0, be));
    h.extend_from_slice(&u32x(0, be));
    h.extend_from_slice(&u32x(o.snaplen, be));
    h.extend_from_slice(&u32x(linktype, be));
    h
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(mut w: W, linktype: u32, o: PcapOpts) -> io::Result<Self> {
        w.write_all(&pcap_global_header(linktype, &o))?;
        Ok(PcapWriter { w, o, packets: 0 })
    }

    /// Writes one record (cut to the snaplen).
    pub fn write_packet(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let be = self.o.big_endian;
        let caplen = data.len().min(self.o.snaplen as usize);
        let frac = if self.o.nanos {
            ts_ns % 1_000_000_000
        } else {
            (ts_ns % 1_000_000_000) / 1000
        };
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&u32x((ts_ns / 1_000_000_000) as u32, be));
        h[4..8].copy_from_slice(&u32x(frac as u32, be));
        h[8..12].copy_from_slice(&u32x(caplen as u32, be));
        h[12..16].copy_from_slice(&u32x(data.len() as u32, be));
        self.w.write_all(&h)?;
        self.w.write_all(&data[..caplen])?;
        self.packets += 1;
        Ok(())
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.w
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// pcapng writer: SHB, IDBs (link type, snaplen, `if_tsresol`) and EPBs.
pub struct PcapngWriter<W: Write> {
    w: W,
    be: bool,
    /// Per interface: `if_tsresol`, snaplen, `if_tsoffset` (seconds).
    ifaces: Vec<(u8, u32, i64)>,
    /// Number of EPBs written.
    pub packets: u64,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the first section header block.
    pub fn new(w: W, big_endian: bool) -> io::Result<Self> {
        let mut s = PcapngWriter {
            w,
            be: big_endian,
            ifaces: Vec::new(),
            packets: 0,
        };
        s.new_section()?;
        Ok(s)
    }

    fn option(&self, body: &mut Vec<u8>, code: u16, val: &[u8]) {
        body.extend_from_slice(&u16x(code, self.be));
        body.extend_from_slice(&u16x(val.len() as u16, self.be));
        body.extend_from_slice(val);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }

    fn block(&mut self, btype: u32, body: &[u8]) -> io::Result<()> {
        let pad = (4 - body.len() % 4) % 4;
        let total = (12 + body.len() + pad) as u32;
        let mut b = Vec::with_capacity(total as usize);
        b.extend_from_slice(&u32x(btype, self.be));
        b.extend_from_slice(&u32x(total, self.be));
        b.extend_from_slice(body);
        b.resize(b.len() + pad, 0);
        b.extend_from_slice(&u32x(total, self.be));
        self.w.write_all(&b)
    }

    /// Starts a new section (new SHB); interface ids restart at 0.
    pub fn new_section(&mut self) -> io::Result<()> {
        self.ifaces.clear();
        let mut body = Vec::new();
        body.extend_from_slice(&u32x(0x1a2b_3c4d, self.be));
        body.extend_from_slice(&u16x(1, self.be));
        body.extend_from_slice(&u16x(0, self.be));
        body.extend_from_slice(&u32x(0xffff_ffff, self.be));
        body.extend_from_slice(&u32x(0xffff_ffff, self.be));
        self.option(&mut body, 4, b"wsclose-synth");
        self.option(&mut body, 0, b"");
        self.block(0x0a0d_0d0a, &body)
    }

    /// Adds an interface; `tsresol` is the decimal exponent (6 = µs, 9 = ns).
    pub fn add_interface(&mut self, linktype: u32, snaplen: u32, tsresol: u8) -> io::Result<u32> {
        self.add_interface_with(linktype, snaplen, tsresol, 0)
    }

    /// Adds an interface with `if_tsresol` (a decimal exponent up to 9, or 0x80 | a binary
    /// exponent up to 62: 0x94 is 2^-20 s) and, when not 0, `if_tsoffset` in seconds.
    pub fn add_interface_with(
        &mut self,
        linktype: u32,
        snaplen: u32,
        tsresol: u8,
        tsoffset: i64,
    ) -> io::Result<u32> {
        assert!(
            tsresol <= 9 || (tsresol & 0x80 != 0 && tsresol & 0x7f <= 62),
            "decimal resolutions up to ns, binary ones up to 2^-62"
        );
        let mut body = Vec::new();
        body.extend_from_slice(&u16x(linktype as u16, self.be));
        body.extend_from_slice(&u16x(0, self.be));
        body.extend_from_slice(&u32x(snaplen, self.be));
        let name = format!("synth{}", self.ifaces.len());
        self.option(&mut body, 2, name.as_bytes());
        self.option(&mut body, 9, &[tsresol]);
        if tsoffset != 0 {
            let v = if self.be {
                tsoffset.to_be_bytes()
            } else {
                tsoffset.to_le_bytes()
            };
            self.option(&mut body, 14, &v);
        }
        self.option(&mut body, 0, b"");
        self.block(1, &body)?;
        self.ifaces.push((tsresol, snaplen, tsoffset));
        Ok((self.ifaces.len() - 1) as u32)
    }

    /// Writes an enhanced packet block on interface `iface`.
    pub fn write_packet(&mut self, iface: u32, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let (res, snaplen, offset) = self.ifaces[iface as usize];
        let rel = ts_ns as i128 - offset as i128 * 1_000_000_000;
        let ts = if res & 0x80 != 0 {
            (rel << (res & 0x7f)) / 1_000_000_000
        } else {
            rel / 10i128.pow(9 - u32::from(res))
        } as u64;
        let caplen = if snaplen == 0 {
            data.len()
        } else {
            data.len().min(snaplen as usize)
        };
        let mut body = Vec::with_capacity(caplen + 24);
        body.extend_from_slice(&u32x(iface, self.be));
        body.extend_from_slice(&u32x((ts >> 32) as u32, self.be));
        body.extend_from_slice(&u32x(ts as u32, self.be));
        body.extend_from_slice(&u32x(caplen as u32, self.be));
        body.extend_from_slice(&u32x(data.len() as u32, self.be));
        body.extend_from_slice(&data[..caplen]);
        self.packets += 1;
        self.block(6, &body)
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_header_and_record() {
        let mut w = PcapWriter::new(
            Vec::new(),
            LINKTYPE_ETHERNET,
            PcapOpts {
                big_endian: true,
                nanos: true,
                snaplen: 10,
            },
        )
        .unwrap();
        w.write_packet(1_700_000_000_123_456_789, &[7u8; 20])
            .unwrap();
        let b = w.into_inner().unwrap();
        assert_eq!(&b[0..4], &[0xa1, 0xb2, 0x3c, 0x4d]);
        assert_eq!(b.len(), 24 + 16 + 10);
        assert_eq!(&b[28..32], &123_456_789u32.to_be_bytes());
        assert_eq!(&b[32..36], &10u32.to_be_bytes());
        assert_eq!(&b[36..40], &20u32.to_be_bytes());
        let le = PcapWriter::new(Vec::new(), 1, PcapOpts::default()).unwrap();
        assert_eq!(&le.into_inner().unwrap()[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    }

    #[test]
    fn pcapng_blocks_are_aligned() {
        let mut w = PcapngWriter::new(Vec::new(), false).unwrap();
        let a = w.add_interface(LINKTYPE_ETHERNET, 0, 6).unwrap();
        let b = w.add_interface(LINKTYPE_RAW, 0, 9).unwrap();
        w.write_packet(a, 1_000_000_123, &[1, 2, 3]).unwrap();
        w.write_packet(b, 1_000_000_123, &[1, 2, 3, 4, 5]).unwrap();
        w.new_section().unwrap();
        let bytes = w.into_inner().unwrap();
        // walk blocks
        let mut off = 0;
        let mut types = Vec::new();
        while off < bytes.len() {
            let t = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
            let l = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
            assert_eq!(l % 4, 0);
            assert_eq!(&bytes[off + l - 4..off + l], &bytes[off + 4..off + 8]);
            types.push(t);
            off += l;
        }
        assert_eq!(types, vec![0x0a0d0d0a, 1, 1, 6, 6, 0x0a0d0d0a]);
    }

    #[test]
    fn ethernet_padding_and_vlans() {
        let ip = [0x45u8; 40];
        let f = Link::ethernet().frame(&ip, true);
        assert_eq!(f.len(), 60);
        let q = Link::Ethernet {
            vlans: vec![(TPID_8021AD, 200), (TPID_8021Q, 300)],
        }
        .frame(&[0x60u8; 60], false);
        assert_eq!(&q[12..14], &[0x88, 0xa8]);
        assert_eq!(&q[16..18], &[0x81, 0x00]);
        assert_eq!(&q[20..22], &[0x86, 0xdd]);
        assert_eq!(Link::Sll.frame(&ip, true).len(), 56);
        assert_eq!(Link::Sll2 { ifindex: 1 }.frame(&ip, true).len(), 60);
        assert_eq!(
            Link::Null { af_inet6: 30 }.frame(&[0x60], true),
            vec![30, 0, 0, 0, 0x60]
        );
    }
}
