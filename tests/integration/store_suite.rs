//! One behavioural suite, run against both store backends so they cannot drift.

use std::sync::Arc;

use inbound::api::ObjectKey;
use inbound::secrets::SecretHash;
use inbound::store::{
    AuthorizationCode, ClientIdClaim, CodeRedemption, Consent, RefreshToken, RegisteredClient, Registration,
    RegistrationLimit, Rotation, Session, SqliteStore, Store, UserRecord,
};

use crate::support::postgres::Postgres;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn code(expires_at: i64) -> AuthorizationCode {
    AuthorizationCode {
        client_id: "c".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        redirect_uri_given: true,
        code_challenge: "x".repeat(43),
        nonce: Some("n".into()),
        scopes: vec!["openid".into()],
        resources: vec![],
        tenant: Some("acme".into()),
        subject: "u".into(),
        auth_time: now(),
        consent_id: "consent-1".into(),
        tenant_consent_id: None,
        expires_at,
    }
}

fn refresh(family: &str, consent: &str, expires_at: i64) -> RefreshToken {
    RefreshToken {
        family_id: family.into(),
        client_id: "c".into(),
        subject: "u".into(),
        consent_id: consent.into(),
        tenant_consent_id: None,
        scopes: vec!["openid".into(), "billing:read".into()],
        resources: vec![],
        tenant: None,
        auth_time: now(),
        expires_at,
    }
}

fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

async fn suite(store: Arc<dyn Store>) {
    let now = now();

    // Object UIDs: assigned once, even under concurrent first sight.
    let key = ObjectKey { namespace: "default".into(), name: "app".into() };
    let uids = futures_join(10, |_| {
        let (store, key) = (store.clone(), key.clone());
        async move { store.object_uid("InboundApp", &key).await.unwrap() }
    })
    .await;
    assert!(uids.iter().all(|u| *u == uids[0]), "{uids:?}");
    // The pool's counters (what saturation is read from): those calls opened connections,
    // within the limit.
    let pool = store.pool_stats();
    assert!(pool.max > 0 && (1..=pool.max).contains(&(pool.idle + pool.in_use)), "{pool:?}");

    // Client id claims: of concurrent claims of one id exactly one app wins; it keeps the id
    // (a re-created object finds it again), holds no second one, and others cannot take it.
    let apps: Vec<ObjectKey> =
        (0..6).map(|i| ObjectKey { namespace: format!("team-{i}"), name: "billing".into() }).collect();
    let claims = futures_join(6, |i| {
        let (store, app) = (store.clone(), apps[i].clone());
        async move { store.claim_client_id("acme-billing", &app, now).await.unwrap() }
    })
    .await;
    let winners: Vec<usize> = (0..6).filter(|i| claims[*i] == ClientIdClaim::Held).collect();
    assert_eq!(winners.len(), 1, "{claims:?}");
    let winner = &apps[winners[0]];
    for (i, claim) in claims.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(claim, &ClientIdClaim::TakenBy(winner.clone()));
        }
    }
    assert_eq!(store.claim_client_id("acme-billing", winner, now + 1).await.unwrap(), ClientIdClaim::Held);
    assert_eq!(
        store.claim_client_id("acme-other", winner, now).await.unwrap(),
        ClientIdClaim::AppHolds("acme-billing".into())
    );
    assert_eq!(store.client_id_holder("acme-billing").await.unwrap().as_ref(), Some(winner));
    assert_eq!(store.client_id_holder("acme-other").await.unwrap(), None);
    // A folder-mode UID row of the same name is another kind: no conflict.
    assert_ne!(store.object_uid("InboundApp", winner).await.unwrap(), "acme-billing");
    let loser = apps.iter().find(|a| *a != winner).unwrap();
    assert_eq!(store.release_client_id(loser).await.unwrap(), None, "a loser holds nothing to give up");
    assert_eq!(store.client_id_holder("acme-billing").await.unwrap().as_ref(), Some(winner));
    assert_eq!(store.release_client_id(winner).await.unwrap().as_deref(), Some("acme-billing"));
    assert_eq!(store.client_id_holder("acme-billing").await.unwrap(), None);
    assert_eq!(store.claim_client_id("acme-billing", loser, now).await.unwrap(), ClientIdClaim::Held);

    // Client secrets: of concurrent first issuances exactly one wins.
    let wins = futures_join(8, |i| {
        let store = store.clone();
        async move { store.add_first_client_secret("first", &SecretHash([i as u8; 32]), now).await.unwrap() }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    assert_eq!(store.client_secret_hashes("first", now).await.unwrap().len(), 1);
    store.set_client_secret("c", &SecretHash([1; 32]), now).await.unwrap();
    store.set_client_secret("c", &SecretHash([2; 32]), now).await.unwrap();
    assert_eq!(store.client_secret_hashes("c", now).await.unwrap(), vec![SecretHash([2; 32])]);
    // Issued within the same second: the newest is still first.
    store.rotate_client_secret("same", &SecretHash([5; 32]), now, now).await.unwrap();
    store.rotate_client_secret("same", &SecretHash([6; 32]), now, now + 10).await.unwrap();
    assert_eq!(store.client_secret_hashes("same", now).await.unwrap()[0], SecretHash([6; 32]));
    store.rotate_client_secret("same", &SecretHash([5; 32]), now, now + 10).await.unwrap();
    assert_eq!(store.client_secret_hashes("same", now).await.unwrap()[0], SecretHash([5; 32]));
    // Rotation with an overlap: newest first, the previous until the overlap ends, and a
    // second rotation never extends an earlier overlap.
    store.rotate_client_secret("c", &SecretHash([3; 32]), now + 1, now + 100).await.unwrap();
    assert_eq!(store.client_secret_hashes("c", now + 1).await.unwrap(), vec![SecretHash([3; 32]), SecretHash([2; 32])]);
    store.rotate_client_secret("c", &SecretHash([4; 32]), now + 2, now + 500).await.unwrap();
    assert_eq!(store.client_secret_hashes("c", now + 99).await.unwrap().len(), 3);
    assert_eq!(
        store.client_secret_hashes("c", now + 100).await.unwrap(),
        vec![SecretHash([4; 32]), SecretHash([3; 32])],
        "[2] expired at its own overlap end"
    );
    assert_eq!(store.client_secret_hashes("c", now + 500).await.unwrap(), vec![SecretHash([4; 32])]);

    // Revocation list: idempotent, ordered, incremental.
    store.revoke("j1", now + 60).await.unwrap();
    store.revoke("j1", now + 60).await.unwrap();
    store.revoke("j2", now + 60).await.unwrap();
    let revs = store.revocations_since(0).await.unwrap();
    assert_eq!(revs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["j1", "j2"]);
    assert_eq!(store.revocations_since(revs[0].0).await.unwrap().len(), 1);

    // Authorization codes: single use, even when redeemed concurrently.
    store.put_code(&digest(1), &code(now + 60)).await.unwrap();
    let outcomes = futures_join(8, |_| {
        let store = store.clone();
        async move { store.redeem_code(&digest(1), jiff::Timestamp::now().as_second()).await.unwrap() }
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| matches!(o, CodeRedemption::Fresh(_))).count(), 1, "{outcomes:?}");
    store.bind_code_issuance(&digest(1), Some("fam-code"), ("jti-1", now + 600)).await.unwrap();
    assert_eq!(
        store.redeem_code(&digest(1), now).await.unwrap(),
        CodeRedemption::Replayed {
            family_id: Some("fam-code".into()),
            access_token: Some(("jti-1".into(), now + 600))
        }
    );
    store.put_code(&digest(2), &code(now - 1)).await.unwrap();
    assert_eq!(store.redeem_code(&digest(2), now).await.unwrap(), CodeRedemption::Unknown, "expired");
    assert_eq!(store.redeem_code(&digest(3), now).await.unwrap(), CodeRedemption::Unknown);

    // Consents: create, extend in place, list, revoke (with its refresh families).
    let mut consent = Consent {
        id: "consent-1".into(),
        client_id: "c".into(),
        subject: "u".into(),
        tenant: Some("acme".into()),
        granted_by: "u".into(),
        scopes: vec!["billing:read".into()],
        created_at: now,
        expires_at: now + 3600,
    };
    store.save_consent(&consent).await.unwrap();
    consent.scopes.push("profile".into());
    store.save_consent(&consent).await.unwrap();
    assert_eq!(store.active_consent("c", "u", Some("acme"), now).await.unwrap(), Some(consent.clone()));
    assert_eq!(store.active_consent("c", "u", None, now).await.unwrap(), None, "tenant is part of the key");
    assert_eq!(store.consents_of("u", now).await.unwrap().len(), 1);
    let all = store.active_consents(now).await.unwrap();
    assert!(all.iter().any(|c| c.id == consent.id), "{all:?}");
    assert!(store.active_consents(consent.expires_at).await.unwrap().iter().all(|c| c.id != consent.id), "expired");
    assert_eq!(store.active_consent_counts(now).await.unwrap().get("c"), Some(&1));
    assert_eq!(store.active_consent_counts(consent.expires_at).await.unwrap().get("c"), None, "expired");
    assert_eq!(store.consent("consent-1", now + 7200).await.unwrap(), None, "expired");

    // Refresh rotation and reuse detection, sequential and concurrent.
    store.put_refresh_token(&digest(10), &refresh("fam-1", "consent-1", now + 3600)).await.unwrap();
    // Reading a live token changes nothing; a spent or revoked one is not live.
    let live = store.live_refresh_token(&digest(10), now).await.unwrap().expect("live");
    assert_eq!((live.family_id.as_str(), live.consent_id.as_str()), ("fam-1", "consent-1"));
    assert_eq!(
        store.live_refresh_token_with_user(&digest(10), now).await.unwrap(),
        Some((live.clone(), None)),
        "the user never signed in"
    );
    assert_eq!(store.live_refresh_token_with_user(&digest(10), now + 3600).await.unwrap(), None, "expired");
    assert_eq!(store.live_refresh_token(&digest(10), now + 3600).await.unwrap(), None, "expired");
    assert!(matches!(
        store.rotate_refresh_token(&digest(10), &digest(11), now + 3600, now).await.unwrap(),
        Rotation::Rotated(_)
    ));
    assert_eq!(
        store.rotate_refresh_token(&digest(10), &digest(12), now + 3600, now).await.unwrap(),
        Rotation::Reused { family_id: "fam-1".into() }
    );
    assert_eq!(
        store.rotate_refresh_token(&digest(11), &digest(13), now + 3600, now).await.unwrap(),
        Rotation::Invalid,
        "family revoked"
    );
    assert_eq!(store.live_refresh_token(&digest(10), now).await.unwrap(), None, "spent");
    assert_eq!(store.live_refresh_token(&digest(11), now).await.unwrap(), None, "family revoked");

    store.put_refresh_token(&digest(20), &refresh("fam-2", "consent-1", now + 3600)).await.unwrap();
    let outcomes = futures_join(8, |i| {
        let store = store.clone();
        async move { store.rotate_refresh_token(&digest(20), &digest(30 + i as u8), now + 3600, now).await.unwrap() }
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Rotation::Rotated(_))).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().any(|o| matches!(o, Rotation::Reused { .. })), "{outcomes:?}");

    // An expired consent stops rotation at once, even for an unexpired token.
    store.put_refresh_token(&digest(60), &refresh("fam-4", "consent-1", now + 86_400)).await.unwrap();
    assert_eq!(
        store.rotate_refresh_token(&digest(60), &digest(61), now + 90_000, now + 7200).await.unwrap(),
        Rotation::Invalid
    );

    store.put_refresh_token(&digest(40), &refresh("fam-3", "consent-1", now + 3600)).await.unwrap();
    // Another user naming this consent revokes nothing: neither the consent nor its tokens.
    store.put_refresh_token(&digest(42), &refresh("fam-7", "consent-1", now + 3600)).await.unwrap();
    assert!(!store.revoke_consent("consent-1", "mallory", now).await.unwrap());
    assert!(
        matches!(
            store.rotate_refresh_token(&digest(42), &digest(43), now + 3600, now).await.unwrap(),
            Rotation::Rotated(_)
        ),
        "a refresh family survives another user's revocation attempt"
    );
    assert!(store.revoke_consent("consent-1", "u", now).await.unwrap());
    assert!(!store.revoke_consent("consent-1", "u", now).await.unwrap(), "already revoked");
    assert_eq!(store.active_consent("c", "u", Some("acme"), now).await.unwrap(), None);
    assert_eq!(store.rotate_refresh_token(&digest(40), &digest(41), now + 3600, now).await.unwrap(), Rotation::Invalid);

    // Forgetting a client (its InboundApp was deleted): consents and refresh families of
    // that client only are revoked, its secrets dropped.
    let mut other = consent.clone();
    other.id = "consent-2".into();
    let mut gone = consent.clone();
    gone.id = "consent-3".into();
    gone.client_id = "gone".into();
    store.save_consent(&other).await.unwrap();
    store.save_consent(&gone).await.unwrap();
    store.put_refresh_token(&digest(70), &refresh("fam-5", "consent-3", now + 3600)).await.unwrap();
    store.put_refresh_token(&digest(72), &refresh("fam-6", "consent-2", now + 3600)).await.unwrap();
    store.set_client_secret("gone", &SecretHash([9; 32]), now).await.unwrap();
    assert_eq!(store.forget_client("gone", now).await.unwrap(), 1);
    assert_eq!(store.consent("consent-3", now).await.unwrap(), None);
    assert_eq!(store.rotate_refresh_token(&digest(70), &digest(71), now + 3600, now).await.unwrap(), Rotation::Invalid);
    assert!(store.client_secret_hashes("gone", now).await.unwrap().is_empty());
    assert!(store.consent("consent-2", now).await.unwrap().is_some(), "other clients untouched");
    assert!(matches!(
        store.rotate_refresh_token(&digest(72), &digest(73), now + 3600, now).await.unwrap(),
        Rotation::Rotated(_)
    ));

    // A family resting on a tenant-wide consent (an administrator's, for every member) as
    // well as the user's own ends with either: when it expires, or is revoked.
    let own = Consent { id: "consent-own".into(), ..consent.clone() };
    let for_tenant = Consent {
        id: "consent-tenant".into(),
        subject: "tenant:acme".into(),
        granted_by: "admin".into(),
        expires_at: now + 600,
        ..consent.clone()
    };
    store.save_consent(&own).await.unwrap();
    store.save_consent(&for_tenant).await.unwrap();
    let resting = |family: &str| RefreshToken {
        tenant_consent_id: Some("consent-tenant".into()),
        ..refresh(family, "consent-own", now + 3600)
    };
    store.put_refresh_token(&digest(80), &resting("fam-8")).await.unwrap();
    store.put_refresh_token(&digest(82), &resting("fam-9")).await.unwrap();
    store.put_refresh_token(&digest(84), &refresh("fam-10", "consent-own", now + 3600)).await.unwrap();
    assert_eq!(store.live_refresh_token(&digest(80), now + 700).await.unwrap(), None, "the tenant's consent expired");
    assert_eq!(
        store.rotate_refresh_token(&digest(80), &digest(81), now + 3600, now + 700).await.unwrap(),
        Rotation::Invalid
    );
    assert!(store.live_refresh_token(&digest(84), now + 700).await.unwrap().is_some(), "the user's own grant lasts");
    assert!(matches!(
        store.rotate_refresh_token(&digest(80), &digest(81), now + 3600, now).await.unwrap(),
        Rotation::Rotated(_)
    ));
    assert!(store.revoke_consent("consent-tenant", "tenant:acme", now).await.unwrap());
    for (presented, next) in [(81, 86), (82, 87)] {
        assert_eq!(
            store.rotate_refresh_token(&digest(presented), &digest(next), now + 3600, now).await.unwrap(),
            Rotation::Invalid,
            "revoking the tenant's consent ends the members' grants resting on it"
        );
    }
    assert!(matches!(
        store.rotate_refresh_token(&digest(84), &digest(85), now + 3600, now).await.unwrap(),
        Rotation::Rotated(_)
    ));

    // Device authorizations: a user code is unique while it lives; polls wait, slow down,
    // and of concurrent polls after the decision exactly one gets it.
    let device = inbound::store::DecoupledRequest {
        client_id: "c".into(),
        scopes: vec!["openid".into()],
        resources: vec![],
        tenant: None,
        expires_at: now + 600,
        subject: None,
        binding_message: None,
        notification: None,
    };
    assert!(store.put_decoupled_request(&digest(90), "BCDFGHJK", &device, 5, now).await.unwrap());
    assert!(!store.put_decoupled_request(&digest(91), "BCDFGHJK", &device, 5, now).await.unwrap(), "code in use");
    assert_eq!(store.decoupled_request("BCDFGHJK", now).await.unwrap(), Some(device.clone()));
    assert_eq!(store.decoupled_request("BCDFGHJK", now + 600).await.unwrap(), None, "expired");
    use inbound::store::{DecoupledDecision, DecoupledPoll};
    assert_eq!(store.poll_decoupled_request(&digest(90), now).await.unwrap(), DecoupledPoll::Pending);
    assert_eq!(
        store.poll_decoupled_request(&digest(90), now + 1).await.unwrap(),
        DecoupledPoll::SlowDown { interval: 10 }
    );
    assert_eq!(store.poll_decoupled_request(&digest(90), now + 11).await.unwrap(), DecoupledPoll::Pending);
    assert_eq!(store.poll_decoupled_request(&digest(92), now).await.unwrap(), DecoupledPoll::Expired, "unknown");
    assert!(store.decide_decoupled_request("BCDFGHJK", &DecoupledDecision::Denied, now).await.unwrap());
    assert!(
        !store.decide_decoupled_request("BCDFGHJK", &DecoupledDecision::Denied, now).await.unwrap(),
        "decided once"
    );
    assert_eq!(store.decoupled_request("BCDFGHJK", now).await.unwrap(), None, "no longer open");
    let polls = futures_join(6, |_| {
        let store = store.clone();
        async move { store.poll_decoupled_request(&digest(90), now + 30).await.unwrap() }
    })
    .await;
    assert_eq!(
        polls.iter().filter(|p| **p == DecoupledPoll::Decided(DecoupledDecision::Denied)).count(),
        1,
        "{polls:?}"
    );
    assert!(polls.iter().all(|p| matches!(p, DecoupledPoll::Decided(_) | DecoupledPoll::Expired)), "{polls:?}");

    // Registered clients: concurrent registrations respect the count limit exactly; an
    // identical public registration returns the existing client; metadata-document clients
    // are upserted; reaping removes unused ones with their consents.
    let policy = ObjectKey { namespace: "mcp".into(), name: "p".into() };
    let client = |id: &str, dedupe: Option<&str>, source: &str| RegisteredClient {
        client_id: id.into(),
        policy: policy.clone(),
        metadata: serde_json::json!({ "client_name": id }),
        secret_hash: None,
        registration_token_hash: Some(SecretHash([3; 32])),
        dedupe_key: dedupe.map(str::to_string),
        source: source.into(),
        created_at: now,
        last_used_at: now,
        tags: vec![],
    };
    let limits = inbound::api::RegistrationLimits { max_clients: 3, per_source_per_hour: 100, total_per_hour: 100 };
    let outcomes = futures_join(8, |i| {
        let (store, limits, record) = (store.clone(), limits.clone(), client(&format!("r{i}"), None, &format!("s{i}")));
        async move { store.register_client(&record, &limits, now).await.unwrap() }
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| **o == Registration::Created).count(), 3, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Registration::Created | Registration::Limited(RegistrationLimit::MaxClients)))
    );
    let wide = inbound::api::RegistrationLimits { max_clients: 100, per_source_per_hour: 1, total_per_hour: 100 };
    assert_eq!(
        store.register_client(&client("d1", Some("same"), "src"), &wide, now).await.unwrap(),
        Registration::Created
    );
    match store.register_client(&client("d2", Some("same"), "other"), &wide, now).await.unwrap() {
        Registration::Existing(existing) => assert_eq!(existing.client_id, "d1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.register_client(&client("d3", None, "src"), &wide, now).await.unwrap(),
        Registration::Limited(RegistrationLimit::PerSource)
    );
    // Metadata-document clients are not registrations: they count against no registration limit.
    let other_policy = ObjectKey { namespace: "mcp".into(), name: "q".into() };
    let under_q = |id: &str| RegisteredClient { policy: other_policy.clone(), ..client(id, None, "src-q") };
    for i in 0..3 {
        assert!(store.record_client(&under_q(&format!("https://app{i}.example.com/c.json")), now).await.unwrap());
    }
    let one = inbound::api::RegistrationLimits { max_clients: 1, per_source_per_hour: 1, total_per_hour: 100 };
    assert_eq!(
        store.register_client(&under_q("q1"), &one, now).await.unwrap(),
        Registration::Created,
        "document clients are not counted"
    );
    for id in
        ["q1", "https://app0.example.com/c.json", "https://app1.example.com/c.json", "https://app2.example.com/c.json"]
    {
        assert!(store.delete_registered_client(id, now).await.unwrap());
    }
    let mut document = client("https://app.example.com/client.json", None, "app.example.com");
    assert!(store.record_client(&document, now).await.unwrap());
    document.metadata = serde_json::json!({ "client_name": "renamed" });
    assert!(store.record_client(&document, now).await.unwrap());
    let recorded = store.registered_client(&document.client_id).await.unwrap().unwrap();
    assert_eq!(recorded.metadata["client_name"], "renamed");
    assert_eq!(recorded.registration_token_hash, None);
    assert!(store.update_registered_client("d1", &serde_json::json!({"client_name": "x"}), None).await.unwrap());
    assert!(!store.update_registered_client("nope", &serde_json::json!({}), None).await.unwrap());
    // Tags are the administrator's: set, read back, and kept when the client updates itself.
    let tags = vec!["partner".to_string(), "beta".to_string()];
    assert!(store.set_registered_client_tags("d1", &tags).await.unwrap());
    assert!(!store.set_registered_client_tags("nope", &tags).await.unwrap());
    assert!(store.update_registered_client("d1", &serde_json::json!({"client_name": "y"}), None).await.unwrap());
    assert_eq!(store.registered_client("d1").await.unwrap().unwrap().tags, tags);
    assert!(store.registered_clients().await.unwrap().iter().any(|c| c.client_id == "d1" && c.tags == tags));
    let total = store.registered_clients().await.unwrap().len();
    assert_eq!(total, 5, "3 limited + d1 + the document client");
    // Used later than the cut-off: kept; the others are reaped, consents with them.
    let mut used = consent.clone();
    used.id = "consent-d1".into();
    used.client_id = "d1".into();
    store.save_consent(&used).await.unwrap();
    store.touch_registered_client(&document.client_id, now + 100).await.unwrap();
    let reaped = store.reap_registered_clients(&policy, now + 50, 100).await.unwrap();
    assert_eq!(reaped.len(), 4, "{reaped:?}");
    assert!(store.registered_client(&document.client_id).await.unwrap().is_some());
    assert_eq!(store.consent("consent-d1", now).await.unwrap(), None, "consents go with the client");
    assert!(store.delete_registered_client(&document.client_id, now).await.unwrap());
    assert!(store.registered_clients().await.unwrap().is_empty());

    // Sessions and pending requests.
    let session = Session { subject: "u".into(), auth_time: now };
    store.put_session(&digest(50), &session, now + 60).await.unwrap();
    assert_eq!(store.session(&digest(50), now).await.unwrap(), Some(session));
    assert_eq!(store.session(&digest(50), now + 61).await.unwrap(), None);
    store.delete_session(&digest(50)).await.unwrap();
    assert_eq!(store.session(&digest(50), now).await.unwrap(), None);
    store.put_pending("t", "{\"a\":1}", now + 60).await.unwrap();
    assert_eq!(store.take_pending("t", now + 61).await.unwrap(), None, "expired");
    assert_eq!(store.take_pending("t", now).await.unwrap().as_deref(), Some("{\"a\":1}"));
    assert_eq!(store.take_pending("t", now).await.unwrap(), None, "taken once");
    store.put_pending("p", "{}", now + 60).await.unwrap();
    assert_eq!(store.pending("p", now).await.unwrap().as_deref(), Some("{}"));
    store.delete_pending("p").await.unwrap();
    assert_eq!(store.pending("p", now).await.unwrap(), None);

    // User records: created at the first login, refreshed at every later one.
    assert_eq!(store.user("sub-u").await.unwrap(), None);
    let mut user = UserRecord {
        subject: "sub-u".into(),
        source: "inbound/corporate".into(),
        username: "u@example.com".into(),
        tenants: vec!["acme".into(), "globex".into()],
        tenant_roles: [("acme".to_string(), vec!["tenant-admin".to_string()])].into(),
        roles: vec!["admin".into()],
        attributes: [("email".to_string(), "u@example.com".to_string())].into(),
        ..UserRecord::default()
    };
    let first = store.record_login(&user, now).await.unwrap();
    assert_eq!((first.first_login_at, first.last_login_at), (now, now));
    assert_eq!(store.user("sub-u").await.unwrap().as_ref(), Some(&first));
    user.roles.clear();
    user.tenants = vec![];
    user.tenant_roles.clear();
    let second = store.record_login(&user, now + 100).await.unwrap();
    assert_eq!((second.first_login_at, second.last_login_at), (now, now + 100), "the first login is kept");
    let stored = store.user("sub-u").await.unwrap().unwrap();
    assert_eq!(
        (stored.roles.len(), stored.tenants.len(), stored.tenant_roles.len()),
        (0, 0, 0),
        "what the source says now replaces the record"
    );
    assert_eq!(stored, second);
    // A refresh token and the user it was issued to, in one read.
    store.save_consent(&Consent { id: "consent-u".into(), subject: "sub-u".into(), ..consent.clone() }).await.unwrap();
    let theirs = RefreshToken { subject: "sub-u".into(), ..refresh("fam-u", "consent-u", now + 3600) };
    store.put_refresh_token(&digest(95), &theirs).await.unwrap();
    assert_eq!(
        store.live_refresh_token_with_user(&digest(95), now).await.unwrap(),
        Some((theirs, Some(second.clone())))
    );
    // CIBA login hints: by login name or email attribute; two users answering one hint are
    // both returned (the caller treats that as nobody).
    let found = store.users_by_login("u@example.com").await.unwrap();
    assert_eq!(found.iter().map(|u| u.subject.as_str()).collect::<Vec<_>>(), ["sub-u"], "by username");
    let mut other = UserRecord {
        subject: "sub-v".into(),
        source: "development".into(),
        username: "v".into(),
        attributes: [("email".to_string(), "v@example.com".to_string())].into(),
        ..UserRecord::default()
    };
    store.record_login(&other, now).await.unwrap();
    assert_eq!(store.users_by_login("v@example.com").await.unwrap().len(), 1, "by email attribute");
    assert_eq!(store.users_by_login("v").await.unwrap().len(), 1);
    assert!(store.users_by_login("V@example.com' OR '1'='1").await.unwrap().is_empty());
    other.subject = "sub-w".into();
    other.username = "u@example.com".into();
    store.record_login(&other, now).await.unwrap();
    assert_eq!(store.users_by_login("u@example.com").await.unwrap().len(), 2, "ambiguous");

    // CIBA user codes: set, kept by a later login, cleared; nobody's for an unknown subject.
    assert_eq!(store.backchannel_user_code("sub-v").await.unwrap(), None);
    assert!(store.set_backchannel_user_code("sub-v", Some("$argon2id$x")).await.unwrap());
    store.record_login(&other, now + 1).await.unwrap();
    other.subject = "sub-v".into();
    store.record_login(&other, now + 2).await.unwrap();
    assert_eq!(store.backchannel_user_code("sub-v").await.unwrap().as_deref(), Some("$argon2id$x"), "kept by a login");
    assert_eq!(store.backchannel_user_code("sub-w").await.unwrap(), None, "another user's");
    assert!(store.set_backchannel_user_code("sub-v", None).await.unwrap());
    assert_eq!(store.backchannel_user_code("sub-v").await.unwrap(), None);
    assert!(!store.set_backchannel_user_code("nobody", Some("$argon2id$x")).await.unwrap());

    // Client assertion jtis: once each until they expire, one winner among concurrent uses.
    assert!(store.use_assertion_jti(&digest(90), now + 60, now).await.unwrap());
    assert!(!store.use_assertion_jti(&digest(90), now + 60, now + 1).await.unwrap(), "a replay");
    assert!(store.use_assertion_jti(&digest(90), now + 200, now + 61).await.unwrap(), "expired: usable again");
    let uses = futures_join(8, |_| {
        let store = store.clone();
        async move { store.use_assertion_jti(&digest(91), now + 60, now).await.unwrap() }
    })
    .await;
    assert_eq!(uses.iter().filter(|fresh| **fresh).count(), 1, "{uses:?}");

    // Purge: only expired rows, in bounded batches.
    for i in 0..5u8 {
        store.put_code(&digest(100 + i), &code(now - 10)).await.unwrap();
    }
    let before = store.count_rows("authorization_codes").await.unwrap();
    let purged = store.purge_expired(now, 2).await.unwrap();
    assert!(purged >= 2, "{purged}");
    assert_eq!(store.count_rows("authorization_codes").await.unwrap(), before - 2, "batch of 2 per table");
    while store.purge_expired(now, 2).await.unwrap() > 0 {}
    assert_eq!(
        store.count_rows("authorization_codes").await.unwrap(),
        1,
        "the live code 1 (bound to a 600 s token) stays"
    );
    assert!(store.count_rows("no_such_table").await.is_err());
}

/// Runs `n` copies of a future concurrently, returning their results in order.
async fn futures_join<F, Fut, T>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(make(i))).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(SqliteStore::open(&dir.path().join("state.db")).await.unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_behaviour() {
    let pg = Postgres::start();
    suite(inbound::store::open(Some(&pg.url()), std::path::Path::new("unused")).await.unwrap()).await;
}
