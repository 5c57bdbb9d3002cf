//! JWS algorithm names (RFC 7518 §3.1, RFC 8037 §3.1) as configuration spells them.

/// The asymmetric algorithms a JWT someone else signed may use here. `none` and the HMAC
/// family never: with HMAC, a verifier's *public* key would become the shared secret
/// (RFC 8725 §2.1, §3.1).
pub const ASYMMETRIC_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
