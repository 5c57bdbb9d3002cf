//! Custom resource types of the `inbound.dev/v1alpha1` API.
//!
//! One file per kind. These types are the single source of truth: the CRDs in `crds/` are
//! generated from them (`inbound crds`), the manifest folder of `inbound serve` is parsed
//! into them, and the operator watches them.

// kube's `printcolumn(...)` attributes repeat `type_ = ...` by design.
#![allow(clippy::duplicated_attributes)]

mod app;
mod duration;
mod grant;
mod identity_provider;
mod key;
mod policy;
mod scope;
mod status;
mod user;

pub use app::{
    AuthMethod, CIBA, CibaDeliveryMode, CibaSettings, ClientType, CredentialsKeys, CredentialsSecretRef, DEVICE_CODE,
    GrantType, IdTokenAlg, InboundApp, InboundAppSpec, InboundAppStatus, JWT_BEARER, ResourceServer, TOKEN_EXCHANGE,
    TokenFormat, TokenSettings, TrustedIssuer,
};
pub use duration::{DurationError, DurationString, MAX_DURATION};
pub use grant::{
    ClientGrant, ClientGrantSpec, ClientGrantStatus, GrantSubject, SubjectKind, SubjectTokenType, TokenExchange,
};
pub use identity_provider::{
    ApplicationLogin, ClaimMapping, IdentityProvider, IdentityProviderSpec, IdentityProviderStatus, OidcProvider,
    RoleMapping, SecretKeyRef, SecretSource, TenantMapping,
};
pub use key::{ObjectKey, namespace_of};
pub use policy::{
    AppSelector, ApprovedScope, ConsentPolicy, ConsentPolicySpec, ConsentPolicyStatus, ConsentSettings, EmptyScope,
    MetadataDocumentSettings, RegistrationLimits, RegistrationSettings,
};
pub use scope::{Scope, ScopeKind, ScopeLevel, ScopeSpec, ScopeStatus};
pub use status::Condition;
pub use user::{DevelopmentUser, DevelopmentUserSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every inbound resource.
pub const GROUP: &str = "inbound.dev";
/// Served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "inbound.dev/v1alpha1";

/// The CustomResourceDefinitions, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [InboundApp::crd(), Scope::crd(), ClientGrant::crd(), ConsentPolicy::crd(), IdentityProvider::crd()]
        .into_iter()
        .map(without_null_enum_values)
        .map(bounded)
        .collect()
}

/// Longest string any field accepts unless it says otherwise (URLs, names, scope strings).
pub const MAX_STRING_LENGTH: u64 = 2048;
/// Most items of any list unless it says otherwise.
pub const MAX_LIST_ITEMS: u64 = 256;
/// Most entries of any map (labels to match, claim mappings).
pub const MAX_MAP_ENTRIES: u64 = 64;

/// Bounds on every string, list, map and integer the schema does not bound itself, so that
/// the API server refuses what the types cannot hold (`5000000000` for a `u32`) or what
/// would make every replica do unbounded work: an object the operator cannot decode must
/// never reach etcd. Lists of scalars are sets (`x-kubernetes-list-type: set`): duplicates
/// mean nothing in them, and server-side apply merges them by value.
fn bounded(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    use serde_json::{Value, json};
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let scalar = |schema: &Value| {
                    matches!(
                        schema.get("type").and_then(Value::as_str),
                        Some("string" | "integer" | "number" | "boolean")
                    )
                };
                match map.get("type").and_then(Value::as_str) {
                    Some("string") if !map.contains_key("enum") && !map.contains_key("format") => {
                        map.entry("maxLength").or_insert(json!(MAX_STRING_LENGTH));
                    }
                    Some("array") => {
                        map.entry("maxItems").or_insert(json!(MAX_LIST_ITEMS));
                        if map.get("items").is_some_and(scalar) {
                            map.entry("x-kubernetes-list-type").or_insert(json!("set"));
                        }
                    }
                    Some("object") if map.get("additionalProperties").is_some_and(Value::is_object) => {
                        map.entry("maxProperties").or_insert(json!(MAX_MAP_ENTRIES));
                    }
                    Some("integer") => {
                        let maximum = match map.get("format").and_then(Value::as_str) {
                            Some("uint32") => Some(u32::MAX as i64),
                            Some("int32") => Some(i32::MAX as i64),
                            Some("uint8") => Some(u8::MAX as i64),
                            Some("uint16") => Some(u16::MAX as i64),
                            _ => None,
                        };
                        if let Some(maximum) = maximum {
                            map.entry("maximum").or_insert(json!(maximum));
                        }
                    }
                    _ => {}
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(&crd).expect("CRD serializes");
    if let Some(versions) = json.pointer_mut("/spec/versions").and_then(Value::as_array_mut) {
        for version in versions {
            if let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") {
                walk(schema);
            }
        }
    }
    serde_json::from_value(json).expect("CRD deserializes")
}

/// schemars renders an optional enum as `enum: [..., null]` plus `nullable: true`; the API
/// server's OpenAPI validation rejects the `null` item ("unknown object type nil"), and
/// `nullable` already says it. Drop it. Integral bounds become integers.
fn without_null_enum_values(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(items)) = map.get_mut("enum") {
                    items.retain(|item| !item.is_null());
                }

                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(&crd).expect("CRD serializes");
    walk(&mut json);
    serde_json::from_value(json).expect("CRD deserializes")
}

/// The CRDs as one multi-document YAML stream: the content of `crds/inbound.dev.yaml`.
pub fn crds_yaml() -> String {
    let mut out =
        String::from("# Generated by `inbound crds` from src/api. Do not edit: a test fails when this drifts.\n");
    for crd in crds() {
        let mut value = serde_json::to_value(&crd).expect("CRD serializes");
        integral_bounds(&mut value);
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&value).expect("CRDs serialize to YAML"));
    }
    out
}

/// The typed schema holds `minimum`/`maximum` as floats (`0.0`); integral bounds are written
/// as integers, which reads better and survives YAML round trips unchanged (Helm re-emits
/// the CRDs it bundles).
fn integral_bounds(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for bound in ["minimum", "maximum"] {
                if let Some(serde_json::Value::Number(n)) = map.get_mut(bound)
                    && let Some(f) = n.as_f64()
                    && f.fract() == 0.0
                {
                    *n = serde_json::Number::from(f as i64);
                }
            }
            map.values_mut().for_each(integral_bounds);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_bounds),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every schema node of every CRD, with its path.
    fn nodes(value: &Value, path: String, out: &mut Vec<(String, Value)>) {
        if let Value::Object(map) = value {
            if map.get("type").and_then(Value::as_str).is_some() {
                out.push((path.clone(), value.clone()));
            }
            for (key, child) in map {
                nodes(child, format!("{path}/{key}"), out);
            }
        }
    }

    fn schemas() -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for crd in super::crds() {
            let json = serde_json::to_value(&crd).unwrap();
            let name = crd.metadata.name.unwrap();
            nodes(&json["spec"]["versions"][0]["schema"]["openAPIV3Schema"], name, &mut out);
        }
        out
    }

    #[test]
    fn every_string_list_map_and_integer_is_bounded() {
        for (path, schema) in schemas() {
            let has = |k: &str| schema.get(k).is_some();
            match schema["type"].as_str().unwrap() {
                "string" => assert!(has("maxLength") || has("enum") || has("format"), "{path} unbounded"),
                "array" => assert!(has("maxItems"), "{path} unbounded"),
                "object" if schema["additionalProperties"].is_object() => {
                    assert!(has("maxProperties"), "{path} unbounded")
                }
                // observedGeneration and metadata.generation are the API server's int64s.
                "integer" if schema["format"] != "int64" => assert!(has("maximum"), "{path} unbounded"),
                _ => {}
            }
        }
    }

    #[test]
    fn the_poison_of_the_issue_is_out_of_bounds_and_conditions_are_a_list_map() {
        let schemas = schemas();
        let find = |suffix: &str| {
            schemas.iter().find(|(p, _)| p.ends_with(suffix)).unwrap_or_else(|| panic!("{suffix}")).1.clone()
        };
        let max_clients = find(
            "consentpolicies.inbound.dev/properties/spec/properties/registration/properties/limits/properties/maxClients",
        );
        assert!(max_clients["maximum"].as_f64().unwrap() < 5_000_000_000.0, "{max_clients}");
        for kind in ["inboundapps", "scopes", "clientgrants", "consentpolicies", "identityproviders"] {
            let conditions = find(&format!("{kind}.inbound.dev/properties/status/properties/conditions"));
            assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
            assert_eq!(conditions["x-kubernetes-list-map-keys"], serde_json::json!(["type"]), "{kind}");
        }
        let expires = find("clientgrants.inbound.dev/properties/spec/properties/expiresAt");
        assert_eq!(expires["format"], "date-time");
        let uris = find("inboundapps.inbound.dev/properties/spec/properties/redirectUris");
        assert_eq!(uris["x-kubernetes-list-type"], "set");
    }
}
