//! Tokens: signing keys and JWKS, JWT access tokens (RFC 9068), the revocation list.

pub mod claims;
pub mod keys;
pub mod revocation;
pub mod verified;

pub use claims::{AccessTokenClaims, Actor, Audience, IdTokenClaims};
pub use keys::{KeyDocument, KeyError, KeySchedule, KeySet, RotationPolicy, VerifyError};
pub use revocation::RevocationList;
pub use verified::VerifiedTokens;
