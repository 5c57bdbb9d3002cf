//! The address a request comes from, for per-source limits (registration rate limits).
//!
//! Behind an Ingress or load balancer every request arrives from the proxy; only proxies the
//! operator lists (`--trusted-proxies`) are believed about `X-Forwarded-For`. The client is
//! the right-most address in that header that is not itself a trusted proxy: everything to
//! its left was written by the client and can be forged.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address block, `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.network), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack socket reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The source a per-source limit counts: an IPv4 address, or the /64 of an IPv6 one. One
/// IPv6 host normally holds a whole /64 (SLAAC and privacy addresses, RFC 8981), so counting
/// single IPv6 addresses would give each client 2^64 sources.
pub fn limit_source(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
            format!("{network}/64")
        }
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, then the right-most
/// untrusted address of `X-Forwarded-For` (all of its values, in order).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().parse::<IpAddr>().map(canonical))
        .collect::<Result<_, _>>()
        // A malformed header is not believed at all.
        .unwrap_or_default();
    forwarded.into_iter().rev().find(|ip| !trusted.iter().any(|c| c.contains(*ip))).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_their_64() {
        let a = limit_source("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(limit_source("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap()), a, "same /64, same source");
        assert_ne!(limit_source("2001:db8:1:3::1".parse().unwrap()), a);
        assert_eq!(limit_source("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(limit_source("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7", "mapped IPv4 counts as IPv4");
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted: Vec<Cidr> = ["10.0.0.0/8", "fd00::/8"].iter().map(|c| c.parse().unwrap()).collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Direct client: the header is ignored.
        assert_eq!(client_ip(ip("203.0.113.9"), &headers(&["1.2.3.4"]), &trusted), ip("203.0.113.9"));
        // Through the ingress: the right-most untrusted address.
        assert_eq!(client_ip(ip("10.1.2.3"), &headers(&["1.2.3.4, 198.51.100.7"]), &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_ip(ip("10.1.2.3"), &headers(&["6.6.6.6", "198.51.100.7, 10.9.9.9"]), &trusted),
            ip("198.51.100.7")
        );
        // A forged left part does not matter; a malformed header is ignored.
        assert_eq!(client_ip(ip("10.1.2.3"), &headers(&["evil, 198.51.100.7"]), &trusted), ip("10.1.2.3"));
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.1.2.3"), &HeaderMap::new(), &trusted), ip("10.1.2.3"));
        // IPv4-mapped peers and IPv6 blocks.
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &headers(&["198.51.100.7"]), &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("fd12::1"), &headers(&["2001:db8::5"]), &trusted), ip("2001:db8::5"));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
    }
}
