//! Email through a real SMTP server (aiosmtpd on loopback): what arrives, how a dead or
//! refusing relay is reported, and that mail never goes out in clear text to a remote host.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use inbound::mail::{Email, MailError, Mailer, SmtpMailer, SmtpOptions, SmtpTls};

use crate::support::smtp::{ServerTls, SmtpServer, free_port, mailbox};

const LINK: &str = "https://auth.example.com/ciba/approve?ticket=Zm9vYmFy";

fn options(port: u16) -> SmtpOptions {
    SmtpOptions {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        from: "Example sign-in <noreply@example.com>".into(),
        username: None,
        password_file: None,
        timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

fn approval_email(to: &str) -> Email {
    Email {
        to: to.into(),
        subject: "Approve the sign-in of Billing agent".into(),
        text: format!("Billing agent asks to act for you. Binding message: 7FX2.\n\nApprove or deny: {LINK}\n"),
        html: Some(format!(
            "<p>Billing agent asks to act for you. Binding message: <b>7FX2</b>.</p><p><a href=\"{LINK}\">Approve or deny</a></p>"
        )),
    }
}

#[tokio::test]
async fn a_message_arrives_with_its_headers_and_both_parts() {
    let smtp = SmtpServer::start();
    let mailer = SmtpMailer::new(&options(smtp.port())).unwrap();
    mailer.send(&approval_email("Alice <alice@example.org>")).await.unwrap();
    // A second message over the pooled connection.
    mailer.send(&Email { html: None, ..approval_email("bob@example.org") }).await.unwrap();

    let received = smtp.wait_for(2, Duration::from_secs(5)).await;
    let first = &received[0];
    // Compared as addresses: a display name may or may not be quoted (RFC 5322 §3.4).
    assert_eq!(
        mailbox(&first.from),
        (Some("Example sign-in".into()), "noreply@example.com".into()),
        "{}",
        first.source()
    );
    assert_eq!(mailbox(&first.to), (Some("Alice".into()), "alice@example.org".into()), "{}", first.source());
    assert_eq!(first.subject, "Approve the sign-in of Billing agent");
    assert_eq!(first.content_type, "multipart/alternative", "{}", first.source());
    assert!(first.text.as_deref().unwrap().contains(LINK), "{}", first.source());
    assert!(first.html.as_deref().unwrap().contains(&format!("href=\"{LINK}\"")), "{}", first.source());
    // The envelope: MAIL FROM is the configured address, RCPT TO the one recipient.
    assert_eq!(first.envelope_from, "noreply@example.com");
    assert_eq!(first.envelope_to, "alice@example.org");

    let second = &received[1];
    assert_eq!(mailbox(&second.to), (None, "bob@example.org".into()));
    assert_eq!(second.content_type, "text/plain", "{}", second.source());
    assert!(second.html.is_none() && second.text.as_deref().unwrap().contains(LINK), "{}", second.source());
}

#[tokio::test]
async fn a_relay_that_is_down_is_unavailable_within_the_timeout() {
    // Nothing listens on the port.
    let port = free_port();
    let mailer = SmtpMailer::new(&SmtpOptions { timeout: Duration::from_secs(2), ..options(port) }).unwrap();
    let started = Instant::now();
    let e = mailer.send(&approval_email("alice@example.org")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    match e {
        MailError::Unavailable(detail) => assert!(detail.contains(&format!("127.0.0.1:{port}")), "{detail}"),
        other => panic!("not Unavailable: {other}"),
    }

    // A relay that accepts the connection and then never says a word: the timeout bounds it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mailer = SmtpMailer::new(&SmtpOptions { timeout: Duration::from_secs(2), ..options(port) }).unwrap();
    let started = Instant::now();
    let e = mailer.send(&approval_email("alice@example.org")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4), "{elapsed:?}");
    match e {
        MailError::Unavailable(detail) => assert!(detail.contains("within 2s"), "{detail}"),
        other => panic!("not Unavailable: {other}"),
    }
    drop(silent);
}

#[tokio::test]
async fn a_refused_message_is_rejected() {
    // aiosmtpd refuses more than 200 bytes with 552 (RFC 1870 §6.2), a permanent failure.
    let smtp = SmtpServer::start_with_size_limit(200);
    let mailer = SmtpMailer::new(&options(smtp.port())).unwrap();
    match mailer.send(&approval_email("alice@example.org")).await {
        Err(MailError::Rejected(detail)) => assert!(detail.contains("552"), "{detail}"),
        other => panic!("not Rejected: {other:?}"),
    }
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn clear_text_to_a_remote_host_is_a_configuration_error() {
    let refused = SmtpMailer::new(&SmtpOptions { host: "smtp.example.com".into(), ..options(25) });
    match refused {
        Err(MailError::Config(detail)) => {
            assert!(detail.contains("only allowed to a loopback host, not smtp.example.com"), "{detail}")
        }
        other => panic!("not a configuration error: {other:?}"),
    }

    // `inbound serve` does not start on it, and says why.
    let config = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut serve = crate::support::server::serve_options(config.path(), data.path());
    serve.smtp = Some(SmtpOptions { host: "smtp.example.com".into(), ..options(25) });
    let Err(e) = inbound::runtime::serve::start(serve).await else { panic!("started with clear-text SMTP") };
    let e = format!("{e:#}");
    assert!(e.contains("--smtp-") && e.contains("only allowed to a loopback host"), "{e}");
}

#[tokio::test]
async fn starttls_is_required_never_skipped() {
    // The plain server offers no STARTTLS: the mailer refuses to go on in clear text
    // (RFC 3207 §6: a stripped STARTTLS must not downgrade the session).
    let smtp = SmtpServer::start();
    let mailer = SmtpMailer::new(&SmtpOptions { tls: SmtpTls::StartTls, ..options(smtp.port()) }).unwrap();
    match mailer.send(&approval_email("alice@example.org")).await {
        Err(MailError::Unavailable(detail)) => assert!(detail.to_lowercase().contains("starttls"), "{detail}"),
        other => panic!("not Unavailable: {other:?}"),
    }
    assert!(smtp.messages().is_empty());
}

/// A private CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=inbound test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "relay.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("relay.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "relay.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "relay.ext",
        "-out",
        "cert.pem",
    ]);
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

#[tokio::test]
async fn starttls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let smtp = SmtpServer::start_with_starttls(ServerTls { cert: &cert, key: &key });
    let starttls = SmtpOptions { tls: SmtpTls::StartTls, ..options(smtp.port()) };

    // Without the CA the certificate is not trusted: nothing is sent.
    let untrusted = SmtpMailer::new(&starttls).unwrap();
    match untrusted.send(&approval_email("alice@example.org")).await {
        Err(MailError::Unavailable(detail)) => assert!(detail.to_lowercase().contains("certificate"), "{detail}"),
        other => panic!("not Unavailable: {other:?}"),
    }

    let mailer = SmtpMailer::new(&SmtpOptions { ca_file: Some(ca), ..starttls }).unwrap();
    mailer.send(&approval_email("alice@example.org")).await.unwrap();
    let received = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].envelope_to, "alice@example.org");
    assert!(received[0].text.as_deref().unwrap().contains(LINK));
}

/// Credentials from a file (as the chart mounts them from a Secret) authenticate over
/// STARTTLS; a wrong password or none is a configuration error that never shows the password.
#[tokio::test]
async fn credentials_from_a_file_authenticate_over_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let smtp = SmtpServer::start_with_auth(ServerTls { cert: &cert, key: &key }, "inbound", "relay-secret-1");
    let password = dir.path().join("password");
    std::fs::write(&password, "relay-secret-1\n").unwrap();
    let authenticated = SmtpOptions {
        tls: SmtpTls::StartTls,
        ca_file: Some(ca),
        username: Some("inbound".into()),
        password_file: Some(password.clone()),
        ..options(smtp.port())
    };
    SmtpMailer::new(&authenticated).unwrap().send(&approval_email("alice@example.org")).await.unwrap();
    let received = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received[0].envelope_to, "alice@example.org");

    std::fs::write(&password, "a-wrong-secret-2\n").unwrap();
    match SmtpMailer::new(&authenticated).unwrap().send(&approval_email("alice@example.org")).await {
        Err(MailError::Config(detail)) => assert!(!detail.contains("a-wrong-secret-2"), "{detail}"),
        other => panic!("a refused login is not Config: {other:?}\n{}", smtp.log()),
    }
    let anonymous = SmtpOptions { username: None, password_file: None, ..authenticated };
    match SmtpMailer::new(&anonymous).unwrap().send(&approval_email("alice@example.org")).await {
        Err(MailError::Config(_)) => {}
        other => panic!("sending without AUTH to a relay that requires it is not Config: {other:?}"),
    }
    assert_eq!(smtp.messages().len(), 1);
}
