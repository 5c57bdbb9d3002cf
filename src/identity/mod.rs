//! End-user authentication sources: each says who signed in, as an [`Identity`]; the core
//! records it (`store::UserRecord`) and carries on with the flow.
//!
//! - [`StaticUsers`]: the `DevelopmentUser`s of the manifest folder (passwords);
//! - [`upstream`]: an upstream OpenID Provider (`IdentityProvider` of type `oidc`), with
//!   `inbound` as its relying party.

pub mod upstream;

use std::collections::BTreeMap;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};

use crate::catalog::Catalog;

/// The source name of development users.
pub const DEVELOPMENT_SOURCE: &str = "development";

/// Who an identity source says signed in, mapped to `inbound`'s user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The source: [`DEVELOPMENT_SOURCE`], or `namespace/name` of an IdentityProvider.
    pub source: String,
    /// Stable, opaque `sub`, unique across sources.
    pub subject: String,
    /// What pages call the user.
    pub username: String,
    /// The tenants the user belongs to.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Roles held only in one tenant (tenant → roles).
    #[serde(default)]
    pub tenant_roles: BTreeMap<String, Vec<String>>,
    pub roles: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

/// Verifies a user's password.
pub trait PasswordSource: Send + Sync {
    /// The user, if `username` and `password` are right. Blocking (password hashing is
    /// deliberately slow): call from a blocking thread.
    fn authenticate(&self, catalog: &Catalog, username: &str, password: &str) -> Option<Identity>;
}

/// Users declared as `DevelopmentUser` manifests; passwords checked against argon2 hashes.
pub struct StaticUsers;

/// Verified against when the username is unknown, so that the response time does not
/// reveal which usernames exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$kV8Q2nYz2V4t0Uqf1c0bQmQ0x6lV2xH0qJ8rQm3d1yA";

impl PasswordSource for StaticUsers {
    fn authenticate(&self, catalog: &Catalog, username: &str, password: &str) -> Option<Identity> {
        let user = catalog.user_by_name(username);
        let ok = verify_secret(user.map(|u| u.password_hash.as_str()), password);
        let user = user.filter(|_| ok)?;
        Some(Identity::from(user.as_ref()))
    }
}

impl From<&crate::catalog::User> for Identity {
    /// A development user, as a sign-in would record them.
    fn from(user: &crate::catalog::User) -> Identity {
        Identity {
            source: DEVELOPMENT_SOURCE.to_string(),
            subject: user.subject.clone(),
            username: user.username.clone(),
            tenants: user.tenants.clone(),
            tenant_roles: user.tenant_roles.clone(),
            roles: user.roles.clone(),
            attributes: user.attributes.clone(),
        }
    }
}

/// Whether `secret` matches the argon2 PHC string `hash`. Without a hash (an unknown user,
/// no secret set) a dummy hash is checked and the answer is no: the time taken does not
/// tell the two apart. Blocking (deliberately slow): call from a blocking thread.
pub fn verify_secret(hash: Option<&str>, secret: &str) -> bool {
    let matched = PasswordHash::new(hash.unwrap_or(DUMMY_HASH))
        .map(|parsed| Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok())
        .unwrap_or(false);
    matched && hash.is_some()
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
        assert!(verify_secret(Some(&hash), "correct horse"));
        assert!(!verify_secret(Some(&hash), "wrong"));
        assert!(!verify_secret(None, "correct horse"), "no hash matches nothing");
        assert!(!verify_secret(Some("not a PHC string"), ""));
    }
}
