//! The `scope` parameter (RFC 6749 §3.3).
#![no_main]
use inbound::protocol::scope::{is_valid_scope_token, parse_scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scope: &str| {
    if let Ok(tokens) = parse_scope(scope) {
        for (i, t) in tokens.iter().enumerate() {
            assert!(is_valid_scope_token(t), "{t:?}");
            assert!(!tokens[..i].contains(t), "duplicate {t:?}");
        }
    }
});
