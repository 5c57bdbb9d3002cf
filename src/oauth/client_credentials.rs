//! What a client obtains with the client credentials grant (RFC 6749 §4.4): decided by the
//! `ClientGrant`s whose subject is the app.

use std::collections::BTreeSet;

use super::OAuthError;
use crate::api::GrantType;
use crate::catalog::{Catalog, Client, GrantRule};
use crate::protocol::{resource, scope::parse_scope};

/// The request's choices: `scope`, RFC 8707 `resource`s and `tenant`.
#[derive(Debug, Default)]
pub struct Request<'a> {
    pub scope: Option<&'a str>,
    pub resources: &'a [String],
    pub tenant: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The token request's `scope`, `resource`s and `tenant`.
    pub fn from_params(params: &'a super::params::Params) -> Request<'a> {
        Request { scope: params.get("scope"), resources: params.resources(), tenant: params.get("tenant") }
    }
}

/// What the token will carry.
#[derive(Debug, PartialEq, Eq)]
pub struct Entitlement {
    pub scopes: Vec<String>,
    /// Token audience; empty means "the server's default audience".
    pub audience: Vec<String>,
    pub tenant: Option<String>,
}

/// Decides scopes, audience and tenant for `client` at time `now`.
///
/// - Only active grants (not expired) apply; deleting a grant takes effect with the next
///   catalog snapshot.
/// - `tenant`: with the parameter, only grants listing that tenant apply. Without it,
///   tenant-less grants apply; if there are none and the grants name exactly one tenant,
///   that tenant is implied.
/// - `resource` (RFC 8707): every requested resource must be granted (`invalid_target`),
///   and only grants naming one of them apply; the token's audience is exactly the
///   requested resources. Without it, the audience is every resource of the applicable grants.
///   Grants come from the resources' owners (validation keeps every other grant out), so no
///   token carries an audience its owner did not give this client.
/// - `scope`: requested ∩ granted (RFC 6749 §3.3 lets the server narrow the request); a
///   scope no Scope declares, or a request of which nothing is granted, is `invalid_scope`.
///   Without it, every granted scope.
pub fn decide(catalog: &Catalog, client: &Client, request: &Request<'_>, now: i64) -> Result<Entitlement, OAuthError> {
    if !client.is_confidential() || !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client("this client is not allowed to use the client_credentials grant"));
    }
    entitlement(catalog, catalog.grants_for_app(&client.key), request, now)
        .map_err(|e| e.or_unauthorized("no active ClientGrant authorizes this client"))
}

/// What `grants` (those of one subject: an app, or a ServiceAccount) give a request, by the
/// rules of [`decide`]. `Err(None)`: no grant is active.
pub fn entitlement(
    catalog: &Catalog,
    grants: &[std::sync::Arc<GrantRule>],
    request: &Request<'_>,
    now: i64,
) -> Result<Entitlement, NoEntitlement> {
    let active: Vec<&GrantRule> = grants.iter().map(|g| g.as_ref()).filter(|g| g.is_active(now)).collect();
    if active.is_empty() {
        return Err(NoEntitlement::NoActiveGrant);
    }
    among(catalog, active, request).map_err(NoEntitlement::Refused)
}

/// [`entitlement`] once the active grants are known.
fn among(catalog: &Catalog, active: Vec<&GrantRule>, request: &Request<'_>) -> Result<Entitlement, OAuthError> {
    let (grants, tenant) = select_tenant(active, request.tenant)?;

    let (grants, audience) = if request.resources.is_empty() {
        let audience: BTreeSet<&String> = grants.iter().flat_map(|g| &g.resources).collect();
        let audience = audience.into_iter().cloned().collect();
        (grants, audience)
    } else {
        // Each requested resource in the spelling its grant declares (`protocol::resource`).
        let mut audience: Vec<String> = Vec::new();
        for requested in request.resources {
            let Some(declared) = grants.iter().find_map(|g| resource::find(&g.resources, requested)) else {
                return Err(OAuthError::invalid_target(format!("resource {requested} is not granted to this client")));
            };
            if !audience.contains(declared) {
                audience.push(declared.clone());
            }
        }
        let grants = grants.into_iter().filter(|g| g.resources.iter().any(|r| audience.contains(r))).collect();
        (grants, audience)
    };

    // A grant's scopes are declared in its own namespace (the resource owner's, which may
    // not be the client's); a scope for one resource is dropped from a token for another.
    let granted: BTreeSet<&str> = grants
        .iter()
        .flat_map(|g| {
            g.scopes.iter().filter(|s| catalog.scope_fits_audience(&g.key.namespace, s, &audience)).map(String::as_str)
        })
        .collect();
    let scopes = match request.scope {
        None => granted.into_iter().map(str::to_string).collect(),
        Some(scope) => {
            let requested = parse_scope(scope)?;
            let declared = |s: &str| grants.iter().any(|g| catalog.scope(&g.key.namespace, s).is_some());
            if let Some(unknown) = requested.iter().find(|s| !declared(s)) {
                return Err(OAuthError::invalid_scope(format!("unknown scope {unknown}")));
            }
            let scopes: Vec<String> = requested.into_iter().filter(|s| granted.contains(s.as_str())).collect();
            if scopes.is_empty() {
                return Err(OAuthError::invalid_scope("none of the requested scopes is granted to this client"));
            }
            scopes
        }
    };
    Ok(Entitlement { scopes, audience, tenant })
}

/// Why [`entitlement`] gives nothing.
#[derive(Debug)]
pub enum NoEntitlement {
    /// The subject has no active grant (how to say so depends on who the subject is).
    NoActiveGrant,
    /// The request asks for what the grants do not give.
    Refused(OAuthError),
}

impl NoEntitlement {
    /// As an OAuth error, `unauthorized` describing the subject without grants.
    pub fn or_unauthorized(self, unauthorized: &str) -> OAuthError {
        match self {
            NoEntitlement::NoActiveGrant => OAuthError::unauthorized_client(unauthorized.to_string()),
            NoEntitlement::Refused(e) => e,
        }
    }
}

fn select_tenant<'a>(
    active: Vec<&'a GrantRule>,
    tenant: Option<&str>,
) -> Result<(Vec<&'a GrantRule>, Option<String>), OAuthError> {
    if let Some(tenant) = tenant {
        let grants: Vec<_> = active.into_iter().filter(|g| g.tenants.iter().any(|t| t == tenant)).collect();
        if grants.is_empty() {
            return Err(OAuthError::invalid_request(format!("tenant {tenant} is not granted to this client")));
        }
        return Ok((grants, Some(tenant.to_string())));
    }
    let untenanted: Vec<_> = active.iter().copied().filter(|g| g.tenants.is_empty()).collect();
    if !untenanted.is_empty() {
        return Ok((untenanted, None));
    }
    let tenants: BTreeSet<&String> = active.iter().flat_map(|g| &g.tenants).collect();
    if tenants.len() == 1 {
        let only = tenants.into_iter().next().cloned();
        return Ok((active, only));
    }
    let names: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
    Err(OAuthError::invalid_request(format!(
        "the tenant parameter is required: this client is granted tenants {}",
        names.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectKey;
    use crate::catalog::{ClientRecord, Defaults, manifest::parse_file};
    use crate::oauth::ErrorCode;
    use std::collections::HashMap;

    const MANIFESTS: &str = r#"
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: agent}
spec: {displayName: Agent, grantTypes: [client_credentials]}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: cli}
spec: {displayName: CLI, clientType: public, grantTypes: [authorization_code], redirectUris: ["http://127.0.0.1/cb"]}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: read}
spec: {scope: "billing:read", description: Read}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: write}
spec: {scope: "billing:write", description: Write}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: other}
spec: {scope: "crm:read", description: CRM}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: agent-billing}
spec:
  subject: {kind: InboundApp, name: agent}
  scopes: ["billing:read", "billing:write"]
  resources: ["https://billing.example.com"]
  tenants: [acme, globex]
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: agent-expired}
spec:
  subject: {kind: InboundApp, name: agent}
  scopes: ["crm:read"]
  tenants: [acme]
  expiresAt: "2020-01-01T00:00:00Z"
"#;

    fn catalog() -> Catalog {
        let (manifests, problems) = parse_file("t.yaml", MANIFESTS);
        assert!(problems.is_empty(), "{problems:?}");
        let records: HashMap<_, _> = ["agent", "cli"]
            .into_iter()
            .map(|n| {
                (
                    ObjectKey { namespace: "default".into(), name: n.into() },
                    ClientRecord { client_id: n.into(), secret_hashes: vec![] },
                )
            })
            .collect();
        Catalog::build(&manifests, &records, &HashMap::new(), &Defaults::default())
    }

    fn decide_for(client: &str, request: Request<'_>) -> Result<Entitlement, OAuthError> {
        let catalog = catalog();
        let client = catalog.client(client).unwrap().clone();
        decide(&catalog, &client, &request, 1_700_000_000)
    }

    #[test]
    fn requested_intersect_granted() {
        let e = decide_for(
            "agent",
            Request { scope: Some("billing:read crm:read"), tenant: Some("acme"), ..Default::default() },
        )
        .unwrap();
        assert_eq!(e.scopes, ["billing:read"], "crm:read comes from an expired grant");
        assert_eq!(e.audience, ["https://billing.example.com"]);
        assert_eq!(e.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn no_scope_means_all_granted() {
        let e = decide_for("agent", Request { tenant: Some("globex"), ..Default::default() }).unwrap();
        assert_eq!(e.scopes, ["billing:read", "billing:write"]);
    }

    #[test]
    fn errors() {
        let code = |client, r| decide_for(client, r).unwrap_err().code;
        assert_eq!(code("cli", Request::default()), ErrorCode::UnauthorizedClient);
        assert_eq!(code("agent", Request::default()), ErrorCode::InvalidRequest, "two tenants, none chosen");
        assert_eq!(code("agent", Request { tenant: Some("initech"), ..Default::default() }), ErrorCode::InvalidRequest);
        assert_eq!(
            code("agent", Request { tenant: Some("acme"), scope: Some("nope"), ..Default::default() }),
            ErrorCode::InvalidScope
        );
        assert_eq!(
            code("agent", Request { tenant: Some("acme"), scope: Some("crm:read"), ..Default::default() }),
            ErrorCode::InvalidScope
        );
        let other = ["https://other.example.com".to_string()];
        assert_eq!(
            code("agent", Request { tenant: Some("acme"), resources: &other, ..Default::default() }),
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn a_scope_declared_for_a_resource_goes_only_into_tokens_for_it() {
        let yaml = r#"
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: agent}
spec: {displayName: Agent, grantTypes: [client_credentials]}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: a}
spec: {scope: "a:read", description: A, resource: "https://a.example.com"}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: b}
spec: {scope: "b:read", description: B, resource: "https://b.example.com"}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: any}
spec: {scope: "any", description: Any}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: both}
spec:
  subject: {kind: InboundApp, name: agent}
  scopes: ["a:read", "b:read", "any"]
  resources: ["https://a.example.com", "https://b.example.com"]
"#;
        let (manifests, problems) = parse_file("t.yaml", yaml);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(crate::catalog::validate::validate(&manifests).is_empty());
        let key = ObjectKey { namespace: "default".into(), name: "agent".into() };
        let records = HashMap::from([(key, ClientRecord { client_id: "agent".into(), secret_hashes: vec![] })]);
        let catalog = Catalog::build(&manifests, &records, &HashMap::new(), &Defaults::default());
        let client = catalog.client("agent").unwrap();
        let only_a = ["https://a.example.com/".to_string()];
        let e = decide(&catalog, &client, &Request { resources: &only_a, ..Default::default() }, 0).unwrap();
        assert_eq!(e.audience, ["https://a.example.com"]);
        assert_eq!(e.scopes, ["a:read", "any"], "b:read is for another audience");
        let e = decide(&catalog, &client, &Request::default(), 0).unwrap();
        assert_eq!(e.scopes, ["a:read", "any", "b:read"]);
    }
}
