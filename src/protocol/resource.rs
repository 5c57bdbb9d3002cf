//! Resource indicators (RFC 8707): when a requested `resource` names a declared one.
//!
//! Resource URIs compare as strings (RFC 8707 §2), with the two differences clients in the
//! field actually send and RFC 3986 §6.2.2–6.2.3 call equivalent: the scheme and host in
//! any case, and an origin with or without its trailing `/` (`https://host` and
//! `https://host/`, which some MCP clients send). Nothing else is normalised: another path,
//! port, query or a trailing `/` after a path is another resource.

use url::Url;

/// Whether `requested` names the `declared` resource.
pub fn same_resource(declared: &str, requested: &str) -> bool {
    if declared == requested {
        return true;
    }
    let (Ok(a), Ok(b)) = (Url::parse(declared), Url::parse(requested)) else {
        return false;
    };
    // The parser lower-cases scheme and host and drops a default port; compare what it
    // does not touch exactly, from the original strings.
    let origin_only = |raw: &str, url: &Url| url.path() == "/" && !raw_has_path(raw);
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.query() == b.query()
        && a.fragment().is_none()
        && b.fragment().is_none()
        && (raw_path(declared) == raw_path(requested)
            || (a.path() == "/" && b.path() == "/" && (origin_only(declared, &a) || origin_only(requested, &b))))
}

/// The declared resource `requested` names, in its declared spelling (what tokens carry).
pub fn find<'a>(declared: &'a [String], requested: &str) -> Option<&'a String> {
    declared.iter().find(|d| same_resource(d, requested))
}

/// The path as written (after the authority, before `?`), so that `/A` and `/a` differ.
fn raw_path(raw: &str) -> &str {
    let path = match raw.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/').unwrap_or(rest.len())..],
        // No authority (`urn:...`): everything after the scheme.
        None => raw.split_once(':').map(|(_, rest)| rest).unwrap_or(raw),
    };
    path.split(['?', '#']).next().unwrap_or("")
}

fn raw_has_path(raw: &str) -> bool {
    !raw_path(raw).is_empty() && raw_path(raw) != "/"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_and_host_in_any_case_and_an_origins_slash() {
        for (declared, requested) in [
            ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
            ("https://mcp.example.com/mcp", "HTTPS://MCP.Example.com/mcp"),
            ("https://api.example.com", "https://api.example.com/"),
            ("https://api.example.com/", "https://api.example.com"),
            ("https://api.example.com", "https://api.example.com:443"),
            ("urn:example:api", "URN:example:api"),
        ] {
            assert!(same_resource(declared, requested), "{declared} ~ {requested}");
        }
        for (declared, requested) in [
            ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp/"),
            ("https://mcp.example.com/mcp", "https://mcp.example.com/MCP"),
            ("https://mcp.example.com/mcp", "http://mcp.example.com/mcp"),
            ("https://mcp.example.com/mcp", "https://mcp.example.com:8443/mcp"),
            ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp?x=1"),
            ("https://mcp.example.com/mcp", "https://evil.example.com/mcp"),
            ("https://api.example.com", "https://api.example.com.evil.com/"),
            ("urn:example:api", "urn:example:API"),
        ] {
            assert!(!same_resource(declared, requested), "{declared} !~ {requested}");
        }
    }

    #[test]
    fn find_returns_the_declared_spelling() {
        let declared = vec!["https://api.example.com".to_string(), "https://mcp.example.com/mcp".to_string()];
        assert_eq!(find(&declared, "https://API.example.com/").map(String::as_str), Some("https://api.example.com"));
        assert_eq!(find(&declared, "https://other.example.com"), None);
    }
}
