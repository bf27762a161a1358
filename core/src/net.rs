//! Client addresses: which proxies may name the client (`X-Forwarded-For`), and
//! how a client is keyed for rate limits.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An address block such as `10.0.0.0/8` or `2001:db8::/32` (a bare address is a
/// block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits >> (width - prefix) }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an address block such as 10.0.0.0/8 or 2001:db8::/32");
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(bad)?,
            None => width,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A comma-separated list of address blocks; empty entries are ignored, so an
/// empty setting is an empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<Cidr>);

impl FromStr for CidrList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(Cidr::from_str).collect::<Result<_, _>>().map(Self)
    }
}

/// Browser origins (`scheme://host[:port]`, no path), comma-separated; empty
/// entries are ignored, so an empty setting allows no origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginList(pub Vec<String>);

impl FromStr for OriginList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let origin = |o: &str| {
            let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
            let plain = |host: &str| {
                !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            };
            match rest {
                Some(host) if plain(host) => Ok(o.to_owned()),
                _ => Err(format!("`{o}` is not an origin like https://app.example.com (scheme and host, no path)")),
            }
        };
        s.split(',').map(str::trim).filter(|o| !o.is_empty()).map(origin).collect::<Result<_, _>>().map(Self)
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then
/// the right-most `X-Forwarded-For` entry that is not a trusted proxy (entries
/// left of it were written by the client and prove nothing). When every entry
/// is trusted, or the chain holds garbage, the nearest trusted hop is the
/// client: never an address a client could have chosen.
pub fn client_ip<'a>(peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Several headers form one list, in order.
    let entries: Vec<&str> = forwarded_for.into_iter().flat_map(|h| h.split(',')).collect();
    let mut nearest = peer;
    for entry in entries.into_iter().rev() {
        let Some(ip) = parse_entry(entry) else { return nearest };
        if !is_trusted(ip) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`[v6]:port`, `v4:port`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = IpAddr::from_str(entry)
        .ok()
        .or_else(|| SocketAddr::from_str(entry).ok().map(|s| s.ip()))
        .or_else(|| entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).and_then(|e| e.parse().ok()))?;
    Some(ip.to_canonical())
}

/// The key a client is rate-limited under: its IPv4 address, or its IPv6 /64
/// (one subscriber usually holds a whole /64, so single addresses are free to
/// rotate through).
pub fn rate_limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn blocks_parse_and_contain_their_addresses() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6 is the IPv4 address");
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(!one.contains(ip("127.0.0.2")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        let list: CidrList = " 10.0.0.0/8, ,::1 ".parse().unwrap();
        assert_eq!(list.0.len(), 2);
        assert_eq!("".parse::<CidrList>().unwrap(), CidrList::default());
        assert!("10.0.0.0/8,nonsense".parse::<CidrList>().is_err());
    }

    #[test]
    fn origins_are_scheme_and_host_only() {
        let list: OriginList = " https://app.example.com, ,http://127.0.0.1:3000 ".parse().unwrap();
        assert_eq!(list.0, ["https://app.example.com", "http://127.0.0.1:3000"]);
        assert_eq!("".parse::<OriginList>().unwrap(), OriginList::default());
        for bad in ["app.example.com", "https://app.example.com/", "ftp://x", "https://", "*"] {
            assert!(bad.parse::<OriginList>().is_err(), "{bad}");
        }
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "example.com", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_peer() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // An untrusted peer: its header is ignored.
        assert_eq!(client_ip(ip("203.0.113.9"), ["198.51.100.1"], &trusted), ip("203.0.113.9"));
        // A trusted peer: the right-most untrusted entry, whatever the client prepended.
        assert_eq!(client_ip(ip("10.0.0.2"), ["1.1.1.1, 198.51.100.7"], &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.2"), ["1.1.1.1, 198.51.100.7, 10.0.0.5"], &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.2"), ["1.1.1.1", "198.51.100.7"], &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.2"), ["[2001:db8::1]:443"], &trusted), ip("2001:db8::1"));
        assert_eq!(client_ip(ip("10.0.0.2"), ["198.51.100.7:5000"], &trusted), ip("198.51.100.7"));
        // No header, only trusted entries, or garbage: the nearest trusted hop.
        assert_eq!(client_ip(ip("10.0.0.2"), [], &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), ["10.0.0.3"], &trusted), ip("10.0.0.3"));
        assert_eq!(client_ip(ip("10.0.0.2"), ["1.1.1.1, not-an-ip"], &trusted), ip("10.0.0.2"));
        // Nothing trusted (the default): always the peer.
        assert_eq!(client_ip(ip("10.0.0.2"), ["198.51.100.7"], &[]), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_ipv4_clients_by_their_address() {
        assert_eq!(rate_limit_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(rate_limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), "2001:db8:1:2::/64");
        assert_ne!(rate_limit_key(ip("2001:db8:1:3::1")), rate_limit_key(ip("2001:db8:1:2::1")));
        assert_eq!(rate_limit_key(ip("203.0.113.9")), "203.0.113.9");
        assert_eq!(rate_limit_key(ip("::ffff:203.0.113.9")), "203.0.113.9");
    }
}
