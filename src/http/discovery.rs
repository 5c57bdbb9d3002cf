//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0) and the JWKS.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::AppState;
use crate::protocol::paths;

/// One document served at both well-known paths, so the two can never disagree.
pub fn metadata_document(state: &AppState) -> serde_json::Value {
    let issuer = state.server.issuer();
    let auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
    // What client assertions may be signed with (private_key_jwt).
    let assertion_algs = ["RS256", "PS256", "ES256", "EdDSA"];
    let catalog = state.catalog.load();
    // offline_access: refresh tokens can always be issued (to clients allowed the grant).
    let scopes = catalog.advertised_scopes();
    let registration = catalog.registration_policy().and_then(|p| p.spec.registration.clone());
    let mut document = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{}", paths::TOKEN),
        "jwks_uri": format!("{issuer}{}", paths::JWKS),
        "introspection_endpoint": format!("{issuer}{}", paths::INTROSPECT),
        "revocation_endpoint": format!("{issuer}{}", paths::REVOKE),
        "authorization_endpoint": format!("{issuer}{}", paths::AUTHORIZE),
        "userinfo_endpoint": format!("{issuer}{}", paths::USERINFO),
        "end_session_endpoint": format!("{issuer}{}", paths::END_SESSION),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", crate::api::JWT_BEARER, crate::api::TOKEN_EXCHANGE, crate::api::DEVICE_CODE, crate::api::CIBA],
        "device_authorization_endpoint": format!("{issuer}{}", paths::DEVICE_AUTHORIZATION),
        "backchannel_authentication_endpoint": format!("{issuer}{}", paths::BACKCHANNEL_AUTHENTICATION),
        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
        "backchannel_user_code_parameter_supported": true,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"],
        "prompt_values_supported": ["none", "login", "consent"],
        // RFC 9207: every authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "scopes_supported": scopes,
        // RFC 9068 access tokens and RFC 8707 resource indicators.
        "access_token_signing_alg_values_supported": ["ES256"],
        "resource_indicators_supported": true,
        // ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant): the JWT bearer grant
        // takes an enterprise IdP's identity assertion (apps' `trustedIssuers`).
        "authorization_grant_profiles_supported": ["urn:ietf:params:oauth:grant-profile:id-jag"],
    });
    // Advertised only when a ConsentPolicy enables them (RFC 7591 §3, CIMD draft §4).
    if let Some(registration) = registration {
        if registration.dynamic {
            document["registration_endpoint"] = serde_json::json!(format!("{issuer}{}", paths::REGISTER));
        }
        if registration.client_id_metadata_documents.enabled {
            document["client_id_metadata_document_supported"] = serde_json::json!(true);
        }
    }
    document
}

/// A document rendered once per version of what it is made from (a configuration
/// snapshot): the metadata is the same bytes for every request between reloads, so it is
/// serialised once, not per request (the JWKS likewise, by its key set).
///
/// The source is held, not just remembered by address: a freed snapshot's address could be
/// reused by its successor, which would then be served the old bytes.
pub struct Rendered<T> {
    cached: ArcSwapOption<(Arc<T>, Bytes)>,
}

impl<T> Default for Rendered<T> {
    fn default() -> Self {
        Rendered { cached: ArcSwapOption::empty() }
    }
}

impl<T> Rendered<T> {
    /// The bytes rendered from `source`, rendering them if `source` is new.
    pub fn get(&self, source: Arc<T>, render: impl FnOnce(&T) -> Vec<u8>) -> Bytes {
        if let Some(cached) = &*self.cached.load()
            && Arc::ptr_eq(&cached.0, &source)
        {
            return cached.1.clone();
        }
        let bytes = Bytes::from(render(&source));
        self.cached.store(Some(Arc::new((source, bytes.clone()))));
        bytes
    }
}

/// A JSON document cacheable by clients for five minutes.
fn cacheable_json(body: Bytes, content_type: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
    ];
    (headers, body).into_response()
}

pub async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    let body = state.rendered_metadata.get(state.catalog.load_full(), |_| {
        serde_json::to_vec(&metadata_document(&state)).expect("a JSON value serialises")
    });
    cacheable_json(body, "application/json")
}

pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    cacheable_json(state.server.jwks_json(), "application/jwk-set+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_rendered_once_per_source() {
        let rendered = Rendered::<String>::default();
        let renders = std::cell::Cell::new(0);
        let render = |s: &String| {
            renders.set(renders.get() + 1);
            s.clone().into_bytes()
        };
        let first = Arc::new("one".to_string());
        assert_eq!(rendered.get(first.clone(), render), "one");
        assert_eq!(rendered.get(first.clone(), render), "one");
        assert_eq!(renders.get(), 1, "the same snapshot: the same bytes");
        // An equal but new snapshot (a reload) is rendered again.
        assert_eq!(rendered.get(Arc::new("one".to_string()), render), "one");
        assert_eq!(rendered.get(Arc::new("two".to_string()), render), "two");
        assert_eq!(renders.get(), 3);
    }
}
