//! The embedded SQLite backend.

use std::{path::Path, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{
    AuthorizationCode, CodeRedemption, Consent, RefreshToken, RegisteredClient, Registration, RegistrationLimit,
    Revocation, Rotation, Session, Store, StoreError,
};
use crate::api::ObjectKey;
use crate::secrets::SecretHash;
use crate::tokens::AccessTokenClaims;

/// Schema versions, applied in order, each once, inside a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
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

pub struct SqliteStore {
    pool: SqlitePool,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(corrupt)
}

fn registered_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<RegisteredClient, StoreError> {
    let hash = |column: &str| -> Result<Option<SecretHash>, StoreError> {
        let bytes: Option<Vec<u8>> = row.try_get(column).map_err(corrupt)?;
        bytes
            .map(|b| SecretHash::from_slice(&b).ok_or_else(|| StoreError::Corrupt("secret hash length".into())))
            .transpose()
    };
    let metadata: String = row.try_get("metadata").map_err(corrupt)?;
    Ok(RegisteredClient {
        client_id: row.try_get("client_id").map_err(corrupt)?,
        policy: ObjectKey {
            namespace: row.try_get("policy_namespace").map_err(corrupt)?,
            name: row.try_get("policy_name").map_err(corrupt)?,
        },
        metadata: from_json(&metadata)?,
        secret_hash: hash("secret_hash")?,
        registration_token_hash: hash("registration_token_hash")?,
        dedupe_key: row.try_get("dedupe_key").map_err(corrupt)?,
        source: row.try_get("source").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        last_used_at: row.try_get("last_used_at").map_err(corrupt)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes; only an OS crash can lose the
            // last transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(unavailable)?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            if applied.is_some() {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(unavailable)?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn storage_bytes(&self, tables: &[&str]) -> Result<i64, StoreError> {
        let mut total = 0;
        for table in tables {
            if !super::TABLES.contains(table) {
                return Err(StoreError::Corrupt(format!("no table {table}")));
            }
            // dbstat covers the table and every index on it.
            let bytes: Option<i64> = sqlx::query_scalar(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)",
            )
            .bind(*table)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
            total += bytes.unwrap_or(0);
        }
        Ok(total)
    }

    async fn count_rows(&self, table: &str) -> Result<i64, StoreError> {
        if !super::TABLES.contains(&table) {
            return Err(StoreError::Corrupt(format!("no table {table}")));
        }
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }

    async fn object_uid(&self, kind: &str, key: &ObjectKey) -> Result<String, StoreError> {
        let candidate = new_uid();
        // Insert-or-keep in one statement, so two concurrent first loads agree on one UID.
        sqlx::query(
            "INSERT INTO objects (kind, namespace, name, uid, created_at) VALUES (?, ?, ?, ?, strftime('%s','now'))
             ON CONFLICT (kind, namespace, name) DO NOTHING",
        )
        .bind(kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(&candidate)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        sqlx::query_scalar("SELECT uid FROM objects WHERE kind = ? AND namespace = ? AND name = ?")
            .bind(kind)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn client_secret_hashes(&self, client_id: &str, now: i64) -> Result<Vec<SecretHash>, StoreError> {
        let rows = sqlx::query(
            "SELECT secret_hash FROM client_secrets WHERE client_id = ? AND (expires_at IS NULL OR expires_at > ?)
             ORDER BY created_at DESC, rowid DESC",
        )
        .bind(client_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get(0).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                SecretHash::from_slice(&bytes).ok_or_else(|| StoreError::Corrupt("secret hash length".into()))
            })
            .collect()
    }

    async fn add_first_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> Result<bool, StoreError> {
        // One statement runs under SQLite's single write lock: check and insert are atomic.
        let inserted = sqlx::query(
            "INSERT INTO client_secrets (client_id, secret_hash, created_at)
             SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM client_secrets WHERE client_id = ?1)",
        )
        .bind(client_id)
        .bind(&hash.0[..])
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn set_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("DELETE FROM client_secrets WHERE client_id = ?")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT INTO client_secrets (client_id, secret_hash, created_at) VALUES (?, ?, ?)")
            .bind(client_id)
            .bind(&hash.0[..])
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn rotate_client_secret(
        &self,
        client_id: &str,
        hash: &SecretHash,
        now: i64,
        previous_expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "UPDATE client_secrets SET expires_at = MIN(COALESCE(expires_at, ?2), ?2)
             WHERE client_id = ?1 AND (expires_at IS NULL OR expires_at > ?3)",
        )
        .bind(client_id)
        .bind(previous_expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("INSERT INTO client_secrets (client_id, secret_hash, created_at) VALUES (?1, ?2, ?3)")
            .bind(client_id)
            .bind(&hash.0[..])
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn forget_client(&self, client_id: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "UPDATE refresh_families SET revoked = 1
             WHERE consent_id IN (SELECT id FROM consents WHERE client_id = ?1)",
        )
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let revoked = sqlx::query("UPDATE consents SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL")
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        sqlx::query("DELETE FROM client_secrets WHERE client_id = ?1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(revoked)
    }

    async fn register_client(
        &self,
        client: &RegisteredClient,
        limits: &crate::api::RegistrationLimits,
        now: i64,
    ) -> Result<Registration, StoreError> {
        // BEGIN IMMEDIATE (SQLite) / an advisory lock (PostgreSQL): concurrent registrations
        // are checked against limits one at a time.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(unavailable)?;
        if let Some(key) = &client.dedupe_key {
            let row = sqlx::query("SELECT client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at FROM registered_clients WHERE dedupe_key = ?1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            if let Some(row) = row {
                return Ok(Registration::Existing(Box::new(registered_from_row(&row)?)));
            }
        }
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        let total: i64 =
            count("SELECT COUNT(*) FROM registered_clients WHERE policy_namespace = ?1 AND policy_name = ?2")
                .bind(&client.policy.namespace)
                .bind(&client.policy.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        if total >= limits.max_clients as i64 {
            return Ok(Registration::Limited(RegistrationLimit::MaxClients));
        }
        let hour_ago = now - 3600;
        let from_source: i64 = count("SELECT COUNT(*) FROM registered_clients WHERE source = ?1 AND created_at > ?2")
            .bind(&client.source)
            .bind(hour_ago)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        if from_source >= limits.per_source_per_hour as i64 {
            return Ok(Registration::Limited(RegistrationLimit::PerSource));
        }
        let recent: i64 = count("SELECT COUNT(*) FROM registered_clients WHERE created_at > ?1")
            .bind(hour_ago)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        if recent >= limits.total_per_hour as i64 {
            return Ok(Registration::Limited(RegistrationLimit::Total));
        }
        sqlx::query(
            "INSERT INTO registered_clients (client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(&client.client_id)
        .bind(&client.policy.namespace)
        .bind(&client.policy.name)
        .bind(to_json(&client.metadata)?)
        .bind(client.secret_hash.as_ref().map(|h| h.0.to_vec()))
        .bind(client.registration_token_hash.as_ref().map(|h| h.0.to_vec()))
        .bind(&client.dedupe_key)
        .bind(&client.source)
        .bind(client.created_at)
        .bind(client.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Registration::Created)
    }

    async fn registered_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let row = sqlx::query("SELECT client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at FROM registered_clients WHERE client_id = ?1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(registered_from_row).transpose()
    }

    async fn record_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO registered_clients (client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5, ?6, ?6)
             ON CONFLICT (client_id) DO UPDATE SET metadata = excluded.metadata,
                 policy_namespace = excluded.policy_namespace, policy_name = excluded.policy_name,
                 last_used_at = excluded.last_used_at",
        )
        .bind(&client.client_id)
        .bind(&client.policy.namespace)
        .bind(&client.policy.name)
        .bind(to_json(&client.metadata)?)
        .bind(&client.source)
        .bind(client.created_at)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn update_registered_client(
        &self,
        client_id: &str,
        metadata: &serde_json::Value,
        dedupe_key: Option<&str>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE registered_clients SET metadata = ?2, dedupe_key = ?3 WHERE client_id = ?1")
            .bind(client_id)
            .bind(to_json(metadata)?)
            .bind(dedupe_key)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Ok(updated == 1)
    }

    async fn delete_registered_client(&self, client_id: &str, now: i64) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM registered_clients WHERE client_id = ?1")
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
        self.forget_client(client_id, now).await?;
        Ok(deleted == 1)
    }

    async fn registered_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows = sqlx::query("SELECT client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at FROM registered_clients ORDER BY created_at, client_id")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(registered_from_row).collect()
    }

    async fn touch_registered_client(&self, client_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE registered_clients SET last_used_at = ?2 WHERE client_id = ?1 AND last_used_at < ?3")
            .bind(client_id)
            .bind(now)
            .bind(now - 60)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn reap_registered_clients(
        &self,
        policy: &ObjectKey,
        unused_since: i64,
        batch: u32,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT client_id FROM registered_clients
             WHERE policy_namespace = ?1 AND policy_name = ?2 AND last_used_at < ?3
             ORDER BY last_used_at LIMIT ?4",
        )
        .bind(&policy.namespace)
        .bind(&policy.name)
        .bind(unused_since)
        .bind(batch as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        for id in &ids {
            self.delete_registered_client(id, unused_since).await?;
        }
        Ok(ids)
    }

    async fn put_opaque_token(&self, digest: &[u8; 32], claims: &AccessTokenClaims) -> Result<(), StoreError> {
        let json = serde_json::to_string(claims).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("INSERT INTO opaque_tokens (digest, jti, client_id, claims, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&digest[..])
            .bind(&claims.jti)
            .bind(&claims.client_id)
            .bind(json)
            .bind(claims.exp)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn opaque_token(&self, digest: &[u8; 32]) -> Result<Option<AccessTokenClaims>, StoreError> {
        let json: Option<String> = sqlx::query_scalar("SELECT claims FROM opaque_tokens WHERE digest = ?")
            .bind(&digest[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
    }

    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO revocations (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn revocations_since(&self, seq: i64) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query("SELECT seq, jti, expires_at FROM revocations WHERE seq > ? ORDER BY seq LIMIT 10000")
            .bind(seq)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    r.try_get(1).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    r.try_get(2).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ))
            })
            .collect()
    }

    async fn put_code(&self, digest: &[u8; 32], code: &AuthorizationCode) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO authorization_codes (digest, code, expires_at) VALUES (?, ?, ?)")
            .bind(&digest[..])
            .bind(to_json(code)?)
            .bind(code.expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn redeem_code(&self, digest: &[u8; 32], now: i64) -> Result<CodeRedemption, StoreError> {
        // The UPDATE is the single point of truth: only one redemption can flip `used`.
        let spent = sqlx::query(
            "UPDATE authorization_codes SET used = 1 WHERE digest = ? AND used = 0 AND expires_at > ? RETURNING code",
        )
        .bind(&digest[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if let Some(row) = spent {
            let json: String = row.try_get(0).map_err(corrupt)?;
            return Ok(CodeRedemption::Fresh(from_json(&json)?));
        }
        let row =
            sqlx::query("SELECT used, family_id, access_jti, access_exp FROM authorization_codes WHERE digest = ?")
                .bind(&digest[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(match row {
            Some(row) if row.try_get::<i64, _>(0).map_err(corrupt)? == 1 => {
                let jti: Option<String> = row.try_get(2).map_err(corrupt)?;
                let exp: Option<i64> = row.try_get(3).map_err(corrupt)?;
                CodeRedemption::Replayed { family_id: row.try_get(1).map_err(corrupt)?, access_token: jti.zip(exp) }
            }
            _ => CodeRedemption::Unknown,
        })
    }

    async fn bind_code_issuance(
        &self,
        digest: &[u8; 32],
        family_id: Option<&str>,
        access_token: (&str, i64),
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE authorization_codes SET family_id = ?, access_jti = ?, access_exp = ?, expires_at = MAX(expires_at, ?) WHERE digest = ?")
            .bind(family_id)
            .bind(access_token.0)
            .bind(access_token.1)
            // Keep the row as long as the access token lives, so a late replay still revokes it.
            .bind(access_token.1)
            .bind(&digest[..])
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn active_consent(
        &self,
        client_id: &str,
        subject: &str,
        tenant: Option<&str>,
        now: i64,
    ) -> Result<Option<Consent>, StoreError> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT consent FROM consents WHERE client_id = ? AND subject = ? AND tenant = ?
             AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
        )
        .bind(client_id)
        .bind(subject)
        .bind(tenant.unwrap_or(""))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        json.map(|j| from_json(&j)).transpose()
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (id, client_id, subject, tenant, consent, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET consent = excluded.consent, expires_at = excluded.expires_at",
        )
        .bind(&consent.id)
        .bind(&consent.client_id)
        .bind(&consent.subject)
        .bind(consent.tenant.as_deref().unwrap_or(""))
        .bind(to_json(consent)?)
        .bind(consent.created_at)
        .bind(consent.expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn consent(&self, id: &str, now: i64) -> Result<Option<Consent>, StoreError> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT consent FROM consents WHERE id = ? AND revoked_at IS NULL AND expires_at > ?")
                .bind(id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        json.map(|j| from_json(&j)).transpose()
    }

    async fn consents_of(&self, subject: &str, now: i64) -> Result<Vec<Consent>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT consent FROM consents WHERE subject = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC",
        )
        .bind(subject)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(|j| from_json(j)).collect()
    }

    async fn revoke_consent(&self, id: &str, subject: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let revoked =
            sqlx::query("UPDATE consents SET revoked_at = ? WHERE id = ? AND subject = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .bind(subject)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
        sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE consent_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(revoked > 0)
    }

    async fn put_refresh_token(&self, digest: &[u8; 32], token: &RefreshToken) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO refresh_families (family_id, consent_id, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (family_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(&token.family_id)
        .bind(&token.consent_id)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("INSERT INTO refresh_tokens (digest, family_id, token, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&digest[..])
            .bind(&token.family_id)
            .bind(to_json(token)?)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        new_digest: &[u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Spend first: the UPDATE serializes concurrent rotations of the same token.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used = 1 WHERE digest = ? AND used = 0 AND expires_at > ?
             AND family_id IN (
                 SELECT f.family_id FROM refresh_families f JOIN consents c ON c.id = f.consent_id
                 WHERE f.revoked = 0 AND c.revoked_at IS NULL AND c.expires_at > ?2)
             RETURNING token",
        )
        .bind(&old[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let outcome = match spent {
            Some(row) => {
                let json: String = row.try_get(0).map_err(corrupt)?;
                let old_token: RefreshToken = from_json(&json)?;
                let mut next = old_token.clone();
                next.expires_at = new_expires_at;
                sqlx::query("INSERT INTO refresh_tokens (digest, family_id, token, expires_at) VALUES (?, ?, ?, ?)")
                    .bind(&new_digest[..])
                    .bind(&next.family_id)
                    .bind(to_json(&next)?)
                    .bind(next.expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("UPDATE refresh_families SET expires_at = MAX(expires_at, ?) WHERE family_id = ?")
                    .bind(new_expires_at)
                    .bind(&next.family_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                Rotation::Rotated(old_token)
            }
            None => {
                let row = sqlx::query("SELECT used, family_id FROM refresh_tokens WHERE digest = ?")
                    .bind(&old[..])
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                match row {
                    Some(row) if row.try_get::<i64, _>(0).map_err(corrupt)? == 1 => {
                        let family_id: String = row.try_get(1).map_err(corrupt)?;
                        sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE family_id = ?")
                            .bind(&family_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(unavailable)?;
                        Rotation::Reused { family_id }
                    }
                    _ => Rotation::Invalid,
                }
            }
        };
        tx.commit().await.map_err(unavailable)?;
        Ok(outcome)
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE family_id = ?")
            .bind(family_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn put_session(&self, digest: &[u8; 32], session: &Session, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (digest, subject, auth_time, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&digest[..])
            .bind(&session.subject)
            .bind(session.auth_time)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn session(&self, digest: &[u8; 32], now: i64) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query("SELECT subject, auth_time FROM sessions WHERE digest = ? AND expires_at > ?")
            .bind(&digest[..])
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| Ok(Session { subject: r.try_get(0).map_err(corrupt)?, auth_time: r.try_get(1).map_err(corrupt)? }))
            .transpose()
    }

    async fn delete_session(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE digest = ?")
            .bind(&digest[..])
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn put_pending(&self, id: &str, request: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO pending_requests (id, request, expires_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(request)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn pending(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT request FROM pending_requests WHERE id = ? AND expires_at > ?")
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn delete_pending(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_requests WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        let mut purged = 0;
        for sql in [
            "DELETE FROM authorization_codes WHERE rowid IN (SELECT rowid FROM authorization_codes WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rowid FROM refresh_tokens WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM refresh_families WHERE rowid IN (SELECT rowid FROM refresh_families WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM consents WHERE rowid IN (SELECT rowid FROM consents WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM pending_requests WHERE rowid IN (SELECT rowid FROM pending_requests WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM opaque_tokens WHERE rowid IN (SELECT rowid FROM opaque_tokens WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations WHERE expires_at <= ? LIMIT ?)",
            "DELETE FROM client_secrets WHERE rowid IN (SELECT rowid FROM client_secrets WHERE expires_at <= ? LIMIT ?)",
        ] {
            purged +=
                sqlx::query(sql).bind(now).bind(batch).execute(&self.pool).await.map_err(unavailable)?.rows_affected();
        }
        Ok(purged)
    }
}

/// A random RFC 4122 version-4 UUID, the shape of Kubernetes UIDs.
pub(super) fn new_uid() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut b).expect("system CSPRNG available");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn state_survives_reopen_and_purge_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let key = ObjectKey { namespace: "default".into(), name: "app".into() };
        let uid = {
            let store = SqliteStore::open(&path).await.unwrap();
            let uid = store.object_uid("InboundApp", &key).await.unwrap();
            assert_eq!(store.object_uid("InboundApp", &key).await.unwrap(), uid);
            store.set_client_secret(&uid, &SecretHash([7; 32]), 1).await.unwrap();
            store.revoke("j1", 100).await.unwrap();
            store.revoke("j1", 100).await.unwrap();
            store.revoke("j2", 300).await.unwrap();
            uid
        };
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.object_uid("InboundApp", &key).await.unwrap(), uid);
        assert_eq!(store.client_secret_hashes(&uid, 2).await.unwrap(), vec![SecretHash([7; 32])]);
        let revs = store.revocations_since(0).await.unwrap();
        assert_eq!(revs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["j1", "j2"]);
        assert_eq!(store.purge_expired(200, 1000).await.unwrap(), 1);
        assert_eq!(store.count_rows("revocations").await.unwrap(), 1);
    }
}
