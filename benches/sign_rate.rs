//! Raw single-core ES256 signing rate of a realistic access token, with the same cached key
//! pair the server uses: the ceiling the token endpoint is measured against.
//!
//! Run by `make bench` (pinned to the server's core); prints `sign_rate <tokens/s>`.

use std::time::{Duration, Instant};

use inbound::tokens::{AccessTokenClaims, Audience, KeySet};

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = KeySet::load_or_create(&dir.path().join("keys.json"), 0).expect("key set");
    let claims = AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "bc810102-2429-44b7-9048-fa94d06ea4d0".into(),
        aud: Audience::One("https://billing.example.com".into()),
        exp: 1_900_000_600,
        iat: 1_900_000_000,
        jti: "rEfplQcuMQdv8A_SCfAjvQ".into(),
        client_id: "bc810102-2429-44b7-9048-fa94d06ea4d0".into(),
        client_namespace: Some("default".into()),
        scope: Some("billing:read billing:refund".into()),
        tenant: Some("acme".into()),
        roles: None,
        kubernetes: None,
        act: None,
    };
    // Warm up, then measure for 3 s.
    for _ in 0..1000 {
        std::hint::black_box(keys.sign_access_token(&claims));
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..100 {
            std::hint::black_box(keys.sign_access_token(&claims));
        }
        n += 100;
    }
    println!("sign_rate {:.0}", n as f64 / started.elapsed().as_secs_f64());
}
