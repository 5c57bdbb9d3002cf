//! End-user authentication sources.
//!
//! One source now: the static `DevelopmentUser`s of the manifest folder. An upstream OpenID
//! Connect provider and a trusted fronting proxy will implement the same trait.

use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};

use crate::catalog::{Catalog, User};

/// Verifies a user's credentials.
pub trait IdentitySource: Send + Sync {
    /// The user, if `username` and `password` are right. Blocking (password hashing is
    /// deliberately slow): call from a blocking thread.
    fn authenticate(&self, catalog: &Catalog, username: &str, password: &str) -> Option<Arc<User>>;
}

/// Users declared as `DevelopmentUser` manifests; passwords checked against argon2 hashes.
pub struct StaticUsers;

/// Verified against when the username is unknown, so that the response time does not
/// reveal which usernames exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$kV8Q2nYz2V4t0Uqf1c0bQmQ0x6lV2xH0qJ8rQm3d1yA";

impl IdentitySource for StaticUsers {
    fn authenticate(&self, catalog: &Catalog, username: &str, password: &str) -> Option<Arc<User>> {
        let user = catalog.user_by_name(username);
        let hash = user.map(|u| u.password_hash.as_str()).unwrap_or(DUMMY_HASH);
        let ok = PasswordHash::new(hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false);
        if ok { user.cloned() } else { None }
    }
}

/// An argon2id PHC string for `password` (what `inbound hash-password` prints).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut salt).expect("CSPRNG");
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashing").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let hash = hash_password("correct horse");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong", &parsed).is_err());
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy hash must parse so timing matches");
    }
}
