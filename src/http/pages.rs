//! Server-rendered pages: templates (embedded defaults, overridable from a folder), the
//! security headers every page carries, and the session cookie.

use std::path::PathBuf;

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use minijinja::Environment;
use serde::Serialize;

const DEFAULTS: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("error.html", include_str!("templates/error.html")),
    ("account.html", include_str!("templates/account.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("device.html", include_str!("templates/device.html")),
    // The CIBA approval email: subject, text and html (auto-escaped) parts.
    ("ciba-email-subject.txt", include_str!("templates/ciba-email-subject.txt")),
    ("ciba-email.txt", include_str!("templates/ciba-email.txt")),
    ("ciba-email.html", include_str!("templates/ciba-email.html")),
];

/// Name of the login session cookie. Where the issuer is https it carries the `__Host-`
/// prefix (RFC 6265bis §4.1.3.2): Secure, host-only, `Path=/`, so neither a sibling
/// subdomain nor plain http can set or shadow it.
const SESSION_COOKIE: &str = "inbound_session";
/// Name of the cookie binding an upstream sign-in to the browser that started it; with the
/// `__Secure-` prefix on https (its path is the callback, which `__Host-` does not allow).
const UPSTREAM_COOKIE: &str = "inbound_upstream";

/// The deployment's look on every page: configuration, not a template fork.
#[derive(Clone, Debug, Serialize)]
pub struct Branding {
    /// The product users know (the application's name), shown in the header and titles.
    pub product_name: String,
    /// https (or `data:`) URL of its logo.
    pub logo_uri: Option<String>,
    /// The primary colour (buttons, links), `#rrggbb`.
    pub primary_color: String,
}

impl Default for Branding {
    fn default() -> Self {
        Branding { product_name: "inbound".into(), logo_uri: None, primary_color: "#2454d6".into() }
    }
}

impl Branding {
    /// Checks what goes into pages: a colour that cannot break out of its CSS declaration,
    /// a logo the pages' Content-Security-Policy allows (`img-src https: data:`).
    pub fn checked(self) -> anyhow::Result<Branding> {
        let hex = self.primary_color.strip_prefix('#').unwrap_or("");
        anyhow::ensure!(
            hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "--brand-color must be #rrggbb, got {:?}",
            self.primary_color
        );
        if let Some(logo) = &self.logo_uri {
            anyhow::ensure!(
                logo.starts_with("https://") || logo.starts_with("data:image/"),
                "--brand-logo must be an https: or data:image/ URL"
            );
        }
        anyhow::ensure!(!self.product_name.trim().is_empty(), "--brand-name must not be empty");
        Ok(self)
    }
}

/// The page renderer.
pub struct Pages {
    env: Environment<'static>,
    branding: Branding,
    /// `Secure` on cookies: everywhere except plain-http loopback development.
    secure_cookies: bool,
}

impl Pages {
    /// Embedded templates, each replaced by a file of the same name in `overrides` if present.
    pub fn new(overrides: Option<PathBuf>, secure_cookies: bool, branding: Branding) -> anyhow::Result<Pages> {
        let mut env = Environment::new();
        // `.html` templates are auto-escaped: app names, descriptions and logo URLs are
        // data, never markup.
        for (name, source) in DEFAULTS {
            let source = match overrides.as_ref().map(|dir| dir.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("cannot read template {}: {e}", path.display()))?,
                None => source.to_string(),
            };
            env.add_template_owned(name.to_string(), source)?;
        }
        Ok(Pages { env, secure_cookies, branding: branding.checked()? })
    }

    pub fn render<S: Serialize>(&self, status: StatusCode, name: &str, context: S) -> Response {
        let context = minijinja::context! { brand => &self.branding, ..minijinja::Value::from_serialize(&context) };
        match self.env.get_template(name).and_then(|t| t.render(context)) {
            Ok(html) => secure(status, Html(html).into_response()),
            Err(e) => {
                tracing::error!(template = name, error = %e, "template failed to render");
                secure(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into_response())
            }
        }
    }

    /// The CIBA approval email for `approval`, from the (overridable) email templates.
    pub fn approval_email(
        &self,
        approval: &crate::oauth::backchannel::ApprovalEmail,
    ) -> Result<crate::mail::Email, minijinja::Error> {
        let context = minijinja::context! {
            app_name => &approval.app_name,
            binding_message => &approval.binding_message,
            link => &approval.link,
            expires_minutes => (approval.expires_in + 59) / 60,
            brand => &self.branding,
        };
        let render = |name: &str| self.env.get_template(name).and_then(|t| t.render(&context));
        // One line: a header cannot carry a line break (RFC 5322 §2.2).
        let subject = render("ciba-email-subject.txt")?.lines().next().unwrap_or_default().trim().to_string();
        Ok(crate::mail::Email {
            to: approval.to.clone(),
            subject,
            text: render("ciba-email.txt")?,
            html: Some(render("ciba-email.html")?),
        })
    }

    fn error(&self, status: StatusCode, error: &crate::oauth::OAuthError) -> Response {
        self.render(
            status,
            "error.html",
            minijinja::context! { error => error.code.as_str(), description => &error.description },
        )
    }

    fn session_cookie_name(&self) -> String {
        if self.secure_cookies { format!("__Host-{SESSION_COOKIE}") } else { SESSION_COOKIE.to_string() }
    }

    fn upstream_cookie_name(&self) -> String {
        if self.secure_cookies { format!("__Secure-{UPSTREAM_COOKIE}") } else { UPSTREAM_COOKIE.to_string() }
    }

    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        self.cookie(&self.session_cookie_name(), value, "/", max_age)
    }

    /// The session cookie's value, if the request carries one.
    pub fn session_value<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie_value(headers, &self.session_cookie_name())
    }

    /// The upstream binding cookie's value, if the request carries one.
    pub fn upstream_value<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie_value(headers, &self.upstream_cookie_name())
    }

    /// `Set-Cookie` binding an upstream sign-in to this browser: sent back only to the
    /// callback, and with `SameSite=Lax` still on the upstream's top-level redirect.
    pub fn upstream_cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        self.cookie(&self.upstream_cookie_name(), value, crate::protocol::paths::LOGIN_CALLBACK, max_age)
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
        ))
        .expect("cookie is ASCII")
    }
}

/// Security headers of every page: no framing, no script, no sniffing, no referrer, no cache.
pub fn secure(status: StatusCode, mut response: Response) -> Response {
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 303 redirect (after a POST the browser must GET the target).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure(StatusCode::SEE_OTHER, response)
}

/// The value of cookie `name`, if the request carries it.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// Renders the error page of an [`HttpError`](super::HttpError) that asked for one (its
/// response carries an [`ErrorPage`](super::error::ErrorPage)), keeping its status and headers.
pub fn render_error_page(state: &super::AppState, mut response: Response) -> Response {
    let Some(super::error::ErrorPage(error)) = response.extensions_mut().remove::<super::error::ErrorPage>() else {
        return response;
    };
    let mut page = state.pages.error(response.status(), &error);
    for (name, value) in response.headers() {
        if !page.headers().contains_key(name) {
            page.headers_mut().insert(name, value.clone());
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn https_cookies_carry_the_host_prefix_and_only_it_is_read() {
        let pages = Pages::new(None, true, Branding::default()).unwrap();
        let set = pages.session_cookie("v", 60);
        let set = set.to_str().unwrap();
        assert!(
            set.starts_with("__Host-inbound_session=v;") && set.contains("Path=/;") && set.ends_with("; Secure"),
            "{set}"
        );
        assert!(!set.contains("Domain"), "{set}");
        assert_eq!(pages.session_value(&cookie_header("__Host-inbound_session=v")), Some("v"));
        // A cookie without the prefix could have been set by a sibling subdomain or over http.
        assert_eq!(pages.session_value(&cookie_header("inbound_session=tossed")), None);
        let upstream = pages.upstream_cookie("b", 600);
        assert!(upstream.to_str().unwrap().starts_with("__Secure-inbound_upstream=b; Path=/login/callback;"));

        let local = Pages::new(None, false, Branding::default()).unwrap();
        assert!(local.session_cookie("v", 60).to_str().unwrap().starts_with("inbound_session=v;"));
        assert_eq!(local.session_value(&cookie_header("a=b; inbound_session=v")), Some("v"));
    }
}
