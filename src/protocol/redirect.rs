//! Redirect URI matching: exact string comparison (OAuth 2.1 §2.3.1, RFC 9700 §4.1.3), with
//! the one exception of RFC 8252 §7.3: a loopback IP redirect matches on any port, because
//! native apps, CLIs and MCP clients listen on an ephemeral port chosen at run time.

use url::Url;

use super::loopback::is_loopback_ip;

/// True when `requested` may be used given the app's `registered` redirect URIs.
pub fn is_registered(registered: &[String], requested: &str) -> bool {
    registered.iter().any(|r| r == requested || loopback_port_agnostic_match(r, requested))
}

/// Same URI except the port, both `http` on a loopback IP literal (127.0.0.1 or [::1]).
/// `localhost` does not qualify (RFC 8252 §8.3: it may resolve elsewhere); see
/// [`super::loopback`].
fn loopback_port_agnostic_match(registered: &str, requested: &str) -> bool {
    let (Ok(mut registered), Ok(mut requested)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    if registered.scheme() != "http" || requested.scheme() != "http" || !is_loopback_ip(registered.host()) {
        return false;
    }
    if registered.host() != requested.host() {
        return false;
    }
    // Compare everything but the port, as strings (no other normalisation).
    if registered.set_port(None).is_err() || requested.set_port(None).is_err() {
        return false;
    }
    registered.as_str() == requested.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_match_only_for_ordinary_uris() {
        let r = reg(&["https://app.example.com/cb"]);
        assert!(is_registered(&r, "https://app.example.com/cb"));
        for other in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/CB",
            "https://app.example.com:443/cb",
            "https://evil.example.com/cb",
            "https://app.example.com.evil.com/cb",
            "http://app.example.com/cb",
        ] {
            assert!(!is_registered(&r, other), "{other}");
        }
    }

    #[test]
    fn loopback_ip_redirects_match_any_port() {
        let r = reg(&["http://127.0.0.1/callback", "http://[::1]:8080/cb"]);
        assert!(is_registered(&r, "http://127.0.0.1:53412/callback"));
        assert!(is_registered(&r, "http://127.0.0.1/callback"));
        assert!(is_registered(&r, "http://[::1]:1/cb"));
        assert!(!is_registered(&r, "http://127.0.0.1:53412/other"));
        assert!(!is_registered(&r, "http://[::1]:53412/callback"), "host must match too");
        assert!(!is_registered(&r, "https://127.0.0.1:53412/callback"));
        let localhost = reg(&["http://localhost/cb"]);
        assert!(!is_registered(&localhost, "http://localhost:9999/cb"), "localhost is not port-agnostic");
    }
}
