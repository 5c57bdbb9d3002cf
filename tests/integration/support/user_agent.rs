//! A minimal user agent for driving the login and consent pages over real HTTP: keeps the
//! session cookie, does not follow redirects, reads hidden form fields.

use oauth2::reqwest;

pub struct Agent {
    pub http: reqwest::Client,
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// Value of the hidden input `name`.
    #[track_caller]
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start =
            self.body.find(&marker).unwrap_or_else(|| panic!("no field {name} in:\n{}", self.body)) + marker.len();
        let end = self.body[start..].find('"').unwrap();
        // The value as the browser submits it: minijinja escapes `/`, `&`, quotes and `<>`.
        self.body[start..start + end]
            .replace("&#x2f;", "/")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// Query parameter of the redirect target.
    #[track_caller]
    pub fn redirect_param(&self, name: &str) -> Option<String> {
        let location = self.location.as_ref().expect("a redirect");
        let url = url::Url::parse(location).unwrap();
        url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

impl Agent {
    pub fn new() -> Agent {
        // Under the server's 10 s idle keep-alive close: a test that waits between requests
        // must not send one on a connection the server is closing.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap();
        Agent { http, cookie: None }
    }

    async fn page(&mut self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(set) = headers.get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            self.cookie = Some(pair);
        }
        let location = headers.get("location").map(|l| l.to_str().unwrap().to_string());
        Page { status, location, headers, body: response.text().await.unwrap() }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let mut request = self.http.get(url);
        if let Some(c) = &self.cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.unwrap();
        self.page(response).await
    }

    pub async fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(crate::support::server::form(fields));
        if let Some(c) = &self.cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.unwrap();
        self.page(response).await
    }

    /// Submits the login form shown on `page`.
    pub async fn login(&mut self, base: &str, page: &Page, username: &str, password: &str) -> Page {
        assert!(page.body.contains("action=\"/login\""), "expected the login page:\n{}", page.body);
        let (id, csrf) = (page.field("request_id"), page.field("csrf"));
        self.post(
            &format!("{base}/login"),
            &[("request_id", &id), ("csrf", &csrf), ("username", username), ("password", password)],
        )
        .await
    }

    /// Approves the consent form shown on `page` with the given optional scopes checked.
    pub async fn approve(&mut self, base: &str, page: &Page, scopes: &[&str]) -> Page {
        self.approve_with(base, page, scopes, &[]).await
    }

    /// Like [`Agent::approve`], with more fields (e.g. `for_tenant`).
    pub async fn approve_with(&mut self, base: &str, page: &Page, scopes: &[&str], extra: &[(&str, &str)]) -> Page {
        assert!(page.body.contains("action=\"/consent\""), "expected the consent page:\n{}", page.body);
        let (id, csrf) = (page.field("request_id"), page.field("csrf"));
        let duration = default_duration(&page.body);
        let mut fields = vec![
            ("request_id", id.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
            ("duration", duration.as_str()),
        ];
        for s in scopes {
            fields.push(("scope", s));
        }
        fields.extend_from_slice(extra);
        self.post(&format!("{base}/consent"), &fields).await
    }

    pub async fn deny(&mut self, base: &str, page: &Page) -> Page {
        let (id, csrf) = (page.field("request_id"), page.field("csrf"));
        let duration = default_duration(&page.body);
        self.post(
            &format!("{base}/consent"),
            &[("request_id", &id), ("csrf", &csrf), ("decision", "deny"), ("duration", &duration)],
        )
        .await
    }
}

fn default_duration(body: &str) -> String {
    let marker = "\" selected>";
    let end = body.find(marker).expect("a preselected duration");
    let start = body[..end].rfind("value=\"").unwrap() + "value=\"".len();
    body[start..end].to_string()
}
