//! Approved-URL patterns for self-registration: the redirect URIs a Dynamic Client
//! Registration (RFC 7591) or a Client ID Metadata Document may use, and the domains a
//! metadata document may be fetched from.
//!
//! A redirect pattern is an absolute URL in which `*` stands for one or more characters
//! within ONE host label (`https://*.example.com/cb`, `https://app-*.example.com/cb`) or
//! within ONE path segment (`https://x.example.com/*/callback`). A `*` never matches a `.`
//! in the host, a `/` (not even `%2F`) in the path, and never spans the scheme, the port,
//! the registrable domain, the query or anything else: those compare exactly, after both
//! sides are parsed and normalized by the `url` crate (lower-case scheme and host, IDNA,
//! default port dropped). Everything suspicious is refused outright rather than normalized
//! into a match: userinfo, fragments, `.`/`..` segments (also percent-encoded), whitespace,
//! control characters and backslashes.
//!
//! Loopback (RFC 8252 §7.3): a pattern `http://127.0.0.1/cb`, `http://[::1]/cb` or
//! `http://localhost/cb` WITHOUT a port matches any port on that same host; with a port it
//! matches that port only.
//!
//! Without a public suffix list, "registrable domain" is approximated: after the last
//! wildcard label at least two fixed labels must follow, and they must not be a well-known
//! public or shared-hosting suffix (`co.uk`, `com.au`, `github.io`, `herokuapp.com`, ...).

use std::net::IpAddr;

use url::{Host, Url};

/// True when `uri` is allowed by the approved redirect-URI `pattern`. An invalid pattern
/// (see [`validate_redirect_pattern`]) or an unacceptable URI never matches.
pub fn redirect_uri_matches(pattern: &str, uri: &str) -> bool {
    let (Ok(pattern), Ok(uri)) = (parse_pattern(pattern), parse_uri(uri)) else {
        return false;
    };
    pattern_matches(&pattern, &uri)
}

/// Checks an approved redirect-URI pattern as written in a policy. The error says what is
/// wrong in words an administrator can act on.
pub fn validate_redirect_pattern(pattern: &str) -> Result<(), String> {
    parse_pattern(pattern).map(|_| ())
}

/// True when `host` (as found in a URL: a domain, an IPv4 literal or a bracketed IPv6
/// literal) is allowed by the domain `pattern`: either an exact host, or `*.example.com`,
/// which matches every subdomain of `example.com` at any depth but not `example.com`
/// itself. Case-insensitive, a trailing dot is ignored, IP literals match only exactly.
/// An invalid pattern (see [`validate_domain_pattern`]) never matches.
pub fn domain_matches(pattern: &str, host: &str) -> bool {
    let (Ok(pattern), Some(host)) = (parse_domain_pattern(pattern), normalize_host(host)) else {
        return false;
    };
    match (pattern, host) {
        (DomainPattern::Exact(expected), host) => expected == host,
        (DomainPattern::Subdomains(suffix), NormalHost::Domain(domain)) => domain
            .strip_suffix(suffix.as_str())
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|sub| !sub.is_empty()),
        (DomainPattern::Subdomains(_), NormalHost::Ip(_)) => false,
    }
}

/// Checks an allowed-domain pattern (`app.example.com`, `*.example.com`, `127.0.0.1`).
pub fn validate_domain_pattern(pattern: &str) -> Result<(), String> {
    parse_domain_pattern(pattern).map(|_| ())
}

/// URL schemes that are never acceptable as a redirect target.
const FORBIDDEN_SCHEMES: &[&str] =
    &["javascript", "data", "vbscript", "file", "blob", "about", "filesystem", "ws", "wss", "ftp"];

/// Second-level labels that, under a two-letter country TLD, form a public suffix
/// (`co.uk`, `com.au`, `ac.jp`, ...). An approximation of the public suffix list.
const COUNTRY_SECOND_LEVELS: &[&str] = &[
    "ac", "ad", "biz", "co", "com", "ed", "edu", "gen", "go", "gob", "gov", "gr", "info", "int", "lg", "ltd", "mil",
    "ne", "net", "nic", "nom", "or", "org", "plc", "res", "sch", "web",
];

/// Shared-hosting suffixes under which anyone can get a subdomain.
const SHARED_SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "appspot.com",
    "azurewebsites.net",
    "blogspot.com",
    "cloudfront.net",
    "firebaseapp.com",
    "fly.dev",
    "github.io",
    "githubusercontent.com",
    "gitlab.io",
    "glitch.me",
    "herokuapp.com",
    "netlify.app",
    "ngrok-free.app",
    "ngrok.app",
    "ngrok.io",
    "now.sh",
    "onrender.com",
    "pages.dev",
    "repl.co",
    "surge.sh",
    "trycloudflare.com",
    "vercel.app",
    "web.app",
    "workers.dev",
];

/// True when the fixed labels `suffix` are too broad to follow a wildcard: fewer than two
/// labels, or a (approximated) public or shared-hosting suffix.
fn is_public_suffix_like(suffix: &[&str]) -> bool {
    match suffix {
        [] | [_] => true,
        [second, tld] => {
            let joined = format!("{second}.{tld}");
            SHARED_SUFFIXES.contains(&joined.as_str())
                || (tld.len() == 2 && COUNTRY_SECOND_LEVELS.contains(second))
                || tld.bytes().all(|b| b.is_ascii_digit())
        }
        _ => SHARED_SUFFIXES.contains(&suffix.join(".").as_str()),
    }
}

/// A parsed, validated redirect pattern.
struct Pattern {
    url: Url,
    /// Loopback pattern without an explicit port: any port matches.
    any_port: bool,
}

/// A parsed redirect URI that passed the sanity checks.
struct Uri {
    url: Url,
}

fn parse_pattern(raw: &str) -> Result<Pattern, String> {
    check_raw(raw).map_err(|e| format!("redirect pattern `{raw}` {e}"))?;
    let url = Url::parse(raw).map_err(|e| format!("redirect pattern `{raw}` is not an absolute URL: {e}"))?;
    check_parsed(&url).map_err(|e| format!("redirect pattern `{raw}` {e}"))?;
    if url.query().is_some_and(|q| q.contains('*')) {
        return Err(format!("redirect pattern `{raw}`: `*` is not allowed in the query, which must match exactly"));
    }
    if url.cannot_be_a_base() {
        if raw.contains('*') {
            return Err(format!(
                "redirect pattern `{raw}`: `*` is only allowed in host labels and path segments of a URL with a path \
                 starting with `/`"
            ));
        }
        return Ok(Pattern { url, any_port: false });
    }
    for segment in url.path().split('/') {
        if segment.matches('*').count() > 1 {
            return Err(format!("redirect pattern `{raw}`: at most one `*` per path segment"));
        }
    }
    let special = matches!(url.scheme(), "http" | "https");
    let loopback = match url.host() {
        None if special => return Err(format!("redirect pattern `{raw}` has no host")),
        None => false,
        Some(Host::Domain(domain)) if special => {
            validate_host_pattern(domain).map_err(|e| format!("redirect pattern `{raw}`: {e}"))?;
            // `localhost` counts here, unlike for registered redirect URIs: see
            // `protocol::loopback`.
            domain.eq_ignore_ascii_case("localhost")
        }
        Some(Host::Domain(domain)) if domain.contains('*') => {
            return Err(format!("redirect pattern `{raw}`: `*` is not allowed in the host of a custom-scheme URI"));
        }
        Some(Host::Domain(_)) => false,
        ip => super::loopback::is_loopback_ip(ip),
    };
    if url.scheme() == "http" && !loopback {
        return Err(format!(
            "redirect pattern `{raw}`: http is only allowed for loopback redirect URIs (127.0.0.1, [::1], localhost); \
             use https"
        ));
    }
    let any_port = loopback && url.scheme() == "http" && !has_explicit_port(raw);
    Ok(Pattern { url, any_port })
}

/// Wildcards in a pattern host: at most one `*` per label, and at least a fixed registrable
/// domain after the last wildcard label.
fn validate_host_pattern(domain: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(format!("host `{domain}` has an empty label (leading, trailing or doubled dot)"));
    }
    if labels.iter().any(|l| l.matches('*').count() > 1) {
        return Err(format!("host `{domain}`: at most one `*` per host label"));
    }
    if let Some(last_wildcard) = labels.iter().rposition(|l| l.contains('*'))
        && is_public_suffix_like(&labels[last_wildcard + 1..])
    {
        return Err(format!(
            "host `{domain}`: `*` is not allowed in the registrable domain; write a fixed domain you control after \
             the wildcard label (like `*.example.com`)"
        ));
    }
    Ok(())
}

fn parse_uri(raw: &str) -> Result<Uri, String> {
    check_raw(raw)?;
    let url = Url::parse(raw).map_err(|e| e.to_string())?;
    check_parsed(&url)?;
    if let Some(Host::Domain(domain)) = url.host()
        && (domain.contains('*') || domain.split('.').any(str::is_empty))
    {
        return Err("has an invalid host".into());
    }
    Ok(Uri { url })
}

/// Checks on the raw string, before the parser normalizes anything away.
fn check_raw(raw: &str) -> Result<(), String> {
    if raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err("must not contain whitespace, control characters or backslashes".into());
    }
    if raw.contains('#') {
        return Err("must not contain a fragment".into());
    }
    if has_dot_segments(raw) {
        return Err("must not contain `.` or `..` path segments".into());
    }
    Ok(())
}

/// Checks on the parsed URL common to patterns and URIs.
fn check_parsed(url: &Url) -> Result<(), String> {
    if FORBIDDEN_SCHEMES.contains(&url.scheme()) {
        return Err(format!("uses the forbidden scheme `{}`", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain userinfo (`user@`)".into());
    }
    if url.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    Ok(())
}

/// True when the part of `raw` before any query or fragment has a `.` or `..` segment,
/// also percent-encoded (`%2e`, `.%2E`, ...), which a URL parser would silently resolve.
pub(crate) fn has_dot_segments(raw: &str) -> bool {
    let before_query = raw.split(['?', '#']).next().unwrap_or_default();
    before_query.split(['/', '\\']).any(|segment| {
        let lower = segment.to_ascii_lowercase();
        let decoded = lower.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// True when the authority of `raw` carries an explicit port (`:80` included, which the
/// parser would drop as the default).
fn has_explicit_port(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit('@').next().unwrap_or_default();
    match host_and_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(_, after)| after.starts_with(':')),
        None => host_and_port.contains(':'),
    }
}

fn pattern_matches(pattern: &Pattern, uri: &Uri) -> bool {
    let (p, u) = (&pattern.url, &uri.url);
    if p.scheme() != u.scheme() {
        return false;
    }
    if p.cannot_be_a_base() || u.cannot_be_a_base() {
        // Opaque URIs (`urn:…`, `com.example.app:cb`): exact, the pattern has no wildcard.
        return p.as_str() == u.as_str();
    }
    let special = matches!(p.scheme(), "http" | "https");
    let host_ok = match (p.host(), u.host()) {
        (None, None) => true,
        (Some(Host::Domain(pd)), Some(Host::Domain(ud))) if special => host_matches(pd, ud),
        (Some(Host::Domain(pd)), Some(Host::Domain(ud))) => pd == ud,
        (Some(Host::Ipv4(a)), Some(Host::Ipv4(b))) => a == b,
        (Some(Host::Ipv6(a)), Some(Host::Ipv6(b))) => a == b,
        _ => false,
    };
    if !host_ok {
        return false;
    }
    if !pattern.any_port && p.port_or_known_default() != u.port_or_known_default() {
        return false;
    }
    if p.query() != u.query() {
        return false;
    }
    let (p_segments, u_segments): (Vec<&str>, Vec<&str>) =
        (p.path().split('/').collect(), u.path().split('/').collect());
    p_segments.len() == u_segments.len()
        && p_segments.iter().zip(&u_segments).all(|(ps, us)| {
            if !ps.contains('*') {
                return ps == us;
            }
            // A wildcard never matches an encoded slash or backslash either.
            let lower = us.to_ascii_lowercase();
            !lower.contains("%2f") && !lower.contains("%5c") && glob_one(ps, us)
        })
}

/// Label-by-label host comparison: same number of labels, each equal or matched by its
/// wildcard label.
fn host_matches(pattern: &str, host: &str) -> bool {
    let (p_labels, h_labels): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), host.split('.').collect());
    p_labels.len() == h_labels.len()
        && p_labels.iter().zip(&h_labels).all(|(pl, hl)| if pl.contains('*') { glob_one(pl, hl) } else { pl == hl })
}

/// `pattern` has exactly one `*`, which matches one or more characters of `text`.
fn glob_one(pattern: &str, text: &str) -> bool {
    let Some((prefix, suffix)) = pattern.split_once('*') else {
        return pattern == text;
    };
    text.len() > prefix.len() + suffix.len() && text.starts_with(prefix) && text.ends_with(suffix)
}

#[derive(Debug, PartialEq, Eq)]
enum NormalHost {
    Domain(String),
    Ip(IpAddr),
}

enum DomainPattern {
    Exact(NormalHost),
    /// `*.suffix`: any subdomain of `suffix` (normalized, no trailing dot).
    Subdomains(String),
}

/// Lower-case, IDNA, IP literals (also bracketed or in the numeric forms URL parsers
/// accept) parsed, one trailing dot dropped. `None` for anything that is not a host.
fn normalize_host(raw: &str) -> Option<NormalHost> {
    let raw = raw.trim();
    if raw.is_empty() || raw.contains('*') {
        return None;
    }
    let unbracketed = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Some(NormalHost::Ip(ip));
    }
    match Host::parse(raw).ok()? {
        Host::Ipv4(ip) => Some(NormalHost::Ip(ip.into())),
        Host::Ipv6(ip) => Some(NormalHost::Ip(ip.into())),
        Host::Domain(domain) => {
            let domain = domain.strip_suffix('.').unwrap_or(&domain);
            if domain.split('.').any(str::is_empty) || domain.contains(['/', '@', ':']) {
                return None;
            }
            Some(NormalHost::Domain(domain.to_string()))
        }
    }
}

fn parse_domain_pattern(raw: &str) -> Result<DomainPattern, String> {
    let trimmed = raw.trim();
    if let Some(suffix) = trimmed.strip_prefix("*.") {
        let Some(NormalHost::Domain(domain)) = normalize_host(suffix) else {
            return Err(format!("allowed domain `{raw}`: `*.` must be followed by a domain name"));
        };
        let labels: Vec<&str> = domain.split('.').collect();
        if is_public_suffix_like(&labels) {
            return Err(format!(
                "allowed domain `{raw}`: `*.` must be followed by a registrable domain you control (like \
                 `*.example.com`), not a public suffix"
            ));
        }
        return Ok(DomainPattern::Subdomains(domain));
    }
    if trimmed.contains('*') {
        return Err(format!("allowed domain `{raw}`: a wildcard is only allowed as a leading `*.`"));
    }
    normalize_host(trimmed)
        .map(DomainPattern::Exact)
        .ok_or_else(|| format!("allowed domain `{raw}` is not a valid host name or IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, uri, expected)
    const REDIRECT_TABLE: &[(&str, &str, bool)] = &[
        // Exact patterns.
        ("https://app.example.com/cb", "https://app.example.com/cb", true),
        ("https://app.example.com/cb", "https://app.example.com/cb/", false),
        ("https://app.example.com/cb", "https://app.example.com/CB", false),
        ("https://app.example.com/cb", "http://app.example.com/cb", false),
        // Case and default-port normalization.
        ("https://app.example.com/cb", "https://APP.Example.COM/cb", true),
        ("https://app.example.com/cb", "HTTPS://app.example.com/cb", true),
        ("https://app.example.com/cb", "https://app.example.com:443/cb", true),
        ("https://app.example.com:443/cb", "https://app.example.com/cb", true),
        ("https://app.example.com/cb", "https://app.example.com:8443/cb", false),
        ("https://app.example.com:8443/cb", "https://app.example.com:8443/cb", true),
        ("https://app.example.com:8443/cb", "https://app.example.com/cb", false),
        // Host wildcard: one label, one or more characters.
        ("https://*.example.com/cb", "https://app.example.com/cb", true),
        ("https://*.example.com/cb", "https://a.b.example.com/cb", false),
        ("https://*.example.com/cb", "https://example.com/cb", false),
        ("https://*.example.com/cb", "https://.example.com/cb", false),
        ("https://*.example.com/cb", "https://app.example.com.evil.com/cb", false),
        ("https://*.example.com/cb", "https://app.evil.com/cb", false),
        ("https://*.example.com/cb", "https://appexample.com/cb", false),
        ("https://app-*.example.com", "https://app-1.example.com", true),
        ("https://app-*.example.com", "https://app-1.example.com/", true),
        ("https://app-*.example.com", "https://app-.example.com", false),
        ("https://app-*.example.com", "https://other.example.com", false),
        ("https://app-*.example.com", "https://app-1.example.com/cb", false),
        ("https://eu.*.example.com/cb", "https://eu.tenant1.example.com/cb", true),
        // Host attacks.
        ("https://app.example.com/cb", "https://app.example.com.evil.com/cb", false),
        ("https://app.example.com/cb", "https://evil.com/app.example.com/cb", false),
        ("https://app.example.com/cb", "https://app.example.com@evil.com/cb", false),
        ("https://app.example.com/cb", "https://user@app.example.com/cb", false),
        ("https://app.example.com/", "https://app.example.com%2F@evil.com", false),
        ("https://*.example.com/", "https://app.example.com%2F@evil.com", false),
        ("https://app.example.com/cb", "https://app.example.com\\@evil.com/cb", false),
        ("https://app.example.com/cb", "https://app.example.com./cb", false),
        ("https://app.example.com/cb", " https://app.example.com/cb", false),
        ("https://*.example.com/cb", "https://*.example.com/cb", false),
        // Invalid patterns never match anything.
        ("https://*.com/cb", "https://evil.com/cb", false),
        ("https://*/cb", "https://evil/cb", false),
        ("https://*.co.uk/cb", "https://evil.co.uk/cb", false),
        ("https://*.github.io/cb", "https://evil.github.io/cb", false),
        ("https://example.*/cb", "https://example.com/cb", false),
        ("https://app.example.com/cb#x", "https://app.example.com/cb", false),
        ("http://app.example.com/cb", "http://app.example.com/cb", false),
        ("javascript:alert(1)", "javascript:alert(1)", false),
        // Path wildcard: one segment, never a `/`, never a dot segment.
        ("https://x.example.com/*/callback", "https://x.example.com/tenant1/callback", true),
        ("https://x.example.com/*/callback", "https://x.example.com/a/b/callback", false),
        ("https://x.example.com/*/callback", "https://x.example.com//callback", false),
        ("https://x.example.com/*/callback", "https://x.example.com/callback", false),
        ("https://x.example.com/*/callback", "https://x.example.com/../callback", false),
        ("https://x.example.com/*/callback", "https://x.example.com/%2e%2e/callback", false),
        ("https://x.example.com/*/callback", "https://x.example.com/a%2Fb/callback", false),
        ("https://x.example.com/*/callback", "https://x.example.com/a%5cb/callback", false),
        ("https://x.example.com/cb-*", "https://x.example.com/cb-42", true),
        ("https://x.example.com/cb-*", "https://x.example.com/cb-42/more", false),
        // Path traversal and encoding tricks on exact patterns.
        ("https://app.example.com/cb", "https://app.example.com/a/../cb", false),
        ("https://app.example.com/cb", "https://app.example.com/./cb", false),
        ("https://app.example.com/cb", "https://app.example.com/.%2E/cb", false),
        ("https://app.example.com/cb", "https://app.example.com/%63b", false),
        // Query: exact, never a wildcard.
        ("https://app.example.com/cb?x=1", "https://app.example.com/cb?x=1", true),
        ("https://app.example.com/cb?x=1", "https://app.example.com/cb?x=2", false),
        ("https://app.example.com/cb", "https://app.example.com/cb?x=1", false),
        ("https://app.example.com/cb", "https://app.example.com/cb?", false),
        ("https://app.example.com/cb?x=*", "https://app.example.com/cb?x=1", false),
        // Fragments are never allowed.
        ("https://app.example.com/cb", "https://app.example.com/cb#frag", false),
        ("https://app.example.com/cb", "https://app.example.com/cb#", false),
        // Loopback: any port only when the pattern has none.
        ("http://127.0.0.1/callback", "http://127.0.0.1:53412/callback", true),
        ("http://127.0.0.1/callback", "http://127.0.0.1/callback", true),
        ("http://127.0.0.1/callback", "http://127.0.0.1:53412/other", false),
        ("http://127.0.0.1/callback", "https://127.0.0.1:53412/callback", false),
        ("http://127.0.0.1/callback", "http://localhost:53412/callback", false),
        ("http://127.0.0.1/callback", "http://127.0.0.1.evil.com/callback", false),
        ("http://localhost/cb", "http://localhost:9999/cb", true),
        ("http://[::1]/cb", "http://[::1]:1234/cb", true),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:8080/cb", true),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:9090/cb", false),
        ("http://127.0.0.1:80/cb", "http://127.0.0.1:9090/cb", false),
        ("https://app.example.com/cb", "https://app.example.com:9999/cb", false),
        // Private-use schemes (RFC 8252 §7.1).
        ("com.example.app:/cb", "com.example.app:/cb", true),
        ("com.example.app:/cb", "com.example.app:/cb2", false),
        ("com.example.app:/cb", "com.evil.app:/cb", false),
        ("com.example.app:/*/cb", "com.example.app:/x/cb", true),
        ("com.example.app:/*/cb", "com.example.app:/x/y/cb", false),
        ("com.example.app:cb", "com.example.app:cb", true),
        ("com.example.app:*", "com.example.app:cb", false),
        ("myapp://callback/done", "myapp://callback/done", true),
        ("myapp://callback/done", "myapp://evil/done", false),
    ];

    #[test]
    fn redirect_pattern_table() {
        let mut failures = Vec::new();
        for (pattern, uri, expected) in REDIRECT_TABLE {
            if redirect_uri_matches(pattern, uri) != *expected {
                failures.push(format!("{pattern} vs {uri}: expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
        assert!(REDIRECT_TABLE.len() >= 30);
    }

    #[test]
    fn pattern_validation_messages() {
        for ok in [
            "https://app.example.com/cb",
            "https://*.example.com/cb",
            "https://app-*.example.com",
            "https://x.example.com/*/callback",
            "https://*.tenant.example.co.uk/cb",
            "http://127.0.0.1/callback",
            "http://localhost/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth/*",
            "https://app.example.com/cb?client=a",
        ] {
            assert_eq!(validate_redirect_pattern(ok), Ok(()), "{ok}");
        }
        for (bad, needle) in [
            ("https://*.com/cb", "registrable domain"),
            ("https://*/cb", "registrable domain"),
            ("https://*.co.uk/cb", "registrable domain"),
            ("https://*.herokuapp.com/cb", "registrable domain"),
            ("https://example.*/cb", "registrable domain"),
            ("https://a**.example.com/cb", "one `*` per host label"),
            ("https://x.example.com/a*b*/cb", "one `*` per path segment"),
            ("https://app.example.com/cb#x", "fragment"),
            ("https://user@app.example.com/cb", "userinfo"),
            ("https://app.example.com/cb?x=*", "query"),
            ("https://app.example.com/a/../cb", "`..`"),
            ("http://app.example.com/cb", "http is only allowed for loopback"),
            ("http://10.0.0.1/cb", "http is only allowed for loopback"),
            ("myapp://*.host/cb", "custom-scheme"),
            ("data:text/html,hi", "forbidden scheme"),
            ("/relative/cb", "not an absolute URL"),
            ("https://app.example.com./cb", "empty label"),
        ] {
            let err = validate_redirect_pattern(bad).expect_err(bad);
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(err.contains(bad), "the message names the pattern: {err}");
        }
    }

    #[test]
    fn explicit_port_detection() {
        assert!(has_explicit_port("http://127.0.0.1:80/cb"));
        assert!(has_explicit_port("http://[::1]:80/cb"));
        assert!(!has_explicit_port("http://[::1]/cb"));
        assert!(!has_explicit_port("http://localhost/cb:1"));
        assert!(!has_explicit_port("http://localhost?x=a:b"));
    }

    #[test]
    fn dot_segment_detection() {
        for dotted in ["https://a/./b", "https://a/../b", "https://a/%2E%2e/b", "https://a/b/..", "https://a/.%2e"] {
            assert!(has_dot_segments(dotted), "{dotted}");
        }
        for clean in ["https://a.example.com/b", "https://a/.well-known/x", "https://a/b?x=/../", "https://a/..b"] {
            assert!(!has_dot_segments(clean), "{clean}");
        }
    }

    /// (pattern, host, expected)
    const DOMAIN_TABLE: &[(&str, &str, bool)] = &[
        ("app.example.com", "app.example.com", true),
        ("app.example.com", "APP.Example.Com", true),
        ("app.example.com", "app.example.com.", true),
        ("app.example.com.", "app.example.com", true),
        ("App.Example.com", "app.example.com", true),
        ("app.example.com", "example.com", false),
        ("app.example.com", "x.app.example.com", false),
        ("app.example.com", "app.example.com.evil.com", false),
        ("*.example.com", "app.example.com", true),
        ("*.example.com", "a.b.example.com", true),
        ("*.example.com", "APP.EXAMPLE.COM.", true),
        ("*.example.com", "example.com", false),
        ("*.example.com", "evilexample.com", false),
        ("*.example.com", "example.com.evil.com", false),
        ("*.example.com", ".example.com", false),
        ("*.example.com", "a..example.com", false),
        ("*.com", "example.com", false),
        ("*.co.uk", "example.co.uk", false),
        ("*", "example.com", false),
        ("app.*.com", "app.example.com", false),
        ("127.0.0.1", "127.0.0.1", true),
        ("127.0.0.1", "127.0.0.2", false),
        ("127.0.0.1", "0x7f.1", true),
        ("*.0.0.1", "127.0.0.1", false),
        ("::1", "[::1]", true),
        ("[::1]", "[::1]", true),
        ("[::1]", "::1", true),
        ("*.example.com", "[::1]", false),
        ("localhost", "localhost", true),
        ("localhost", "localhost.evil.com", false),
        ("bücher.example", "xn--bcher-kva.example", true),
    ];

    #[test]
    fn domain_pattern_table() {
        let mut failures = Vec::new();
        for (pattern, host, expected) in DOMAIN_TABLE {
            if domain_matches(pattern, host) != *expected {
                failures.push(format!("{pattern} vs {host}: expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn domain_pattern_validation() {
        for ok in ["example.com", "*.example.com", "127.0.0.1", "[::1]", "localhost", "*.tenant.example.co.uk"] {
            assert_eq!(validate_domain_pattern(ok), Ok(()), "{ok}");
        }
        for bad in ["*", "*.com", "*.co.uk", "*.github.io", "app.*.com", "a*.example.com", "*.127.0.0.1", "", "a/b"] {
            assert!(validate_domain_pattern(bad).is_err(), "{bad}");
        }
    }
}
