//! What `inbound serve` prints at start: where it serves, each app's credentials, and
//! commands to paste, all taken from the folder it loaded. A section whose example the
//! folder cannot back (no confidential app with a grant, no public app for users) is left
//! out rather than printed with made-up values.

use std::{
    borrow::Cow,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use super::provision::{AppCredentials, Provisioned};
use crate::api::{AuthMethod, GrantType, ObjectKey};
use crate::catalog::{Catalog, Client};
use crate::clock::now;
use crate::oauth::client_credentials;
use crate::protocol::{loopback, paths, redirect, scope};

/// The port put into a loopback redirect URI registered without one: any port matches
/// (RFC 8252 §7.3), and nothing needs to listen there (the user copies the code).
const EXAMPLE_LOOPBACK_PORT: u16 = 9999;

/// The startup banner: printed, not logged (it is for a human).
#[derive(Clone, Debug)]
pub struct Banner {
    config: String,
    issuer: String,
    addr: SocketAddr,
    data_dir: PathBuf,
    apps: Vec<AppCredentials>,
    /// The ConsentPolicy that enables self-registration.
    registration: Option<ObjectKey>,
    machine: Option<MachineExample>,
    user: Option<UserExample>,
}

/// client_credentials for a confidential app that a grant authorizes as the banner asks.
#[derive(Clone, Debug)]
struct MachineExample {
    app: ObjectKey,
    credentials: PathBuf,
    auth: AuthMethod,
    /// Sent when the grants name several tenants and none is implied.
    tenant: Option<String>,
}

/// Authorization code + PKCE for a public app.
#[derive(Clone, Debug)]
struct UserExample {
    app: ObjectKey,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    /// A fresh PKCE pair for this run: the verifier is in the printed exchange command.
    verifier: String,
    challenge: String,
    /// Fresh for this run too, as a client would make it.
    state: String,
    /// DevelopmentUsers of the folder, by username.
    users: Vec<String>,
    /// The app may use the device flow (RFC 8628): its commands are printed too.
    device: bool,
}

impl Banner {
    pub(super) fn new(
        config: &[PathBuf],
        issuer: &str,
        addr: SocketAddr,
        data_dir: &Path,
        provisioned: &Provisioned,
        catalog: &Catalog,
    ) -> Banner {
        let config: Vec<String> = config.iter().map(|p| p.display().to_string()).collect();
        let credentials = |client: &Client| provisioned.apps.iter().find(|a| a.client_id == client.client_id);
        let machine = catalog.clients().find_map(|c| machine_example(catalog, c, credentials(c)?));
        let users: Vec<String> = catalog.usernames().into_iter().map(str::to_string).collect();
        let user = catalog.clients().find_map(|c| user_example(catalog, c, &users));
        Banner {
            config: config.join(" "),
            issuer: issuer.to_string(),
            addr,
            data_dir: data_dir.to_path_buf(),
            apps: provisioned.apps.clone(),
            registration: catalog.registration_policy().map(|p| p.key.clone()),
            machine,
            user,
        }
    }
}

/// The app's example if a request with nothing but its credentials (and, where the grants
/// leave a choice, a tenant) is granted: decided by the same rules as the token endpoint.
fn machine_example(catalog: &Catalog, client: &Client, credentials: &AppCredentials) -> Option<MachineExample> {
    let auth = client.spec.auth_method();
    if !matches!(auth, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost) {
        return None;
    }
    let now = now();
    let decide = |tenant: Option<&str>| {
        client_credentials::decide(catalog, client, &client_credentials::Request { tenant, ..Default::default() }, now)
    };
    let tenant = if decide(None).is_ok() {
        None
    } else {
        let mut tenants: Vec<&String> = catalog.grants_for_app(&client.key).iter().flat_map(|g| &g.tenants).collect();
        tenants.sort();
        Some(tenants.into_iter().find(|t| decide(Some(t)).is_ok())?.clone())
    };
    Some(MachineExample { app: client.key.clone(), credentials: credentials.dir.clone(), auth, tenant })
}

/// A public app's example: one of its own redirect URIs (a loopback one if it has any, so
/// the code can be read from the address bar) and every scope it may ask for that exists.
fn user_example(catalog: &Catalog, client: &Client, users: &[String]) -> Option<UserExample> {
    if client.is_confidential() || !client.allows_grant(GrantType::AuthorizationCode) {
        return None;
    }
    let registered = &client.spec.redirect_uris;
    let chosen = registered
        .iter()
        .find(|uri| url::Url::parse(uri).is_ok_and(|u| loopback::is_loopback_host(&u)))
        .or(registered.first())?;
    let scopes = client
        .spec
        .allowed_scopes
        .iter()
        .filter(|s| *s == scope::OPENID || catalog.scope(&client.key.namespace, s).is_some())
        .cloned()
        .collect();
    let verifier = crate::secrets::random_token(32);
    Some(UserExample {
        app: client.key.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: with_example_port(chosen, registered),
        scopes,
        challenge: crate::oauth::pkce::challenge_s256(&verifier),
        verifier,
        state: crate::secrets::random_token(8),
        users: users.to_vec(),
        device: client.allows_grant(GrantType::DeviceCode),
    })
}

/// A loopback IP redirect registered without a port gets one, as a CLI would pick, when
/// the server accepts the result; any other URI is used exactly as registered.
fn with_example_port(uri: &str, registered: &[String]) -> String {
    let Ok(mut url) = url::Url::parse(uri) else { return uri.to_string() };
    if url.port().is_some()
        || !loopback::is_loopback_ip(url.host())
        || url.set_port(Some(EXAMPLE_LOOPBACK_PORT)).is_err()
    {
        return uri.to_string();
    }
    let candidate = url.to_string();
    if redirect::is_registered(registered, &candidate) { candidate } else { uri.to_string() }
}

impl fmt::Display for Banner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issuer = &self.issuer;
        writeln!(f, "inbound is serving {} (edits are picked up live)", self.config)?;
        writeln!(f, "  issuer    {issuer}")?;
        writeln!(f, "  listening {}", self.addr)?;
        writeln!(f, "  discovery {issuer}{}", paths::OIDC_DISCOVERY)?;
        writeln!(f, "  data dir  {} (state.db, keys.json, credentials/)", self.data_dir.display())?;
        if let Some(policy) = &self.registration {
            writeln!(f, "  register  {issuer}{} (self-registration, ConsentPolicy {policy})", paths::REGISTER)?;
        }
        if !self.apps.is_empty() {
            writeln!(f)?;
            writeln!(f, "apps:")?;
        }
        for app in &self.apps {
            let kind = if app.confidential { "confidential" } else { "public" };
            writeln!(f, "  {:<32} {kind:<12} client_id {}", app.key.to_string(), app.client_id)?;
            writeln!(f, "  {:<32} credentials in {}/", "", app.dir.display())?;
        }
        if let Some(user) = &self.user {
            user.fmt(f, issuer)?;
        }
        if let Some(machine) = &self.machine {
            machine.fmt(f, issuer)?;
        }
        Ok(())
    }
}

impl UserExample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>, issuer: &str) -> fmt::Result {
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let scope =
            if self.scopes.is_empty() { String::new() } else { format!("&scope={}", encode(&self.scopes.join(" "))) };
        let url = format!(
            "{issuer}{}?response_type=code&client_id={}&redirect_uri={}{scope}&state={}&code_challenge={}&code_challenge_method=S256",
            paths::AUTHORIZE,
            encode(&self.client_id),
            encode(&self.redirect_uri),
            self.state,
            self.challenge,
        );
        let users = match self.users.as_slice() {
            [] => "the folder declares no DevelopmentUser to sign in as".to_string(),
            [one] => format!("DevelopmentUser {one}"),
            [rest @ .., last] => format!("DevelopmentUser {} or {last}", rest.join(", ")),
        };
        let separator = if self.redirect_uri.contains('?') { '&' } else { '?' };
        writeln!(f)?;
        writeln!(f, "sign in as a user ({}, authorization code + PKCE; {users}):", self.app)?;
        writeln!(f, "  open {url}")?;
        writeln!(
            f,
            "  after consent the browser lands on {}{separator}code=...; exchange the code:",
            self.redirect_uri
        )?;
        writeln!(
            f,
            "  curl -s -d grant_type=authorization_code -d client_id={} --data-urlencode redirect_uri={} -d code_verifier={} -d code=PASTE_CODE {}",
            shell_word(&self.client_id),
            shell_word(&self.redirect_uri),
            self.verifier,
            shell_word(&format!("{issuer}{}", paths::TOKEN)),
        )?;
        writeln!(f, "  connected apps and revocation: {issuer}{}", paths::ACCOUNT)?;
        if self.device {
            writeln!(f)?;
            writeln!(f, "device flow ({}, RFC 8628: for a terminal without a browser):", self.app)?;
            writeln!(
                f,
                "  curl -s -d client_id={} --data-urlencode {} {}",
                shell_word(&self.client_id),
                shell_word(&format!("scope={}", self.scopes.join(" "))),
                shell_word(&format!("{issuer}{}", paths::DEVICE_AUTHORIZATION)),
            )?;
            writeln!(
                f,
                "  open {issuer}{} on any device, enter the user_code, sign in and allow; then fetch the tokens:",
                paths::DEVICE
            )?;
            writeln!(
                f,
                "  curl -s -d grant_type={} -d client_id={} -d device_code=PASTE_DEVICE_CODE {}",
                crate::api::DEVICE_CODE,
                shell_word(&self.client_id),
                shell_word(&format!("{issuer}{}", paths::TOKEN)),
            )?;
        }
        Ok(())
    }
}

impl MachineExample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>, issuer: &str) -> fmt::Result {
        let file = |name: &str| shell_word(&self.credentials.join(name).display().to_string()).into_owned();
        let (id, secret) = (file("client_id"), file("client_secret"));
        // The app's registered method: the server refuses any other.
        let credentials = match self.auth {
            AuthMethod::ClientSecretPost => {
                format!("--data-urlencode \"client_id=$(cat {id})\" --data-urlencode \"client_secret=$(cat {secret})\"")
            }
            _ => format!("-u \"$(cat {id}):$(cat {secret})\""),
        };
        let tenant = match &self.tenant {
            Some(t) => format!(" --data-urlencode {}", shell_word(&format!("tenant={t}"))),
            None => String::new(),
        };
        let token_url = shell_word(&format!("{issuer}{}", paths::TOKEN)).into_owned();
        let introspect_url = shell_word(&format!("{issuer}{}", paths::INTROSPECT)).into_owned();
        writeln!(f)?;
        writeln!(f, "get a token ({}, client_credentials):", self.app)?;
        writeln!(
            f,
            "  TOKEN=$(curl -s {credentials} -d grant_type=client_credentials{tenant} {token_url} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
        )?;
        writeln!(f, "introspect it:")?;
        writeln!(f, "  curl -s {credentials} -d token=\"$TOKEN\" {introspect_url}")
    }
}

/// `s` as one POSIX shell word: as it is when it has nothing the shell would interpret,
/// single-quoted otherwise.
fn shell_word(s: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(shell_word(".inbound/credentials/default/a/client_id"), ".inbound/credentials/default/a/client_id");
        assert_eq!(shell_word("/tmp/my data/client_id"), "'/tmp/my data/client_id'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn loopback_redirect_without_port_gets_the_example_port() {
        let registered = vec!["http://127.0.0.1/callback".to_string()];
        assert_eq!(with_example_port(&registered[0], &registered), "http://127.0.0.1:9999/callback");
        let fixed = vec!["http://127.0.0.1:7000/cb".to_string()];
        assert_eq!(with_example_port(&fixed[0], &fixed), "http://127.0.0.1:7000/cb");
        // localhost must match exactly (RFC 8252 §8.3): used as registered.
        let named = vec!["http://localhost/cb".to_string()];
        assert_eq!(with_example_port(&named[0], &named), "http://localhost/cb");
        let hosted = vec!["https://app.example.com/oauth/callback".to_string()];
        assert_eq!(with_example_port(&hosted[0], &hosted), "https://app.example.com/oauth/callback");
    }
}
