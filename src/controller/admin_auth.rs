//! The admin API's authorization in a cluster: the caller's bearer token is a Kubernetes
//! ServiceAccount token bound to the admin audience (`kubectl create token SA --audience
//! AUDIENCE`): TokenReview, with that audience, says who it is, SubjectAccessReview whether
//! RBAC lets them `list`/`delete` the virtual resources `registeredclients.inbound.dev` (in
//! the namespace of the policy that admitted the clients) and `consents.inbound.dev` (in the
//! namespace of the app the consent was given to). Grant it like any other
//! permission (the chart ships a ClusterRole `<release>-clients-admin`).
//!
//! A token minted for the API server itself (a kubeconfig's) is refused: it was never meant
//! for this server, and accepting it would invite operators to hand their cluster
//! credentials to it. Answers are cached briefly (failures too) and reviews are throttled,
//! so unauthenticated requests cannot make the API server work without bound.

use std::{sync::Mutex, time::Instant};

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec, UserInfo},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::api::{Api, PostParams};

use crate::admin::{AdminAuthorizer, AdminDenied, ReviewCache, Throttle};
use crate::clock::now;
use crate::secrets::token_digest;

/// How long a token's review is remembered; a failed one as long, so a repeated bad token
/// costs nothing.
const AUTHN_TTL: i64 = 60;
/// How long an RBAC decision is remembered: an allowed one (a removed binding takes effect
/// within it), a denied one (a new binding takes effect within it).
const ALLOWED_TTL: i64 = 10;
const DENIED_TTL: i64 = 2;

pub struct KubernetesAdmin {
    client: kube::Client,
    audience: String,
    authenticated: Mutex<ReviewCache<Option<UserInfo>>>,
    decisions: Mutex<ReviewCache<bool>>,
    throttle: Mutex<Throttle>,
    started: Instant,
}

impl KubernetesAdmin {
    pub fn new(client: kube::Client, audience: String) -> KubernetesAdmin {
        KubernetesAdmin {
            client,
            audience,
            authenticated: Mutex::new(ReviewCache::new(10_000)),
            decisions: Mutex::new(ReviewCache::new(10_000)),
            // 20 reviews at once, 5 per second after that: plenty for people and scripts.
            throttle: Mutex::new(Throttle::new(20, 5)),
            started: Instant::now(),
        }
    }

    fn take_review(&self) -> Result<(), AdminDenied> {
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.throttle.lock().expect("throttle").try_take(elapsed) { Ok(()) } else { Err(AdminDenied::Throttled) }
    }

    async fn user(&self, token: &str, digest: &[u8]) -> Result<UserInfo, AdminDenied> {
        let cached = self.authenticated.lock().expect("cache").get(digest, "authn", now());
        let user = match cached {
            Some(user) => user,
            None => {
                self.take_review()?;
                let review = TokenReview {
                    spec: TokenReviewSpec {
                        token: Some(token.to_string()),
                        audiences: Some(vec![self.audience.clone()]),
                    },
                    ..Default::default()
                };
                let reviewed = Api::<TokenReview>::all(self.client.clone())
                    .create(&PostParams::default(), &review)
                    .await
                    .map_err(|e| AdminDenied::Unavailable(e.to_string()))?;
                let status = reviewed.status.unwrap_or_default();
                // The API server answers with the audiences the token is valid for among
                // those asked; check it rather than trust that it enforced them.
                let for_us = status.audiences.as_deref().is_some_and(|a| a.contains(&self.audience));
                let user = match (status.authenticated, status.user) {
                    (Some(true), Some(user)) if for_us => Some(user),
                    _ => None,
                };
                let now = now();
                self.authenticated.lock().expect("cache").put(digest, "authn", user.clone(), now + AUTHN_TTL, now);
                user
            }
        };
        user.ok_or(AdminDenied::Unauthenticated)
    }
}

#[async_trait::async_trait]
impl AdminAuthorizer for KubernetesAdmin {
    async fn authorize(&self, token: &str, verb: &str, resource: &str, namespace: &str) -> Result<String, AdminDenied> {
        let digest = token_digest(token);
        let user = self.user(token, &digest).await?;
        let username = user.username.clone().unwrap_or_default();
        let question = format!("{verb} {resource} {namespace}");
        let cached = self.decisions.lock().expect("cache").get(&digest, &question, now());
        let allowed = match cached {
            Some(allowed) => allowed,
            None => {
                let access = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: user.username,
                        groups: user.groups,
                        uid: user.uid,
                        extra: user.extra,
                        resource_attributes: Some(ResourceAttributes {
                            group: Some(crate::api::GROUP.to_string()),
                            resource: Some(resource.to_string()),
                            verb: Some(verb.to_string()),
                            namespace: Some(namespace.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let decided = Api::<SubjectAccessReview>::all(self.client.clone())
                    .create(&PostParams::default(), &access)
                    .await
                    .map_err(|e| AdminDenied::Unavailable(e.to_string()))?;
                let allowed = decided.status.is_some_and(|s| s.allowed);
                let now = now();
                let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
                self.decisions.lock().expect("cache").put(&digest, &question, allowed, now + ttl, now);
                allowed
            }
        };
        if allowed {
            Ok(username)
        } else {
            Err(AdminDenied::Forbidden(username, verb.to_string(), resource.to_string(), namespace.to_string()))
        }
    }
}
