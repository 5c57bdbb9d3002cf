//! The audit trail: one JSON line per security-relevant act (README "Audit events").
//!
//! Separate from the diagnostic log (stderr, for operators debugging): the audit trail is
//! a record for whoever answers "who got access to what, when, from where". Every record
//! carries the schema `version`, the `time`, the `event` type, the `outcome`, and — when the
//! act happened in an HTTP request — the `request_id` (also sent to the caller as the
//! `X-Request-Id` response header) and the `source_address` (trusted-proxy aware, as the
//! per-source limits count it).
//!
//! A record never holds a secret, a code, a token or a password: tokens appear by `jti`,
//! refresh grants by family id, users by subject and the username they typed.
//!
//! Records are serialized by the caller and written by one thread in order (stdout, and an
//! append-only file when configured): a request pays for building its record, not for the
//! write. The queue is bounded; when the writer falls behind, emitters wait rather than
//! drop records.

use std::{
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    thread::JoinHandle,
};

use serde::Serialize;

/// The version of the record schema (README "Audit events"); raised on any change that is
/// not a new optional field or a new event type.
pub const SCHEMA_VERSION: u32 = 1;

/// Records waiting for the writer before emitters wait.
const QUEUE: usize = 16 * 1024;

/// What the HTTP layer knows about the request an act happens in.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub source_address: IpAddr,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// Runs `future` as the handling of one request: records emitted inside carry `context`.
pub async fn in_request<F: std::future::Future>(context: RequestContext, future: F) -> F::Output {
    REQUEST.scope(context, future).await
}

/// A fresh request id: a random prefix drawn once per process (so ids are unique across
/// replicas and restarts) and a counter (no system call per request).
pub fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| crate::secrets::random_token(9));
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether an act succeeded; refusals and detected attacks are failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

/// Why a refresh-token family (a grant's refresh tokens and the access tokens they issued)
/// was ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyRevocation {
    /// A spent refresh token was presented again (OAuth 2.1 §4.3.1).
    RefreshTokenReused,
    /// An authorization code was redeemed twice (RFC 6749 §4.1.2).
    CodeReplayed,
    /// Another client presented the refresh token.
    PresentedByAnotherClient,
    /// The user no longer exists.
    UserGone,
    /// The user no longer belongs to the tenant the grant was made in.
    LeftTenant,
    /// The client revoked it (RFC 7009).
    Revoked,
}

/// Who ended a consent or deleted a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revoker {
    /// The user, on the account page or its API.
    User,
    /// The client itself (RFC 7592 with its registration access token).
    Client,
    /// An administrator (CLI or admin API).
    Admin,
}

/// How a client came to exist at runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// RFC 7591 Dynamic Client Registration.
    Registered,
    /// A Client ID Metadata Document fetched by URL.
    MetadataDocument,
}

/// One security-relevant act. The field names are the schema (README "Audit events").
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An access token was issued (`/token`).
    TokenIssued {
        grant_type: String,
        client_id: String,
        client_namespace: String,
        subject: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        scopes: Vec<String>,
        audience: Vec<String>,
        jti: String,
        token_format: &'static str,
        expires_at: i64,
        refresh_token: bool,
        id_token: bool,
    },
    /// `/token` refused a request.
    TokenRefused {
        grant_type: String,
        /// The client id the request claimed (not necessarily authenticated).
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        error: String,
    },
    /// A refresh token was spent and a new one issued.
    RefreshTokenRotated { client_id: String, subject: String, family_id: String },
    /// A spent refresh token was presented again: its family is revoked.
    RefreshTokenReused { client_id: String, family_id: String },
    /// Every token of a grant was revoked.
    TokenFamilyRevoked { client_id: String, family_id: String, reason: FamilyRevocation },
    /// A resource server asked about a token (RFC 7662).
    Introspection {
        /// The authenticated caller (a resource server's client id).
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<String>,
        active: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        jti: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        token_client_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A client revoked a token (RFC 7009): what it turned out to be.
    Revocation {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<String>,
        /// `access_token`, `refresh_token`, or `none` (unknown, expired or not the caller's:
        /// RFC 7009 §2.2 answers 200 all the same).
        revoked: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        jti: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        family_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A user signed in.
    LoginSucceeded {
        /// `password`, an upstream provider's name, or `application`.
        identity_source: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        subject: String,
    },
    /// A sign-in was refused (wrong password, throttled, upstream error).
    LoginFailed {
        identity_source: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        reason: String,
    },
    /// A user signed out (RP-initiated logout).
    Logout {
        subject: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// A consent was recorded (or widened).
    ConsentGranted {
        consent_id: String,
        client_id: String,
        subject: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        scopes: Vec<String>,
        granted_by: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    /// The user declined on the consent screen.
    ConsentDenied { client_id: String, subject: String },
    /// A consent was ended, with every token it issued.
    ConsentRevoked {
        consent_id: String,
        subject: String,
        revoked_by: Revoker,
        #[serde(skip_serializing_if = "Option::is_none")]
        actor: Option<String>,
    },
    /// A client registered itself, or a metadata document was accepted.
    ClientRegistered {
        client_id: String,
        kind: ClientKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_name: Option<String>,
    },
    /// A client refused at registration.
    ClientRegistrationRefused { error: String },
    /// A registered client changed its metadata (RFC 7592).
    ClientUpdated { client_id: String },
    /// A registered client was deleted: by itself (RFC 7592) or an administrator.
    ClientDeleted {
        client_id: String,
        deleted_by: Revoker,
        #[serde(skip_serializing_if = "Option::is_none")]
        actor: Option<String>,
    },
    /// Unused registered clients were removed by the maintenance pass.
    ClientsReaped { client_ids: Vec<String> },
    /// A declared app was deleted: its consents and tokens revoked.
    AppDeleted { app: String, client_id: String, consents_revoked: u64 },
    /// The admin API or CLI listed or changed clients.
    AdminAction {
        action: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        actor: Option<String>,
        count: usize,
    },
    /// Signing keys rotated: `current` signs from now on.
    SigningKeysRotated { current: Vec<String>, published: Vec<String> },
    /// A declared app's client secret was issued (first, rotated on request, or replacing a
    /// lost one).
    ClientSecretIssued {
        app: String,
        client_id: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_valid_until: Option<i64>,
    },
}

impl Event {
    pub fn outcome(&self) -> Outcome {
        match self {
            Event::TokenRefused { .. }
            | Event::RefreshTokenReused { .. }
            | Event::LoginFailed { .. }
            | Event::ConsentDenied { .. }
            | Event::ClientRegistrationRefused { .. } => Outcome::Failure,
            Event::Introspection { error, .. } | Event::Revocation { error, .. } if error.is_some() => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}

#[derive(Serialize)]
struct Record<'a> {
    version: u32,
    time: String,
    #[serde(flatten)]
    event: &'a Event,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_address: Option<IpAddr>,
}

/// Where records go.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// Standard output (the default of both servers).
    pub stdout: bool,
    /// An append-only file, created `0600` if missing.
    pub file: Option<PathBuf>,
    /// Hold records (queued, in order) until [`Audit::release`]: `inbound serve` prints its
    /// banner on standard output first.
    pub held: bool,
}

/// What [`Audit::observe`] is given.
pub type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// The audit trail of one process.
pub struct Audit {
    sender: Mutex<Option<SyncSender<Vec<u8>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Dropped to let a held writer start.
    hold: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// Sees every event as it is emitted (the metrics count tokens and sign-ins from them).
    observer: std::sync::OnceLock<Observer>,
    /// Records handed to the writer; with `written` and `failures`, what is still queued.
    queued: AtomicU64,
    written: std::sync::Arc<AtomicU64>,
    failures: std::sync::Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the audit file {path}: {source}")]
pub struct AuditError {
    path: String,
    source: std::io::Error,
}

impl Audit {
    /// Records nowhere (tools and unit tests).
    pub fn disabled() -> Audit {
        Audit::start(Vec::new())
    }

    pub fn open(options: &AuditOptions) -> Result<Audit, AuditError> {
        let mut sinks: Vec<Box<dyn Write + Send>> = Vec::new();
        if options.stdout {
            sinks.push(Box::new(std::io::stdout()));
        }
        if let Some(path) = &options.file {
            sinks.push(Box::new(open_append_only(path)?));
        }
        let audit = Audit::start(sinks);
        if !options.held {
            audit.release();
        }
        Ok(audit)
    }

    /// Held until [`Audit::release`].
    fn start(sinks: Vec<Box<dyn Write + Send>>) -> Audit {
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let failures = std::sync::Arc::new(AtomicU64::new(0));
        if sinks.is_empty() {
            return Audit {
                sender: Mutex::new(None),
                writer: Mutex::new(None),
                hold: Mutex::new(None),
                observer: Default::default(),
                queued: AtomicU64::new(0),
                written,
                failures,
            };
        }
        let (sender, receiver) = sync_channel(QUEUE);
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (w, f) = (written.clone(), failures.clone());
        let writer = std::thread::Builder::new()
            .name("inbound-audit".into())
            .spawn(move || {
                // Returns once the sender is dropped (released).
                let _ = held.recv();
                write_records(receiver, sinks, &w, &f)
            })
            .expect("spawn the audit writer");
        Audit {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            hold: Mutex::new(Some(hold)),
            observer: Default::default(),
            queued: AtomicU64::new(0),
            written,
            failures,
        }
    }

    /// Calls `observer` with every event emitted from now on (once per process).
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Lets a held writer start writing (what was queued first).
    pub fn release(&self) {
        drop(self.hold.lock().expect("audit lock").take());
    }

    /// Records `event`, with the current request's id and source address if there is one.
    pub fn emit(&self, event: Event) {
        if let Some(observe) = self.observer.get() {
            observe(&event);
        }
        let sender = self.sender.lock().expect("audit lock").clone();
        let Some(sender) = sender else { return };
        let context = REQUEST.try_with(|c| c.clone()).ok();
        let record = Record {
            version: SCHEMA_VERSION,
            time: jiff::Timestamp::now().round(jiff::Unit::Millisecond).unwrap_or(jiff::Timestamp::now()).to_string(),
            event: &event,
            outcome: event.outcome(),
            request_id: context.as_ref().map(|c| c.request_id.as_str()),
            source_address: context.as_ref().map(|c| c.source_address),
        };
        let mut line = serde_json::to_vec(&record).expect("audit records serialize");
        line.push(b'\n');
        // Blocks only when the writer is QUEUE records behind: back-pressure, never loss.
        self.queued.fetch_add(1, Ordering::Relaxed);
        if sender.send(line).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits, up to `limit`, until every record emitted before the call has been written (or
    /// counted as failed); false if some still are queued. A held writer never catches up.
    pub fn wait_until_written(&self, limit: std::time::Duration) -> bool {
        let queued = self.queued.load(Ordering::Relaxed);
        let deadline = std::time::Instant::now() + limit;
        loop {
            let (written, failures) = self.counts();
            if written + failures >= queued {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(BATCH_DELAY);
        }
    }

    /// Records written so far, and records that could not be written.
    pub fn counts(&self) -> (u64, u64) {
        (self.written.load(Ordering::Acquire), self.failures.load(Ordering::Acquire))
    }

    /// Writes out every queued record and stops the writer (shutdown).
    pub fn close(&self) {
        self.release();
        drop(self.sender.lock().expect("audit lock").take());
        if let Some(writer) = self.writer.lock().expect("audit lock").take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        self.close();
    }
}

/// How long the writer lets records gather after the first one wakes it. Under load a wake
/// per record would cost a context switch and a write per request; this way it is one per
/// batch, and a record reaches the sinks at most this much later.
const BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(2);
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The writer thread: the records queued in one batch, written to every sink in one write
/// and flushed.
fn write_records(
    receiver: Receiver<Vec<u8>>,
    mut sinks: Vec<Box<dyn Write + Send>>,
    written: &AtomicU64,
    failures: &AtomicU64,
) {
    let mut batch = Vec::new();
    let mut backlog = false;
    while let Ok(first) = receiver.recv() {
        if !backlog {
            std::thread::sleep(BATCH_DELAY);
        }
        batch.clear();
        batch.extend_from_slice(&first);
        let mut records = 1;
        // Bounded in bytes, so that the buffer kept between batches stays small; what is
        // left goes in the next batch, without waiting.
        while batch.len() < MAX_BATCH_BYTES {
            let Ok(line) = receiver.try_recv() else { break };
            batch.extend_from_slice(&line);
            records += 1;
        }
        backlog = batch.len() >= MAX_BATCH_BYTES;
        let mut ok = true;
        for sink in &mut sinks {
            ok &= sink.write_all(&batch).and_then(|()| sink.flush()).is_ok();
        }
        if ok {
            // Release: a reader that sees the count sees the write before it.
            written.fetch_add(records as u64, Ordering::Release);
        } else if failures.fetch_add(records as u64, Ordering::Release) == 0 {
            // Logged without the records (they may name users); counted for alerting.
            tracing::error!("cannot write the audit trail; counting failures in inbound_audit_failures_total");
        }
    }
}

fn open_append_only(path: &Path) -> Result<std::fs::File, AuditError> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| AuditError { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_the_common_fields_and_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(&AuditOptions { stdout: false, file: Some(path.clone()), held: false }).unwrap();
        audit.emit(Event::ConsentDenied { client_id: "c".into(), subject: "u".into() });
        let context = RequestContext { request_id: "r-1".into(), source_address: "192.0.2.7".parse().unwrap() };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(in_request(context, async {
            audit.emit(Event::Logout { subject: "u".into(), client_id: None });
        }));
        audit.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["version"], SCHEMA_VERSION);
        assert_eq!(lines[0]["event"], "consent_denied");
        assert_eq!(lines[0]["outcome"], "failure");
        assert!(lines[0].get("request_id").is_none(), "outside a request");
        assert!(lines[0]["time"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok());
        assert_eq!(lines[1]["event"], "logout");
        assert_eq!(lines[1]["outcome"], "success");
        assert_eq!(lines[1]["request_id"], "r-1");
        assert_eq!(lines[1]["source_address"], "192.0.2.7");
        assert_eq!(audit.counts(), (2, 0));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // Appended, never truncated.
        let again = Audit::open(&AuditOptions { stdout: false, file: Some(path.clone()), held: false }).unwrap();
        again.emit(Event::ConsentDenied { client_id: "c".into(), subject: "u".into() });
        again.close();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }
}
