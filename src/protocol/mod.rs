//! The words of the protocol, on the ground floor: endpoint paths, the scope grammar,
//! redirect URI matching, approved-URL patterns, the loopback rules, bearer tokens and
//! kinds of client id.
//!
//! Everything here is a pure function of its arguments and imports nothing of this crate,
//! so the catalog (validation), the metadata-document fetcher, the OAuth core and the
//! handlers all speak the same language without importing each other.

pub mod bearer;
pub mod client_id;
pub mod jwk;
pub mod loopback;
pub mod paths;
pub mod pattern;
pub mod redirect;
pub mod resource;
pub mod scope;
