//! The cluster side of `inbound operator`: what it reads from and writes to Kubernetes.
//!
//! Watch caches of the custom resources and the Secrets inbound owns, validation of what
//! they hold into servable objects, the leader Lease, and (leader only) reconciliation:
//! credentials Secrets, status conditions, events, finalizers, the signing-keys Secret.
//! Nothing here serves HTTP; `runtime::operator` wires these pieces to the server.

pub mod admin_auth;
pub mod cache;
pub mod credentials;
pub mod lease;
pub mod reconcile;
pub mod signing_keys;
pub mod snapshot;
pub mod status;
