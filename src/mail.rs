//! Email delivery through an SMTP relay: what CIBA sends its approval links with.
//!
//! The core holds a [`Mailer`] (`Option<Arc<dyn Mailer>>`, none when no relay is
//! configured) and never a network client: [`SmtpMailer`] is the one implementation that
//! talks SMTP, built by the runtime from [`SmtpOptions`].
//!
//! Rules this module keeps:
//! - Credentials and approval links never cross a network in clear text: the relay is
//!   reached with STARTTLS *required* (RFC 3207; never "opportunistic", which a man in the
//!   middle downgrades by removing `STARTTLS` from the EHLO reply, RFC 3207 §6) or implicit
//!   TLS (RFC 8314 §3), and plain SMTP only on a loopback host (a relay sidecar, tests).
//! - The SMTP password is read once from a file and appears in no error and no log line.
//! - A dead relay fails fast: every command, and the delivery as a whole, is bounded by
//!   [`SmtpOptions::timeout`].
//! - A recipient or subject with CR or LF is refused before anything is sent: in a header
//!   it would end the line and let the caller write headers of its own (RFC 5322 §2.2).

use std::{fmt, net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, SinglePart, header::ContentType},
    transport::smtp::{
        PoolConfig,
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};

/// One message to one recipient.
#[derive(Clone)]
pub struct Email {
    /// The recipient: `user@example.com` or `Name <user@example.com>`.
    pub to: String,
    pub subject: String,
    /// The plain-text body (always sent).
    pub text: String,
    /// An HTML alternative of the same content; with it the message is
    /// `multipart/alternative` (RFC 2046 §5.1.4: plain first, the richer part last).
    pub html: Option<String>,
}

/// Bodies carry single-use approval links: a debug print shows only where a message goes.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("html", &self.html.is_some())
            .finish_non_exhaustive()
    }
}

/// Sends email; what the core holds (`Option<Arc<dyn Mailer>>`).
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// Why a message was not sent. No variant carries the SMTP password.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail configuration is wrong (options, password file, certificates, or the relay
    /// refusing the credentials): nothing will be delivered until an operator fixes it.
    #[error("mail configuration: {0}")]
    Config(String),
    /// The relay cannot be reached, timed out, or answered with a transient failure (4xx,
    /// RFC 5321 §4.2.1): trying again later may work.
    #[error("mail relay unavailable: {0}")]
    Unavailable(String),
    /// The recipient or the message was refused, by the relay (5xx, RFC 5321 §4.2.1) or
    /// before sending (an unusable address or header): retrying the same message will not help.
    #[error("message refused: {0}")]
    Rejected(String),
}

/// How the connection to the relay is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (RFC 3207), usually port 587; refused if the
    /// relay does not offer it.
    #[default]
    StartTls,
    /// TLS from the first byte ("implicit TLS", RFC 8314 §3), usually port 465.
    Tls,
    /// No encryption: only to a loopback host.
    None,
}

impl SmtpTls {
    pub const NAMES: [&'static str; 3] = ["starttls", "tls", "none"];
}

impl FromStr for SmtpTls {
    type Err = String;

    fn from_str(s: &str) -> Result<SmtpTls, String> {
        match s.to_ascii_lowercase().as_str() {
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            "none" => Ok(SmtpTls::None),
            _ => Err(format!("{s:?} is not one of starttls, tls, none")),
        }
    }
}

impl fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        })
    }
}

/// The relay and how to reach it.
#[derive(Clone, Debug)]
pub struct SmtpOptions {
    /// Host name (checked against the relay's certificate) or IP address.
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The From address of every message (`noreply@example.com` or `Name <...>`).
    pub from: String,
    /// SMTP AUTH user (RFC 4954); with `password_file`, or neither.
    pub username: Option<String>,
    /// A file holding the SMTP password (e.g. a mounted Secret key), read once, trimmed.
    pub password_file: Option<PathBuf>,
    /// Bounds each SMTP command and each delivery as a whole.
    pub timeout: Duration,
    /// PEM certificates trusted besides the system roots (a relay with a private CA).
    pub ca_file: Option<PathBuf>,
}

impl SmtpOptions {
    /// The submission port (RFC 6409) with STARTTLS, the usual relay setup.
    pub const DEFAULT_PORT: u16 = 587;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

/// Sends through one SMTP relay over a pool of reused connections.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    /// Only to scrub it from error texts, should a relay ever echo it.
    password: Option<String>,
    relay: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer").field("relay", &self.relay).field("from", &self.from).finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Checks the options, reads the password and certificates, and prepares the pooled
    /// transport (no connection is made until the first message). Call inside a Tokio
    /// runtime: the pool's upkeep task is spawned here.
    pub fn new(options: &SmtpOptions) -> Result<SmtpMailer, MailError> {
        let host = options.host.trim();
        if host.is_empty() {
            return Err(MailError::Config("the SMTP host is empty".into()));
        }
        if options.port == 0 {
            return Err(MailError::Config("the SMTP port must not be 0".into()));
        }
        if options.timeout.is_zero() {
            return Err(MailError::Config("the SMTP timeout must be more than zero".into()));
        }
        if options.tls == SmtpTls::None && !is_loopback(host) {
            return Err(MailError::Config(format!(
                "SMTP without TLS is only allowed to a loopback host, not {host}: credentials and \
                 approval links must not cross a network in clear text (use starttls or tls)"
            )));
        }
        if options.from.trim().is_empty() {
            return Err(MailError::Config("no From address is set".into()));
        }
        let from = parse_mailbox(&options.from)
            .map_err(|e| MailError::Config(format!("the from address {:?} is not usable: {e}", options.from)))?;
        let username = options.username.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let password = match (username, &options.password_file) {
            (None, None) => None,
            (Some(_), None) => return Err(MailError::Config("an SMTP username needs a password file".into())),
            (None, Some(_)) => return Err(MailError::Config("an SMTP password file needs a username".into())),
            (Some(_), Some(path)) => {
                let read = std::fs::read_to_string(path).map_err(|e| {
                    MailError::Config(format!("cannot read the SMTP password file {}: {e}", path.display()))
                })?;
                let password = read.trim().to_string();
                if password.is_empty() {
                    return Err(MailError::Config(format!("the SMTP password file {} is empty", path.display())));
                }
                Some(password)
            }
        };

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(options.port)
            .timeout(Some(options.timeout))
            .pool_config(PoolConfig::new());
        builder = match options.tls {
            SmtpTls::None => builder.tls(Tls::None),
            // Required, not Opportunistic: see the module documentation (RFC 3207 §6).
            SmtpTls::StartTls => builder.tls(Tls::Required(tls_parameters(host, options.ca_file.as_ref())?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(tls_parameters(host, options.ca_file.as_ref())?)),
        };
        if let (Some(username), Some(password)) = (username, &password) {
            builder = builder.credentials(Credentials::new(username.to_string(), password.clone()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
            timeout: options.timeout,
            password,
            relay: format!("{host}:{} ({})", options.port, options.tls),
        })
    }

    /// The message as it goes on the wire: From the configured address, one recipient, a
    /// plain part and an optional HTML alternative.
    pub fn message(&self, email: &Email) -> Result<Message, MailError> {
        build_message(&self.from, email)
    }

    /// An error text with the password removed, should anything have echoed it.
    fn scrub(&self, text: String) -> String {
        match &self.password {
            Some(password) if text.contains(password.as_str()) => text.replace(password.as_str(), "[redacted]"),
            _ => text,
        }
    }

    fn classify(&self, e: lettre::transport::smtp::Error) -> MailError {
        let detail = self.scrub(e.to_string());
        let code = e.status().map(|c| c.to_string());
        if e.is_permanent() {
            // RFC 4954 §6: 530 authentication required, 534 mechanism too weak, 535 credentials
            // invalid, 538 encryption required: the relay refuses *us*, not this message.
            if matches!(code.as_deref(), Some("530" | "534" | "535" | "538")) {
                return MailError::Config(format!("the relay {} refused to authenticate us: {detail}", self.relay));
            }
            MailError::Rejected(format!("the relay {} refused the message: {detail}", self.relay))
        } else if e.is_transient() {
            MailError::Unavailable(format!("the relay {} deferred the message: {detail}", self.relay))
        } else if e.is_timeout() {
            MailError::Unavailable(format!("the relay {} did not answer within {:?}", self.relay, self.timeout))
        } else {
            MailError::Unavailable(format!("cannot deliver to the relay {}: {}", self.relay, full_chain(&e, self)))
        }
    }
}

/// The error with its causes (lettre's own text often ends at "Connection error").
fn full_chain(e: &lettre::transport::smtp::Error, mailer: &SmtpMailer) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    mailer.scrub(text)
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = self.message(email)?;
        // lettre bounds each command; this bounds the whole exchange (connect, EHLO,
        // STARTTLS, AUTH, MAIL, RCPT, DATA), so a relay that answers slowly line by line
        // still fails within the configured time.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_elapsed) => Err(MailError::Unavailable(format!(
                "the relay {} did not answer within {:?}",
                self.relay, self.timeout
            ))),
        }
    }
}

fn tls_parameters(host: &str, ca_file: Option<&PathBuf>) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| MailError::Config(format!("cannot read the SMTP CA file {}: {e}", path.display())))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(MailError::Config(format!("the SMTP CA file {} holds no PEM certificate", path.display())));
        }
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| MailError::Config(format!("the SMTP CA file {} is not PEM: {e}", path.display())))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(|e| MailError::Config(format!("cannot set up TLS for {host}: {e}")))
}

/// `localhost` (RFC 6761 §6.3 reserves it for the loopback interface) or a loopback IP
/// literal (`127.0.0.0/8`, `::1`, with or without brackets).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    literal.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Control characters (CR and LF above all) end a header line (RFC 5322 §2.2): whoever
/// controls the value would write headers, or a body, of their own.
fn refuse_controls(what: &str, value: &str) -> Result<(), MailError> {
    if value.chars().any(char::is_control) {
        return Err(MailError::Rejected(format!("the {what} contains a line break or control character")));
    }
    Ok(())
}

fn parse_mailbox(value: &str) -> Result<Mailbox, String> {
    if value.chars().any(char::is_control) {
        return Err("it contains a line break or control character".into());
    }
    value.trim().parse::<Mailbox>().map_err(|e| e.to_string())
}

fn build_message(from: &Mailbox, email: &Email) -> Result<Message, MailError> {
    refuse_controls("recipient", &email.to)?;
    refuse_controls("subject", &email.subject)?;
    let to = parse_mailbox(&email.to)
        .map_err(|e| MailError::Rejected(format!("the recipient {:?} is not an address: {e}", email.to)))?;
    // RFC 5322 §3.6.4: the originator gives each message a unique id; its right part is the
    // From domain (which the sender owns) rather than the host name (a Pod's, meaningless
    // outside the cluster).
    let message_id = format!("<{}@{}>", crate::secrets::random_token(18), from.email.domain());
    let builder =
        Message::builder().from(from.clone()).to(to).subject(email.subject.clone()).message_id(Some(message_id));
    let built = match &email.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(email.text.clone(), html.clone())),
        None => {
            builder.singlepart(SinglePart::builder().content_type(ContentType::TEXT_PLAIN).body(email.text.clone()))
        }
    };
    built.map_err(|e| MailError::Rejected(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SmtpOptions {
        SmtpOptions {
            host: "smtp.example.com".into(),
            port: SmtpOptions::DEFAULT_PORT,
            tls: SmtpTls::StartTls,
            from: "Example <noreply@example.com>".into(),
            username: None,
            password_file: None,
            timeout: SmtpOptions::DEFAULT_TIMEOUT,
            ca_file: None,
        }
    }

    fn config_error(options: &SmtpOptions) -> String {
        match SmtpMailer::new(options) {
            Err(MailError::Config(e)) => e,
            Err(other) => panic!("not a configuration error: {other}"),
            Ok(_) => panic!("accepted {options:?}"),
        }
    }

    fn email() -> Email {
        Email {
            to: "Alice <alice@example.org>".into(),
            subject: "Approve sign-in to Billing".into(),
            text: "Open https://auth.example.com/ciba/approve?t=abc to approve.".into(),
            html: Some("<p><a href=\"https://auth.example.com/ciba/approve?t=abc\">Approve</a></p>".into()),
        }
    }

    fn formatted(email: &Email) -> String {
        let from: Mailbox = "Example <noreply@example.com>".parse().unwrap();
        String::from_utf8(build_message(&from, email).unwrap().formatted()).unwrap()
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["smtp.example.com", "10.0.0.1", "0.0.0.0", "localhost.example.com", "[::2]", "::"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn tls_names_round_trip() {
        for name in SmtpTls::NAMES {
            assert_eq!(name.parse::<SmtpTls>().unwrap().to_string(), name);
        }
        assert_eq!("STARTTLS".parse::<SmtpTls>().unwrap(), SmtpTls::StartTls);
        assert!("ssl".parse::<SmtpTls>().is_err());
    }

    #[test]
    fn clear_text_only_to_loopback() {
        let e = config_error(&SmtpOptions { tls: SmtpTls::None, ..options() });
        assert!(e.contains("only allowed to a loopback host") && e.contains("smtp.example.com"), "{e}");
    }

    #[tokio::test]
    async fn clear_text_to_loopback_and_tls_elsewhere_are_accepted() {
        SmtpMailer::new(&SmtpOptions { host: "127.0.0.1".into(), tls: SmtpTls::None, ..options() }).unwrap();
        SmtpMailer::new(&SmtpOptions { tls: SmtpTls::Tls, port: 465, ..options() }).unwrap();
        SmtpMailer::new(&options()).unwrap();
    }

    #[test]
    fn options_are_checked() {
        assert!(config_error(&SmtpOptions { host: " ".into(), ..options() }).contains("host is empty"));
        assert!(config_error(&SmtpOptions { port: 0, ..options() }).contains("port"));
        assert!(config_error(&SmtpOptions { timeout: Duration::ZERO, ..options() }).contains("timeout"));
        assert!(config_error(&SmtpOptions { from: " ".into(), ..options() }).contains("no From address"));
        for from in ["not an address", "a@example.com\r\nBcc: victim@example.org"] {
            let e = config_error(&SmtpOptions { from: from.into(), ..options() });
            assert!(e.contains("from address"), "{from:?}: {e}");
        }
        let e = config_error(&SmtpOptions { username: Some("mailer".into()), ..options() });
        assert!(e.contains("username needs a password file"), "{e}");
        let e = config_error(&SmtpOptions { password_file: Some("/nonexistent".into()), ..options() });
        assert!(e.contains("password file needs a username"), "{e}");
        let e = config_error(&SmtpOptions {
            username: Some("mailer".into()),
            password_file: Some("/nonexistent/password".into()),
            ..options()
        });
        assert!(e.contains("cannot read the SMTP password file /nonexistent/password"), "{e}");
        let e = config_error(&SmtpOptions { ca_file: Some("/nonexistent/ca.pem".into()), ..options() });
        assert!(e.contains("cannot read the SMTP CA file"), "{e}");
    }

    #[tokio::test]
    async fn the_password_is_read_once_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "  s3cret-value\n").unwrap();
        let mailer = SmtpMailer::new(&SmtpOptions {
            username: Some("mailer".into()),
            password_file: Some(path.clone()),
            ..options()
        })
        .unwrap();
        assert_eq!(mailer.password.as_deref(), Some("s3cret-value"));
        // Read once: a later change of the file does not reach this mailer.
        std::fs::write(&path, "other").unwrap();
        assert_eq!(mailer.password.as_deref(), Some("s3cret-value"));
        assert!(!format!("{mailer:?}").contains("s3cret"));
        assert_eq!(mailer.scrub("535 bad s3cret-value".into()), "535 bad [redacted]");

        std::fs::write(&path, "\n").unwrap();
        let e = config_error(&SmtpOptions { username: Some("mailer".into()), password_file: Some(path), ..options() });
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn a_message_has_the_configured_from_one_recipient_and_both_parts() {
        let text = formatted(&email());
        let (headers, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(headers.contains("From: Example <noreply@example.com>\r\n"), "{headers}");
        assert!(headers.contains("To: Alice <alice@example.org>\r\n"), "{headers}");
        assert!(headers.contains("Subject: Approve sign-in to Billing\r\n"), "{headers}");
        assert!(headers.contains("Content-Type: multipart/alternative;"), "{headers}");
        assert!(headers.contains("Date: "), "{headers}");
        let id = headers.lines().find_map(|l| l.strip_prefix("Message-ID: ")).expect("a Message-ID");
        assert!(id.starts_with('<') && id.ends_with("@example.com>") && id.len() > 30, "{id}");
        assert!(!headers.contains("Bcc"), "{headers}");
        // RFC 2046 §5.1.4: alternatives in increasing faithfulness, plain text first.
        let plain = body.find("Content-Type: text/plain").expect("a plain part");
        let html = body.find("Content-Type: text/html").expect("an html part");
        assert!(plain < html, "{body}");
        assert!(body.contains("https://auth.example.com/ciba/approve?t=abc"), "{body}");
    }

    #[test]
    fn without_html_a_message_is_plain_text() {
        let text = formatted(&Email { html: None, ..email() });
        let (headers, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(headers.contains("Content-Type: text/plain; charset=utf-8"), "{headers}");
        assert!(!text.contains("multipart") && !text.contains("text/html"), "{text}");
        assert!(body.contains("to approve."), "{body}");
    }

    #[test]
    fn header_injection_is_refused() {
        let from: Mailbox = "noreply@example.com".parse().unwrap();
        for email in [
            Email { to: "alice@example.org\r\nBcc: victim@example.org".into(), ..email() },
            Email { to: "alice@example.org\nBcc: victim@example.org".into(), ..email() },
            Email { subject: "Approve\r\nBcc: victim@example.org".into(), ..email() },
            Email { subject: "Approve\rX-Evil: 1".into(), ..email() },
        ] {
            match build_message(&from, &email) {
                Err(MailError::Rejected(e)) => assert!(e.contains("line break"), "{e}"),
                Err(other) => panic!("{email:?}: {other}"),
                Ok(m) => panic!("{email:?} built:\n{}", String::from_utf8_lossy(&m.formatted())),
            }
        }
        for to in ["", "alice", "alice@example.org, bob@example.org"] {
            let e = build_message(&from, &Email { to: to.into(), ..email() }).unwrap_err();
            assert!(matches!(e, MailError::Rejected(_)), "{to:?}: {e}");
        }
    }

    #[test]
    fn a_debug_print_shows_no_body() {
        let shown = format!("{:?}", email());
        assert!(shown.contains("alice@example.org") && !shown.contains("approve?t="), "{shown}");
    }
}
