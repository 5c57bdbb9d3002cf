//! `Authorization: Bearer` headers (RFC 6750 §2.1).
#![no_main]
use inbound::protocol::bearer::token_of;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &str| {
    if let Some(token) = token_of(header) {
        assert!(!token.is_empty(), "an empty bearer token was accepted from {header:?}");
        assert!(header.contains(token));
    }
});
