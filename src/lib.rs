//! `inbound`: a Kubernetes-native OAuth 2.1 / OpenID Connect provider for inbound apps.
//!
//! Module map (see DESIGN.md):
//!
//! - [`api`]: the custom resource types (`InboundApp`, `Scope`, `ClientGrant`,
//!   `ConsentPolicy`) and the CRDs generated from them.
//! - [`catalog`]: manifests in, validated immutable snapshots out.
//! - [`oauth`]: the HTTP-agnostic OAuth core: client authentication, grant decisions,
//!   introspection, revocation, RFC error codes.
//! - [`tokens`]: signing keys, JWKS, JWT access tokens.
//! - [`identity`]: end-user authentication sources (static development users).
//! - [`secrets`]: client secret generation and keyed hashing.
//! - [`store`]: runtime state (opaque tokens, revocations, provisioned credentials) behind
//!   a trait; SQLite backend.
//! - [`http`]: the axum router, thin handlers, metrics.
//! - [`serve`]: `inbound serve`: the standalone server on a folder of manifests.

pub mod admin;
pub mod api;
pub mod catalog;
pub mod cimd;
pub mod clock;
pub mod controller;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod oauth;
pub mod protocol;
pub mod resource_server;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod tokens;
