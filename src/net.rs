//! Addresses and connection keys: what identifies an endpoint and a TCP connection,
//! independent of how packets are decoded (the session record uses these too).

/// One endpoint. The address is the 128-bit value of the IPv6 address, IPv4 addresses
/// IPv4-mapped (`::ffff:a.b.c.d`); kept as an integer so keys compare and hash as words.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

/// A 128-bit address as two words, most significant first: it orders like the number and
/// aligns to 8 bytes, so a flow key takes 48 bytes instead of 64 (it crosses cores with
/// every packet).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Addr(pub u64, pub u64);

impl From<u128> for Addr {
    #[inline]
    fn from(x: u128) -> Addr {
        Addr((x >> 64) as u64, x as u64)
    }
}

impl From<Addr> for u128 {
    #[inline]
    fn from(a: Addr) -> u128 {
        (a.0 as u128) << 64 | a.1 as u128
    }
}

pub(crate) const V4_MAPPED: u128 = 0xffff << 32;

impl Endpoint {
    pub fn v4(addr: [u8; 4], port: u16) -> Self {
        Endpoint {
            addr: Addr::from(V4_MAPPED | u32::from_be_bytes(addr) as u128),
            port,
        }
    }

    pub fn v6(addr: [u8; 16], port: u16) -> Self {
        Endpoint {
            addr: Addr::from(u128::from_be_bytes(addr)),
            port,
        }
    }

    pub fn is_v4(&self) -> bool {
        u128::from(self.addr) >> 32 == 0xffff
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_v4() {
            write!(
                f,
                "{}:{}",
                std::net::Ipv4Addr::from(self.addr.1 as u32),
                self.port
            )
        } else {
            write!(
                f,
                "[{}]:{}",
                std::net::Ipv6Addr::from(u128::from(self.addr)),
                self.port
            )
        }
    }
}

/// Reads back what `Display` writes: `a.b.c.d:port` or `[v6]:port`.
impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not an ip:port endpoint: {s:?}");
        let (addr, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if let Some(v6) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
            let a: std::net::Ipv6Addr = v6.parse().map_err(|_| bad())?;
            Ok(Endpoint::v6(a.octets(), port))
        } else {
            let a: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
            Ok(Endpoint::v4(a.octets(), port))
        }
    }
}

/// A TCP connection's key, the same for both directions: the lower endpoint first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key and whether `src` is the lower endpoint.
    pub fn new(src: Endpoint, dst: Endpoint) -> (FlowKey, bool) {
        if src <= dst {
            (FlowKey { lo: src, hi: dst }, true)
        } else {
            (FlowKey { lo: dst, hi: src }, false)
        }
    }

    /// A hash that is the same for both directions (the key is canonical), used to shard.
    pub fn shard_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |x: u64| {
            h = (h ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
        };
        for ep in [&self.lo, &self.hi] {
            mix(ep.addr.1);
            mix(ep.addr.0);
            mix(ep.port as u64);
        }
        h
    }
}
