//! Raw single-core ES256 verification rate of a JWT bearer assertion, and that assertion
//! with its issuer's JWK set for `make bench`'s jwt-bearer scenario: with the signing rate
//! (`sign_rate`), the floor of the grant is one verification plus one signature.
//!
//!   verify_rate ISSUER AUDIENCE OUT_DIR
//!
//! writes OUT_DIR/jwks.json and OUT_DIR/assertion (valid 50 min), prints `verify_rate <n/s>`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::Jwk};
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [issuer, audience, out] = &args[..] else {
        eprintln!("usage: verify_rate ISSUER AUDIENCE OUT_DIR");
        std::process::exit(2);
    };
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "bench-1", "alg": "ES256", "use": "sig",
                     "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("bench-1".into());
    header.typ = Some("JWT".into());
    // The shape of a CI system's OIDC token.
    let claims = json!({"iss": issuer, "sub": "repo:acme/billing:ref:refs/heads/main", "aud": audience,
                        "iat": now, "exp": now + 3000, "jti": "bench", "repository": "acme/billing"});
    let assertion = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8.as_ref())).unwrap();
    std::fs::write(format!("{out}/jwks.json"), json!({"keys": [jwk]}).to_string()).unwrap();
    std::fs::write(format!("{out}/assertion"), &assertion).unwrap();

    let key = DecodingKey::from_jwk(&serde_json::from_value::<Jwk>(jwk).unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    for _ in 0..1000 {
        std::hint::black_box(jsonwebtoken::decode::<Value>(&assertion, &key, &validation).unwrap());
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..100 {
            std::hint::black_box(jsonwebtoken::decode::<Value>(&assertion, &key, &validation).unwrap());
        }
        n += 100;
    }
    println!("verify_rate {:.0}", n as f64 / started.elapsed().as_secs_f64());
}
