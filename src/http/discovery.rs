//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0) and the JWKS.

use std::sync::Arc;

use axum::{
    Json,
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

fn cacheable(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

pub async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    cacheable(Json(metadata_document(&state)).into_response())
}

pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut response = cacheable(Json(state.server.jwks()).into_response());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    response
}
