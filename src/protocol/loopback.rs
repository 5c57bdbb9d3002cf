//! The loopback rules, in one place.
//!
//! Two questions get two answers, on purpose:
//!
//! - *May this URL use plain `http`?* Yes on a loopback IP literal or on `localhost`
//!   ([`is_loopback_host`]): RFC 8252 §7.3 and §8.3 allow loopback redirects, and RFC 6761
//!   §6.3 reserves `localhost` for the loopback interface. Redirect URIs of declared apps,
//!   approved redirect patterns, metadata-document URLs and the issuer all use this rule.
//! - *May the port differ from the registered one?* Only on a loopback IP literal
//!   ([`is_loopback_ip`]) for a registered redirect URI (RFC 8252 §7.3), because §8.3 warns
//!   that `localhost` may resolve elsewhere or be taken by another listener. An approved
//!   redirect *pattern* (`protocol::pattern`) written by a policy author as
//!   `http://localhost/cb` is the one exception: the author chose `localhost` explicitly,
//!   and the clients that register under it (MCP clients, CLIs) listen on ephemeral ports.

use url::{Host, Url};

/// A loopback IP literal: `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_ip<S: AsRef<str>>(host: Option<Host<S>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// A loopback IP literal or the name `localhost` (ASCII case-insensitive).
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        other => is_loopback_ip(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for yes in
            ["http://127.0.0.1/", "http://127.8.9.1:80/", "http://[::1]/", "http://localhost/", "http://LOCALHOST/"]
        {
            assert!(is_loopback_host(&Url::parse(yes).unwrap()), "{yes}");
        }
        for no in ["http://localhost.evil.com/", "http://10.0.0.1/", "http://[::2]/", "urn:x", "http://0.0.0.0/"] {
            assert!(!is_loopback_host(&Url::parse(no).unwrap()), "{no}");
        }
    }

    #[test]
    fn only_ip_literals_are_loopback_ips() {
        assert!(is_loopback_ip(Url::parse("http://127.0.0.1/").unwrap().host()));
        assert!(is_loopback_ip(Url::parse("http://[::1]/").unwrap().host()));
        assert!(!is_loopback_ip(Url::parse("http://localhost/").unwrap().host()));
    }
}
