//! Integration tests: one binary, the real server on 127.0.0.1 with a random port, real
//! SQLite files, the `oauth2` crate as the client, `jsonwebtoken` as an independent verifier.

mod application_login;
mod argocd;
mod audit;
mod banner;
mod browser;
mod check;
mod cimd;
mod client_credentials;
mod consents;
mod device;
mod discovery;
mod federation;
mod flux;
mod helm;
mod identity_assertion;
mod introspection;
mod kubernetes;
mod lifecycle;
mod login_limits;
mod logout;
mod mail;
mod mcp;
mod metrics;
mod operator;
mod operator_resilience;
mod private_key_jwt;
mod registration;
mod replicas;
mod store_migrations;
mod store_suite;
mod support;
mod tenants;
mod token_exchange;
mod user_flow;
mod workload_identity;
