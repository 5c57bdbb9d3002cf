//! Failed password sign-ins, throttled per source address and per username (RFC 9700
//! §4.x leaves online guessing to the authorization server; NIST SP 800-63B §5.2.2 asks for
//! rate limiting of failed attempts).
//!
//! A key (a source address, a username) may fail [`FREE_FAILURES`] times; every failure
//! after that locks it for twice as long as the previous lock, from 1 s up to
//! [`MAX_LOCK`]. A success clears the username's record (not the address's: one account's
//! right password must not unlock guessing at the others). Records are forgotten
//! [`FORGET_AFTER`] after their last failure, and at most [`MAX_KEYS`] are kept: the table
//! cannot be grown without bound by unauthenticated requests. The table is per process;
//! with several replicas each throttles on its own.

use std::collections::HashMap;

/// Failures a key may have before it is locked.
pub const FREE_FAILURES: u32 = 5;
/// The longest lock.
pub const MAX_LOCK: i64 = 15 * 60;
/// A record without failures for this long is forgotten.
pub const FORGET_AFTER: i64 = 3600;
/// Most keys tracked.
pub const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    failures: u32,
    last_failure: i64,
    locked_until: i64,
}

/// What is throttled: the attempt's source address and the username it tried.
#[derive(Debug, Default)]
pub struct FailedLogins {
    records: HashMap<String, Record>,
}

/// The keys of one attempt.
pub fn keys(source: &str, username: &str) -> [String; 2] {
    // Usernames are matched case-insensitively here so that `Alice` and `alice` share one
    // budget, whatever the identity source does.
    [format!("source:{source}"), format!("user:{}", username.trim().to_lowercase())]
}

impl FailedLogins {
    /// Seconds until an attempt with these keys may be made; None when it may be now.
    pub fn retry_after(&self, keys: &[String], now: i64) -> Option<i64> {
        keys.iter().filter_map(|k| self.records.get(k)).map(|r| r.locked_until - now).filter(|wait| *wait > 0).max()
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, keys: &[String], now: i64) {
        if self.records.len() + keys.len() > MAX_KEYS {
            self.records.retain(|_, r| now - r.last_failure < FORGET_AFTER || r.locked_until > now);
            if self.records.len() + keys.len() > MAX_KEYS {
                // Still full of live locks: drop the oldest records to make room (an attacker
                // spraying addresses loses their own oldest locks first).
                let mut by_age: Vec<(String, i64)> =
                    self.records.iter().map(|(k, r)| (k.clone(), r.last_failure)).collect();
                by_age.sort_by_key(|(_, t)| *t);
                for (k, _) in by_age.into_iter().take(keys.len() + MAX_KEYS / 10) {
                    self.records.remove(&k);
                }
            }
        }
        for key in keys {
            let record =
                self.records.entry(key.clone()).or_insert(Record { failures: 0, last_failure: now, locked_until: 0 });
            if now - record.last_failure >= FORGET_AFTER {
                *record = Record { failures: 0, last_failure: now, locked_until: 0 };
            }
            record.failures += 1;
            record.last_failure = now;
            if record.failures > FREE_FAILURES {
                let exponent = (record.failures - FREE_FAILURES - 1).min(20);
                record.locked_until = now + (1i64 << exponent).min(MAX_LOCK);
            }
        }
    }

    /// A successful sign-in: the username's budget is restored.
    pub fn succeeded(&mut self, username_key: &str) {
        self.records.remove(username_key);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn failures_beyond_the_free_ones_lock_with_doubling_back_off() {
        let mut table = FailedLogins::default();
        let k = keys("10.0.0.1", "Alice");
        for i in 0..FREE_FAILURES {
            assert_eq!(table.retry_after(&k, NOW), None, "attempt {i} is free");
            table.failed(&k, NOW);
        }
        assert_eq!(table.retry_after(&k, NOW), None);
        table.failed(&k, NOW);
        assert_eq!(table.retry_after(&k, NOW), Some(1));
        table.failed(&k, NOW + 1);
        assert_eq!(table.retry_after(&k, NOW + 1), Some(2));
        table.failed(&k, NOW + 3);
        assert_eq!(table.retry_after(&k, NOW + 3), Some(4));
        for _ in 0..30 {
            table.failed(&k, NOW + 10);
        }
        assert_eq!(table.retry_after(&k, NOW + 10), Some(MAX_LOCK), "capped");
        assert_eq!(table.retry_after(&k, NOW + 10 + MAX_LOCK), None, "the lock ends");
    }

    #[test]
    fn the_username_is_throttled_from_any_address_and_success_clears_only_it() {
        let mut table = FailedLogins::default();
        for i in 0..=FREE_FAILURES {
            table.failed(&keys(&format!("10.0.0.{i}"), "alice"), NOW);
        }
        assert!(table.retry_after(&keys("192.0.2.9", "ALICE"), NOW).is_some(), "same user, new address");
        assert_eq!(table.retry_after(&keys("192.0.2.9", "bob"), NOW), None);
        let attacker = keys("10.0.0.66", "x");
        for _ in 0..=FREE_FAILURES {
            table.failed(&attacker, NOW);
        }
        table.succeeded(&keys("10.0.0.66", "carol")[1]);
        assert!(table.retry_after(&keys("10.0.0.66", "carol"), NOW).is_some(), "the address stays locked");
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut table = FailedLogins::default();
        for i in 0..(MAX_KEYS as i64 + 500) {
            table.failed(&keys(&format!("s{i}"), &format!("u{i}")), NOW + i);
        }
        assert!(table.len() <= MAX_KEYS, "{}", table.len());
        assert!(table.records.contains_key("user:u100499"), "the newest are kept");
    }
}
