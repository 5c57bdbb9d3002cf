//! The wall clock, read only at the edges (handlers, the controller, the runtime).
//!
//! The OAuth core never calls this: it takes `now` as a parameter, so that every decision
//! that depends on time is a pure function a unit test can drive.

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
