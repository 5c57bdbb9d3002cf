//! An issuer's signing keys, fetched from its `jwks_uri` and cached: what verifies tokens
//! that someone else signed (our own access tokens in a resource server, an upstream
//! OpenID Provider's ID tokens).
//!
//! - Fresh keys (within the response's `Cache-Control: max-age`, 5 minutes without one, at
//!   most an hour) are used without network.
//! - Past that, a known `kid` is checked against a new fetch, so a key the issuer removed
//!   stops being trusted; if the issuer cannot be reached, the last keys stand.
//! - An unknown `kid` (a rotation at the issuer) triggers a fetch at most every 10 s, so
//!   junk tokens cannot make us hammer the issuer.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use jsonwebtoken::DecodingKey;

/// Freshness of a JWKS without `max-age`, and the most any `max-age` is believed.
const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
const MAX_JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Least time between two fetches for unknown key ids.
const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// Largest JWKS read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The keys of one issuer.
pub struct RemoteKeys {
    jwks_uri: String,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
}

/// The issuer's keys as last fetched.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When the keys were fetched, and for how long they are fresh.
    fetched: Option<(Instant, Duration)>,
    /// The last fetch for an unknown kid.
    unknown_kid_fetch: Option<Instant>,
}

impl KeyCache {
    fn is_fresh(&self) -> bool {
        self.fetched.is_some_and(|(at, fresh_for)| at.elapsed() < fresh_for)
    }
}

impl RemoteKeys {
    pub fn new(jwks_uri: &str) -> RemoteKeys {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        RemoteKeys::with_client(jwks_uri, http)
    }

    pub fn with_client(jwks_uri: &str, http: reqwest::Client) -> RemoteKeys {
        RemoteKeys { jwks_uri: jwks_uri.to_string(), http, cache: RwLock::new(KeyCache::default()) }
    }

    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    /// The key `kid` from a fetch made now (for a caller that already knows the cache is
    /// not enough).
    async fn fetched_key(&self, kid: &str) -> Result<Option<DecodingKey>, String> {
        Ok(self.refresh().await?.get(kid).cloned())
    }

    /// The key with id `kid`, fetching the JWKS when the cache says so.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let (cached, fresh, may_fetch_unknown) = {
            let cache = self.cache.read().expect("lock");
            let may = cache.unknown_kid_fetch.is_none_or(|at| at.elapsed() >= UNKNOWN_KID_INTERVAL);
            (cache.keys.get(kid).cloned(), cache.is_fresh(), may)
        };
        match cached {
            Some(key) if fresh => return Some(key),
            Some(key) => {
                return match self.refresh().await {
                    Ok(keys) => keys.get(kid).cloned(),
                    Err(_) => Some(key),
                };
            }
            None if !may_fetch_unknown => return None,
            None => self.cache.write().expect("lock").unknown_kid_fetch = Some(Instant::now()),
        }
        self.refresh().await.ok().and_then(|keys| keys.get(kid).cloned())
    }

    /// Fetches the JWKS and replaces the cache; the reason when the fetch fails (the cache
    /// is kept).
    pub async fn refresh(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let mut response = self.http.get(&self.jwks_uri).send().await.map_err(|e| format!("cannot fetch: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("answered HTTP {}", response.status().as_u16()));
        }
        let fresh_for =
            jwks_max_age(response.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("cannot read: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err("the key set is too large".into());
            }
        }
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if let (Some(id), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(id, key);
            }
        }
        let mut cache = self.cache.write().expect("lock");
        cache.keys = keys.clone();
        cache.fetched = Some((Instant::now(), fresh_for));
        Ok(keys)
    }
}

/// How long an issuer's discovery document is believed.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Most issuers (and JWKS URLs) remembered; beyond that the cache starts over, so that
/// configuration churn cannot grow it without bound.
const MAX_ISSUERS: usize = 1000;
/// Largest discovery document or UserInfo response read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Whether a fetch may reach private addresses (see [`IssuerDirectory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    PublicOnly,
    Any,
}

/// What discovery says about an issuer (OpenID Connect Discovery §3), what is used here.
#[derive(Clone, Debug, serde::Deserialize)]
struct IssuerMetadata {
    issuer: String,
    jwks_uri: String,
}

/// The keys of issuers whose JWTs are presented to us (JWT bearer assertions, other
/// clusters' ServiceAccount tokens), by JWKS URL or through discovery; and their UserInfo.
///
/// URLs that a namespace declared are fetched with [`Reach::PublicOnly`]: https only, and
/// through the same address guard as client metadata documents (no cluster-internal or
/// loopback address, checked in the resolver so that check and connection agree). What the
/// operator configured is fetched with [`Reach::Any`].
pub struct IssuerDirectory {
    public: reqwest::Client,
    any: reqwest::Client,
    keys: std::sync::Mutex<HashMap<(String, Reach), std::sync::Arc<RemoteKeys>>>,
    discovered: std::sync::Mutex<HashMap<(String, Reach), (String, Instant)>>,
}

impl IssuerDirectory {
    pub fn new() -> Result<IssuerDirectory, reqwest::Error> {
        const AGENT: &str = concat!("inbound/", env!("CARGO_PKG_VERSION"), " (issuer keys)");
        let timeout = Duration::from_secs(5);
        Ok(IssuerDirectory {
            public: crate::cimd::guarded_client(timeout, false, AGENT)?,
            any: crate::cimd::guarded_client(timeout, true, AGENT)?,
            keys: Default::default(),
            discovered: Default::default(),
        })
    }

    fn client(&self, url: &str, reach: Reach) -> Result<&reqwest::Client, String> {
        let parsed = url::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
        match reach {
            Reach::Any if matches!(parsed.scheme(), "https" | "http") => Ok(&self.any),
            Reach::Any => Err(format!("{url} is not an http(s) URL")),
            Reach::PublicOnly if crate::cimd::is_public_url(&parsed) => Ok(&self.public),
            Reach::PublicOnly => Err(format!("{url} is not a public https URL")),
        }
    }

    /// The JWKS URL of `issuer`, from its discovery document (cached for an hour).
    pub async fn jwks_uri_of(&self, issuer: &str, reach: Reach) -> Result<String, String> {
        let key = (issuer.to_string(), reach);
        if let Some((uri, at)) = self.discovered.lock().expect("lock").get(&key)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(uri.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let body = self.get(&url, None, reach).await.map_err(|e| format!("discovery at {url}: {e}"))?;
        let metadata: IssuerMetadata = serde_json::from_slice(&body)
            .map_err(|e| format!("discovery at {url}: not a provider metadata document: {e}"))?;
        // OpenID Connect Discovery §4.3: the document names exactly the issuer it is for.
        if metadata.issuer != issuer {
            return Err(format!("discovery at {url} names the issuer {:?}", metadata.issuer));
        }
        self.client(&metadata.jwks_uri, reach)?;
        let mut discovered = self.discovered.lock().expect("lock");
        if discovered.len() >= MAX_ISSUERS {
            discovered.clear();
        }
        discovered.insert(key, (metadata.jwks_uri.clone(), Instant::now()));
        Ok(metadata.jwks_uri)
    }

    /// The key `kid` published at `jwks_uri` (see [`RemoteKeys::key`] for the caching).
    pub async fn key(&self, jwks_uri: &str, kid: &str, reach: Reach) -> Result<Option<DecodingKey>, String> {
        let http = self.client(jwks_uri, reach)?.clone();
        let keys = {
            let mut all = self.keys.lock().expect("lock");
            if all.len() >= MAX_ISSUERS {
                all.clear();
            }
            all.entry((jwks_uri.to_string(), reach))
                .or_insert_with(|| std::sync::Arc::new(RemoteKeys::with_client(jwks_uri, http)))
                .clone()
        };
        let never_fetched = keys.cache.read().expect("lock").fetched.is_none();
        if never_fetched {
            // The first use says why the keys cannot be had, rather than "unknown key".
            return keys.fetched_key(kid).await;
        }
        Ok(keys.key(kid).await)
    }

    /// OpenID Connect Core §5.3: the claims UserInfo returns for `bearer`.
    pub async fn userinfo(
        &self,
        url: &str,
        bearer: &str,
        reach: Reach,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let body = self.get(url, Some(bearer), reach).await?;
        serde_json::from_slice(&body).map_err(|e| format!("UserInfo is not a JSON object: {e}"))
    }

    async fn get(&self, url: &str, bearer: Option<&str>, reach: Reach) -> Result<Vec<u8>, String> {
        let mut request = self.client(url, reach)?.get(url).header(reqwest::header::ACCEPT, "application/json");
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let mut response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_string()
            } else {
                "cannot connect (or the address is not allowed)".to_string()
            }
        })?;
        if !response.status().is_success() {
            return Err(format!("answered HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| "cannot read the response".to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err("the response is too large".into());
            }
        }
        Ok(body)
    }
}

/// `max-age` of a `Cache-Control` header, bounded; the default without one.
fn jwks_max_age(cache_control: Option<&str>) -> Duration {
    cache_control
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_JWKS_MAX_AGE)
        .min(MAX_JWKS_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_freshness_follows_max_age_within_bounds() {
        assert_eq!(jwks_max_age(Some("public, max-age=60")), Duration::from_secs(60));
        assert_eq!(jwks_max_age(Some("max-age=999999")), MAX_JWKS_MAX_AGE);
        assert_eq!(jwks_max_age(Some("no-cache")), DEFAULT_JWKS_MAX_AGE);
        assert_eq!(jwks_max_age(None), DEFAULT_JWKS_MAX_AGE);
    }
}
