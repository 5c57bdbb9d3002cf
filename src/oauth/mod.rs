//! The OAuth core: every flow's decisions and their persistence, HTTP-agnostic.
//!
//! [`AuthorizationServer`] (in `server.rs`, private fields) is handed a store, signing keys
//! and a metadata-document fetcher by the runtime; each endpoint's flow is a method in the
//! file of that endpoint. Handlers parse a request into [`params::Params`] and header
//! strings, call in here with a catalog snapshot and `now`, and render the answer. Nothing
//! here knows about axum, hyper or Kubernetes types, reads the clock or opens a connection
//! (`layering.rs` checks it).
//!
//! - `front_channel`: /authorize → login → consent → code; the account page; UserInfo.
//! - `authorize`: authorization request validation and where each error goes.
//! - `consent`: what a user is asked and what a decision grants.
//! - `token`: the token endpoint's grants and minting; `client_credentials`: what a
//!   client may get without a user; `client_auth`, `pkce`.
//! - `jwt_bearer`: RFC 7523 grants (ServiceAccount tokens, apps' trusted issuers);
//!   `assertion`: how a JWT someone else signed is checked.
//! - `token_exchange`: RFC 8693 delegation, declared by ClientGrants with `tokenExchange`.
//! - `introspection`: RFC 7662 and RFC 7009.
//! - `clients`, `register`: self-registered clients (RFC 7591/7592, metadata documents).
//! - `error`: RFC error codes and their statuses.

pub mod application_login;
pub mod assertion;
pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod client_credentials;
pub mod clients;
pub mod consent;
pub mod device;
pub mod error;
pub mod front_channel;
pub mod introspection;
pub mod jwt_bearer;
pub mod login_guard;
pub mod logout;
pub mod params;
pub mod pending_budget;
pub mod pkce;
pub mod register;
mod server;
pub mod token;
pub mod token_exchange;

pub use error::{ErrorCode, OAuthError};
pub use server::{AdministeredConsent, AuthorizationServer, ServerParts};
