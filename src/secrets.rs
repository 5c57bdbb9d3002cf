//! Client secrets: generation, keyed hashing, constant-time verification.
//!
//! Client secrets are 256-bit random values, so a fast keyed hash (HMAC-SHA-256 under a
//! server key) is as strong as a slow password hash and costs microseconds instead of the
//! tens of milliseconds bcrypt/argon2 would add to every client_credentials request. The key
//! makes a leaked hash table useless without the server's key file.

use std::fmt;

use aws_lc_rs::{hmac, rand::SecureRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

/// A plaintext client secret. Never logged: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// 32 random bytes (256 bits), base64url without padding (43 characters).
    pub fn generate() -> ClientSecret {
        ClientSecret(random_token(32))
    }

    pub fn from_presented(s: String) -> ClientSecret {
        ClientSecret(s)
    }

    /// The plaintext, for the one place it is written (credentials file or Secret).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// HMAC-SHA-256 of a secret under the server's hashing key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    pub fn from_slice(bytes: &[u8]) -> Option<SecretHash> {
        bytes.try_into().ok().map(SecretHash)
    }
}

/// Hashes and verifies secrets under one server key.
#[derive(Clone)]
pub struct SecretHasher {
    key: hmac::Key,
}

impl SecretHasher {
    pub fn new(key_bytes: &[u8]) -> SecretHasher {
        SecretHasher { key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes) }
    }

    pub fn hash(&self, secret: &str) -> SecretHash {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        SecretHash(out)
    }

    /// True when `presented` matches any of `accepted` (current secret, and the previous one
    /// during a rotation overlap). Every candidate is compared in constant time.
    pub fn verify(&self, presented: &str, accepted: &[SecretHash]) -> bool {
        let hash = self.hash(presented);
        let mut matched = subtle::Choice::from(0);
        for candidate in accepted {
            matched |= hash.0.ct_eq(&candidate.0);
        }
        matched.into()
    }
}

/// `n` random bytes from the system CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).expect("system CSPRNG available");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, for storing references to opaque tokens without the tokens themselves.
pub fn token_digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_distinct() {
        let a = ClientSecret::generate();
        let b = ClientSecret::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "ClientSecret(<redacted>)");
    }

    #[test]
    fn verify_accepts_any_current_hash_and_nothing_else() {
        let hasher = SecretHasher::new(b"k");
        let old = ClientSecret::generate();
        let new = ClientSecret::generate();
        let accepted = [hasher.hash(new.expose()), hasher.hash(old.expose())];
        assert!(hasher.verify(new.expose(), &accepted));
        assert!(hasher.verify(old.expose(), &accepted));
        assert!(!hasher.verify("guess", &accepted));
        assert!(!hasher.verify(new.expose(), &[]));
        // A different server key yields different hashes.
        assert!(!SecretHasher::new(b"other").verify(new.expose(), &accepted));
    }
}
