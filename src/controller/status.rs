//! Status conditions: what the controller reports, computed purely from the old status.
//!
//! Conventions (Kubernetes API conventions, `metav1.Condition`): `Ready` is the summary a
//! user and Argo CD look at; every condition carries the `observedGeneration` it was computed
//! from; `lastTransitionTime` changes only when `status` flips, so that "Ready for 3d" means
//! what it says.

use crate::api::Condition;

pub const READY: &str = "Ready";
pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";

/// One condition as the controller wants it, before times are assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn ready(reason: impl Into<String>, message: impl Into<String>) -> Desired {
        Desired { type_: READY, status: true, reason: reason.into(), message: message.into() }
    }

    pub fn not_ready(reason: impl Into<String>, message: impl Into<String>) -> Desired {
        Desired { type_: READY, status: false, reason: reason.into(), message: message.into() }
    }
}

/// The conditions to write: `desired` in order, each keeping its `lastTransitionTime` from
/// `current` unless its status flipped (or it is new). Conditions of other types are dropped:
/// the controller owns the whole list.
pub fn conditions(current: &[Condition], desired: &[Desired], generation: Option<i64>, now: &str) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
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
                reason: d.reason.clone(),
                message: truncate(&d.message, 32 * 1024),
            }
        })
        .collect()
}

/// The Ready condition of a status, if any.
pub fn ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
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
        let same = conditions(&current, &[Desired::ready("Valid", "new message")], Some(2), "now");
        assert_eq!(same.len(), 1, "unknown types are dropped");
        assert_eq!(same[0].last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(same[0].observed_generation, Some(2));
        assert_eq!(same[0].message, "new message");
        let flipped = conditions(&current, &[Desired::not_ready("InvalidSpec", "spec.x: bad")], Some(2), "now");
        assert_eq!(flipped[0].status, "False");
        assert_eq!(flipped[0].last_transition_time, "now");
        let fresh = conditions(&[], &[Desired::ready("Valid", "")], None, "t0");
        assert_eq!(fresh[0].last_transition_time, "t0");
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(20_000);
        let out = conditions(&[], &[Desired::not_ready("InvalidSpec", long)], None, "t");
        assert!(out[0].message.len() <= 32 * 1024);
        assert!(out[0].message.ends_with("..."));
    }
}
