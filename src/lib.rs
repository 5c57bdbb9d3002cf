//! `inbound`: a Kubernetes-native OAuth 2.1 / OpenID Connect provider for inbound apps.
//!
//! # Layering
//!
//! Arrows point down only; a module imports nothing from a floor above it (checked by
//! `layering.rs`).
//!
//! ```text
//! main (bin), cli  the command line: clap types, commands
//!   runtime         serve | operator: one assembly, issuer checks, shutdown, maintenance
//!     controller    reconcile, credentials Secrets, status, lease, watch caches
//!     http          axum router, thin handlers, pages, the one HTTP error type
//!       oauth       the core: AuthorizationServer, every flow's decisions and persistence
//!       admin       selecting registered clients (CLI, admin API); who may administer them
//!         store     runtime state behind a trait (SQLite, PostgreSQL)
//!         tokens    signing keys, JWS, JWKS, revocations
//!         catalog   manifests in, immutable snapshots of plain types out
//!         cimd      Client ID Metadata Documents: a fetcher trait and its HTTP client
//!         identity  end-user authentication sources (development users, upstream OpenID Connect)
//!           api       CRD types, ObjectKey
//!           protocol  paths, scope grammar, redirect matching, URL patterns, loopback rules
//!           clock, secrets, metrics, audit, private_file, mail    (ground floor)
//!
//! resource_server  a tower layer for the application's own APIs (validates our tokens)
//! remote_keys      other issuers' JWKS and discovery, fetched and cached (resource_server,
//!                  identity, the JWT bearer grant)
//! mail             email through an SMTP relay: the `Mailer` trait the core holds (CIBA
//!                  approval links) and its one SMTP implementation, built by the runtime
//! ```
//!
//! The core (`oauth`) takes a catalog snapshot, a store, a fetcher and `now`; it never
//! reads the wall clock, never imports HTTP or Kubernetes types, never owns a network
//! client. Handlers extract, call the core and render its answer.
//!
//! # Where a rule lives
//!
//! - An endpoint's behaviour: `oauth::<endpoint>` (`token`, `front_channel`,
//!   `introspection`, `clients`); its HTTP shape: `http::<endpoint>`.
//! - Authorization request validation: `oauth::authorize`; consent planning:
//!   `oauth::consent`; client authentication: `oauth::client_auth`; what a workload may get
//!   without a user: `oauth::client_credentials`; registration metadata: `oauth::register`.
//! - OAuth error codes and statuses: `oauth::error`; how errors are rendered: `http::error`.
//! - Redirect URI matching, approved patterns, loopback, scope grammar: `protocol`.
//! - Manifest validation (what `inbound check` says): `catalog::validate`.
//! - Schema and queries: `store` (migrations under `src/store/migrations/`).

pub mod admin;
pub mod api;
pub mod audit;
pub mod catalog;
pub mod cimd;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod http;
pub mod identity;
#[cfg(test)]
mod layering;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod private_file;
pub mod protocol;
pub mod remote_keys;
pub mod resource_server;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod tokens;
