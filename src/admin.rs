//! Administering clients and consents: the one listing of declared apps and self-registered
//! clients with the filters of `inbound clients` and of the operator's admin API
//! (`/admin/clients`), the consent filters, and who may use that API.

use serde::Serialize;

use crate::api::{InboundAppSpec, ObjectKey};
use crate::store::{Consent, RegisteredClient};

/// The kinds of client in a listing.
pub const CLIENT_KINDS: [&str; 3] = ["declared", "registered", "metadata-document"];

/// Which clients a command applies to. Every set condition must hold.
#[derive(Clone, Debug, Default)]
pub struct ClientFilter {
    /// One of [`CLIENT_KINDS`].
    pub kind: Option<String>,
    /// Carries every one of these tags.
    pub tags: Vec<String>,
    /// May use this grant type.
    pub grant_type: Option<String>,
    pub id_equals: Option<String>,
    pub id_contains: Option<String>,
    pub id_in: Vec<String>,
    pub name_equals: Option<String>,
    pub name_contains: Option<String>,
    /// A glob (`*` any run, `?` one character), case-insensitive, over the client name.
    pub name_matches: Option<String>,
    pub created_before: Option<i64>,
    pub created_after: Option<i64>,
    pub last_used_before: Option<i64>,
    pub last_used_after: Option<i64>,
}

impl ClientFilter {
    pub fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.tags.is_empty()
            && self.grant_type.is_none()
            && self.id_equals.is_none()
            && self.id_contains.is_none()
            && self.id_in.is_empty()
            && self.name_equals.is_none()
            && self.name_contains.is_none()
            && self.name_matches.is_none()
            && self.created_before.is_none()
            && self.created_after.is_none()
            && self.last_used_before.is_none()
            && self.last_used_after.is_none()
    }

    /// Times a declared app does not have (its creation and last use are not in the store)
    /// never match a time condition.
    pub fn matches(&self, client: &ClientSummary) -> bool {
        let name = client.client_name.as_str();
        let lower = name.to_lowercase();
        let before = |t: Option<i64>, bound: Option<i64>| bound.is_none_or(|b| t.is_some_and(|t| t < b));
        let after = |t: Option<i64>, bound: Option<i64>| bound.is_none_or(|b| t.is_some_and(|t| t > b));
        self.kind.as_ref().is_none_or(|k| client.kind == k.as_str())
            && self.tags.iter().all(|t| client.tags.contains(t))
            && self.grant_type.as_ref().is_none_or(|g| client.grant_types.contains(g))
            && self.id_equals.as_ref().is_none_or(|id| client.client_id == *id)
            && self.id_contains.as_ref().is_none_or(|s| client.client_id.contains(s.as_str()))
            && (self.id_in.is_empty() || self.id_in.contains(&client.client_id))
            && self.name_equals.as_ref().is_none_or(|n| name == n.as_str())
            && self.name_contains.as_ref().is_none_or(|s| lower.contains(&s.to_lowercase()))
            && self.name_matches.as_ref().is_none_or(|g| glob(&g.to_lowercase(), &lower))
            && before(client.created, self.created_before)
            && after(client.created, self.created_after)
            && before(client.last_used, self.last_used_before)
            && after(client.last_used, self.last_used_after)
    }
}

/// One client as listed: a declared InboundApp, or a self-registered client (never a secret
/// or a token hash).
#[derive(Clone, Debug, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    /// `declared` (an InboundApp), `registered` (RFC 7591) or `metadata-document` (the
    /// client id is its document's URL).
    pub kind: &'static str,
    pub client_name: String,
    /// The InboundApp, `namespace/name` (declared apps).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub app: String,
    /// The ConsentPolicy that admitted it, `namespace/name` (self-registered clients).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy: String,
    /// A declared app's `spec.tags`; a self-registered client's, as administrators set them.
    pub tags: Vec<String>,
    pub grant_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub redirect_uris: Vec<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_used_at: String,
    /// The namespace permission to see or manage it is checked in: the app's, or the
    /// admitting policy's.
    #[serde(skip)]
    pub namespace: String,
    #[serde(skip)]
    created: Option<i64>,
    #[serde(skip)]
    last_used: Option<i64>,
}

fn timestamp(t: i64) -> String {
    jiff::Timestamp::from_second(t).map(|t| t.to_string()).unwrap_or_default()
}

impl ClientSummary {
    /// A self-registered client.
    pub fn registered(c: &RegisteredClient) -> ClientSummary {
        let text = |k: &str| c.metadata.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let texts = |k: &str| -> Vec<String> {
            c.metadata
                .get(k)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let document = crate::protocol::client_id::is_metadata_document_url(&c.client_id);
        let mut grant_types = texts("grant_types");
        if grant_types.is_empty() {
            // RFC 7591 §2: omitted means authorization_code.
            grant_types.push("authorization_code".into());
        }
        ClientSummary {
            client_id: c.client_id.clone(),
            kind: if document { "metadata-document" } else { "registered" },
            client_name: text("client_name"),
            app: String::new(),
            policy: c.policy.to_string(),
            tags: c.tags.clone(),
            grant_types,
            token_endpoint_auth_method: text("token_endpoint_auth_method"),
            redirect_uris: texts("redirect_uris"),
            scope: text("scope"),
            source: c.source.clone(),
            created_at: timestamp(c.created_at),
            last_used_at: timestamp(c.last_used_at),
            namespace: c.policy.namespace.clone(),
            created: Some(c.created_at),
            last_used: Some(c.last_used_at),
        }
    }

    /// A declared InboundApp with its client id.
    pub fn declared(key: &ObjectKey, client_id: &str, spec: &InboundAppSpec) -> ClientSummary {
        ClientSummary {
            client_id: client_id.to_string(),
            kind: "declared",
            client_name: spec.display_name.clone(),
            app: key.to_string(),
            policy: String::new(),
            tags: spec.tags.clone(),
            grant_types: spec.grant_types.iter().map(|g| g.as_str().to_string()).collect(),
            token_endpoint_auth_method: spec.auth_method().as_str().to_string(),
            redirect_uris: spec.redirect_uris.clone(),
            scope: spec.allowed_scopes.join(" "),
            source: String::new(),
            created_at: String::new(),
            last_used_at: String::new(),
            namespace: key.namespace.clone(),
            created: None,
            last_used: None,
        }
    }
}

/// A bulk change of self-registered clients' tags (`inbound clients tag`, `PATCH
/// /admin/clients`): `add` first, then `remove`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagChange {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// At most this many tags per client, of at most 63 characters each.
const MAX_TAGS: usize = 32;

impl TagChange {
    /// Tags as labels are written: 1–63 letters, digits, `-`, `_`, `.`, `:` or `/`.
    pub fn check(&self) -> Result<(), String> {
        if self.add.is_empty() && self.remove.is_empty() {
            return Err("give tags to add or to remove".into());
        }
        for tag in self.add.iter().chain(&self.remove) {
            let valid = (1..=63).contains(&tag.len())
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
            if !valid {
                return Err(format!("tag {tag:?}: 1 to 63 letters, digits, '-', '_', '.', ':' or '/'"));
            }
        }
        Ok(())
    }

    /// `tags` after the change (order kept, no duplicates); None when it changes nothing.
    pub fn apply(&self, tags: &[String]) -> Result<Option<Vec<String>>, String> {
        let mut next: Vec<String> = tags.to_vec();
        for t in &self.add {
            if !next.contains(t) {
                next.push(t.clone());
            }
        }
        next.retain(|t| !self.remove.contains(t));
        if next.len() > MAX_TAGS {
            return Err(format!("a client has at most {MAX_TAGS} tags"));
        }
        Ok((next != tags).then_some(next))
    }
}

/// The client summaries as aligned columns (`inbound clients list`), one line each after a
/// header; long names are cut to their column.
pub fn table(clients: &[ClientSummary]) -> String {
    let mut out = format!(
        "{:<38} {:<17} {:<28} {:<20} {:<20} {:<22} {:<22} REDIRECT URIS\n",
        "CLIENT ID", "KIND", "NAME", "TAGS", "AUTH", "CREATED", "LAST USED"
    );
    let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    for c in clients {
        out.push_str(&format!(
            "{:<38} {:<17} {:<28} {:<20} {:<20} {:<22} {:<22} {}\n",
            c.client_id,
            c.kind,
            c.client_name.chars().take(28).collect::<String>(),
            or_dash(&c.tags.join(",")),
            c.token_endpoint_auth_method,
            or_dash(&c.created_at),
            or_dash(&c.last_used_at),
            c.redirect_uris.join(",")
        ));
    }
    out
}

/// Decides who may manage registered clients through the admin API. In operator mode:
/// Kubernetes (TokenReview, then SubjectAccessReview on `registeredclients.inbound.dev`).
#[async_trait::async_trait]
pub trait AdminAuthorizer: Send + Sync {
    /// The caller's name when `token` authenticates and may `verb` (`list` | `delete`)
    /// `resource` (`registeredclients` | `consents`, virtual resources of `inbound.dev`) in
    /// `namespace` (the namespace of the app, or of the policy that admitted the client).
    async fn authorize(&self, token: &str, verb: &str, resource: &str, namespace: &str) -> Result<String, AdminDenied>;
}

/// The virtual resource the admin API authorizes for registered clients.
pub const REGISTERED_CLIENTS: &str = "registeredclients";
/// The resource the admin API authorizes listing declared apps with (`kubectl get iapp`).
pub const INBOUND_APPS: &str = "inboundapps";
/// The virtual resource the admin API authorizes for consents.
pub const CONSENTS: &str = "consents";

#[derive(Debug, thiserror::Error)]
pub enum AdminDenied {
    #[error("the bearer token does not authenticate")]
    Unauthenticated,
    #[error("{0} may not {1} {2}.inbound.dev in namespace {3}")]
    Forbidden(String, String, String, String),
    #[error("cannot check the caller: {0}")]
    Unavailable(String),
    #[error("too many authentication attempts; retry shortly")]
    Throttled,
}

impl ClientFilter {
    /// From query parameters named like the CLI flags (`name_contains`, `last_used_before`...).
    pub fn from_query(pairs: &[(String, String)], now: i64) -> Result<ClientFilter, String> {
        let mut filter = ClientFilter::default();
        for (key, value) in pairs {
            match key.as_str() {
                "kind" if CLIENT_KINDS.contains(&value.as_str()) => filter.kind = Some(value.clone()),
                "kind" => return Err(format!("kind must be one of {}", CLIENT_KINDS.join(", "))),
                "tag" => filter.tags.push(value.clone()),
                "grant_type" => filter.grant_type = Some(value.clone()),
                "id" => filter.id_equals = Some(value.clone()),
                "id_contains" => filter.id_contains = Some(value.clone()),
                "id_in" => filter.id_in.extend(value.split(',').map(str::to_string)),
                "name" => filter.name_equals = Some(value.clone()),
                "name_contains" => filter.name_contains = Some(value.clone()),
                "name_matches" => filter.name_matches = Some(value.clone()),
                "created_before" => filter.created_before = Some(parse_time(value, now)?),
                "created_after" => filter.created_after = Some(parse_time(value, now)?),
                "last_used_before" => filter.last_used_before = Some(parse_time(value, now)?),
                "last_used_after" => filter.last_used_after = Some(parse_time(value, now)?),
                other => return Err(format!("unknown filter {other:?}")),
            }
        }
        Ok(filter)
    }
}

/// Which consents `inbound consents list|revoke` and `/admin/consents` apply to. Every set
/// condition must hold. Only active consents (not revoked, not expired) are ever selected.
#[derive(Clone, Debug, Default)]
pub struct ConsentFilter {
    pub id: Option<String>,
    /// The app's client id.
    pub client_id: Option<String>,
    /// The user's subject.
    pub subject: Option<String>,
    pub tenant: Option<String>,
    /// Granted this scope (among others).
    pub scope: Option<String>,
    /// Who granted it (a user for themselves, or a tenant administrator).
    pub granted_by: Option<String>,
    pub created_before: Option<i64>,
    pub created_after: Option<i64>,
    pub expires_before: Option<i64>,
    pub expires_after: Option<i64>,
}

impl ConsentFilter {
    pub fn is_empty(&self) -> bool {
        self.id.is_none()
            && self.client_id.is_none()
            && self.subject.is_none()
            && self.tenant.is_none()
            && self.scope.is_none()
            && self.granted_by.is_none()
            && self.created_before.is_none()
            && self.created_after.is_none()
            && self.expires_before.is_none()
            && self.expires_after.is_none()
    }

    pub fn matches(&self, consent: &Consent) -> bool {
        self.id.as_ref().is_none_or(|id| consent.id == *id)
            && self.client_id.as_ref().is_none_or(|c| consent.client_id == *c)
            && self.subject.as_ref().is_none_or(|s| consent.subject == *s)
            && self.tenant.as_ref().is_none_or(|t| consent.tenant.as_deref() == Some(t.as_str()))
            && self.scope.as_ref().is_none_or(|s| consent.scopes.contains(s))
            && self.granted_by.as_ref().is_none_or(|g| consent.granted_by == *g)
            && self.created_before.is_none_or(|t| consent.created_at < t)
            && self.created_after.is_none_or(|t| consent.created_at > t)
            && self.expires_before.is_none_or(|t| consent.expires_at < t)
            && self.expires_after.is_none_or(|t| consent.expires_at > t)
    }

    /// From query parameters named like the CLI flags (`client_id`, `expires_before`...).
    pub fn from_query(pairs: &[(String, String)], now: i64) -> Result<ConsentFilter, String> {
        let mut filter = ConsentFilter::default();
        for (key, value) in pairs {
            let text = Some(value.clone());
            match key.as_str() {
                "id" => filter.id = text,
                "client_id" => filter.client_id = text,
                "subject" => filter.subject = text,
                "tenant" => filter.tenant = text,
                "scope" => filter.scope = text,
                "granted_by" => filter.granted_by = text,
                "created_before" => filter.created_before = Some(parse_time(value, now)?),
                "created_after" => filter.created_after = Some(parse_time(value, now)?),
                "expires_before" => filter.expires_before = Some(parse_time(value, now)?),
                "expires_after" => filter.expires_after = Some(parse_time(value, now)?),
                other => return Err(format!("unknown filter {other:?}")),
            }
        }
        Ok(filter)
    }
}

/// One consent as listed.
#[derive(Debug, Serialize)]
pub struct ConsentSummary {
    pub id: String,
    pub client_id: String,
    /// The app's display name, when the client still exists.
    pub app: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub scopes: Vec<String>,
    pub granted_by: String,
    pub created_at: String,
    pub expires_at: String,
}

impl ConsentSummary {
    pub fn of(consent: &Consent, app: String) -> ConsentSummary {
        let time = |t: i64| jiff::Timestamp::from_second(t).map(|t| t.to_string()).unwrap_or_default();
        ConsentSummary {
            id: consent.id.clone(),
            client_id: consent.client_id.clone(),
            app,
            subject: consent.subject.clone(),
            tenant: consent.tenant.clone(),
            scopes: consent.scopes.clone(),
            granted_by: consent.granted_by.clone(),
            created_at: time(consent.created_at),
            expires_at: time(consent.expires_at),
        }
    }
}

/// The consent summaries as aligned columns (`inbound consents list`).
pub fn consent_table(consents: &[ConsentSummary]) -> String {
    let mut out = format!(
        "{:<34} {:<24} {:<38} {:<10} {:<22} {:<22} SCOPES\n",
        "CONSENT ID", "APP", "SUBJECT", "TENANT", "CREATED", "EXPIRES"
    );
    for c in consents {
        out.push_str(&format!(
            "{:<34} {:<24} {:<38} {:<10} {:<22} {:<22} {}\n",
            c.id,
            c.app.chars().take(24).collect::<String>(),
            c.subject,
            c.tenant.as_deref().unwrap_or("-"),
            c.created_at,
            c.expires_at,
            c.scopes.join(" ")
        ));
    }
    out
}

/// Parses a time bound: RFC 3339 (`2026-11-01T00:00:00Z`), a date (`2026-11-01`, UTC
/// midnight), or an age (`30d`, `12h`: that long before `now`).
pub fn parse_time(value: &str, now: i64) -> Result<i64, String> {
    if let Ok(t) = value.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    if let Ok(d) = value.parse::<jiff::civil::Date>() {
        return d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp().as_second()).map_err(|e| e.to_string());
    }
    match crate::api::DurationString(value.to_string()).parse() {
        Ok(age) => Ok(now - age.as_secs() as i64),
        Err(_) => Err(format!("{value:?} is not a time (RFC 3339, YYYY-MM-DD, or an age such as 30d)")),
    }
}

/// `*` matches any run of characters, `?` exactly one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Answers of the admin API's authorization checks, remembered for a short while so that a
/// caller repeating a bad token (or one listing many namespaces) costs the API server one
/// review, not one per request. Keyed by a digest of the token, never the token; bounded.
#[derive(Debug)]
pub struct ReviewCache<V> {
    entries: std::collections::HashMap<(Vec<u8>, String), (V, i64)>,
    capacity: usize,
}

impl<V: Clone> ReviewCache<V> {
    pub fn new(capacity: usize) -> Self {
        ReviewCache { entries: std::collections::HashMap::new(), capacity }
    }

    /// The remembered answer for (`token_digest`, `question`), if not expired at `now`.
    pub fn get(&self, token_digest: &[u8], question: &str, now: i64) -> Option<V> {
        let (value, until) = self.entries.get(&(token_digest.to_vec(), question.to_string()))?;
        (now < *until).then(|| value.clone())
    }

    /// Remembers `value` until `until`. When full, expired entries go first; if none have
    /// expired everything is forgotten (a flood of distinct tokens must not grow memory).
    pub fn put(&mut self, token_digest: &[u8], question: &str, value: V, until: i64, now: i64) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, u)| now < *u);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert((token_digest.to_vec(), question.to_string()), (value, until));
    }
}

/// A token bucket: at most `burst` reviews at once, refilled at `per_second`. Bounds the
/// TokenReviews that unauthenticated requests can make the API server do.
#[derive(Debug)]
pub struct Throttle {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: f64,
}

impl Throttle {
    pub fn new(burst: u32, per_second: u32) -> Self {
        Throttle { tokens: burst as f64, burst: burst as f64, per_second: per_second as f64, last: 0.0 }
    }

    /// Takes one token at `now` (seconds, any monotonic origin); false when none is left.
    pub fn try_take(&mut self, now: f64) -> bool {
        self.tokens = (self.tokens + (now - self.last).max(0.0) * self.per_second).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectKey;

    #[test]
    fn review_cache_expires_and_stays_bounded() {
        let mut cache = ReviewCache::new(2);
        cache.put(b"a", "authn", false, 100, 0);
        assert_eq!(cache.get(b"a", "authn", 99), Some(false));
        assert_eq!(cache.get(b"a", "authn", 100), None, "expired");
        assert_eq!(cache.get(b"a", "list default", 50), None, "another question");
        cache.put(b"b", "authn", true, 100, 0);
        cache.put(b"c", "authn", true, 100, 0);
        assert!(cache.entries.len() <= 2);
        assert_eq!(cache.get(b"c", "authn", 1), Some(true));
    }

    #[test]
    fn throttle_allows_a_burst_then_the_rate() {
        let mut throttle = Throttle::new(3, 2);
        assert!((0..3).all(|_| throttle.try_take(10.0)));
        assert!(!throttle.try_take(10.0), "burst spent");
        assert!(throttle.try_take(10.5), "one more after half a second at 2/s");
        assert!(!throttle.try_take(10.5));
    }

    fn client(id: &str, name: &str, created: i64, used: i64) -> RegisteredClient {
        RegisteredClient {
            client_id: id.into(),
            policy: ObjectKey { namespace: "mcp".into(), name: "p".into() },
            metadata: serde_json::json!({ "client_name": name, "token_endpoint_auth_method": "none" }),
            secret_hash: None,
            registration_token_hash: None,
            dedupe_key: None,
            source: "127.0.0.1".into(),
            created_at: created,
            last_used_at: used,
            tags: Vec::new(),
        }
    }

    #[test]
    fn filters_combine() {
        let clients = [
            client("a1", "Claude Desktop", 100, 500),
            client("b2", "Cursor", 200, 250),
            client("c3", "VS Code", 300, 300),
        ];
        let clients: Vec<ClientSummary> = clients.iter().map(ClientSummary::registered).collect();
        let select = |f: &ClientFilter| -> Vec<&str> {
            clients.iter().filter(|c| f.matches(c)).map(|c| c.client_id.as_str()).collect()
        };
        assert_eq!(select(&ClientFilter::default()), ["a1", "b2", "c3"]);
        assert_eq!(select(&ClientFilter { name_contains: Some("cur".into()), ..Default::default() }), ["b2"]);
        assert_eq!(select(&ClientFilter { name_equals: Some("Cursor".into()), ..Default::default() }), ["b2"]);
        assert_eq!(select(&ClientFilter { name_matches: Some("*code".into()), ..Default::default() }), ["c3"]);
        assert_eq!(select(&ClientFilter { name_matches: Some("c?aude*".into()), ..Default::default() }), ["a1"]);
        assert_eq!(select(&ClientFilter { id_in: vec!["a1".into(), "c3".into()], ..Default::default() }), ["a1", "c3"]);
        assert_eq!(select(&ClientFilter { id_contains: Some("2".into()), ..Default::default() }), ["b2"]);
        assert_eq!(select(&ClientFilter { created_after: Some(150), ..Default::default() }), ["b2", "c3"]);
        assert_eq!(
            select(&ClientFilter { last_used_before: Some(400), created_before: Some(250), ..Default::default() }),
            ["b2"]
        );
    }

    #[test]
    fn kinds_tags_and_grant_types_filter_and_tags_change_in_bulk() {
        let mut tagged = client("a1", "Claude", 100, 100);
        tagged.tags = vec!["ai".into()];
        let spec: InboundAppSpec = serde_json::from_value(serde_json::json!({
            "displayName": "Agent", "clientType": "confidential", "grantTypes": ["client_credentials"], "tags": ["ai", "billing"]
        }))
        .unwrap();
        let key = ObjectKey { namespace: "team".into(), name: "agent".into() };
        let listed = [ClientSummary::registered(&tagged), ClientSummary::declared(&key, "d1", &spec)];
        let select = |query: &[(&str, &str)]| -> Vec<&str> {
            let pairs: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let f = ClientFilter::from_query(&pairs, 1000).unwrap();
            listed.iter().filter(|c| f.matches(c)).map(|c| c.client_id.as_str()).collect()
        };
        assert_eq!(select(&[("tag", "ai")]), ["a1", "d1"]);
        assert_eq!(select(&[("tag", "ai"), ("tag", "billing")]), ["d1"], "every tag");
        assert_eq!(select(&[("kind", "declared")]), ["d1"]);
        assert_eq!(select(&[("grant_type", "authorization_code")]), ["a1"], "RFC 7591's default");
        assert_eq!(select(&[("created_after", "1970-01-01")]), ["a1"], "a declared app has no creation time here");
        assert!(ClientFilter::from_query(&[("kind".into(), "other".into())], 0).is_err());
        assert_eq!(listed[1].namespace, "team");

        let change = TagChange { add: vec!["b".into(), "a".into()], remove: vec!["c".into()] };
        assert_eq!(change.apply(&["c".into(), "a".into()]).unwrap(), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(change.apply(&["a".into(), "b".into()]).unwrap(), None, "nothing to change");
        assert!(TagChange::default().check().is_err());
        assert!(TagChange { add: vec!["has space".into()], remove: vec![] }.check().is_err());
        let many = TagChange { add: (0..40).map(|i| format!("t{i}")).collect(), remove: vec![] };
        assert!(many.apply(&[]).is_err(), "bounded");
    }

    #[test]
    fn consent_filters_combine_and_parse_from_queries() {
        let consent = |id: &str, client: &str, tenant: Option<&str>, scopes: &[&str], created: i64| Consent {
            id: id.into(),
            client_id: client.into(),
            subject: "alice".into(),
            tenant: tenant.map(str::to_string),
            granted_by: if tenant.is_some() { "admin-carol".into() } else { "alice".into() },
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: created,
            expires_at: created + 1000,
        };
        let all = [
            consent("c1", "cli", None, &["billing:read"], 100),
            consent("c2", "portal", Some("acme"), &["billing:read", "billing:refund"], 200),
            consent("c3", "portal", Some("globex"), &["profile"], 300),
        ];
        let select = |query: &[(&str, &str)]| -> Vec<String> {
            let pairs: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let filter = ConsentFilter::from_query(&pairs, 10_000).unwrap();
            all.iter().filter(|c| filter.matches(c)).map(|c| c.id.clone()).collect()
        };
        assert_eq!(select(&[]), ["c1", "c2", "c3"]);
        assert_eq!(select(&[("client_id", "portal")]), ["c2", "c3"]);
        assert_eq!(select(&[("client_id", "portal"), ("tenant", "acme")]), ["c2"]);
        assert_eq!(select(&[("scope", "billing:read")]), ["c1", "c2"]);
        assert_eq!(select(&[("granted_by", "admin-carol")]), ["c2", "c3"]);
        assert_eq!(select(&[("created_after", "1970-01-01T00:02:30Z")]), ["c2", "c3"]);
        assert_eq!(select(&[("expires_before", "1970-01-01T00:20:01Z")]), ["c1", "c2"]);
        let unknown = ConsentFilter::from_query(&[("colour".into(), "blue".into())], 0).unwrap_err();
        assert!(unknown.contains("colour"), "{unknown}");
        assert!(ConsentFilter::default().is_empty());
    }

    #[test]
    fn times_parse_as_instants_dates_or_ages() {
        assert_eq!(parse_time("1970-01-02T00:00:00Z", 0).unwrap(), 86_400);
        assert_eq!(parse_time("1970-01-02", 0).unwrap(), 86_400);
        assert_eq!(parse_time("1d", 200_000).unwrap(), 200_000 - 86_400);
        assert!(parse_time("yesterday", 0).is_err());
    }
}
