//! What the JWT bearer grant needs from outside the core: issuers' keys over the network
//! ([`IssuerDirectory`]) and, in a cluster, Kubernetes TokenReview; and the operator's
//! choice of how ServiceAccount tokens are validated.

use std::{sync::Arc, sync::Mutex, time::Duration, time::Instant};

use anyhow::Context;
use async_trait::async_trait;
use jsonwebtoken::DecodingKey;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use serde_json::{Map, Value};

use crate::admin::{ReviewCache, Throttle};
use crate::clock::now;
use crate::oauth::assertion::{IssuerKeys, KeySource, Reach, ReviewedServiceAccount, TokenReviewer};
use crate::oauth::jwt_bearer::{Assertions, ServiceAccountTokens, ServiceAccountValidation};
use crate::remote_keys::IssuerDirectory;
use crate::secrets::token_digest;

/// The operator's configuration of workload identity (flags shared by both modes).
#[derive(Clone, Debug, Default)]
pub struct WorkloadIdentity {
    /// The issuer (`iss`) of the ServiceAccount tokens to accept offline. In a cluster,
    /// without it, tokens are reviewed by the local API server instead.
    pub service_account_issuer: Option<String>,
    /// Its keys: a JWKS file or URL. Default: discovery at the issuer.
    pub service_account_jwks: Option<String>,
    /// Audiences a ServiceAccount token may carry besides the issuer (`aud`).
    pub service_account_audiences: Vec<String>,
    /// Longest validity of a ServiceAccount token validated offline.
    pub service_account_max_lifetime: Option<Duration>,
    /// Apps' trusted issuers may be fetched from private addresses (loopback, cluster).
    pub allow_private_issuers: bool,
}

/// Default cap on an offline-validated ServiceAccount token's validity: its deletion
/// cannot be seen, so a stolen one must be short-lived (projected tokens can be as short
/// as 10 minutes, `expirationSeconds: 600`).
const DEFAULT_SERVICE_ACCOUNT_MAX_LIFETIME: Duration = Duration::from_secs(600);

impl WorkloadIdentity {
    /// The core's view: `reviewer` is the local cluster's TokenReview (operator mode).
    pub fn assertions(
        &self,
        issuer: &str,
        reviewer: Option<Arc<dyn TokenReviewer>>,
        access_token_lifetime: Duration,
    ) -> anyhow::Result<Assertions> {
        let directory = IssuerDirectory::new().context("cannot build the HTTP client for issuers' keys")?;
        let validation = match (&self.service_account_issuer, reviewer) {
            (Some(sa_issuer), _) => {
                let source = match self.service_account_jwks.as_deref() {
                    None => KeySource::Discovery { issuer: sa_issuer.clone() },
                    Some(uri) if uri.starts_with("https://") || uri.starts_with("http://") => {
                        KeySource::JwksUri(uri.to_string())
                    }
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("--service-account-jwks {path}: cannot read"))?;
                        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                            .with_context(|| format!("--service-account-jwks {path}: not a JWK set"))?;
                        anyhow::ensure!(!set.keys.is_empty(), "--service-account-jwks {path}: no keys");
                        KeySource::Inline(Arc::new(set))
                    }
                };
                Some(ServiceAccountValidation::Keys { issuer: sa_issuer.clone(), source })
            }
            (None, Some(reviewer)) => Some(ServiceAccountValidation::TokenReview(reviewer)),
            (None, None) => None,
        };
        let mut audiences = vec![issuer.to_string()];
        audiences.extend(self.service_account_audiences.iter().filter(|a| !a.is_empty()).cloned());
        let max_lifetime = self.service_account_max_lifetime.unwrap_or(DEFAULT_SERVICE_ACCOUNT_MAX_LIFETIME);
        Ok(Assertions {
            keys: Arc::new(OnlineKeys(directory)),
            service_accounts: validation.map(|validation| ServiceAccountTokens {
                validation,
                audiences,
                max_lifetime: max_lifetime.as_secs() as i64,
                access_token_lifetime,
            }),
            app_issuers_reach: if self.allow_private_issuers { Reach::Any } else { Reach::PublicOnly },
        })
    }
}

/// Issuers' keys fetched over the network.
struct OnlineKeys(IssuerDirectory);

#[async_trait]
impl IssuerKeys for OnlineKeys {
    async fn key(&self, source: &KeySource, kid: &str, reach: Reach) -> Result<Option<DecodingKey>, String> {
        match source {
            KeySource::Inline(set) => Ok(crate::oauth::assertion::inline_key(set, Some(kid))),
            KeySource::JwksUri(uri) => self.0.key(uri, kid, reach).await,
            KeySource::Discovery { issuer } => {
                let uri = self.0.jwks_uri_of(issuer, reach).await?;
                self.0.key(&uri, kid, reach).await
            }
        }
    }

    async fn userinfo(&self, url: &str, bearer: &str, reach: Reach) -> Result<Map<String, Value>, String> {
        self.0.userinfo(url, bearer, reach).await
    }
}

/// How long a review is remembered. A valid token's answer briefly (a deleted Pod or
/// ServiceAccount stops working within it); a refused one as long, so that a repeated bad
/// token costs the API server nothing.
const REVIEW_TTL: i64 = 30;

/// The local cluster's TokenReview, cached and throttled: unauthenticated requests cannot
/// make the API server work without bound.
pub struct KubernetesTokenReviewer {
    client: kube::Client,
    reviewed: Mutex<ReviewCache<Option<ReviewedServiceAccount>>>,
    throttle: Mutex<Throttle>,
    started: Instant,
}

impl KubernetesTokenReviewer {
    pub fn new(client: kube::Client) -> KubernetesTokenReviewer {
        KubernetesTokenReviewer {
            client,
            reviewed: Mutex::new(ReviewCache::new(10_000)),
            // 100 reviews at once, 50 per second after that (each token is reviewed once
            // per REVIEW_TTL, however often it is presented).
            throttle: Mutex::new(Throttle::new(100, 50)),
            started: Instant::now(),
        }
    }
}

#[async_trait]
impl TokenReviewer for KubernetesTokenReviewer {
    async fn review(&self, token: &str, audiences: &[String]) -> Result<Option<ReviewedServiceAccount>, String> {
        let digest = token_digest(token);
        let question = audiences.join(" ");
        if let Some(cached) = self.reviewed.lock().expect("cache").get(&digest, &question, now()) {
            return Ok(cached);
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if !self.throttle.lock().expect("throttle").try_take(elapsed) {
            return Err("too many TokenReviews at once".into());
        }
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), audiences: Some(audiences.to_vec()) },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("TokenReview: {e}"))?;
        let status = reviewed.status.unwrap_or_default();
        // The API server answers with the audiences the token is valid for among those
        // asked; check it rather than trust that it enforced them.
        let for_us = status.audiences.as_deref().is_some_and(|a| a.iter().any(|x| audiences.contains(x)));
        let account = match (status.authenticated, status.user) {
            (Some(true), Some(user)) if for_us => reviewed_account(&user),
            _ => None,
        };
        let now = now();
        self.reviewed.lock().expect("cache").put(&digest, &question, account.clone(), now + REVIEW_TTL, now);
        Ok(account)
    }
}

/// The ServiceAccount a TokenReview's user is, if it is one (a token of a person, or a
/// static token, is not).
fn reviewed_account(user: &k8s_openapi::api::authentication::v1::UserInfo) -> Option<ReviewedServiceAccount> {
    let username = user.username.as_deref()?;
    let (namespace, name) = username.strip_prefix("system:serviceaccount:")?.split_once(':')?;
    let extra = |key: &str| user.extra.as_ref()?.get(key)?.first().cloned();
    let pod = extra("authentication.kubernetes.io/pod-name")
        .map(|pod| (pod, extra("authentication.kubernetes.io/pod-uid").unwrap_or_default()));
    Some(ReviewedServiceAccount {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: user.uid.clone().unwrap_or_default(),
        pod,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use std::collections::BTreeMap;

    #[test]
    fn only_service_accounts_are_reviewed_accounts() {
        let user = |name: &str| UserInfo {
            username: Some(name.to_string()),
            uid: Some("u-1".into()),
            extra: Some(BTreeMap::from([
                ("authentication.kubernetes.io/pod-name".to_string(), vec!["worker-0".to_string()]),
                ("authentication.kubernetes.io/pod-uid".to_string(), vec!["p-1".to_string()]),
            ])),
            ..Default::default()
        };
        let account = reviewed_account(&user("system:serviceaccount:payments:billing-worker")).unwrap();
        assert_eq!(
            (account.namespace.as_str(), account.name.as_str(), account.uid.as_str()),
            ("payments", "billing-worker", "u-1")
        );
        assert_eq!(account.pod, Some(("worker-0".into(), "p-1".into())));
        assert_eq!(reviewed_account(&user("admin")), None);
        assert_eq!(reviewed_account(&user("system:serviceaccount:payments")), None);
    }
}
