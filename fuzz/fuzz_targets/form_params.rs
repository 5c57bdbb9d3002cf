//! Token/introspection/revocation request bodies and client authentication: the form
//! parser, then the client credentials a request presents (Basic header from the first
//! line, body parameters from the rest).
#![no_main]
use inbound::oauth::{client_auth::presented_client, params::Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let Ok(params) = Params::parse(body) else { return };
    // Parameters read back are exactly what was parsed: no panic on any key.
    for name in ["grant_type", "client_id", "client_secret", "scope", "resource", "code"] {
        let _ = params.get(name);
    }
    let header = header.and_then(|h| std::str::from_utf8(h).ok());
    if let Ok(presented) = presented_client(header, &params) {
        assert!(!presented.client_id.is_empty() || presented.secret.is_none());
    }
});
