//! Status conditions: what the controller reports, computed purely from the old status.
//!
//! Conventions (Kubernetes API conventions, `metav1.Condition`): `Ready` is the summary a
//! user, `kubectl wait` and Argo CD look at; every condition carries the `observedGeneration`
//! it was computed from; `lastTransitionTime` changes only when `status` flips, so that
//! "Ready for 3d" means what it says.
//!
//! Beside `Ready`, the two "abnormal-true" conditions kstatus (Flux, `kubectl` apply
//! waiters, cli-utils) reads, so that no tool mistakes a broken object for a settled one:
//!
//! | state                                   | Ready   | Reconciling | Stalled |
//! |-----------------------------------------|---------|-------------|---------|
//! | served                                  | True    | False       | False   |
//! | the spec must change (invalid, conflict, expired) | False | False | True    |
//! | waiting on something that may come (an upstream, an identity source) | False | True | False |
//! | a transient error of ours (store, API server), retried | Unknown | True | False |
//!
//! `status.conditions` is a list-map keyed by `type`: the controller applies only the types
//! it owns ([`OWNED`]), and conditions other tools write beside them survive.

use crate::api::Condition;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";

/// The condition types inbound writes; any other type in a status is someone else's.
pub const OWNED: [&str; 4] = [READY, RECONCILING, STALLED, CREDENTIALS_ISSUED];

/// Every reason inbound writes, in one place (a condition's `reason` is part of the API:
/// alerts and health checks match on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Served as declared.
    Valid,
    /// An IdentityProvider answered discovery and JWKS.
    Discovered,
    /// The spec breaks a rule (the message names the field), or cannot be read at all.
    InvalidSpec,
    /// The credentials Secret's name is taken by a Secret inbound does not own.
    SecretConflict,
    /// A ClientGrant past its `expiresAt`.
    Expired,
    /// An InboundApp's `spec.clientId` is held by another app (the first to claim it).
    ClientIdTaken,
    /// An IdentityProvider's issuer does not answer; retried.
    UpstreamUnavailable,
    /// A user-login app while no identity source exists: nobody can sign in to it yet.
    NoIdentitySource,
    /// The credentials could not be issued yet (store or API server error); retried.
    CredentialsPending,
    /// CredentialsIssued: first issued, rotated on request, or re-issued after a loss.
    Issued,
    Rotated,
    Reissued,
    /// CredentialsIssued while the credentials are pending.
    Pending,
    /// Reconciling/Stalled when they are False.
    Settled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Valid => "Valid",
            Reason::Discovered => "Discovered",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SecretConflict => "SecretConflict",
            Reason::Expired => "Expired",
            Reason::ClientIdTaken => "ClientIdTaken",
            Reason::UpstreamUnavailable => "UpstreamUnavailable",
            Reason::NoIdentitySource => "NoIdentitySource",
            Reason::CredentialsPending => "CredentialsPending",
            Reason::Issued => "Issued",
            Reason::Rotated => "Rotated",
            Reason::Reissued => "Reissued",
            Reason::Pending => "Pending",
            Reason::Settled => "Settled",
        }
    }

    /// The reason as it was read back from a status.
    pub fn parse(reason: &str) -> Option<Reason> {
        ALL.into_iter().find(|r| r.as_str() == reason)
    }
}

const ALL: [Reason; 14] = [
    Reason::Valid,
    Reason::Discovered,
    Reason::InvalidSpec,
    Reason::SecretConflict,
    Reason::Expired,
    Reason::ClientIdTaken,
    Reason::UpstreamUnavailable,
    Reason::NoIdentitySource,
    Reason::CredentialsPending,
    Reason::Issued,
    Reason::Rotated,
    Reason::Reissued,
    Reason::Pending,
    Reason::Settled,
];

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// One condition as the controller wants it, before times are assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: Status,
    pub reason: Reason,
    pub message: String,
}

/// What a reconcile found, as the three summary conditions (`Ready`, `Reconciling`,
/// `Stalled`) report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Works as declared.
    Ready(Reason, String),
    /// Does not work, and will not until its spec (or a conflicting object) changes.
    Stalled(Reason, String),
    /// Does not work yet; waits on something outside it, retried.
    Waiting(Reason, String),
    /// Unknown: a transient error of ours while reconciling, retried.
    Retrying(Reason, String),
}

impl Verdict {
    /// `Ready`, `Reconciling` and `Stalled`, in that order.
    pub fn conditions(&self) -> Vec<Desired> {
        let (ready, reconciling, stalled, reason, message) = match self {
            Verdict::Ready(r, m) => (Status::True, false, false, *r, m),
            Verdict::Stalled(r, m) => (Status::False, false, true, *r, m),
            Verdict::Waiting(r, m) => (Status::False, true, false, *r, m),
            Verdict::Retrying(r, m) => (Status::Unknown, true, false, *r, m),
        };
        // Messages are never empty: server-side apply on older API servers turns an empty
        // string in a list-map entry into null, which the schema refuses.
        let flag = |type_, on: bool, settled: &str| Desired {
            type_,
            status: if on { Status::True } else { Status::False },
            reason: if on { reason } else { Reason::Settled },
            message: if on { message.clone() } else { settled.to_string() },
        };
        vec![
            Desired { type_: READY, status: ready, reason, message: message.clone() },
            flag(RECONCILING, reconciling, "nothing pending"),
            flag(STALLED, stalled, "not stalled"),
        ]
    }
}

/// The conditions to apply: `desired` in order, each keeping its `lastTransitionTime` from
/// `current` unless its status flipped (or it is new). Only inbound's own types are
/// returned: others' conditions are theirs (the list is a map keyed by type).
pub fn conditions(current: &[Condition], desired: &[Desired], generation: Option<i64>, now: &str) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = d.status.as_str();
            let last_transition_time = current
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                observed_generation: generation,
                last_transition_time,
                reason: d.reason.as_str().to_string(),
                message: truncate(&d.message, 32 * 1024),
            }
        })
        .collect()
}

/// The conditions of `current` that inbound wrote (what an apply of ours replaces).
pub fn owned(current: &[Condition]) -> Vec<Condition> {
    current.iter().filter(|c| OWNED.contains(&c.type_.as_str())).cloned().collect()
}

/// The Ready condition of a status, if any.
pub fn ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
}

/// Whether the Ready condition of `conditions` has this reason.
pub fn ready_because(conditions: &[Condition], reason: Reason) -> bool {
    ready(conditions).is_some_and(|c| c.reason == reason.as_str())
}

/// The API server limits a condition message to 32 KiB.
fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    let mut end = max - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str, at: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            observed_generation: Some(1),
            last_transition_time: at.into(),
            reason: "R".into(),
            message: String::new(),
        }
    }

    #[test]
    fn transition_time_changes_only_on_a_flip() {
        let current = vec![cond(READY, "True", "2026-01-01T00:00:00Z"), cond("Other", "True", "x")];
        let ready = Verdict::Ready(Reason::Valid, "new message".into()).conditions();
        let same = conditions(&current, &ready, Some(2), "now");
        assert_eq!(same.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), [READY, RECONCILING, STALLED]);
        assert_eq!(same[0].last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(same[0].observed_generation, Some(2));
        assert_eq!(same[0].message, "new message");
        let stalled = Verdict::Stalled(Reason::InvalidSpec, "spec.x: bad".into()).conditions();
        let flipped = conditions(&current, &stalled, Some(2), "now");
        assert_eq!(flipped[0].status, "False");
        assert_eq!(flipped[0].last_transition_time, "now");
        let fresh = conditions(&[], &ready, None, "t0");
        assert_eq!(fresh[0].last_transition_time, "t0");
    }

    #[test]
    fn each_verdict_reads_right_to_kstatus() {
        // kstatus: Stalled=True is Failed, Reconciling=True is InProgress, else Current.
        let table = [
            (Verdict::Ready(Reason::Valid, "ok".into()), ["True", "False", "False"]),
            (Verdict::Stalled(Reason::InvalidSpec, "bad".into()), ["False", "False", "True"]),
            (Verdict::Waiting(Reason::UpstreamUnavailable, "down".into()), ["False", "True", "False"]),
            (Verdict::Retrying(Reason::CredentialsPending, "store".into()), ["Unknown", "True", "False"]),
        ];
        for (verdict, statuses) in table {
            let out = conditions(&[], &verdict.conditions(), Some(1), "t");
            let got: Vec<&str> = out.iter().map(|c| c.status.as_str()).collect();
            assert_eq!(got, statuses, "{verdict:?}");
            // A True abnormal condition carries the reason and message; a False one says
            // only that it is settled.
            for c in &out[1..] {
                if c.status == "True" {
                    assert_eq!(c.reason, out[0].reason);
                    assert_eq!(c.message, out[0].message);
                } else {
                    assert_eq!(c.reason, "Settled");
                    assert!(!c.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn only_owned_types_are_compared_and_applied() {
        let current = vec![cond(READY, "True", "t"), cond("ArgoSynced", "True", "t"), cond(STALLED, "False", "t")];
        let owned = owned(&current);
        assert_eq!(owned.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), [READY, STALLED]);
    }

    #[test]
    fn reasons_round_trip_and_match_the_api_pattern() {
        for reason in ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            let s = reason.as_str();
            assert!(s.chars().next().unwrap().is_ascii_uppercase() && s.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(20_000);
        let out = conditions(&[], &Verdict::Stalled(Reason::InvalidSpec, long).conditions(), None, "t");
        assert!(out[0].message.len() <= 32 * 1024);
        assert!(out[0].message.ends_with("..."));
    }
}
