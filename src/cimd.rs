//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document), as used by
//! the MCP authorization specification (2025-11-25): a `client_id` that is an `https` URL
//! names a JSON document describing the client, fetched by the authorization server.
//!
//! Fetching a URL chosen by an anonymous client is a server-side request forgery risk, so
//! [`CimdFetcher::fetch`] is deliberately strict:
//!
//! - the URL: `https`, a path other than `/`, no fragment, no userinfo, no `.`/`..`
//!   segments; `http` only for a loopback host and only when the policy allows private
//!   addresses (tests);
//! - the host must match the policy's allowed domains ([`pattern::domain_matches`]);
//! - every address the host resolves to must be public (see [`is_public_address`]) unless
//!   the policy allows private addresses. The check runs inside the HTTP client's DNS
//!   resolver, so the connection goes to exactly the addresses that were checked (no DNS
//!   rebinding window); IP-literal hosts are checked before the request. Proxies from the
//!   environment are ignored, since a proxy would resolve the name itself;
//! - no redirects, 5 s for the whole fetch, a 5 KiB body read incrementally, no
//!   compression;
//! - the document's `client_id` must equal the requested URL exactly, `redirect_uris` must
//!   be present, and the client is public (`token_endpoint_auth_method` absent or `none`) or
//!   proves itself with its own keys (`private_key_jwt` with `jwks_uri` or `jwks`), never a
//!   shared secret.
//!
//! Successful fetches are cached in memory per HTTP caching headers (`Cache-Control`
//! `max-age`/`s-maxage`, `no-store`/`no-cache`, `Expires`), 5 minutes without them,
//! at most 24 hours, at most 10,000 documents. Errors are never cached.
//!
//! Every [`CimdError`] message is safe to return to the client in `error_description`:
//! none reveals an internal address or a low-level network error (those are logged).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AGE, CACHE_CONTROL, DATE, EXPIRES, HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::protocol::loopback::is_loopback_host;
use crate::protocol::pattern;

/// Connect timeout and total timeout of one fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest accepted document.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;

/// How long after it expired a document's last good copy may stand in for a failed refetch.
pub const STALE_IF_ERROR: Duration = Duration::from_secs(3600);
/// Cache lifetime of a document served without caching headers.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest a document is cached, whatever its headers say.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Most documents kept in the cache.
pub const MAX_CACHE_ENTRIES: usize = 10_000;

/// What a policy allows for metadata-document clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CimdPolicy {
    /// Hosts a `client_id` URL may name: exact hosts or `*.example.com`
    /// (see [`pattern::domain_matches`]).
    pub allowed_domains: Vec<String>,
    /// Allow loopback, private, link-local and other non-public addresses (and `http` on
    /// loopback hosts). For tests and development only.
    pub allow_private_addresses: bool,
}

/// A client metadata document (RFC 7591 client metadata, plus whatever else it carries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadataDocument {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Every other member of the document.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Why a metadata document could not be used. Every message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    #[error("client_id is not a valid client metadata document URL: {0}")]
    InvalidClientId(String),
    #[error("the client_id host is not allowed to serve client metadata documents")]
    DomainNotAllowed,
    #[error("the client_id host resolves to a private, loopback or otherwise non-public address")]
    ForbiddenAddress,
    #[error("the client_id host could not be resolved")]
    Resolve,
    #[error("fetching the client metadata document timed out")]
    Timeout,
    #[error("the client metadata document could not be fetched")]
    Unreachable,
    #[error("the client metadata document URL answered with a redirect, which is not followed")]
    Redirect,
    #[error("fetching the client metadata document returned HTTP status {0}")]
    Status(u16),
    #[error("the client metadata document is larger than {} bytes", MAX_DOCUMENT_BYTES)]
    TooLarge,
    #[error("the client metadata document is invalid: {0}")]
    Invalid(String),
    #[error("the client_id in the client metadata document does not match the URL it was fetched from")]
    ClientIdMismatch,
}

/// What the OAuth core needs of Client ID Metadata Documents: the validated document a
/// `client_id` URL names. A trait, so that the core is handed its network client (like its
/// store) and never owns one.
#[async_trait::async_trait]
pub trait MetadataDocumentFetcher: Send + Sync {
    /// The validated document named by `client_id`, from a cache or fetched.
    async fn fetch(&self, client_id: &str, policy: &CimdPolicy) -> Result<Arc<ClientMetadataDocument>, CimdError>;
}

#[async_trait::async_trait]
impl MetadataDocumentFetcher for CimdFetcher {
    async fn fetch(&self, client_id: &str, policy: &CimdPolicy) -> Result<Arc<ClientMetadataDocument>, CimdError> {
        CimdFetcher::fetch(self, client_id, policy).await
    }
}

/// Fetches, validates and caches client metadata documents. Cheap to clone (shared state).
#[derive(Clone)]
pub struct CimdFetcher {
    inner: Arc<Inner>,
}

struct Inner {
    /// Resolver refuses non-public addresses.
    public_only: reqwest::Client,
    /// Resolver accepts every address (`allow_private_addresses`).
    any_address: reqwest::Client,
    timeout: Duration,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for CimdFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CimdFetcher").field("timeout", &self.inner.timeout).finish_non_exhaustive()
    }
}

impl CimdFetcher {
    /// A fetcher with the standard 5 s timeout.
    pub fn new() -> Result<Self, reqwest::Error> {
        Self::with_timeout(FETCH_TIMEOUT)
    }

    /// A fetcher whose connect and total timeouts are `timeout`.
    pub fn with_timeout(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            inner: Arc::new(Inner {
                public_only: http_client(timeout, false)?,
                any_address: http_client(timeout, true)?,
                timeout,
                cache: Mutex::new(Cache::default()),
            }),
        })
    }

    /// The validated document named by `client_id`, from the cache or fetched.
    pub async fn fetch(&self, client_id: &str, policy: &CimdPolicy) -> Result<Arc<ClientMetadataDocument>, CimdError> {
        let url = validate_client_id_url(client_id, policy.allow_private_addresses)?;
        let host = url.host_str().unwrap_or_default();
        if !policy.allowed_domains.iter().any(|allowed| pattern::domain_matches(allowed, host)) {
            return Err(CimdError::DomainNotAllowed);
        }
        if !policy.allow_private_addresses
            && let Some(ip) = literal_ip(&url)
            && !is_public_address(ip)
        {
            return Err(CimdError::ForbiddenAddress);
        }

        let key = (policy.allow_private_addresses, client_id.to_string());
        if let Some(doc) = self.cache().get(&key, Instant::now()) {
            return Ok(doc);
        }
        let downloaded = tokio::time::timeout(self.inner.timeout, self.download(&url, client_id, policy))
            .await
            .map_err(|_| CimdError::Timeout)
            .and_then(|d| d);
        let (doc, ttl) = match downloaded {
            Ok(fetched) => fetched,
            // Errors are never cached; but a host briefly down, or answering HTML, a 404 or a
            // challenge page (all seen from real clients' hosts), does not break its clients
            // at once: the last good copy serves for STALE_IF_ERROR after it expired.
            Err(e) => match self.cache().stale(&key, Instant::now()) {
                Some(doc) => {
                    tracing::warn!(client_id, error = %e, "client metadata document refetch failed; using the last good copy");
                    return Ok(doc);
                }
                None => return Err(e),
            },
        };
        let doc = Arc::new(doc);
        if let Some(ttl) = ttl {
            let now = Instant::now();
            self.cache().insert(key, Arc::clone(&doc), now + ttl, now);
        }
        Ok(doc)
    }

    /// Drops any cached copy of `client_id`'s document (e.g. when the client is deleted).
    pub fn forget(&self, client_id: &str) {
        self.cache().entries.retain(|(_, id), _| id != client_id);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn download(
        &self,
        url: &Url,
        client_id: &str,
        policy: &CimdPolicy,
    ) -> Result<(ClientMetadataDocument, Option<Duration>), CimdError> {
        let client = if policy.allow_private_addresses { &self.inner.any_address } else { &self.inner.public_only };
        let mut response =
            client.get(url.clone()).header(ACCEPT, "application/json").send().await.map_err(request_error)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(CimdError::Redirect);
        }
        if status != reqwest::StatusCode::OK {
            return Err(CimdError::Status(status.as_u16()));
        }
        if response.content_length().is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64) {
            return Err(CimdError::TooLarge);
        }
        let ttl = cache_ttl(response.headers());
        let mut body = Vec::with_capacity(1024);
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(CimdError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((parse_document(&body, client_id)?, ttl))
    }
}

fn http_client(timeout: Duration, allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    guarded_client(
        timeout,
        allow_private,
        concat!("inbound/", env!("CARGO_PKG_VERSION"), " (client metadata document fetcher)"),
    )
}

/// An HTTP client for URLs that someone other than the operator chose: no redirects, no
/// proxy, and (unless `allow_private`) a resolver that refuses names with any non-public
/// address. IP-literal hosts bypass the resolver: check them with [`is_public_url`].
pub fn guarded_client(
    timeout: Duration,
    allow_private: bool,
    user_agent: &'static str,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(user_agent)
        .build()
}

/// Whether a URL may be fetched by a [`guarded_client`] without `allow_private`: `https`,
/// and not an IP literal outside the public ranges.
pub fn is_public_url(url: &Url) -> bool {
    url.scheme() == "https" && literal_ip(url).is_none_or(is_public_address)
}

/// Maps a transport error to a client-safe error; the details go to the log.
fn request_error(error: reqwest::Error) -> CimdError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<ResolveRefused>() {
            return match refused {
                ResolveRefused::NonPublic => CimdError::ForbiddenAddress,
                ResolveRefused::Failed => CimdError::Resolve,
            };
        }
        source = e.source();
    }
    tracing::debug!(error = %error, "client metadata document fetch failed");
    if error.is_timeout() { CimdError::Timeout } else { CimdError::Unreachable }
}

/// Why the guarded resolver refused a name.
#[derive(Debug, thiserror::Error)]
enum ResolveRefused {
    #[error("resolves to a non-public address")]
    NonPublic,
    #[error("could not be resolved")]
    Failed,
}

/// DNS resolution that refuses names with any non-public address: the addresses it
/// returns are the ones the connection uses, so check and connect cannot disagree.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => addrs.collect(),
                Err(error) => {
                    tracing::debug!(%host, %error, "client metadata document host did not resolve");
                    return Err(Box::new(ResolveRefused::Failed) as _);
                }
            };
            if addrs.is_empty() {
                return Err(Box::new(ResolveRefused::Failed) as _);
            }
            if !allow_private && addrs.iter().any(|a| !is_public_address(a.ip())) {
                tracing::info!(%host, "client metadata document host resolves to a non-public address; refused");
                return Err(Box::new(ResolveRefused::NonPublic) as _);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks a `client_id` before anything is fetched. `http` is accepted only for a loopback
/// host (`127.0.0.0/8`, `[::1]`, `localhost`) with `allow_private`; without it such a URL
/// gets [`CimdError::ForbiddenAddress`].
pub fn validate_client_id_url(client_id: &str, allow_private: bool) -> Result<Url, CimdError> {
    let invalid = |reason: &str| CimdError::InvalidClientId(reason.to_string());
    if client_id.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(invalid("it must not contain whitespace, control characters or backslashes"));
    }
    if client_id.contains('#') {
        return Err(invalid("it must not contain a fragment"));
    }
    if pattern::has_dot_segments(client_id) {
        return Err(invalid("it must not contain `.` or `..` path segments"));
    }
    let url = Url::parse(client_id).map_err(|_| invalid("it is not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not contain a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(invalid("it must not contain a fragment"));
    }
    if url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {
            if !allow_private {
                return Err(CimdError::ForbiddenAddress);
            }
        }
        _ => return Err(invalid("it must use https")),
    }
    if url.path().is_empty() || url.path() == "/" {
        return Err(invalid("it must have a path"));
    }
    Ok(url)
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(ip.into()),
        Host::Ipv6(ip) => Some(ip.into()),
        Host::Domain(_) => None,
    }
}

/// True for a globally routable unicast address. False for loopback, private (10/8,
/// 172.16/12, 192.168/16), CGNAT (100.64/10), link-local, unspecified, `0/8`, multicast,
/// broadcast and reserved (240/4), benchmarking (198.18/15), documentation ranges, IETF
/// protocol assignments, IPv6 unique-local (fc00::/7), site-local, everything outside
/// 2000::/3, Teredo, and the IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms of the
/// non-public IPv4 addresses.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_public = a == 0 // "this network", includes 0.0.0.0
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !non_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0; 6] {
        // ::/128, ::1 and the deprecated IPv4-compatible ::a.b.c.d: never public.
        return false;
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64 well-known prefix 64:ff9b::/96.
        return is_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4 2002::/16 embeds an IPv4 address.
        return is_public_v4(embedded(s[1], s[2]));
    }
    if s[0] & 0xe000 != 0x2000 {
        // Outside global unicast 2000::/3: ULA fc00::/7, link-local fe80::/10, site-local,
        // multicast ff00::/8, discard 100::/64, NAT64 local-use 64:ff9b:1::/48, ...
        return false;
    }
    let ietf_assignments = s[0] == 0x2001 && s[1] < 0x200; // 2001::/23, includes Teredo 2001::/32
    let documentation = (s[0] == 0x2001 && s[1] == 0xdb8) || (s[0] == 0x3fff && s[1] < 0x1000);
    !ietf_assignments && !documentation
}

/// Parses and validates a fetched body as the document for `client_id`.
pub fn parse_document(body: &[u8], client_id: &str) -> Result<ClientMetadataDocument, CimdError> {
    let invalid = |reason: &str| CimdError::Invalid(reason.to_string());
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| invalid("it is not valid JSON"))?;
    if !value.is_object() {
        return Err(invalid("it is not a JSON object"));
    }
    let doc: ClientMetadataDocument =
        serde_json::from_value(value).map_err(|e| CimdError::Invalid(format!("it does not describe a client: {e}")))?;
    if doc.client_id != client_id {
        return Err(CimdError::ClientIdMismatch);
    }
    if doc.extra.contains_key("client_secret") || doc.extra.contains_key("client_secret_expires_at") {
        return Err(invalid("it must not contain a client_secret"));
    }
    match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(method) if method.starts_with("client_secret_") => {
            return Err(invalid(
                "token_endpoint_auth_method must be `none`: a metadata document cannot carry a shared secret",
            ));
        }
        // RFC 7523 §2.2: the client proves itself with its own key, published beside the
        // document (ChatGPT's document does this and has no `none` fallback).
        Some("private_key_jwt") => {
            let uri = doc.extra.get("jwks_uri");
            let set = doc.extra.get("jwks");
            match (uri, set) {
                (Some(serde_json::Value::String(uri)), None)
                    if Url::parse(uri).is_ok_and(|u| u.scheme() == "https" || is_loopback_host(&u)) => {}
                (None, Some(serde_json::Value::Object(_))) => {}
                (Some(_), Some(_)) => return Err(invalid("jwks_uri and jwks must not both be present (RFC 7591 §2)")),
                _ => {
                    return Err(invalid(
                        "token_endpoint_auth_method private_key_jwt needs its keys: an https jwks_uri or a jwks object",
                    ));
                }
            }
        }
        Some(_) => return Err(invalid("token_endpoint_auth_method must be `none`, `private_key_jwt` or absent")),
    }
    if doc.redirect_uris.is_empty() {
        return Err(invalid("redirect_uris must list at least one redirect URI"));
    }
    for uri in &doc.redirect_uris {
        match Url::parse(uri) {
            Ok(parsed) if parsed.fragment().is_none() && !uri.contains('#') => {}
            _ => return Err(invalid("every redirect_uris entry must be an absolute URI without a fragment")),
        }
    }
    Ok(doc)
}

/// How long a response may be cached: `None` means not at all. `Cache-Control`
/// `no-store`/`no-cache` forbid caching; `s-maxage`, then `max-age` (less `Age`), then
/// `Expires` (relative to `Date` when present) give the lifetime; without any of them
/// [`DEFAULT_CACHE_TTL`]. Clamped to [`MAX_CACHE_TTL`].
fn cache_ttl(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    let mut s_maxage = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = || arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
            match name.to_ascii_lowercase().as_str() {
                "no-store" | "no-cache" => return None,
                "max-age" => max_age = Some(seconds()),
                "s-maxage" => s_maxage = Some(seconds()),
                _ => {}
            }
        }
    }
    let header = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let seconds = if let Some(lifetime) = s_maxage.or(max_age) {
        let age = header(AGE).and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
        lifetime.saturating_sub(age)
    } else if let Some(expires) = header(EXPIRES) {
        // An invalid Expires (like "0") means already expired.
        let http_date = |s: &str| jiff::fmt::rfc2822::parse(s.trim()).ok().map(|z| z.timestamp());
        let now = header(DATE).and_then(http_date).unwrap_or_else(jiff::Timestamp::now);
        match http_date(expires) {
            Some(expires) => u64::try_from(expires.as_second() - now.as_second()).unwrap_or(0),
            None => 0,
        }
    } else {
        DEFAULT_CACHE_TTL.as_secs()
    };
    let ttl = Duration::from_secs(seconds).min(MAX_CACHE_TTL);
    (!ttl.is_zero()).then_some(ttl)
}

type CacheKey = (bool, String);

#[derive(Default)]
struct Cache {
    entries: HashMap<CacheKey, CacheEntry>,
}

struct CacheEntry {
    doc: Arc<ClientMetadataDocument>,
    expires: Instant,
}

impl Cache {
    /// A fresh copy.
    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Arc<ClientMetadataDocument>> {
        match self.entries.get(key) {
            Some(entry) if entry.expires > now => Some(Arc::clone(&entry.doc)),
            Some(entry) if entry.expires + STALE_IF_ERROR > now => None,
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// An expired copy still within [`STALE_IF_ERROR`] (RFC 5861 §4), for when a refetch
    /// fails.
    fn stale(&mut self, key: &CacheKey, now: Instant) -> Option<Arc<ClientMetadataDocument>> {
        self.entries.get(key).filter(|e| e.expires + STALE_IF_ERROR > now).map(|e| Arc::clone(&e.doc))
    }

    /// Inserts, keeping at most [`MAX_CACHE_ENTRIES`]: when full, expired entries go
    /// first, then the one closest to expiry.
    fn insert(&mut self, key: CacheKey, doc: Arc<ClientMetadataDocument>, expires: Instant, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_CACHE_ENTRIES {
            self.entries.retain(|_, entry| entry.expires + STALE_IF_ERROR > now);
            if self.entries.len() >= MAX_CACHE_ENTRIES
                && let Some(oldest) = self.entries.iter().min_by_key(|(_, entry)| entry.expires).map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, CacheEntry { doc, expires });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn address_classification() {
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for ip in public {
            assert!(is_public_address(ip.parse().unwrap()), "{ip} is public");
        }
        let non_public = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "3fff::1",
        ];
        for ip in non_public {
            assert!(!is_public_address(ip.parse().unwrap()), "{ip} is not public");
        }
    }

    #[test]
    fn client_id_url_checks() {
        let ok = [
            ("https://app.example.com/client.json", false),
            ("https://app.example.com/oauth/client-metadata?v=2", false),
            ("https://app.example.com:8443/c", false),
            ("http://127.0.0.1:8080/client.json", true),
            ("http://localhost:8080/client.json", true),
            ("http://[::1]:8080/client.json", true),
        ];
        for (url, allow_private) in ok {
            assert!(validate_client_id_url(url, allow_private).is_ok(), "{url}");
        }
        let invalid = [
            ("https://app.example.com", "path"),
            ("https://app.example.com/", "path"),
            ("https://app.example.com/c#frag", "fragment"),
            ("https://app.example.com/c#", "fragment"),
            ("https://user@app.example.com/c", "user name"),
            ("https://user:pw@app.example.com/c", "user name"),
            ("https://app.example.com/a/../c", "`..`"),
            ("https://app.example.com/./c", "`..`"),
            ("https://app.example.com/%2e%2e/c", "`..`"),
            ("http://app.example.com/c", "https"),
            ("ftp://app.example.com/c", "https"),
            ("app.example.com/c", "absolute"),
            ("client-123", "absolute"),
            ("https://app.example.com/c d", "whitespace"),
            ("https://app.example.com\\c", "backslash"),
            ("urn:example:client", "host"),
        ];
        for (url, needle) in invalid {
            match validate_client_id_url(url, true) {
                Err(CimdError::InvalidClientId(reason)) => assert!(reason.contains(needle), "{url}: {reason}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        // http on loopback without allow_private is an SSRF refusal, elsewhere a scheme error.
        assert_eq!(validate_client_id_url("http://127.0.0.1:8080/c", false), Err(CimdError::ForbiddenAddress));
        assert_eq!(validate_client_id_url("http://localhost/c", false), Err(CimdError::ForbiddenAddress));
        assert!(matches!(validate_client_id_url("http://10.0.0.1/c", true), Err(CimdError::InvalidClientId(_))));
    }

    #[tokio::test]
    async fn refusals_before_any_request() {
        let fetcher = CimdFetcher::new().unwrap();
        let strict =
            CimdPolicy { allowed_domains: vec!["*.example.com".into(), "10.0.0.1".into()], ..Default::default() };
        assert_eq!(fetcher.fetch("https://evil.com/c.json", &strict).await, Err(CimdError::DomainNotAllowed));
        assert_eq!(fetcher.fetch("https://example.com/c.json", &strict).await, Err(CimdError::DomainNotAllowed));
        assert_eq!(fetcher.fetch("https://10.0.0.1/c.json", &strict).await, Err(CimdError::ForbiddenAddress));
        let loopback = CimdPolicy { allowed_domains: vec!["[::1]".into(), "localhost".into()], ..Default::default() };
        assert_eq!(fetcher.fetch("https://[::1]/c.json", &loopback).await, Err(CimdError::ForbiddenAddress));
        // `localhost` is a name: refused by the resolver, before any connection.
        assert_eq!(fetcher.fetch("https://localhost:1/c.json", &loopback).await, Err(CimdError::ForbiddenAddress));
    }

    fn doc_json(client_id: &str, extra: &str) -> Vec<u8> {
        format!(r#"{{"client_id":"{client_id}","client_name":"Agent","redirect_uris":["http://127.0.0.1/cb"]{extra}}}"#)
            .into_bytes()
    }

    #[test]
    fn document_validation() {
        let id = "https://app.example.com/client.json";
        let doc = parse_document(&doc_json(id, r#","software_id":"s1","x-custom":[1]"#), id).unwrap();
        assert_eq!(doc.client_name.as_deref(), Some("Agent"));
        assert_eq!(doc.software_id.as_deref(), Some("s1"));
        assert_eq!(doc.extra["x-custom"], serde_json::json!([1]));
        assert!(parse_document(&doc_json(id, r#","token_endpoint_auth_method":"none""#), id).is_ok());

        assert_eq!(parse_document(&doc_json("https://other.example.com/c", ""), id), Err(CimdError::ClientIdMismatch));
        assert_eq!(
            parse_document(&doc_json("https://app.example.com/client.json/", ""), id),
            Err(CimdError::ClientIdMismatch)
        );
        for (body, needle) in [
            (doc_json(id, r#","token_endpoint_auth_method":"client_secret_basic""#), "shared secret"),
            (doc_json(id, r#","token_endpoint_auth_method":"private_key_jwt""#), "needs its keys"),
            (doc_json(id, r#","token_endpoint_auth_method":"magic""#), "must be `none`"),
            (doc_json(id, r#","client_secret":"s3cret""#), "client_secret"),
            (format!(r#"{{"client_id":"{id}"}}"#).into_bytes(), "redirect_uris"),
            (format!(r#"{{"client_id":"{id}","redirect_uris":[]}}"#).into_bytes(), "redirect_uris"),
            (format!(r#"{{"client_id":"{id}","redirect_uris":["/cb"]}}"#).into_bytes(), "absolute"),
            (format!(r#"{{"client_id":"{id}","redirect_uris":["https://a/cb#x"]}}"#).into_bytes(), "fragment"),
            (format!(r#"{{"client_id":"{id}","redirect_uris":"https://a/cb"}}"#).into_bytes(), "does not describe"),
            (b"[1,2]".to_vec(), "JSON object"),
            (b"not json".to_vec(), "valid JSON"),
            (br#"{"client_name":"x"}"#.to_vec(), "client_id"),
        ] {
            match parse_document(&body, id) {
                Err(CimdError::Invalid(reason)) => assert!(reason.contains(needle), "{needle}: {reason}"),
                other => panic!("{needle}: {other:?}"),
            }
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cache_lifetime_from_headers() {
        let secs = |pairs: &[(&'static str, &str)]| cache_ttl(&headers(pairs)).map(|d| d.as_secs());
        assert_eq!(secs(&[]), Some(300));
        assert_eq!(secs(&[("cache-control", "max-age=60")]), Some(60));
        assert_eq!(secs(&[("cache-control", "public, Max-Age=\"120\"")]), Some(120));
        assert_eq!(secs(&[("cache-control", "max-age=60, s-maxage=30")]), Some(30));
        assert_eq!(secs(&[("cache-control", "max-age=60"), ("age", "50")]), Some(10));
        assert_eq!(secs(&[("cache-control", "max-age=60"), ("age", "90")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=0")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=abc")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=31536000")]), Some(24 * 3600));
        assert_eq!(secs(&[("cache-control", "no-store")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=60, no-cache")]), None);
        assert_eq!(secs(&[("cache-control", "public"), ("cache-control", "no-store")]), None);
        assert_eq!(
            secs(&[("date", "Wed, 21 Oct 2015 07:28:00 GMT"), ("expires", "Wed, 21 Oct 2015 07:38:00 GMT")]),
            Some(600)
        );
        assert_eq!(
            secs(&[("date", "Wed, 21 Oct 2015 07:28:00 GMT"), ("expires", "Wed, 21 Oct 2015 07:00:00 GMT")]),
            None
        );
        assert_eq!(secs(&[("expires", "0")]), None);
        assert_eq!(
            secs(&[("cache-control", "max-age=60"), ("expires", "Wed, 21 Oct 2015 07:00:00 GMT")]),
            Some(60),
            "max-age wins over Expires"
        );
    }

    fn sample(id: &str) -> Arc<ClientMetadataDocument> {
        Arc::new(parse_document(&doc_json(id, ""), id).unwrap())
    }

    #[test]
    fn cache_expiry_and_bound() {
        let now = Instant::now();
        let mut cache = Cache::default();
        let key = |i: usize| (false, format!("https://app.example.com/c{i}"));
        cache.insert(key(0), sample(&key(0).1), now + Duration::from_secs(10), now);
        assert!(cache.get(&key(0), now).is_some());
        assert!(cache.get(&(true, key(0).1), now).is_none(), "the policy mode is part of the key");
        let expired = now + Duration::from_secs(10);
        assert!(cache.get(&key(0), expired).is_none(), "expired");
        assert!(cache.stale(&key(0), expired).is_some(), "kept to bridge a failed refetch");
        let gone = expired + STALE_IF_ERROR;
        assert!(cache.stale(&key(0), gone).is_none(), "stale for a bounded time only");
        assert!(cache.get(&key(0), gone).is_none());
        assert!(cache.entries.is_empty(), "an entry past its stale window is dropped on lookup");

        let doc = sample(&key(0).1);
        for i in 0..MAX_CACHE_ENTRIES {
            cache.insert(key(i), Arc::clone(&doc), now + Duration::from_secs(100 + i as u64), now);
        }
        assert_eq!(cache.entries.len(), MAX_CACHE_ENTRIES);
        cache.insert(key(MAX_CACHE_ENTRIES), Arc::clone(&doc), now + Duration::from_secs(1_000_000), now);
        assert_eq!(cache.entries.len(), MAX_CACHE_ENTRIES);
        assert!(cache.get(&key(0), now).is_none(), "the entry closest to expiry was evicted");
        assert!(cache.get(&key(MAX_CACHE_ENTRIES), now).is_some());
        // When full of expired entries, they all go at once.
        let later = now + Duration::from_secs(500_000);
        cache.insert(key(usize::MAX), Arc::clone(&doc), later + Duration::from_secs(1), later);
        assert_eq!(cache.entries.len(), 2);
    }

    #[test]
    fn error_messages_are_client_safe() {
        for error in [CimdError::ForbiddenAddress, CimdError::Resolve, CimdError::Unreachable, CimdError::Timeout] {
            let message = error.to_string();
            assert!(!message.chars().any(|c| c.is_ascii_digit()), "{message}");
        }
        assert_eq!(CimdError::TooLarge.to_string(), "the client metadata document is larger than 5120 bytes");
        assert_eq!(
            CimdError::Status(404).to_string(),
            "fetching the client metadata document returned HTTP status 404"
        );
    }
}
