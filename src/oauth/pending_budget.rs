//! A bound on the state unauthenticated requests make the server keep. Every authorization
//! request that shows a login page (or goes upstream) stores a pending request for up to
//! ten minutes; without a bound, anyone could fill the store with them.
//!
//! Two limits, both in memory per process: each source address (a /64 for IPv6, see
//! `http::client_ip::limit_source`) gets a token bucket of [`SOURCE_BURST`] refilled at
//! [`SOURCE_PER_SECOND`]; and the whole process admits at most [`MAX_PER_WINDOW`] in any
//! [`WINDOW`] (the pending lifetime), so the rows such requests can add are bounded by
//! replicas × [`MAX_PER_WINDOW`] whatever the number of addresses.

use std::collections::{HashMap, VecDeque};

pub const SOURCE_BURST: f64 = 60.0;
pub const SOURCE_PER_SECOND: f64 = 1.0;
pub const WINDOW: i64 = 600;
pub const MAX_PER_WINDOW: u64 = 100_000;
/// Most sources tracked; full buckets are forgotten first.
const MAX_SOURCES: usize = 100_000;

#[derive(Debug, Default)]
pub struct PendingBudget {
    sources: HashMap<String, (f64, i64)>,
    /// Admissions per second, oldest first, within the window.
    recent: VecDeque<(i64, u64)>,
    in_window: u64,
}

impl PendingBudget {
    /// Admits one pending request from `source` at `now`, or says in how many seconds to
    /// retry.
    pub fn admit(&mut self, source: &str, now: i64) -> Result<(), i64> {
        while let Some((t, n)) = self.recent.front().copied() {
            if now - t < WINDOW {
                break;
            }
            self.in_window -= n;
            self.recent.pop_front();
        }
        if self.in_window >= MAX_PER_WINDOW {
            let oldest = self.recent.front().map(|(t, _)| *t).unwrap_or(now);
            return Err((oldest + WINDOW - now).max(1));
        }
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(source) {
            // Forget buckets that have refilled: they hold nothing a new one would not.
            self.sources.retain(|_, (tokens, at)| *tokens + (now - *at) as f64 * SOURCE_PER_SECOND < SOURCE_BURST);
            if self.sources.len() >= MAX_SOURCES {
                return Err(1);
            }
        }
        let (tokens, at) = self.sources.entry(source.to_string()).or_insert((SOURCE_BURST, now));
        *tokens = (*tokens + (now - *at).max(0) as f64 * SOURCE_PER_SECOND).min(SOURCE_BURST);
        *at = now;
        if *tokens < 1.0 {
            return Err(((1.0 - *tokens) / SOURCE_PER_SECOND).ceil() as i64);
        }
        *tokens -= 1.0;
        match self.recent.back_mut() {
            Some((t, n)) if *t == now => *n += 1,
            _ => self.recent.push_back((now, 1)),
        }
        self.in_window += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_source_gets_a_burst_then_one_per_second() {
        let mut budget = PendingBudget::default();
        for _ in 0..SOURCE_BURST as usize {
            budget.admit("a", NOW).unwrap();
        }
        assert_eq!(budget.admit("a", NOW), Err(1));
        assert!(budget.admit("b", NOW).is_ok(), "another source has its own budget");
        assert!(budget.admit("a", NOW + 1).is_ok());
        assert!(budget.admit("a", NOW + 1).is_err());
    }

    #[test]
    fn the_process_admits_at_most_the_window_cap_whatever_the_sources() {
        let mut budget = PendingBudget::default();
        for i in 0..MAX_PER_WINDOW {
            budget.admit(&format!("s{}", i % 50_000), NOW + (i / 50_000) as i64 * 100).unwrap();
        }
        let last = NOW + 100;
        assert!(budget.admit("fresh", last).is_err(), "the window is full");
        assert!(budget.admit("fresh", NOW + WINDOW).is_ok(), "the first second's admissions left the window");
    }
}
