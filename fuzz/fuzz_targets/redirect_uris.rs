//! Redirect URIs and the policy patterns they are matched against (RFC 6749 §3.1.2,
//! RFC 8252 loopback rules): first line a pattern, second a URI.
#![no_main]
use inbound::catalog::validate::check_redirect_uri;
use inbound::protocol::{pattern, redirect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let mut lines = input.splitn(2, '\n');
    let pattern_text = lines.next().unwrap_or("");
    let uri = lines.next().unwrap_or("");
    let valid_pattern = pattern::validate_redirect_pattern(pattern_text).is_ok();
    let matched = pattern::redirect_uri_matches(pattern_text, uri);
    let _ = check_redirect_uri(uri);
    let _ = pattern::validate_domain_pattern(pattern_text);
    let _ = pattern::domain_matches(pattern_text, uri);
    let registered = redirect::is_registered(&[pattern_text.to_string()], uri);
    // An exact registration always matches itself; a match never goes across schemes.
    if valid_pattern && check_redirect_uri(pattern_text).is_ok() {
        assert!(redirect::is_registered(&[pattern_text.to_string()], pattern_text));
    }
    if matched && let (Some((a, _)), Some((b, _))) = (pattern_text.split_once(':'), uri.split_once(':')) {
        assert!(a.eq_ignore_ascii_case(b), "{pattern_text:?} matched {uri:?} across schemes");
    }
    let _ = registered;
});
