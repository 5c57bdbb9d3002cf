//! The admin API's authorization in a cluster: the caller's bearer token is a Kubernetes
//! token (a user's, or a ServiceAccount's); TokenReview says who it is, SubjectAccessReview
//! whether RBAC lets them `list`/`delete` the virtual resource
//! `registeredclients.inbound.dev` in the registration policy's namespace. Grant it like any
//! other permission (the chart ships a ClusterRole `<release>-clients-admin`).

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::api::{Api, PostParams};

use crate::admin::{AdminAuthorizer, AdminDenied};

pub struct KubernetesAdmin {
    pub client: kube::Client,
}

#[async_trait::async_trait]
impl AdminAuthorizer for KubernetesAdmin {
    async fn authorize(&self, token: &str, verb: &str, namespace: &str) -> Result<String, AdminDenied> {
        let unavailable = |e: kube::Error| AdminDenied::Unavailable(e.to_string());
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), audiences: None },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(unavailable)?;
        let status = reviewed.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => user,
            _ => return Err(AdminDenied::Unauthenticated),
        };
        let username = user.username.clone().unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                resource_attributes: Some(ResourceAttributes {
                    group: Some(crate::api::GROUP.to_string()),
                    resource: Some("registeredclients".into()),
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
            .map_err(unavailable)?;
        if decided.status.is_some_and(|s| s.allowed) {
            Ok(username)
        } else {
            Err(AdminDenied::Forbidden(username, verb.to_string(), namespace.to_string()))
        }
    }
}
