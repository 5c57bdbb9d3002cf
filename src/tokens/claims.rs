//! Claims of JWT access tokens (RFC 9068 §2.2).

use serde::{Deserialize, Serialize};

/// `aud`: one resource, or several (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// One value serializes as a string, several as an array.
    pub fn from_list(mut list: Vec<String>) -> Audience {
        if list.len() == 1 { Audience::One(list.remove(0)) } else { Audience::Many(list) }
    }

    pub fn to_list(&self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.clone()],
            Audience::Many(v) => v.clone(),
        }
    }
}

/// Claims of an access token. The same claims describe opaque tokens in the store and
/// are what introspection returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The resource owner; for client_credentials, the client itself (RFC 9068 §2.2).
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    /// The namespace the client belongs to: its InboundApp's, or the registration policy's
    /// for a self-registered client. Resource servers can apply their own policy to it
    /// (README "Who can mint what"); absent from tokens issued before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_namespace: Option<String>,
    /// Space-delimited granted scopes; absent when none were granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The tenant the token acts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The user's roles (user-delegated tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The ServiceAccount (and Pod) a workload token was issued to, in the shape of the
    /// Kubernetes token's own `kubernetes.io` claim.
    /// Boxed, as `act`: most tokens have neither, and claims are kept in memory per token
    /// (the memo of verified tokens).
    #[serde(default, rename = "kubernetes.io", skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Box<KubernetesClaims>>,
    /// Who acts for `sub` in a token obtained by token exchange (RFC 8693 §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// RFC 8693 §4.1 `act`: the party acting for the token's subject. A nested `act` names the
/// actor before it, so that a chain of delegations reads outermost (current) first; only
/// the outermost actor is the one to apply policy to (§4.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The actor as this server names it: an app's client_id, a user's subject, or a
    /// ServiceAccount's `system:serviceaccount:NAMESPACE:NAME`.
    pub sub: String,
    /// The client that performed the exchange, when the actor is not that client itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// How many actors the chain names, this one included.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }
}

/// Who a Kubernetes ServiceAccount token was issued to (its `kubernetes.io` claim).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: KubernetesObject,
    /// The Pod the token is bound to, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<KubernetesObject>,
}

/// A Kubernetes object named in a token: its name and UID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesObject {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// Claims of an OpenID Connect ID token (Core §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Left half of SHA-256 of the access token, base64url (Core §3.1.3.6).
    pub at_hash: String,
}
