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
