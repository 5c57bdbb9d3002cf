//! What a user is asked to consent to, and what a consent decision grants.

use serde::{Deserialize, Serialize};

use super::OAuthError;
use crate::api::ScopeLevel;
use crate::catalog::{Catalog, Client};
use crate::protocol::scope::is_builtin;
use crate::store::{Consent, UserRecord as User};

/// One scope on the consent screen.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScopeItem {
    pub scope: String,
    pub description: String,
    /// Cannot be unchecked (the Scope or the ConsentPolicy says so).
    pub mandatory: bool,
    /// False when the user lacks a required role, or (tenant-level) is not an
    /// administrator of the tenant; `reason` says why.
    pub grantable: bool,
    pub reason: Option<String>,
    /// A `level: tenant` scope: granted for the whole tenant, by its administrator.
    #[serde(default)]
    pub tenant_level: bool,
}

/// The subject a tenant-wide consent is recorded under. Never a user's: users' subjects
/// are base64url digests or object UIDs, which have no `:`.
pub fn tenant_subject(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// What a user's authorization in a tenant rests on: their own consent, and the tenant's
/// (granted by one of its administrators for every member).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub own: Option<Consent>,
    pub tenant: Option<Consent>,
}

impl Grants {
    /// Whether `scope` is granted: a user-level scope by either consent, a tenant-level one
    /// only by the tenant's.
    pub fn covers(&self, catalog: &Catalog, client: &Client, scope: &str) -> bool {
        let has = |c: &Option<Consent>| c.as_ref().is_some_and(|c| c.scopes.iter().any(|s| s == scope));
        match level(catalog, client, scope) {
            ScopeLevel::Tenant => has(&self.tenant),
            ScopeLevel::User => has(&self.own) || has(&self.tenant),
        }
    }

    /// The scopes granted, for "you already allowed".
    pub fn scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for consent in [&self.own, &self.tenant].into_iter().flatten() {
            for s in &consent.scopes {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    /// The consents tokens for `scopes` rest on: the user's own (else the tenant's), and
    /// the tenant's too when it grants one of them the user's own does not. Revoking
    /// either ends what was issued. None without any consent.
    pub fn consent_ids(&self, scopes: &[String]) -> Option<(String, Option<String>)> {
        match (&self.own, &self.tenant) {
            (None, None) => None,
            (None, Some(tenant)) => Some((tenant.id.clone(), None)),
            (Some(own), None) => Some((own.id.clone(), None)),
            (Some(own), Some(tenant)) => {
                let needed = scopes.iter().any(|s| !own.scopes.contains(s) && tenant.scopes.contains(s));
                Some((own.id.clone(), needed.then(|| tenant.id.clone())))
            }
        }
    }
}

/// A scope's level as its Scope declares it (undeclared scopes are user-level).
fn level(catalog: &Catalog, client: &Client, scope: &str) -> ScopeLevel {
    catalog.scope(&client.key.namespace, scope).map(|s| s.level).unwrap_or_default()
}

/// Whether `user` may grant `client`'s scopes for all of `tenant`: they belong to it and
/// hold, there, one of the roles the app's ConsentPolicy names in `tenantAdminRoles`.
pub fn is_tenant_admin(catalog: &Catalog, client: &Client, user: &User, tenant: Option<&str>) -> bool {
    let Some(tenant) = tenant.filter(|t| user.member_of(t)) else { return false };
    let admin_roles = catalog.policy_for(client).map(|p| p.spec.consent.tenant_admin_roles.clone()).unwrap_or_default();
    let roles = user.roles_in(Some(tenant));
    admin_roles.iter().any(|r| roles.contains(r))
}

/// A choosable consent duration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DurationChoice {
    pub label: String,
    pub seconds: i64,
    pub default: bool,
}

/// What the authorization step must do about consent.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsentPlan {
    /// Active consents (the user's, the tenant's) cover every requested scope.
    Covered,
    /// First-party app: grant without asking (still recorded).
    Automatic { scopes: Vec<String>, seconds: i64 },
    /// Ask for these (new) scopes.
    Ask { items: Vec<ScopeItem>, durations: Vec<DurationChoice> },
}

const DEFAULT_CONSENT: i64 = 30 * 86_400;

/// Durations from the app's ConsentPolicy (default: 30 days only), capped by its maximum.
pub fn durations(catalog: &Catalog, client: &Client) -> Vec<DurationChoice> {
    let consent = catalog.policy_for(client).map(|p| p.spec.consent.clone()).unwrap_or_default();
    let max = consent.max_duration.as_ref().and_then(|d| d.parse().ok()).map(|d| d.as_secs() as i64);
    let default = consent.default_duration.as_ref().and_then(|d| d.parse().ok()).map(|d| d.as_secs() as i64);
    let mut choices: Vec<DurationChoice> = consent
        .durations
        .iter()
        .filter_map(|d| Some((d.0.clone(), d.parse().ok()?.as_secs() as i64)))
        .filter(|(_, s)| max.is_none_or(|m| *s <= m))
        .map(|(_, seconds)| DurationChoice { label: human_duration(seconds), seconds, default: false })
        .collect();
    if choices.is_empty() {
        let seconds = default.or(max).unwrap_or(DEFAULT_CONSENT);
        choices.push(DurationChoice { label: human_duration(seconds), seconds, default: true });
    }
    let default = default.filter(|d| choices.iter().any(|c| c.seconds == *d)).unwrap_or(choices[0].seconds);
    for c in &mut choices {
        c.default = c.seconds == default;
    }
    choices
}

/// `1 day`, `30 days`, `12 hours`, `45 minutes`.
fn human_duration(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// Plans consent for `scopes` requested by `client` on behalf of `user` acting in
/// `tenant`, given what is granted already (the user's consent and the tenant's).
pub fn plan(
    catalog: &Catalog,
    client: &Client,
    user: &User,
    tenant: Option<&str>,
    scopes: &[String],
    grants: &Grants,
    force_prompt: bool,
) -> ConsentPlan {
    let wanted: Vec<&String> = scopes.iter().filter(|s| !is_builtin(s)).collect();
    let any_grant = grants.own.is_some() || grants.tenant.is_some();
    if any_grant && !force_prompt && wanted.iter().all(|s| grants.covers(catalog, client, s)) {
        return ConsentPlan::Covered;
    }
    // Incremental consent: ask only for what is not granted yet. Members of a tenant whose
    // administrator granted the app for everyone are asked only for what that left out.
    let new: Vec<String> =
        wanted.into_iter().filter(|s| force_prompt || !grants.covers(catalog, client, s)).cloned().collect();
    let items = items(catalog, client, user, tenant, &new);
    let durations = durations(catalog, client);
    if client.spec.first_party {
        // Granted without asking, for the user: tenant-level scopes need their tenant's
        // administrator, who is asked nothing here either.
        let default = durations.iter().find(|d| d.default).map(|d| d.seconds).unwrap_or(DEFAULT_CONSENT);
        let scopes = items.iter().filter(|i| i.grantable && !i.tenant_level).map(|i| i.scope.clone()).collect();
        return ConsentPlan::Automatic { scopes, seconds: default };
    }
    ConsentPlan::Ask { items, durations }
}

/// The consent screen's rows, for `user` acting in `tenant`.
pub fn items(
    catalog: &Catalog,
    client: &Client,
    user: &User,
    tenant: Option<&str>,
    scopes: &[String],
) -> Vec<ScopeItem> {
    let policy = catalog.policy_for(client);
    let mut policy_mandatory = policy.map(|p| p.spec.consent.mandatory_scopes.clone()).unwrap_or_default();
    // Self-registered clients: the registration's mandatory scopes cannot be unchecked.
    if client.origin != crate::catalog::ClientOrigin::Declared
        && let Some(registration) = policy.and_then(|p| p.spec.registration.as_ref())
    {
        policy_mandatory.extend(crate::catalog::dynamic::mandatory_scopes(registration));
    }
    let roles = user.roles_in(tenant);
    let admin = is_tenant_admin(catalog, client, user, tenant);
    scopes
        .iter()
        .filter_map(|s| {
            let spec = catalog.scope(&client.key.namespace, s)?;
            let tenant_level = spec.level == ScopeLevel::Tenant;
            let missing: Vec<&String> = spec.required_roles.iter().filter(|r| !roles.contains(r)).collect();
            let reason = if !missing.is_empty() {
                let missing: Vec<&str> = missing.iter().map(|r| r.as_str()).collect();
                Some(format!("requires the role {}, which you do not have", missing.join(", ")))
            } else if tenant_level && tenant.is_none() {
                Some("it is granted for a tenant, and this request is not made in one".to_string())
            } else if tenant_level && !admin {
                Some(format!("only an administrator of {} can grant it", tenant.unwrap_or_default()))
            } else {
                None
            };
            Some(ScopeItem {
                scope: s.clone(),
                description: spec.description.clone(),
                mandatory: spec.mandatory || policy_mandatory.contains(s),
                grantable: reason.is_none(),
                reason,
                tenant_level,
            })
        })
        .collect()
}

/// Whether `user`, acting in `tenant`, may still hold `scope` for `client`: the app still
/// lists it in `allowedScopes`, the user still has every role its Scope requires there,
/// and a tenant-level scope is held only in a tenant. Consents and refresh tokens carry
/// what was granted once; this is what they are narrowed by at every covered authorization
/// and every refresh, so that losing a role (at the identity source, seen at the next
/// login) or an app losing a scope takes effect without anyone revoking anything.
pub fn entitled(catalog: &Catalog, client: &Client, user: &User, tenant: Option<&str>, scope: &str) -> bool {
    if is_builtin(scope) {
        return true;
    }
    let allowed = client.spec.allowed_scopes.iter().any(|s| s == scope);
    let roles = user.roles_in(tenant);
    allowed
        && catalog.scope(&client.key.namespace, scope).is_some_and(|spec| {
            spec.required_roles.iter().all(|r| roles.contains(r))
                && (spec.level == ScopeLevel::User || tenant.is_some())
        })
}

/// Applies the user's choices: mandatory scopes are always included (and must be
/// grantable), optional ones only when selected and grantable.
pub fn granted(items: &[ScopeItem], selected: &[String]) -> Result<Vec<String>, OAuthError> {
    let mut out = Vec::new();
    for item in items {
        if item.mandatory {
            if !item.grantable {
                return Err(OAuthError::access_denied(format!(
                    "the mandatory scope {} cannot be granted: {}",
                    item.scope,
                    item.reason.as_deref().unwrap_or("not allowed")
                )));
            }
            out.push(item.scope.clone());
        } else if item.grantable && selected.contains(&item.scope) {
            out.push(item.scope.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(scope: &str, mandatory: bool, grantable: bool) -> ScopeItem {
        ScopeItem {
            scope: scope.into(),
            description: String::new(),
            mandatory,
            grantable,
            reason: None,
            tenant_level: false,
        }
    }

    #[test]
    fn duration_labels() {
        assert_eq!(human_duration(86_400), "1 day");
        assert_eq!(human_duration(30 * 86_400), "30 days");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(90), "90 seconds");
    }

    #[test]
    fn mandatory_always_optional_when_selected_never_ungrantable() {
        let items = [item("a", true, true), item("b", false, true), item("c", false, false)];
        assert_eq!(granted(&items, &[]).unwrap(), ["a"]);
        assert_eq!(granted(&items, &["b".into(), "c".into()]).unwrap(), ["a", "b"], "c needs a role");
        let blocked = [item("a", true, false)];
        assert_eq!(granted(&blocked, &[]).unwrap_err().code, crate::oauth::ErrorCode::AccessDenied);
    }
}
