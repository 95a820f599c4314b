//! CIDR blocks for `cidrMatch`: IPv4 and IPv6, parsed once when the rule is compiled.

use std::net::IpAddr;

/// A CIDR block (`10.0.0.0/8`, `fe80::/10`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network, IPv4 mapped into the low 32 bits.
    net: u128,
    /// Prefix length in the address family's bits.
    len: u8,
    v4: bool,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a CIDR block"))?;
        let (bits, v4, max) = match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), true, 32u8),
            IpAddr::V6(a) => (u128::from(a), false, 128u8),
        };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr {
            net: bits & mask(len, max),
            len,
            v4,
        })
    }

    /// Whether the address `ip` (text) is in the block; `None` when it is not an address.
    pub fn contains_text(&self, ip: &str) -> Option<bool> {
        let ip: IpAddr = ip.trim().parse().ok()?;
        Some(self.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v4, max) = match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), true, 32u8),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                // An IPv4-mapped IPv6 address is its IPv4 address, as Elasticsearch's `ip`
                // type stores it.
                Some(v4) if self.v4 => (u128::from(u32::from(v4)), true, 32u8),
                _ => (u128::from(a), false, 128u8),
            },
        };
        v4 == self.v4 && bits & mask(self.len, max) == self.net
    }
}

fn mask(len: u8, max: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let all = if max == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    all & !((1u128 << (max - len)) - 1) & all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses() {
        let c = Cidr::parse("192.168.0.0/16").unwrap();
        assert_eq!(c.contains_text("192.168.152.12"), Some(true));
        assert_eq!(c.contains_text("10.1.1.1"), Some(false));
        assert_eq!(c.contains_text("not an ip"), None);
        assert_eq!(
            Cidr::parse("0.0.0.0/0").unwrap().contains_text("8.8.8.8"),
            Some(true)
        );
        assert_eq!(Cidr::parse("::1").unwrap().contains_text("::1"), Some(true));
        assert_eq!(
            Cidr::parse("fe80::/10").unwrap().contains_text("fe80::1"),
            Some(true)
        );
        assert_eq!(
            Cidr::parse("127.0.0.0/8")
                .unwrap()
                .contains_text("::ffff:127.0.0.1"),
            Some(true)
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/8").unwrap().contains_text("::1"),
            Some(false)
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
    }
}
