//! Proof Key for Code Exchange (RFC 7636), S256 only: OAuth 2.1 §4.1.1 and §7.5.2 make
//! `plain` unnecessary, and accepting it would let a leaked authorization request be replayed.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

use super::OAuthError;

/// Validates the `code_challenge` and `code_challenge_method` of an authorization request.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), OAuthError> {
    match method {
        Some("S256") => {}
        None => {
            // RFC 7636 §4.3 defaults a missing method to `plain`, which this server refuses.
            return Err(OAuthError::invalid_request("code_challenge_method must be S256"));
        }
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "code_challenge_method {other:?} is not supported; use S256"
            )));
        }
    }
    // BASE64URL(SHA-256(verifier)) without padding is exactly 43 characters.
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return Err(OAuthError::invalid_request("code_challenge must be a base64url SHA-256 hash (43 characters)"));
    }
    Ok(())
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`.
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.2: `code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`.
pub fn challenge_s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Checks a `code_verifier` at the token endpoint against the stored S256 challenge
/// (RFC 7636 §4.6); a mismatch is `invalid_grant`.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), OAuthError> {
    if !is_valid_verifier(verifier) {
        return Err(OAuthError::invalid_request("code_verifier must be 43 to 128 unreserved characters"));
    }
    if bool::from(challenge_s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(OAuthError::new(super::ErrorCode::InvalidGrant, "code_verifier does not match the code_challenge"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(challenge_s256(VERIFIER), CHALLENGE);
        check_challenge(CHALLENGE, Some("S256")).unwrap();
        verify(VERIFIER, CHALLENGE).unwrap();
    }

    #[test]
    fn plain_and_malformed_are_refused() {
        assert_eq!(check_challenge(CHALLENGE, None).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(check_challenge(CHALLENGE, Some("plain")).unwrap_err().code, ErrorCode::InvalidRequest);
        assert!(check_challenge("short", Some("S256")).is_err());
        assert!(check_challenge(&"*".repeat(43), Some("S256")).is_err());
    }

    #[test]
    fn wrong_or_malformed_verifier() {
        let wrong = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(verify(wrong, CHALLENGE).unwrap_err().code, ErrorCode::InvalidGrant);
        assert_eq!(verify("too-short", CHALLENGE).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(verify(&"a".repeat(129), CHALLENGE).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(verify(&format!("{VERIFIER}!"), CHALLENGE).unwrap_err().code, ErrorCode::InvalidRequest);
    }
}
