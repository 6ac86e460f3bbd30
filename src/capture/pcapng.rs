//! pcapng blocks (draft-ietf-opsawg-pcapng): section headers, interface descriptions
//! and the three packet blocks. Packet blocks are read in place, by hand, because they
//! are the hot path; the rarer SHB goes through `pcap-parser`. Interface Description Blocks
//! are read here too: their `if_tsresol` may be a power of two (high bit set, §4.2), which
//! `pcap-parser` 0.17 rejects, and `if_tsoffset` is in the section's byte order.

use pcap_parser::pcapng::parse_sectionheaderblock;

use crate::error::InputErrorKind;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const OPB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
const DSB: u32 = 0x0000_000A;
const BOM: u32 = 0x1A2B_3C4D;

/// One interface of a section (one IDB).
#[derive(Clone, Copy, Debug)]
pub struct Interface {
    pub linktype: u16,
    pub snaplen: u32,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    pub units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    pub offset_s: i64,
}

/// State of the current section: its byte order and interfaces.
#[derive(Default)]
pub struct Section {
    started: bool,
    big_endian: bool,
    ifaces: Vec<Interface>,
    last_ts_ns: i64,
    /// A packet block was read (so a Decryption Secrets Block now comes after packets).
    any_packet: bool,
    /// Decryption Secrets Blocks read and not yet taken: (secrets type, data, after packets).
    pub secrets: Vec<(u32, Vec<u8>, bool)>,
    /// `secrets` is not empty (one flag for the packet loop to test).
    pub got_secrets: bool,
}

/// A packet found in a block: where its data starts inside the block.
pub struct BlockPacket {
    pub ts_ns: i64,
    pub linktype: u16,
    pub data_off: usize,
    pub caplen: u32,
    pub origlen: u32,
}

fn rd(b: &[u8], i: usize, be: bool) -> u32 {
    let x = [b[i], b[i + 1], b[i + 2], b[i + 3]];
    if be {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

/// Total length of the block starting with `head` (12 bytes). A Section Header Block
/// switches the byte order first, from its byte-order magic.
pub fn block_len(section: &mut Section, head: &[u8]) -> Result<u64, InputErrorKind> {
    let raw_type = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if raw_type == SHB {
        let bom = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        section.big_endian = if bom == BOM {
            false
        } else if bom.swap_bytes() == BOM {
            true
        } else {
            return Err(InputErrorKind::BadBlock {
                block_type: SHB,
                reason: "bad byte-order magic",
            });
        };
    } else if !section.started {
        return Err(InputErrorKind::BadBlock {
            block_type: raw_type,
            reason: "the first block is not a Section Header Block",
        });
    }
    let be = section.big_endian;
    let block_type = rd(head, 0, be);
    let len = rd(head, 4, be) as u64;
    if len < 12 || !len.is_multiple_of(4) {
        return Err(InputErrorKind::BadBlock {
            block_type,
            reason: "total length below 12 bytes or not a multiple of 4",
        });
    }
    Ok(len)
}

impl Section {
    /// Takes one whole block; returns the packet it carries, if any.
    pub fn block(&mut self, b: &[u8]) -> Result<Option<BlockPacket>, InputErrorKind> {
        let be = self.big_endian;
        let block_type = rd(b, 0, be);
        let len = b.len();
        if rd(b, len - 4, be) as usize != len {
            return Err(InputErrorKind::BadBlock {
                block_type,
                reason: "trailing block length differs from the leading one",
            });
        }
        let bad = |reason| InputErrorKind::BadBlock { block_type, reason };
        match block_type {
            SHB => {
                let (_, shb) =
                    parse_sectionheaderblock(b).map_err(|_| bad("unparsable section header"))?;
                if shb.major_version != 1 {
                    return Err(bad("unsupported pcapng major version"));
                }
                self.started = true;
                self.ifaces.clear();
                Ok(None)
            }
            IDB => {
                let idb = interface(b, be).map_err(bad)?;
                self.ifaces.push(idb);
                Ok(None)
            }
            EPB | OPB => {
                if len < 32 {
                    return Err(bad("packet block too short"));
                }
                let if_id = if block_type == EPB {
                    rd(b, 8, be)
                } else if be {
                    u16::from_be_bytes([b[8], b[9]]) as u32
                } else {
                    u16::from_le_bytes([b[8], b[9]]) as u32
                };
                let (hi, lo) = (rd(b, 12, be), rd(b, 16, be));
                let caplen = rd(b, 20, be);
                let origlen = rd(b, 24, be);
                if 28 + caplen as usize + 4 > len {
                    return Err(bad("captured length runs past the end of the block"));
                }
                let iface = *self.iface(if_id)?;
                let ts_ns = ticks_to_ns(((hi as u64) << 32) | lo as u64, &iface);
                self.last_ts_ns = ts_ns;
                self.any_packet = true;
                Ok(Some(BlockPacket {
                    ts_ns,
                    linktype: iface.linktype,
                    data_off: 28,
                    caplen,
                    origlen,
                }))
            }
            SPB => {
                if len < 16 {
                    return Err(bad("packet block too short"));
                }
                let iface = *self.iface(0)?;
                let origlen = rd(b, 8, be);
                let mut caplen = origlen.min((len - 16) as u32);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen);
                }
                self.any_packet = true;
                // A Simple Packet Block has no timestamp: it inherits the previous packet's.
                Ok(Some(BlockPacket {
                    ts_ns: self.last_ts_ns,
                    linktype: iface.linktype,
                    data_off: 12,
                    caplen,
                    origlen,
                }))
            }
            DSB => {
                // Secrets Type, Secrets Length, Secrets Data (padded to 32 bits), options.
                if len < 20 {
                    return Err(bad("decryption secrets block too short"));
                }
                let (ty, n) = (rd(b, 8, be), rd(b, 12, be) as usize);
                if 16 + n + 4 > len {
                    return Err(bad("secrets length runs past the end of the block"));
                }
                self.secrets
                    .push((ty, b[16..16 + n].to_vec(), self.any_packet));
                self.got_secrets = true;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn iface(&self, if_id: u32) -> Result<&Interface, InputErrorKind> {
        self.ifaces
            .get(if_id as usize)
            .ok_or(InputErrorKind::UnknownInterface {
                if_id,
                known: self.ifaces.len(),
            })
    }
}

/// Option codes of an Interface Description Block (§4.2).
const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// An Interface Description Block (§4.2): link type, snaplen, and the options that decide
/// timestamps.
fn interface(b: &[u8], be: bool) -> Result<Interface, &'static str> {
    if b.len() < 20 {
        return Err("interface description too short");
    }
    let u16_at = |i: usize| {
        if be {
            u16::from_be_bytes([b[i], b[i + 1]])
        } else {
            u16::from_le_bytes([b[i], b[i + 1]])
        }
    };
    let mut iface = Interface {
        linktype: u16_at(8),
        snaplen: rd(b, 12, be),
        units_per_sec: 1_000_000,
        offset_s: 0,
    };
    let end = b.len() - 4;
    let mut i = 16;
    while i + 4 <= end {
        let (code, len) = (u16_at(i), u16_at(i + 2) as usize);
        let v = i + 4;
        if v + len > end {
            return Err("interface option runs past the end of the block");
        }
        match code {
            OPT_ENDOFOPT => break,
            IF_TSRESOL if len >= 1 => {
                iface.units_per_sec = ts_resolution(b[v]).ok_or("if_tsresol out of range")?;
            }
            IF_TSOFFSET if len >= 8 => {
                let x: [u8; 8] = b[v..v + 8].try_into().expect("8 bytes");
                iface.offset_s = if be {
                    i64::from_be_bytes(x)
                } else {
                    i64::from_le_bytes(x)
                };
            }
            _ => {}
        }
        i = v + len.div_ceil(4) * 4;
    }
    Ok(iface)
}

/// Timestamp units per second for an `if_tsresol` value (§4.2): with the most significant
/// bit clear, the rest is a power of 10; set, a power of 2 (0x94: 2^20 units per second).
/// `None` when the number of units does not fit in 64 bits.
pub fn ts_resolution(v: u8) -> Option<u64> {
    let e = (v & 0x7f) as u32;
    if v & 0x80 == 0 {
        10u64.checked_pow(e)
    } else {
        1u64.checked_shl(e).filter(|_| e < 64)
    }
}

fn ticks_to_ns(ticks: u64, iface: &Interface) -> i64 {
    let ns = match iface.units_per_sec {
        1_000_000 => ticks as i128 * 1_000,
        1_000_000_000 => ticks as i128,
        u => ticks as i128 * 1_000_000_000 / u as i128,
    } + iface.offset_s as i128 * 1_000_000_000;
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}
