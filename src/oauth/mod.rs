//! The OAuth core: HTTP-agnostic decisions.
//!
//! Nothing here knows about axum, hyper or Kubernetes types. Handlers parse a request into
//! [`params::Params`] and header strings, call in here with a catalog snapshot, the store
//! and the current time, and render the result.

pub mod authorize;
pub mod client_auth;
pub mod client_credentials;
pub mod clients;
pub mod consent;
pub mod error;
pub mod front_channel;
pub mod introspection;
pub mod params;
pub mod pkce;
pub mod register;
mod server;
pub mod token;

pub use error::{ErrorCode, OAuthError};
pub use server::{AuthorizationServer, ServerParts};
