//! Signing keys made here for assertions a test presents (an app's client assertions, an
//! enterprise IdP's identity assertions): ES256, with the public JWK to declare.

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// An ES256 key: its PKCS#8 document (to sign) and its public JWK.
pub struct SigningKey {
    pkcs8: Vec<u8>,
    pub jwk: Value,
}

pub fn signing_key(kid: &str) -> SigningKey {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    // An uncompressed point: 0x04 || x || y.
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                     "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
    SigningKey { pkcs8: pkcs8.as_ref().to_vec(), jwk }
}

impl SigningKey {
    pub fn sign(&self, header: jsonwebtoken::Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    /// An ES256 header naming this key, with `typ`.
    pub fn header(&self, typ: &str) -> jsonwebtoken::Header {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = self.jwk["kid"].as_str().map(str::to_string);
        header.typ = Some(typ.into());
        header
    }

    /// A client assertion as RFC 7523bis describes it (`typ` as clients in the field send it).
    pub fn assertion(&self, client_id: &str, aud: &str, jti: &str) -> String {
        let now = now();
        let claims = json!({"iss": client_id, "sub": client_id, "aud": aud, "jti": jti, "iat": now, "exp": now + 60});
        self.sign(self.header("JWT"), &claims)
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
