//! A real SMTP server for the tests: Debian's `python3-aiosmtpd` (`scripts/test-deps.sh`
//! installs it), started on a free loopback port with its `Mailbox` handler, which stores
//! every message it accepts in a maildir; the test reads them back from there.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The Python that has Debian's `aiosmtpd` module: the system one (a pyenv or venv
/// `python3` earlier on PATH does not see Debian's packages).
fn python() -> PathBuf {
    let python =
        std::env::var_os("INBOUND_SMTP_PYTHON").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/python3".into());
    let has_module = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(has_module, "{} has no aiosmtpd: run scripts/test-deps.sh (`make test` does)", python.display());
    python
}

/// A running aiosmtpd; killed when dropped.
pub struct SmtpServer {
    child: Child,
    addr: SocketAddr,
    maildir: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// STARTTLS for [`SmtpServer::start_with_starttls`]: the server's certificate chain and key.
pub struct ServerTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

impl SmtpServer {
    /// Plain SMTP on 127.0.0.1.
    pub fn start() -> SmtpServer {
        SmtpServer::spawn(None, None)
    }

    /// Offers STARTTLS and refuses mail until the client has upgraded (aiosmtpd's
    /// `require_starttls`, on by default with a certificate).
    pub fn start_with_starttls(tls: ServerTls<'_>) -> SmtpServer {
        SmtpServer::spawn(Some(tls), None)
    }

    /// Refuses messages larger than `bytes` (RFC 1870 SIZE; 552 at the end of DATA).
    pub fn start_with_size_limit(bytes: usize) -> SmtpServer {
        SmtpServer::spawn(None, Some(bytes))
    }

    /// Requires STARTTLS and then AUTH (RFC 4954) as `login` with `password`
    /// (`tests/smtp/auth_relay.py`: aiosmtpd's Controller with an authenticator).
    pub fn start_with_auth(tls: ServerTls<'_>, login: &str, password: &str) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        let log = dir.path().join("relay.log");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/auth_relay.py");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(python())
            .arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .arg(&maildir)
            .arg(tls.cert)
            .arg(tls.key)
            .args([login, password])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("the auth relay starts");
        let mut server = SmtpServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), maildir, log, _dir: dir };
        server.wait_until_accepting();
        server
    }

    fn spawn(tls: Option<ServerTls<'_>>, max_size: Option<usize>) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        // A path that does not exist yet: the handler creates the maildir (new/, cur/, tmp/)
        // only then.
        let maildir = dir.path().join("maildir");
        let log = dir.path().join("aiosmtpd.log");
        let port = free_port();
        let mut command = Command::new(python());
        // -n: do not try to switch to `nobody` (the tests may run as root).
        command.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if let Some(bytes) = max_size {
            command.args(["-s", &bytes.to_string()]);
        }
        if let Some(tls) = &tls {
            command.arg("--tlscert").arg(tls.cert).arg("--tlskey").arg(tls.key);
        }
        command.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(&maildir);
        let log_file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("aiosmtpd starts");
        let mut server = SmtpServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), maildir, log, _dir: dir };
        server.wait_until_accepting();
        server
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("aiosmtpd exited ({status}):\n{}", self.log());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "aiosmtpd does not accept on {}:\n{}", self.addr, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What the server wrote to its standard output and error.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The messages received so far, in the order they arrived.
    pub fn messages(&self) -> Vec<Received> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                files.push((modified, path));
            }
        }
        files.sort();
        files.into_iter().map(|(_, path)| Received::parse(std::fs::read(path).unwrap())).collect()
    }

    /// Waits (up to `timeout`) until at least `count` messages arrived.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} messages after {timeout:?}:\n{}",
                messages.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One address header (`From`, `To`) as (display name, address); panics unless it holds
/// exactly one mailbox.
pub fn mailbox(header: &str) -> (Option<String>, String) {
    let list = mailparse::addrparse(header).unwrap_or_else(|e| panic!("{header:?}: {e}"));
    match list.extract_single_info() {
        Some(single) => (single.display_name, single.addr),
        None => panic!("{header:?} is not one mailbox"),
    }
}

/// One received message, parsed as MIME (`mailparse`), with the envelope aiosmtpd
/// records in `X-MailFrom` / `X-RcptTo`.
pub struct Received {
    pub raw: Vec<u8>,
    pub from: String,
    pub to: String,
    pub subject: String,
    /// `Content-Type` of the message itself (e.g. `multipart/alternative`).
    pub content_type: String,
    /// The decoded `text/plain` part.
    pub text: Option<String>,
    /// The decoded `text/html` part.
    pub html: Option<String>,
    /// SMTP envelope: the MAIL FROM and RCPT TO addresses.
    pub envelope_from: String,
    pub envelope_to: String,
}

impl Received {
    fn parse(raw: Vec<u8>) -> Received {
        use mailparse::MailHeaderMap;
        let parsed = mailparse::parse_mail(&raw).expect("a MIME message");
        let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
        let mut text = None;
        let mut html = None;
        let mut parts = vec![&parsed];
        while let Some(part) = parts.pop() {
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = Some(part.get_body().unwrap()),
                "text/html" => html = Some(part.get_body().unwrap()),
                _ => parts.extend(part.subparts.iter()),
            }
        }
        Received {
            from: header("From"),
            to: header("To"),
            subject: header("Subject"),
            content_type: parsed.ctype.mimetype.clone(),
            envelope_from: header("X-MailFrom"),
            envelope_to: header("X-RcptTo"),
            text,
            html,
            raw,
        }
    }

    /// The raw message as text (for failure messages).
    pub fn source(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}
