//! What the tests stand on: real components started for a test and stopped with it.
//!
//! - `browser`: headless Chromium through chromedriver.
//! - `upstream`: a real upstream OpenID Provider (npm `oidc-provider`).
//! - `server`: the real server on a copy of a manifest folder, and an HTTP client for it.
//! - `flows`: PKCE, authorization requests, login + consent, code exchange, JWT checks.
//! - `keys`: ES256 keys made here to sign assertions, with their public JWKs.
//! - `api_server`: a kube-apiserver + etcd on loopback, kubectl, the CRDs installed.
//! - `postgres`: a throwaway PostgreSQL cluster from the machine's binaries.
//! - `smtp`: a real SMTP server (Debian's aiosmtpd) storing what it receives in a maildir.
//! - `user_agent`: a cookie-keeping browser stand-in that fills the login and consent forms.

pub mod api_server;
pub mod browser;
pub mod flows;
pub mod keys;
pub mod postgres;
pub mod server;
pub mod smtp;
pub mod upstream;
pub mod user_agent;
