//! Bearer tokens in the `Authorization` header (RFC 6750 §2.1).

/// The token of an `Authorization` header value `Bearer <token>` (the scheme is
/// case-insensitive, RFC 9110 §11.1), if it is one.
pub fn token_of(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_any_case_token_required() {
        assert_eq!(token_of("Bearer abc"), Some("abc"));
        assert_eq!(token_of("bearer abc "), Some("abc"));
        assert_eq!(token_of("BEARER abc"), Some("abc"));
        assert_eq!(token_of("Basic abc"), None);
        assert_eq!(token_of("Bearer "), None);
        assert_eq!(token_of("Bearer"), None);
    }
}
