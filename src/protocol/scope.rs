//! Scope strings (RFC 6749 §3.3).

/// The OpenID Connect scope: built in, never declared by a Scope.
pub const OPENID: &str = "openid";

/// OpenID Connect Core §11: asks for a refresh token that works while the user is away.
/// Built in; a client that may use the refresh_token grant may request it.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Scopes this server defines itself (OpenID Connect's); every other is a declared Scope.
pub fn is_builtin(scope: &str) -> bool {
    scope == OPENID || scope == OFFLINE_ACCESS
}

/// `scope-token = 1*NQCHAR`, `NQCHAR = %x21 / %x23-5B / %x5D-7E`.
pub fn is_valid_scope_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// A `scope` parameter that breaks the grammar; the OAuth core answers `invalid_scope`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed scope token {0:?}")]
pub struct MalformedScope(pub String);

/// Splits a `scope` parameter into unique tokens, keeping the request order.
pub fn parse_scope(scope: &str) -> Result<Vec<String>, MalformedScope> {
    let mut out: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        if !is_valid_scope_token(token) {
            return Err(MalformedScope(token.to_string()));
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_valid_scope_token("billing:read"));
        assert!(is_valid_scope_token("https://api.example.com/x"));
        assert!(!is_valid_scope_token("a b"));
        assert!(!is_valid_scope_token("a\"b"));
        assert!(!is_valid_scope_token("a\\b"));
        assert!(!is_valid_scope_token("é"));
        assert!(!is_valid_scope_token(""));
    }

    #[test]
    fn parse_dedupes_and_rejects_malformed() {
        assert_eq!(parse_scope("a b  a").unwrap(), ["a", "b"]);
        assert!(parse_scope("a\tb").is_err());
    }
}
