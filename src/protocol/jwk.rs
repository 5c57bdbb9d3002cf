//! JWS algorithm names (RFC 7518 §3.1, RFC 8037 §3.1) as configuration spells them.

/// The asymmetric algorithms a JWT someone else signed may use here. `none` and the HMAC
/// family never: with HMAC, a verifier's *public* key would become the shared secret
/// (RFC 8725 §2.1, §3.1).
pub const ASYMMETRIC_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// A JWK set document (RFC 7517 §5) of public verification keys, as a `jwks_uri` serves it:
/// at least one key, every key usable, none with private parts.
pub fn parse_public_jwk_set(json: &str) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let raw: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let keys = raw.get("keys").and_then(serde_json::Value::as_array).ok_or("must be an object with a keys array")?;
    if keys.is_empty() {
        return Err("must hold at least one key".into());
    }
    for (i, key) in keys.iter().enumerate() {
        // RFC 7518 §6.2.2.1 / §6.3.2.1: `d` is the private part of EC, OKP and RSA keys.
        if key.get("d").is_some() {
            return Err(format!("keys[{i}] is a private key: publish only public keys"));
        }
    }
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(raw).map_err(|e| format!("not a JWK set: {e}"))?;
    for (i, jwk) in set.keys.iter().enumerate() {
        jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| format!("keys[{i}] is not a usable public key: {e}"))?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_jwk_sets_only() {
        let ec = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        assert!(parse_public_jwk_set(&format!(r#"{{"keys":[{ec}]}}"#)).is_ok());
        let private = ec.replace("\"kty\"", "\"d\":\"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\",\"kty\"");
        assert!(parse_public_jwk_set(&format!(r#"{{"keys":[{private}]}}"#)).unwrap_err().contains("private"));
        assert!(parse_public_jwk_set(r#"{"keys":[]}"#).is_err());
        assert!(parse_public_jwk_set("[]").is_err());
        assert!(parse_public_jwk_set(r#"{"keys":[{"kty":"RSA","n":"AQAB"}]}"#).is_err());
    }
}
