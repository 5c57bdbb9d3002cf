//! What `inbound serve` prints at start: where it serves, each app's credentials, and
//! commands to paste.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::provision::{AppCredentials, Provisioned};
use crate::api::GrantType;
use crate::catalog::{Catalog, manifest::Manifest};

/// The startup banner: printed, not logged (it is for a human).
#[derive(Clone, Debug)]
pub struct Banner {
    config: String,
    issuer: String,
    addr: SocketAddr,
    data_dir: PathBuf,
    apps: Vec<AppCredentials>,
    machine: Option<AppCredentials>,
    user: Option<(AppCredentials, String, String)>,
}

impl Banner {
    pub(super) fn new(
        config: &[PathBuf],
        issuer: &str,
        addr: SocketAddr,
        data_dir: &Path,
        provisioned: &Provisioned,
        _manifests: &[Manifest],
        catalog: &Catalog,
    ) -> Banner {
        let apps = &provisioned.apps;
        let machine = apps
            .iter()
            .find(|a| catalog.client(&a.client_id).is_some_and(|c| c.allows_grant(GrantType::ClientCredentials)));
        let user = apps.iter().find(|a| {
            catalog
                .client(&a.client_id)
                .is_some_and(|c| !c.is_confidential() && c.allows_grant(GrantType::AuthorizationCode))
        });
        let user = user.map(|app| {
            // A fresh PKCE pair for this run: the verifier stays in the printed command.
            let verifier = crate::secrets::random_token(32);
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            (app.clone(), URL_SAFE_NO_PAD.encode(digest.as_ref()), verifier)
        });
        Banner {
            config: config[0].display().to_string(),
            issuer: issuer.to_string(),
            addr,
            data_dir: data_dir.to_path_buf(),
            apps: apps.clone(),
            machine: machine.cloned(),
            user,
        }
    }
}

impl fmt::Display for Banner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issuer = &self.issuer;
        writeln!(f, "inbound is serving {} (edits are picked up live)", self.config)?;
        writeln!(f, "  issuer    {issuer}")?;
        writeln!(f, "  listening {}", self.addr)?;
        writeln!(f, "  discovery {issuer}/.well-known/openid-configuration")?;
        writeln!(f, "  data dir  {} (state.db, keys.json, credentials/)", self.data_dir.display())?;
        writeln!(f)?;
        writeln!(f, "apps:")?;
        for app in &self.apps {
            let kind = if app.confidential { "confidential" } else { "public" };
            writeln!(f, "  {:<32} {kind:<12} client_id {}", app.key.to_string(), app.client_id)?;
            writeln!(f, "  {:<32} credentials in {}/", "", app.dir.display())?;
        }
        if let Some((app, challenge, verifier)) = &self.user {
            let redirect = "http://127.0.0.1:9999/callback";
            let url = format!(
                "{issuer}/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=quickstart&code_challenge={challenge}&code_challenge_method=S256",
                app.client_id,
                url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
                url::form_urlencoded::byte_serialize(b"openid profile email billing:read billing:refund")
                    .collect::<String>(),
            );
            writeln!(f)?;
            writeln!(
                f,
                "sign in as a user ({}, authorization code + PKCE; alice/wonderland or bob/builder):",
                app.key
            )?;
            writeln!(f, "  open {url}")?;
            writeln!(f, "  after consent the browser lands on {redirect}?code=...; exchange the code:")?;
            writeln!(
                f,
                "  curl -s -d grant_type=authorization_code -d client_id={} -d redirect_uri={redirect} -d code_verifier={verifier} -d code=PASTE_CODE {issuer}/token",
                app.client_id
            )?;
            writeln!(f, "  connected apps and revocation: {issuer}/account/apps")?;
        }
        if let Some(app) = &self.machine {
            let dir = app.dir.display();
            writeln!(f)?;
            writeln!(f, "get a token ({}, client_credentials):", app.key)?;
            writeln!(
                f,
                "  TOKEN=$(curl -s -u \"$(cat {dir}/client_id):$(cat {dir}/client_secret)\" -d grant_type=client_credentials {issuer}/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
            )?;
            writeln!(f, "introspect it:")?;
            writeln!(
                f,
                "  curl -s -u \"$(cat {dir}/client_id):$(cat {dir}/client_secret)\" -d token=\"$TOKEN\" {issuer}/introspect"
            )?;
        }
        Ok(())
    }
}
