//! Dynamic Client Registration requests (RFC 7591 §2) against a policy.
#![no_main]
use std::sync::LazyLock;

use inbound::api::RegistrationSettings;
use inbound::oauth::register::validate;
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<RegistrationSettings> = LazyLock::new(|| {
    serde_json::from_value(serde_json::json!({
        "dynamic": true,
        "approvedScopes": [{"scope": "mcp:tools", "mandatory": true}, {"scope": "mcp:write"}],
        "redirectUriPatterns": ["http://127.0.0.1/callback", "https://*.example.com/oauth/*", "https://claude.ai/api/mcp/auth_callback"],
        "resources": ["https://mcp.example.com/mcp"],
    }))
    .expect("a policy")
});

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(metadata) = validate(&body, &POLICY) {
        assert!(!metadata.redirect_uris.is_empty(), "registered without a redirect URI");
        for uri in &metadata.redirect_uris {
            assert!(
                POLICY.redirect_uri_patterns.iter().any(|p| inbound::protocol::pattern::redirect_uri_matches(p, uri)),
                "{uri:?} registered though no pattern allows it"
            );
        }
    }
});
