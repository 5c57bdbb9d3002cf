//! Tenants (README "Tenants"): `examples/tenants` as written — users of one or more
//! tenants with roles per tenant, user-level and tenant-level scopes, and an organisation
//! administrator's consent for every member; isolation across tenants; on SQLite and on
//! PostgreSQL.

use serde_json::Value;

use crate::support::flows::{authorize_url, exchange, pkce};
use crate::support::server::{TestServer, form, start_server_with};
use crate::support::user_agent::{Agent, Page};

const TENANTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tenants");
const EVERYTHING: &str = "openid profile contacts:read directory:read";

fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A user signs in (a new browser) at an authorization request for `crm-sync` with `extra`
/// parameters; returns the page after the login and the PKCE verifier.
async fn sign_in(server: &TestServer, user: (&str, &str), extra: &str) -> (Agent, Page, String) {
    let (challenge, verifier) = pkce();
    let mut agent = Agent::new();
    let url = authorize_url(server, &server.client_id("crm-sync"), EVERYTHING, &challenge, extra);
    let login = agent.get(&url).await;
    let page = agent.login(&server.base, &login, user.0, user.1).await;
    (agent, page, verifier)
}

/// The tokens for the code `page` redirects with.
async fn tokens(server: &TestServer, page: &Page, verifier: &str) -> Value {
    assert_eq!(page.status, 303, "{}", page.body);
    let code = page.redirect_param("code").unwrap_or_else(|| panic!("no code in {:?}", page.location));
    let reply = exchange(server, &server.client_id("crm-sync"), &code, verifier).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

/// `inbound consents ARGS` on the server's store.
fn inbound_consents(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let mut all = args.to_vec();
    if let Some(url) = &server.store_url {
        all.extend(["--store", url.as_str()]);
    }
    crate::support::server::inbound_command("consents", &server.data_dir, &all)
}

/// The consents `inbound consents list` finds with `filters`.
fn consents(server: &TestServer, filters: &[&str]) -> Vec<Value> {
    let (ok, out, err) = inbound_consents(server, &[&["list", "--output", "json"][..], filters].concat());
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

async fn organisations_consent_for_their_members(server: TestServer) {
    let crm = server.client_id("crm-sync");

    // A tenant the user does not belong to is refused: a token's tenant is a membership the
    // identity source vouched for, never a free string.
    let (_, refused, _) = sign_in(&server, ("bob", "builder"), "&tenant=initech").await;
    assert_eq!(refused.redirect_param("error").as_deref(), Some("access_denied"), "{:?}", refused.location);

    // bob belongs to acme only and administers nothing: asked, the tenant-level scope is
    // not his to grant, and nothing offers to grant for everyone.
    let (mut agent, page, verifier) = sign_in(&server, ("bob", "builder"), "").await;
    assert!(page.body.contains("in <strong>acme</strong>"), "his only tenant: {}", page.body);
    assert!(page.body.contains("only an administrator of acme can grant it"), "{}", page.body);
    assert!(!page.body.contains("for_tenant"), "{}", page.body);
    // Posting for_tenant anyway grants nothing for the tenant.
    let all = ["profile", "contacts:read", "directory:read"];
    let done = agent.approve_with(&server.base, &page, &all, &[("for_tenant", "yes")]).await;
    let bob_first = tokens(&server, &done, &verifier).await;
    assert_eq!(bob_first["scope"], "openid profile contacts:read", "{bob_first}");
    let access = claims_of(bob_first["access_token"].as_str().unwrap());
    assert_eq!((access["tenant"].as_str(), access["roles"].clone()), (Some("acme"), serde_json::json!([])));
    assert!(consents(&server, &["--tenant", "acme"]).iter().all(|c| c["subject"] != "tenant:acme"));

    // alice administers acme: the page offers to grant for everyone, and the tenant-level
    // scope is hers to grant. She grants for the whole tenant.
    let (mut agent, page, verifier) = sign_in(&server, ("alice", "wonderland"), "&tenant=acme").await;
    assert!(page.body.contains("id=\"for-tenant\""), "{}", page.body);
    assert!(!page.body.contains("only an administrator"), "{}", page.body);
    let done = agent.approve_with(&server.base, &page, &all, &[("for_tenant", "yes")]).await;
    let alice_acme = tokens(&server, &done, &verifier).await;
    assert_eq!(alice_acme["scope"], EVERYTHING, "{alice_acme}");
    let access = claims_of(alice_acme["access_token"].as_str().unwrap());
    assert_eq!(access["tenant"], "acme");
    assert_eq!(access["roles"], serde_json::json!(["org-admin"]), "her role in acme");
    let alice = access["sub"].as_str().unwrap().to_string();
    let for_tenant: Vec<Value> = consents(&server, &["--subject", "tenant:acme"])
        .into_iter()
        .filter(|c| c["client_id"] == crm.as_str())
        .collect();
    assert_eq!(for_tenant.len(), 1, "{for_tenant:?}");
    assert_eq!(
        (for_tenant[0]["tenant"].as_str(), for_tenant[0]["granted_by"].as_str()),
        (Some("acme"), Some(alice.as_str())),
        "recorded for the tenant, granted by alice"
    );

    // bob is not asked any more, and now gets what the administrator granted.
    let (_, page, verifier) = sign_in(&server, ("bob", "builder"), "").await;
    let bob_second = tokens(&server, &page, &verifier).await;
    assert_eq!(bob_second["scope"], EVERYTHING, "{bob_second}");

    // Isolation: acme's consent means nothing in globex. carol (globex) is asked and cannot
    // grant the tenant-level scope; alice is a plain member there: no offer, no role.
    let (_, page, _) = sign_in(&server, ("carol", "looking-glass"), "").await;
    assert!(page.body.contains("only an administrator of globex can grant it"), "{}", page.body);
    assert!(!page.body.contains("for_tenant"), "{}", page.body);
    let (mut agent, page, verifier) = sign_in(&server, ("alice", "wonderland"), "&tenant=globex").await;
    assert!(page.body.contains("only an administrator of globex can grant it"), "{}", page.body);
    assert!(!page.body.contains("for_tenant"), "{}", page.body);
    let done = agent.approve_with(&server.base, &page, &all, &[("for_tenant", "yes")]).await;
    let alice_globex = tokens(&server, &done, &verifier).await;
    assert_eq!(alice_globex["scope"], "openid profile contacts:read", "{alice_globex}");
    let access = claims_of(alice_globex["access_token"].as_str().unwrap());
    assert_eq!((access["tenant"].as_str(), access["roles"].clone()), (Some("globex"), serde_json::json!([])));
    assert!(consents(&server, &["--subject", "tenant:globex"]).is_empty(), "nobody granted for globex");

    // Of several tenants and none named, the request acts in none: no tenant in the token,
    // and a tenant-level scope cannot be granted outside a tenant.
    let (mut agent, page, verifier) = sign_in(&server, ("alice", "wonderland"), "").await;
    assert!(page.body.contains("not made in one"), "{}", page.body);
    let done = agent.approve(&server.base, &page, &all).await;
    let untenanted = tokens(&server, &done, &verifier).await;
    assert!(claims_of(untenanted["access_token"].as_str().unwrap()).get("tenant").is_none(), "{untenanted}");

    // An administrator revokes acme's consent: bob's grant that rested on it ends, the one
    // he made himself stays, and he is asked again.
    let (ok, out, err) = inbound_consents(&server, &["revoke", "--subject", "tenant:acme"]);
    assert!(ok && out.contains("revoked "), "{out}{err}");
    let refresh = |t: &Value| {
        form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &crm),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ])
    };
    server.post("/token", None, &refresh(&bob_second)).await.assert_error(400, "invalid_grant");
    let again = server.post("/token", None, &refresh(&bob_first)).await;
    assert_eq!(again.status, 200, "{}", again.json);
    assert_eq!(again.json["scope"], "openid profile contacts:read");
    let (_, page, _) = sign_in(&server, ("bob", "builder"), "").await;
    assert!(page.body.contains("action=\"/consent\""), "asked again: {}", page.body);

    // The audit trail says who granted for the tenant.
    let trail = server.audit_trail();
    let granted: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "consent_granted" && r["subject"] == "tenant:acme")
        .collect();
    assert_eq!(granted.len(), 1, "{trail}");
    assert_eq!(
        (granted[0]["granted_by"].as_str(), granted[0]["tenant"].as_str()),
        (Some(alice.as_str()), Some("acme"))
    );
    server.running.stop().await;
}

#[tokio::test]
async fn organisations_consent_for_their_members_on_sqlite() {
    let server = start_server_with(TENANTS, None, std::time::Duration::from_secs(5), |_| {}).await;
    organisations_consent_for_their_members(server).await;
}

#[tokio::test]
async fn organisations_consent_for_their_members_on_postgres() {
    let pg = crate::support::postgres::Postgres::start();
    let server = start_server_with(TENANTS, Some(pg.url()), std::time::Duration::from_secs(5), |_| {}).await;
    organisations_consent_for_their_members(server).await;
}

/// In a cluster users come from an identity provider: the tenants and the roles per tenant
/// are its claims (`spec.claims.tenant.claim` and `rolesClaim`). A real `oidc-provider`
/// says alice belongs to acme and globex and administers acme (an upstream group mapped to
/// `org-admin`); through a real Chromium she grants for all of acme.
#[tokio::test]
async fn tenants_and_roles_per_tenant_come_from_the_identity_provider() {
    use crate::support::browser::{Browser, callback_server, query};
    let server = start_server_with(TENANTS, None, std::time::Duration::from_secs(5), |_| {}).await;
    let accounts = serde_json::json!({"alice": {
        "email": "alice@acme.test", "name": "Alice Upstream",
        "orgs": ["acme", "globex"], "org_roles": {"acme": ["org-admins"], "initech": ["org-admins"]}
    }});
    let upstream =
        crate::support::upstream::Upstream::start(&server.url("/login/callback"), "upstream-secret", accounts, false);
    std::fs::write(server.config_dir.join("sso.secret"), "upstream-secret\n").unwrap();
    let provider = format!(
        r#"apiVersion: inbound.dev/v1alpha1
kind: IdentityProvider
metadata: {{name: orgs-sso, namespace: default}}
spec:
  displayName: Orgs SSO
  oidc:
    issuer: {}
    clientId: inbound
    clientSecret: {{file: sso.secret}}
    scopes: [openid, email, profile, organizations]
  claims:
    tenant: {{claim: orgs, rolesClaim: org_roles}}
    roles: {{claim: groups, values: {{org-admins: [org-admin]}}}}
  emailDomains: [acme.test]
"#,
        upstream.issuer
    );
    server.edit("identity.yaml", &provider).await;

    let (redirect, callback) = callback_server().await;
    let crm = server.client_id("crm-sync");
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}/authorize?{}",
        server.base,
        form(&[
            ("response_type", "code"),
            ("client_id", &crm),
            ("redirect_uri", &redirect),
            ("scope", EVERYTHING),
            ("state", "orgs"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("tenant", "acme"),
            ("login_hint", "alice@acme.test"),
        ])
    );
    let browser = Browser::start().await;
    browser.goto(&url).await;
    browser.wait_for_url(&upstream.issuer).await;
    crate::support::upstream::sign_in_and_authorize(&browser, "alice").await;
    let page = browser.wait_for_text("Allow for everyone in").await;
    assert!(page.contains("in <strong>acme</strong>"), "{page}");
    browser.click("#for-tenant").await;
    browser.click("button[value=approve]").await;
    let landed = browser.wait_for_url(&redirect).await;
    let reply = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", &crm),
                ("code", &query(&landed, "code").unwrap()),
                ("redirect_uri", &redirect),
                ("code_verifier", &verifier),
            ]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], EVERYTHING);
    let access = claims_of(reply.json["access_token"].as_str().unwrap());
    assert_eq!((access["tenant"].as_str(), access["roles"].clone()), (Some("acme"), serde_json::json!(["org-admin"])));
    let user = server.store().await.user(access["sub"].as_str().unwrap()).await.unwrap().expect("a user record");
    assert_eq!(user.tenants, ["acme", "globex"]);
    assert_eq!(
        user.tenant_roles,
        std::collections::BTreeMap::from([("acme".to_string(), vec!["org-admin".to_string()])]),
        "no roles in initech, which she does not belong to"
    );
    let granted = consents(&server, &["--subject", "tenant:acme"]);
    assert_eq!((granted.len(), granted[0]["granted_by"].as_str()), (1, access["sub"].as_str()));
    browser.quit().await;
    callback.abort();
    server.running.stop().await;
}
