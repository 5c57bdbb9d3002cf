//! Databases written by earlier releases open with the current store, and `TABLES` names
//! every table, on both backends.
//!
//! The fixtures below are the schema exactly as the release before the numbered migration
//! files created it: its inline migrations and its `schema_migrations` bookkeeping, copied
//! here on purpose and never to be edited. SQLite then numbered registered_clients 3;
//! PostgreSQL numbered it 4 (its 3 added `client_secrets.seq`).

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use inbound::api::ObjectKey;
use inbound::secrets::SecretHash;
use inbound::store::{
    AuthorizationCode, CodeRedemption, Consent, PostgresStore, RefreshToken, RegisteredClient, Registration, Rotation,
    Session, SqliteStore, Store, TABLES, UserRecord,
};
use inbound::tokens::{AccessTokenClaims, Audience};

use crate::support::postgres::Postgres;

const PREVIOUS_SQLITE: &[(i64, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE objects (
        kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
        PRIMARY KEY (kind, namespace, name)
    );
    CREATE TABLE client_secrets (
        client_id TEXT NOT NULL, secret_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER
    );
    CREATE INDEX client_secrets_by_client ON client_secrets (client_id);
    CREATE TABLE opaque_tokens (
        digest BLOB PRIMARY KEY, jti TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL,
        claims TEXT NOT NULL, expires_at INTEGER NOT NULL
    );
    CREATE INDEX opaque_tokens_by_expiry ON opaque_tokens (expires_at);
    CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, jti TEXT NOT NULL UNIQUE, expires_at INTEGER NOT NULL
    );
    CREATE INDEX revocations_by_expiry ON revocations (expires_at);
    "#,
    ),
    (
        2,
        r#"
    CREATE TABLE authorization_codes (
        digest BLOB PRIMARY KEY, code TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0,
        family_id TEXT, access_jti TEXT, access_exp INTEGER, expires_at INTEGER NOT NULL
    );
    CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
    CREATE TABLE consents (
        id TEXT PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL, tenant TEXT NOT NULL,
        consent TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX consents_by_user ON consents (subject, client_id, tenant);
    CREATE TABLE refresh_families (
        family_id TEXT PRIMARY KEY, consent_id TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX refresh_families_by_consent ON refresh_families (consent_id);
    CREATE TABLE refresh_tokens (
        digest BLOB PRIMARY KEY, family_id TEXT NOT NULL, token TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0, expires_at INTEGER NOT NULL
    );
    CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
    CREATE TABLE sessions (
        digest BLOB PRIMARY KEY, subject TEXT NOT NULL, auth_time INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE pending_requests (
        id TEXT PRIMARY KEY, request TEXT NOT NULL, expires_at INTEGER NOT NULL
    );
    "#,
    ),
    (
        3,
        r#"
    CREATE TABLE registered_clients (
        client_id TEXT PRIMARY KEY, policy_namespace TEXT NOT NULL, policy_name TEXT NOT NULL,
        metadata TEXT NOT NULL, secret_hash BLOB, registration_token_hash BLOB, dedupe_key TEXT,
        source TEXT NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX registered_clients_dedupe ON registered_clients (dedupe_key) WHERE dedupe_key IS NOT NULL;
    CREATE INDEX registered_clients_by_created ON registered_clients (created_at);
    CREATE INDEX registered_clients_by_last_used ON registered_clients (last_used_at);
    "#,
    ),
];

const PREVIOUS_POSTGRES: &[(i64, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE objects (
        kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL,
        PRIMARY KEY (kind, namespace, name)
    );
    CREATE TABLE client_secrets (
        client_id TEXT NOT NULL, secret_hash BYTEA NOT NULL,
        created_at BIGINT NOT NULL, expires_at BIGINT
    );
    CREATE INDEX client_secrets_by_client ON client_secrets (client_id);
    CREATE TABLE opaque_tokens (
        digest BYTEA PRIMARY KEY, jti TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL,
        claims TEXT NOT NULL, expires_at BIGINT NOT NULL
    );
    CREATE INDEX opaque_tokens_by_expiry ON opaque_tokens (expires_at);
    CREATE TABLE revocations (
        seq BIGSERIAL PRIMARY KEY, jti TEXT NOT NULL UNIQUE, expires_at BIGINT NOT NULL
    );
    CREATE INDEX revocations_by_expiry ON revocations (expires_at);
    "#,
    ),
    (
        2,
        r#"
    CREATE TABLE authorization_codes (
        digest BYTEA PRIMARY KEY, code TEXT NOT NULL, used BIGINT NOT NULL DEFAULT 0,
        family_id TEXT, access_jti TEXT, access_exp BIGINT, expires_at BIGINT NOT NULL
    );
    CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
    CREATE TABLE consents (
        id TEXT PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL, tenant TEXT NOT NULL,
        consent TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE INDEX consents_by_user ON consents (subject, client_id, tenant);
    CREATE TABLE refresh_families (
        family_id TEXT PRIMARY KEY, consent_id TEXT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX refresh_families_by_consent ON refresh_families (consent_id);
    CREATE TABLE refresh_tokens (
        digest BYTEA PRIMARY KEY, family_id TEXT NOT NULL, token TEXT NOT NULL,
        used BIGINT NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL
    );
    CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
    CREATE TABLE sessions (
        digest BYTEA PRIMARY KEY, subject TEXT NOT NULL, auth_time BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE pending_requests (
        id TEXT PRIMARY KEY, request TEXT NOT NULL, expires_at BIGINT NOT NULL
    );
    "#,
    ),
    (
        3,
        r#"
    -- Orders secrets issued within the same second (newest is the current one).
    ALTER TABLE client_secrets ADD COLUMN seq BIGSERIAL;
    "#,
    ),
    (
        4,
        r#"
    CREATE TABLE registered_clients (
        client_id TEXT PRIMARY KEY, policy_namespace TEXT NOT NULL, policy_name TEXT NOT NULL,
        metadata TEXT NOT NULL, secret_hash BYTEA, registration_token_hash BYTEA, dedupe_key TEXT,
        source TEXT NOT NULL, created_at BIGINT NOT NULL, last_used_at BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX registered_clients_dedupe ON registered_clients (dedupe_key) WHERE dedupe_key IS NOT NULL;
    CREATE INDEX registered_clients_by_created ON registered_clients (created_at);
    CREATE INDEX registered_clients_by_last_used ON registered_clients (last_used_at);
    "#,
    ),
];

/// The previous release's SQLite `migrate()`: bookkeeping table outside, one transaction per version.
async fn previous_sqlite_schema(pool: &sqlx::SqlitePool) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await
    .unwrap();
    for (version, sql) in PREVIOUS_SQLITE {
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(*sql).execute(&mut *tx).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))")
            .bind(version)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

/// The previous release's PostgreSQL `migrate()`: all versions in one advisory-locked transaction.
async fn previous_postgres_schema(pool: &sqlx::PgPool) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(7001100)").execute(&mut *tx).await.unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    for (version, sql) in PREVIOUS_POSTGRES {
        sqlx::raw_sql(*sql).execute(&mut *tx).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, extract(epoch from now())::bigint)",
        )
        .bind(version)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// What the previous release stored, one row (or two) in every table.
struct Previous {
    now: i64,
    claims: AccessTokenClaims,
    code: AuthorizationCode,
    consent: Consent,
    refresh: RefreshToken,
    registered: RegisteredClient,
}

impl Previous {
    fn new() -> Previous {
        let now = now();
        Previous {
            now,
            claims: AccessTokenClaims {
                iss: "https://issuer.example".into(),
                sub: "svc".into(),
                aud: Audience::One("https://api.example".into()),
                exp: now + 600,
                iat: now,
                jti: "jti-opaque".into(),
                client_id: "old-app".into(),
                client_namespace: None,
                scope: Some("billing:read".into()),
                tenant: None,
                roles: None,
                kubernetes: None,
                act: None,
            },
            code: AuthorizationCode {
                client_id: "old-app".into(),
                redirect_uri: "http://127.0.0.1/cb".into(),
                redirect_uri_given: true,
                code_challenge: "x".repeat(43),
                nonce: None,
                scopes: vec!["openid".into()],
                resources: vec![],
                tenant: Some("acme".into()),
                subject: "u".into(),
                auth_time: now,
                consent_id: "consent-old".into(),
                tenant_consent_id: None,
                expires_at: now + 60,
            },
            consent: Consent {
                id: "consent-old".into(),
                client_id: "old-app".into(),
                subject: "u".into(),
                tenant: Some("acme".into()),
                granted_by: "u".into(),
                scopes: vec!["billing:read".into()],
                created_at: now - 100,
                expires_at: now + 3600,
            },
            refresh: RefreshToken {
                family_id: "fam-old".into(),
                client_id: "old-app".into(),
                subject: "u".into(),
                consent_id: "consent-old".into(),
                tenant_consent_id: None,
                scopes: vec!["openid".into()],
                resources: vec![],
                tenant: Some("acme".into()),
                auth_time: now,
                expires_at: now + 3600,
            },
            registered: RegisteredClient {
                client_id: "reg-old".into(),
                policy: ObjectKey { namespace: "mcp".into(), name: "p".into() },
                metadata: serde_json::json!({ "client_name": "old" }),
                secret_hash: Some(SecretHash([8; 32])),
                registration_token_hash: Some(SecretHash([9; 32])),
                dedupe_key: Some("dedupe-old".into()),
                source: "10.0.0.1".into(),
                created_at: now - 100,
                last_used_at: now - 100,
                tags: vec![],
            },
        }
    }

    /// Rows as the previous release's statements wrote them (its text, `$N` spelled).
    async fn write<DB: Database>(&self, pool: &Pool<DB>)
    where
        for<'p> &'p Pool<DB>: Executor<'p, Database = DB>,
        DB::Arguments: IntoArguments<DB>,
        for<'q> String: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    {
        let now = self.now;
        let statements: Vec<(&'static str, Vec<Bind>)> = vec![
            (
                "INSERT INTO objects (kind, namespace, name, uid, created_at) VALUES ($1, $2, $3, $4, $5)",
                vec!["InboundApp".into(), "default".into(), "app".into(), "uid-old".into(), (now - 100).into()],
            ),
            (
                "INSERT INTO client_secrets (client_id, secret_hash, created_at) VALUES ($1, $2, $3)",
                vec!["old-app".into(), Bind::Bytes(vec![1; 32]), now.into()],
            ),
            (
                "INSERT INTO opaque_tokens (digest, jti, client_id, claims, expires_at) VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Bind::Bytes(vec![2; 32]),
                    "jti-opaque".into(),
                    "old-app".into(),
                    json(&self.claims).into(),
                    self.claims.exp.into(),
                ],
            ),
            ("INSERT INTO revocations (jti, expires_at) VALUES ($1, $2)", vec!["jti-revoked".into(), (now + 600).into()]),
            (
                "INSERT INTO authorization_codes (digest, code, expires_at) VALUES ($1, $2, $3)",
                vec![Bind::Bytes(vec![3; 32]), json(&self.code).into(), self.code.expires_at.into()],
            ),
            (
                "INSERT INTO consents (id, client_id, subject, tenant, consent, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    "consent-old".into(),
                    "old-app".into(),
                    "u".into(),
                    "acme".into(),
                    json(&self.consent).into(),
                    self.consent.created_at.into(),
                    self.consent.expires_at.into(),
                ],
            ),
            (
                "INSERT INTO refresh_families (family_id, consent_id, expires_at) VALUES ($1, $2, $3)",
                vec!["fam-old".into(), "consent-old".into(), self.refresh.expires_at.into()],
            ),
            (
                "INSERT INTO refresh_tokens (digest, family_id, token, expires_at) VALUES ($1, $2, $3, $4)",
                vec![
                    Bind::Bytes(vec![4; 32]),
                    "fam-old".into(),
                    json(&self.refresh).into(),
                    self.refresh.expires_at.into(),
                ],
            ),
            (
                "INSERT INTO sessions (digest, subject, auth_time, expires_at) VALUES ($1, $2, $3, $4)",
                vec![Bind::Bytes(vec![5; 32]), "u".into(), now.into(), (now + 600).into()],
            ),
            (
                "INSERT INTO pending_requests (id, request, expires_at) VALUES ($1, $2, $3)",
                vec!["pending-old".into(), "{}".into(), (now + 600).into()],
            ),
            (
                "INSERT INTO registered_clients (client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                vec![
                    "reg-old".into(),
                    "mcp".into(),
                    "p".into(),
                    json(&self.registered.metadata).into(),
                    Bind::Bytes(vec![8; 32]),
                    Bind::Bytes(vec![9; 32]),
                    "dedupe-old".into(),
                    "10.0.0.1".into(),
                    self.registered.created_at.into(),
                    self.registered.last_used_at.into(),
                ],
            ),
        ];
        for (sql, binds) in statements {
            let mut query = sqlx::query(sql);
            for bind in binds {
                query = match bind {
                    Bind::Text(s) => query.bind(s),
                    Bind::Int(i) => query.bind(i),
                    Bind::Bytes(b) => query.bind(b),
                };
            }
            query.execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// Every row is readable through the current store, and new writes land beside them.
    async fn check(&self, store: &dyn Store) {
        let now = self.now;
        let app = ObjectKey { namespace: "default".into(), name: "app".into() };
        assert_eq!(store.object_uid("InboundApp", &app).await.unwrap(), "uid-old");
        assert_eq!(store.client_secret_hashes("old-app", now).await.unwrap(), vec![SecretHash([1; 32])]);
        assert_eq!(store.opaque_token(&[2; 32]).await.unwrap(), Some(self.claims.clone()));
        let revocations = store.revocations_since(0).await.unwrap();
        assert_eq!(revocations.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["jti-revoked"]);
        assert_eq!(store.active_consent("old-app", "u", Some("acme"), now).await.unwrap(), Some(self.consent.clone()));
        assert_eq!(store.redeem_code(&[3; 32], now).await.unwrap(), CodeRedemption::Fresh(Box::new(self.code.clone())));
        assert_eq!(
            store.rotate_refresh_token(&[4; 32], &[40; 32], now + 7200, now).await.unwrap(),
            Rotation::Rotated(self.refresh.clone())
        );
        assert_eq!(store.session(&[5; 32], now).await.unwrap(), Some(Session { subject: "u".into(), auth_time: now }));
        assert_eq!(store.pending("pending-old", now).await.unwrap().as_deref(), Some("{}"));
        assert_eq!(store.registered_client("reg-old").await.unwrap(), Some(self.registered.clone()));

        // New writes, including into the tables the previous numbering disagreed on.
        store.rotate_client_secret("old-app", &SecretHash([6; 32]), now, now + 60).await.unwrap();
        assert_eq!(
            store.client_secret_hashes("old-app", now).await.unwrap(),
            vec![SecretHash([6; 32]), SecretHash([1; 32])],
            "the newest secret first, within the same second"
        );
        let limits = inbound::api::RegistrationLimits { max_clients: 10, per_source_per_hour: 10, total_per_hour: 10 };
        let mut same = self.registered.clone();
        same.client_id = "reg-same".into();
        match store.register_client(&same, &limits, now).await.unwrap() {
            Registration::Existing(existing) => assert_eq!(existing.client_id, "reg-old"),
            other => panic!("{other:?}"),
        }
        let mut new = same.clone();
        new.client_id = "reg-new".into();
        new.dedupe_key = None;
        assert_eq!(store.register_client(&new, &limits, now).await.unwrap(), Registration::Created);
        assert_eq!(store.count_rows("registered_clients").await.unwrap(), 2);
        let other = ObjectKey { namespace: "default".into(), name: "other".into() };
        assert_ne!(store.object_uid("InboundApp", &other).await.unwrap(), "uid-old");
        store.revoke("jti-new", now + 600).await.unwrap();
        assert_eq!(store.revocations_since(revocations[0].0).await.unwrap().len(), 1);
        store.put_code(&[30; 32], &self.code).await.unwrap();
        assert!(matches!(store.redeem_code(&[30; 32], now).await.unwrap(), CodeRedemption::Fresh(_)));
        assert_eq!(
            store.rotate_refresh_token(&[40; 32], &[41; 32], now + 7200, now).await.unwrap(),
            Rotation::Rotated(RefreshToken { expires_at: now + 7200, ..self.refresh.clone() })
        );
        let mut consent = self.consent.clone();
        consent.id = "consent-new".into();
        store.save_consent(&consent).await.unwrap();
        assert_eq!(store.consents_of("u", now).await.unwrap().len(), 2);
        store.put_session(&[50; 32], &Session { subject: "v".into(), auth_time: now }, now + 60).await.unwrap();
        store.put_pending("pending-new", "{}", now + 60).await.unwrap();
        store
            .put_opaque_token(&[20; 32], &AccessTokenClaims { jti: "jti-2".into(), ..self.claims.clone() })
            .await
            .unwrap();
    }
}

/// A value bound to one of [`Previous::write`]'s statements.
enum Bind {
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
}

impl From<&str> for Bind {
    fn from(s: &str) -> Bind {
        Bind::Text(s.into())
    }
}

impl From<String> for Bind {
    fn from(s: String) -> Bind {
        Bind::Text(s)
    }
}

impl From<i64> for Bind {
    fn from(i: i64) -> Bind {
        Bind::Int(i)
    }
}

/// A value as the store writes it: compact JSON.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// The tables of the schema at `pool`, the migrations' bookkeeping aside, sorted.
async fn tables<DB: Database>(pool: &Pool<DB>, sql: &'static str) -> Vec<String>
where
    for<'p> &'p Pool<DB>: Executor<'p, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
{
    let rows = sqlx::query(sql).fetch_all(pool).await.unwrap();
    let mut names: Vec<String> = rows.iter().map(|row| row.get::<String, _>(0)).collect();
    names.retain(|name| name != "schema_migrations");
    names.sort();
    names
}

const SQLITE_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'";
const POSTGRES_TABLES: &str = "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'";

fn declared_tables() -> Vec<String> {
    let mut names: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    names.sort();
    names
}

async fn versions<DB: Database>(pool: &Pool<DB>) -> Vec<i64>
where
    for<'p> &'p Pool<DB>: Executor<'p, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
{
    let rows = sqlx::query("SELECT version FROM schema_migrations ORDER BY version").fetch_all(pool).await.unwrap();
    rows.iter().map(|row| row.get::<i64, _>(0)).collect()
}

async fn sqlite_pool(path: &std::path::Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}

#[tokio::test]
async fn sqlite_database_of_the_previous_release_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let previous = Previous::new();
    let pool = sqlite_pool(&path).await;
    previous_sqlite_schema(&pool).await;
    previous.write(&pool).await;
    assert_eq!(versions(&pool).await, [1, 2, 3]);

    let store = SqliteStore::open(&path).await.unwrap();
    previous.check(&store).await;
    assert_eq!(
        versions(&pool).await,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "the previous 3 (registered_clients) is now 4"
    );
    assert_eq!(tables(&pool, SQLITE_TABLES).await, declared_tables());
    drop(store);
    // And again: nothing left to apply.
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.count_rows("registered_clients").await.unwrap(), 2);
}

#[tokio::test]
async fn postgres_database_of_the_previous_release_opens() {
    let pg = Postgres::start();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let previous = Previous::new();
    previous_postgres_schema(&pool).await;
    previous.write(&pool).await;

    let store = PostgresStore::connect(&pg.url()).await.unwrap();
    previous.check(&store).await;
    assert_eq!(versions(&pool).await, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert_eq!(tables(&pool, POSTGRES_TABLES).await, declared_tables());
    drop(store);
    let store = PostgresStore::connect(&pg.url()).await.unwrap();
    assert_eq!(store.count_rows("registered_clients").await.unwrap(), 2);
}

#[tokio::test]
async fn sqlite_tables_lists_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let pool = sqlite_pool(&path).await;
    assert_eq!(tables(&pool, SQLITE_TABLES).await, declared_tables());
    assert_eq!(versions(&pool).await, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for table in TABLES {
        assert_eq!(store.count_rows(table).await.unwrap(), 0, "{table}");
    }
    store.storage_bytes(TABLES).await.unwrap();
}

#[tokio::test]
async fn postgres_tables_lists_every_table() {
    let pg = Postgres::start();
    let store = PostgresStore::connect(&pg.url()).await.unwrap();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    assert_eq!(tables(&pool, POSTGRES_TABLES).await, declared_tables());
    assert_eq!(versions(&pool).await, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for table in TABLES {
        assert_eq!(store.count_rows(table).await.unwrap(), 0, "{table}");
    }
    assert!(store.storage_bytes(TABLES).await.unwrap() > 0);
}

/// Version 7's schema, from the migration files as they are (numbered alike on both
/// backends), with one user of one tenant as version 7 wrote them.
macro_rules! before_tenants {
    ($backend:literal) => {
        [
            include_str!(concat!("../../src/store/migrations/", $backend, "/001_objects_secrets_tokens.sql")),
            include_str!(concat!("../../src/store/migrations/", $backend, "/002_user_delegation.sql")),
            include_str!(concat!("../../src/store/migrations/", $backend, "/003_client_secret_order.sql")),
            include_str!(concat!("../../src/store/migrations/", $backend, "/004_registered_clients.sql")),
            include_str!(concat!("../../src/store/migrations/", $backend, "/005_client_tombstones.sql")),
            include_str!(concat!("../../src/store/migrations/", $backend, "/006_users.sql")),
            include_str!(concat!("../../src/store/migrations/", $backend, "/007_assertion_jtis.sql")),
        ]
    };
}

const USER_OF_VERSION_7: &str =
    "INSERT INTO users (subject, source, username, tenant, roles, attributes, first_login_at, last_login_at)
     VALUES ('u7', 'development', 'carol', 'acme', '[\"admin\"]', '{}', 10, 20)";

/// What version 8 makes of [`USER_OF_VERSION_7`]: the one tenant becomes a list of one.
async fn check_user_of_version_7(store: &dyn Store) {
    let user = store.user("u7").await.unwrap().expect("the user survives the migration");
    assert_eq!(
        user,
        UserRecord {
            subject: "u7".into(),
            source: "development".into(),
            username: "carol".into(),
            tenants: vec!["acme".into()],
            roles: vec!["admin".into()],
            first_login_at: 10,
            last_login_at: 20,
            ..UserRecord::default()
        }
    );
}

#[tokio::test]
async fn sqlite_users_keep_their_tenant_as_a_membership() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let pool = sqlite_pool(&path).await;
    sqlx::raw_sql("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for (i, sql) in before_tenants!("sqlite").into_iter().enumerate() {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations VALUES ($1, 0)").bind(i as i64 + 1).execute(&pool).await.unwrap();
    }
    sqlx::raw_sql(USER_OF_VERSION_7).execute(&pool).await.unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    check_user_of_version_7(&store).await;
}

#[tokio::test]
async fn postgres_users_keep_their_tenant_as_a_membership() {
    let pg = Postgres::start();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for (i, sql) in before_tenants!("postgres").into_iter().enumerate() {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations VALUES ($1, 0)").bind(i as i64 + 1).execute(&pool).await.unwrap();
    }
    sqlx::raw_sql(USER_OF_VERSION_7).execute(&pool).await.unwrap();
    let store = PostgresStore::connect(&pg.url()).await.unwrap();
    check_user_of_version_7(&store).await;
}
