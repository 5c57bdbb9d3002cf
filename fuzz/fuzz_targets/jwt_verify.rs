//! JWS/JWT access tokens presented to introspection, userinfo and resource servers: never
//! accepted unless signed by the server's key; never a panic on malformed input.
#![no_main]
use std::sync::LazyLock;

use inbound::tokens::{AccessTokenClaims, KeyDocument, KeySet};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<KeySet> =
    LazyLock::new(|| KeySet::from_document(&KeyDocument::generate(1_700_000_000)).expect("a key set"));

fuzz_target!(|token: &str| {
    if KEYS.verify_access_token::<AccessTokenClaims>(token, "https://auth.example.com").is_ok() {
        panic!("a token not signed by this server was accepted: {token:?}");
    }
});
