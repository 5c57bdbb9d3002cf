//! Dynamic Client Registration (RFC 7591) and its management (RFC 7592): validation of
//! client metadata against the ConsentPolicy that enables self-registration. Pure: no
//! store, no HTTP.

use serde_json::Value;

use super::ErrorCode;
use crate::api::{EmptyScope, RegistrationSettings};
use crate::catalog::dynamic::ClientMetadata;
use crate::protocol::pattern::redirect_uri_matches;

/// RFC 7591 §3.2.2 error codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct RegistrationError {
    pub code: ErrorCode,
    pub description: String,
}

impl RegistrationError {
    fn metadata(description: impl Into<String>) -> RegistrationError {
        RegistrationError { code: ErrorCode::InvalidClientMetadata, description: description.into() }
    }
    fn redirect(description: impl Into<String>) -> RegistrationError {
        RegistrationError { code: ErrorCode::InvalidRedirectUri, description: description.into() }
    }
}

const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LEN: usize = 2000;
const MAX_NAME_LEN: usize = 200;

/// Validates a registration (or RFC 7592 update) request body and returns the metadata the
/// server will hold. Unknown members are ignored (RFC 7591 §2); known ones must have the
/// right type.
pub fn validate(body: &Value, registration: &RegistrationSettings) -> Result<ClientMetadata, RegistrationError> {
    let Some(object) = body.as_object() else {
        return Err(RegistrationError::metadata("the request body must be a JSON object"));
    };
    let string = |name: &str| -> Result<Option<String>, RegistrationError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(RegistrationError::metadata(format!("{name} must be a string"))),
        }
    };
    let strings = |name: &str| -> Result<Option<Vec<String>>, RegistrationError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| RegistrationError::metadata(format!("{name} must be an array of strings"))),
            Some(_) => Err(RegistrationError::metadata(format!("{name} must be an array of strings"))),
        }
    };

    let grant_types = strings("grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    for grant in &grant_types {
        if !matches!(grant.as_str(), "authorization_code" | "refresh_token") {
            return Err(RegistrationError::metadata(format!(
                "grant_type {grant:?} is not available to self-registered clients (authorization_code, refresh_token)"
            )));
        }
    }
    let response_types = strings("response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if response_types.iter().any(|r| r != "code") {
        return Err(RegistrationError::metadata("only the response_type \"code\" is supported"));
    }
    // RFC 7591 §2.1: grant_types and response_types must agree.
    let code_flow = grant_types.iter().any(|g| g == "authorization_code");
    if code_flow != response_types.iter().any(|r| r == "code") {
        return Err(RegistrationError::metadata(
            "grant_types authorization_code and response_types code go together (RFC 7591 §2.1)",
        ));
    }
    // RFC 7591 §2: the default is client_secret_basic.
    let auth_method = string("token_endpoint_auth_method")?.unwrap_or_else(|| "client_secret_basic".into());
    if !matches!(auth_method.as_str(), "none" | "client_secret_basic" | "client_secret_post" | "private_key_jwt") {
        return Err(RegistrationError::metadata(format!(
            "token_endpoint_auth_method {auth_method:?} is not supported (none, client_secret_basic, client_secret_post, private_key_jwt)"
        )));
    }
    // RFC 7591 §2: the keys by value or by reference, never both; private_key_jwt needs one.
    let jwks_uri = string("jwks_uri")?;
    let jwks = match object.get("jwks") {
        None | Some(Value::Null) => None,
        Some(set) => {
            crate::protocol::jwk::parse_public_jwk_set(&set.to_string())
                .map_err(|e| RegistrationError::metadata(format!("jwks: {e}")))?;
            Some(set.clone())
        }
    };
    if let Some(uri) = &jwks_uri
        && !url::Url::parse(uri).is_ok_and(|u| u.scheme() == "https" || crate::protocol::loopback::is_loopback_host(&u))
    {
        return Err(RegistrationError::metadata("jwks_uri must be an https URL"));
    }
    match (&jwks_uri, &jwks, auth_method == "private_key_jwt") {
        (Some(_), Some(_), _) => return Err(RegistrationError::metadata("jwks_uri and jwks must not both be present")),
        (None, None, true) => {
            return Err(RegistrationError::metadata("private_key_jwt needs the client's keys: jwks_uri or jwks"));
        }
        (Some(_), _, false) | (_, Some(_), false) => {
            return Err(RegistrationError::metadata("jwks_uri and jwks are only for private_key_jwt"));
        }
        _ => {}
    }
    let application_type = string("application_type")?;
    if application_type.as_deref().is_some_and(|t| t != "web" && t != "native") {
        return Err(RegistrationError::metadata("application_type must be \"web\" or \"native\""));
    }

    let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
    if code_flow && redirect_uris.is_empty() {
        return Err(RegistrationError::redirect("redirect_uris is required for the authorization_code grant"));
    }
    check_redirect_uris(&redirect_uris, registration)?;

    let scope = string("scope")?.unwrap_or_default();
    let requested: Vec<&str> = scope.split_ascii_whitespace().collect();
    for s in &requested {
        let builtin = matches!(*s, "openid" | "offline_access");
        if !builtin && !registration.approved_scopes.iter().any(|a| a.scope == *s) {
            return Err(RegistrationError::metadata(format!(
                "scope {s:?} is not approved for self-registered clients"
            )));
        }
    }
    if requested.is_empty() && registration.empty_scope == EmptyScope::Reject {
        return Err(RegistrationError::metadata("scope is required: name the scopes this client needs"));
    }

    let client_name = string("client_name")?;
    if client_name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME_LEN || n.trim().is_empty()) {
        return Err(RegistrationError::metadata(format!("client_name must be 1 to {MAX_NAME_LEN} characters")));
    }
    let mut uris = Vec::new();
    for name in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        let value = string(name)?;
        if let Some(v) = &value {
            let ok = v.len() <= MAX_URI_LEN && url::Url::parse(v).is_ok_and(|u| u.scheme() == "https");
            if !ok {
                return Err(RegistrationError::metadata(format!("{name} must be an https URL")));
            }
        }
        uris.push(value);
    }
    let [client_uri, logo_uri, tos_uri, policy_uri]: [Option<String>; 4] = uris.try_into().expect("four URIs");
    let contacts = strings("contacts")?.unwrap_or_default();
    if contacts.len() > 10 || contacts.iter().any(|c| c.len() > 320) {
        return Err(RegistrationError::metadata("at most 10 contacts of at most 320 characters"));
    }
    Ok(ClientMetadata {
        client_name,
        redirect_uris,
        grant_types,
        response_types,
        token_endpoint_auth_method: auth_method,
        application_type,
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        scope: requested.join(" "),
        contacts,
        software_id: string("software_id")?,
        software_version: string("software_version")?,
        jwks_uri,
        jwks,
    })
}

/// Identical public registrations share one client: the digest of the policy and the
/// normalized metadata. Confidential clients are never shared (each gets its own secret).
/// The redirect URIs of a self-registered client (a registration or a metadata document):
/// a bounded number, each a URL without fragment (RFC 6749 §3.1.2) that one of the policy's
/// approved patterns allows (which also refuses forbidden schemes, userinfo and dot
/// segments). RFC 9700 §4.11.2: anything else would make the issuer an open redirector.
pub fn check_redirect_uris(
    redirect_uris: &[String],
    registration: &RegistrationSettings,
) -> Result<(), RegistrationError> {
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(RegistrationError::redirect(format!("at most {MAX_REDIRECT_URIS} redirect_uris")));
    }
    for uri in redirect_uris {
        if uri.len() > MAX_URI_LEN {
            return Err(RegistrationError::redirect("a redirect URI is too long"));
        }
        let parsed = url::Url::parse(uri).map_err(|_| RegistrationError::redirect(format!("{uri:?} is not a URL")))?;
        if parsed.fragment().is_some() {
            return Err(RegistrationError::redirect(format!("{uri:?} must not contain a fragment")));
        }
        if !registration.redirect_uri_patterns.iter().any(|p| redirect_uri_matches(p, uri)) {
            return Err(RegistrationError::redirect(format!("{uri:?} is not an approved redirect URI")));
        }
    }
    Ok(())
}

pub fn dedupe_key(policy: &str, metadata: &ClientMetadata) -> Option<String> {
    // Only public clients are shared: keys and secrets each identify one client.
    if metadata.token_endpoint_auth_method != "none" {
        return None;
    }
    let mut normalized = metadata.clone();
    normalized.redirect_uris.sort();
    normalized.grant_types.sort();
    normalized.response_types.sort();
    normalized.contacts.sort();
    let mut scopes: Vec<&str> = metadata.scope.split_ascii_whitespace().collect();
    scopes.sort();
    normalized.scope = scopes.join(" ");
    let canonical = serde_json::to_vec(&(policy, &normalized)).expect("metadata serializes");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical);
    Some(base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApprovedScope;
    use serde_json::json;

    fn policy() -> RegistrationSettings {
        RegistrationSettings {
            dynamic: true,
            approved_scopes: vec![
                ApprovedScope { scope: "mcp:tools".into(), mandatory: true },
                ApprovedScope { scope: "mcp:admin".into(), mandatory: false },
            ],
            redirect_uri_patterns: vec!["http://127.0.0.1/callback".into(), "https://*.example.com/cb".into()],
            ..Default::default()
        }
    }

    #[test]
    fn accepts_a_typical_mcp_client() {
        let body = json!({
            "client_name": "Claude", "redirect_uris": ["http://127.0.0.1:33418/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none", "scope": "mcp:tools", "unknown_member": 1
        });
        let m = validate(&body, &policy()).unwrap();
        assert_eq!(m.token_endpoint_auth_method, "none");
        assert_eq!(m.scope, "mcp:tools");
        assert!(dedupe_key("ns/p", &m).is_some());
    }

    #[test]
    fn errors_follow_rfc_7591() {
        let cases = [
            (json!([]), "invalid_client_metadata"),
            (json!({"redirect_uris": "http://127.0.0.1/callback"}), "invalid_client_metadata"),
            (json!({}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["https://evil.com/cb"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["https://a.example.com/cb#x"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["not a url"]}), "invalid_redirect_uri"),
            (
                json!({"redirect_uris": ["https://a.example.com/cb"], "grant_types": ["client_credentials"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example.com/cb"], "grant_types": ["implicit"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example.com/cb"], "response_types": ["token"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example.com/cb"], "scope": "mcp:tools root"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example.com/cb"], "logo_uri": "http://a.example.com/x.png"}),
                "invalid_client_metadata",
            ),
            (json!({"redirect_uris": ["https://a.example.com/cb"], "client_name": ""}), "invalid_client_metadata"),
        ];
        for (body, code) in cases {
            let error = validate(&body, &policy()).expect_err(&body.to_string());
            assert_eq!(error.code.as_str(), code, "{body}: {error}");
            assert!(!error.description.is_empty());
        }
    }

    #[test]
    fn empty_scope_follows_the_policy() {
        let body = json!({"redirect_uris": ["https://a.example.com/cb"]});
        assert_eq!(validate(&body, &policy()).unwrap().scope, "");
        let reject = RegistrationSettings { empty_scope: EmptyScope::Reject, ..policy() };
        assert_eq!(validate(&body, &reject).unwrap_err().code.as_str(), "invalid_client_metadata");
    }

    #[test]
    fn dedupe_ignores_order_and_never_shares_confidential_clients() {
        let a = validate(
            &json!({"redirect_uris": ["https://b.example.com/cb", "https://a.example.com/cb"], "scope": "mcp:admin mcp:tools", "token_endpoint_auth_method": "none"}),
            &policy(),
        )
        .unwrap();
        let b = validate(
            &json!({"redirect_uris": ["https://a.example.com/cb", "https://b.example.com/cb"], "scope": "mcp:tools mcp:admin", "token_endpoint_auth_method": "none"}),
            &policy(),
        )
        .unwrap();
        assert_eq!(dedupe_key("p", &a), dedupe_key("p", &b));
        assert_ne!(dedupe_key("p", &a), dedupe_key("q", &a), "per policy");
        let confidential = validate(&json!({"redirect_uris": ["https://a.example.com/cb"]}), &policy()).unwrap();
        assert_eq!(dedupe_key("p", &confidential), None);
    }
}
