//! What a user is asked to consent to, and what a consent decision grants.

use serde::{Deserialize, Serialize};

use super::OAuthError;
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
    /// False when the user lacks a required role; `reason` says which.
    pub grantable: bool,
    pub reason: Option<String>,
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
    /// An active consent covers every requested scope.
    Covered(Consent),
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

/// Plans consent for `scopes` requested by `client` on behalf of `user`.
pub fn plan(
    catalog: &Catalog,
    client: &Client,
    user: &User,
    scopes: &[String],
    existing: Option<Consent>,
    force_prompt: bool,
) -> ConsentPlan {
    let wanted: Vec<&String> = scopes.iter().filter(|s| !is_builtin(s)).collect();
    if let Some(consent) = existing {
        if !force_prompt && wanted.iter().all(|s| consent.scopes.contains(s)) {
            return ConsentPlan::Covered(consent);
        }
        // Incremental consent: ask only for what is not granted yet.
        let new: Vec<String> =
            wanted.into_iter().filter(|s| !consent.scopes.contains(s) || force_prompt).cloned().collect();
        return ask_or_automatic(catalog, client, user, &new);
    }
    let all: Vec<String> = wanted.into_iter().cloned().collect();
    ask_or_automatic(catalog, client, user, &all)
}

fn ask_or_automatic(catalog: &Catalog, client: &Client, user: &User, scopes: &[String]) -> ConsentPlan {
    let items = items(catalog, client, user, scopes);
    let durations = durations(catalog, client);
    if client.spec.first_party {
        let default = durations.iter().find(|d| d.default).map(|d| d.seconds).unwrap_or(DEFAULT_CONSENT);
        let scopes = items.iter().filter(|i| i.grantable).map(|i| i.scope.clone()).collect();
        return ConsentPlan::Automatic { scopes, seconds: default };
    }
    ConsentPlan::Ask { items, durations }
}

/// The consent screen's rows.
pub fn items(catalog: &Catalog, client: &Client, user: &User, scopes: &[String]) -> Vec<ScopeItem> {
    let policy = catalog.policy_for(client);
    let mut policy_mandatory = policy.map(|p| p.spec.consent.mandatory_scopes.clone()).unwrap_or_default();
    // Self-registered clients: the registration's mandatory scopes cannot be unchecked.
    if client.origin != crate::catalog::ClientOrigin::Declared
        && let Some(registration) = policy.and_then(|p| p.spec.registration.as_ref())
    {
        policy_mandatory.extend(crate::catalog::dynamic::mandatory_scopes(registration));
    }
    scopes
        .iter()
        .filter_map(|s| {
            let spec = catalog.scope(&client.key.namespace, s)?;
            let missing: Vec<&String> = spec.required_roles.iter().filter(|r| !user.roles.contains(r)).collect();
            Some(ScopeItem {
                scope: s.clone(),
                description: spec.description.clone(),
                mandatory: spec.mandatory || policy_mandatory.contains(s),
                grantable: missing.is_empty(),
                reason: (!missing.is_empty()).then(|| {
                    let roles: Vec<&str> = missing.iter().map(|r| r.as_str()).collect();
                    format!("requires the role {}, which you do not have", roles.join(", "))
                }),
            })
        })
        .collect()
}

/// Whether `user` may still hold `scope` for `client`: the app still lists it in
/// `allowedScopes` and the user still has every role its Scope requires. Consents and
/// refresh tokens carry what was granted once; this is what they are narrowed by at every
/// covered authorization and every refresh, so that losing a role (at the identity
/// source, seen at the next login) or an app losing a scope takes effect without anyone
/// revoking anything.
pub fn entitled(catalog: &Catalog, client: &Client, user: &User, scope: &str) -> bool {
    if is_builtin(scope) {
        return true;
    }
    let allowed = client.spec.allowed_scopes.iter().any(|s| s == scope);
    allowed
        && catalog
            .scope(&client.key.namespace, scope)
            .is_some_and(|spec| spec.required_roles.iter().all(|r| user.roles.contains(r)))
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
        ScopeItem { scope: scope.into(), description: String::new(), mandatory, grantable, reason: None }
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
