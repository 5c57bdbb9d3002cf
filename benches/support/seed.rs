//! What the store benches seed as a sign-in and a consent screen would have recorded:
//! the quickstart's alice, a member of `acme`, and her consent to billing:read for a client
//! (grants rest on both). Shared by `store_load` and `memory` (`#[path]` module).

use inbound::api::ObjectKey;
use inbound::secrets::random_token;
use inbound::store::{Consent, Store, UserRecord};

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Records alice's sign-in and her consent to `client_id`; returns her subject and the consent.
pub async fn alice_consented_to(store: &dyn Store, client_id: &str) -> (String, Consent) {
    let subject = store
        .object_uid("DevelopmentUser", &ObjectKey { namespace: "default".into(), name: "alice".into() })
        .await
        .unwrap();
    let user = UserRecord {
        subject: subject.clone(),
        source: "development".into(),
        username: "alice".into(),
        tenants: vec!["acme".into()],
        tenant_roles: Default::default(),
        roles: vec!["billing-admin".into()],
        attributes: Default::default(),
        first_login_at: now(),
        last_login_at: now(),
    };
    store.record_login(&user, now()).await.unwrap();
    let consent = Consent {
        id: random_token(16),
        client_id: client_id.to_string(),
        subject: subject.clone(),
        tenant: Some("acme".into()),
        granted_by: subject.clone(),
        scopes: vec!["billing:read".into()],
        created_at: now(),
        expires_at: now() + 86_400,
    };
    store.save_consent(&consent).await.unwrap();
    (subject, consent)
}
