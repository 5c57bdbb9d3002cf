//! The one SQL layer behind both backends.
//!
//! [`SqlStore`] implements [`Store`] once, generically over a [`Dialect`]: every query that
//! SQLite and PostgreSQL accept alike is written here, once, with `$N` parameters (sqlx's
//! SQLite driver binds `$N` by number, as PostgreSQL does). What truly differs is answered by
//! the dialect (`dialect.rs`): the database's clock, the insertion-order and row-address
//! columns, the storage-size query, how a transaction excludes concurrent writers (SQLite's
//! `BEGIN IMMEDIATE` vs PostgreSQL's advisory locks), and the two refresh-token writes, which
//! PostgreSQL does in one statement each (a data-modifying `WITH`, which SQLite has not) and
//! SQLite in a transaction. Where a portable spelling exists it is used instead of a seam:
//! `CASE WHEN` for the smaller or larger of two values (SQLite's scalar `MIN`/`MAX`,
//! PostgreSQL's `LEAST`/`GREATEST`).
//!
//! Generic over `sqlx::Database` rather than `sqlx::Any` or a macro: the queries are type-
//! checked and formatted as ordinary code, each backend keeps its own driver, pool options and
//! native types (no `Any` value conversion on the token hot path), and the bounds below name
//! exactly what the queries need from a driver.
//!
//! Migrations are `migrations/<backend>/NNN_name.sql`, numbered alike on both backends,
//! applied in order under `schema_migrations` (the bookkeeping every existing database has).

use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};

use super::{
    AuthorizationCode, ClientIdClaim, CodeRedemption, Consent, DecoupledDecision, DecoupledPoll, DecoupledRequest,
    PoolStats, RefreshToken, RegisteredClient, Registration, RegistrationLimit, Revocation, Rotation, Session, Store,
    StoreError, UserRecord,
};
use crate::api::ObjectKey;
use crate::secrets::SecretHash;
use crate::tokens::AccessTokenClaims;

/// One schema version: `migrations/<backend>/NNN_name.sql`, applied once, in order.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// What a transaction from [`Dialect::begin_exclusive`] keeps to one writer at a time.
pub enum Exclusive<'a> {
    /// Applying migrations (replicas may start together).
    Migrations,
    /// Registering a client: the limit checks and the insert see one state.
    Registrations,
    /// Recording the first secret of this client id: `NOT EXISTS` alone races.
    FirstClientSecret(&'a str),
}

/// Where the backends' SQL truly differs. Everything else is in [`SqlStore`], once.
pub trait Dialect: Send + Sync + 'static {
    type Database: Database;

    /// Schema versions, numbered as the other backend's.
    const MIGRATIONS: &'static [Migration];
    /// Run before the versions are checked: creates `schema_migrations` if missing and
    /// brings what an older release recorded in it to the current numbering.
    const BOOKKEEPING: &'static [&'static str];
    /// The database's clock in Unix seconds, as an SQL expression.
    const EPOCH_NOW: &'static str;
    /// The column of `client_secrets` that orders rows created within the same second.
    const INSERTION_ORDER: &'static str;
    /// The column addressing one row of any table (for bounded deletes).
    const ROW_ID: &'static str;
    /// What a bounded delete's row selection ends with so that replicas purging at once
    /// skip each other's rows instead of deadlocking on them.
    const SKIP_LOCKED: &'static str;
    /// The `email` attribute of a `users` row (a JSON text column), as an SQL expression.
    const USER_EMAIL: &'static str;
    /// The `subject` of the refresh token `t` (its JSON `token` column), as an SQL expression.
    const REFRESH_TOKEN_SUBJECT: &'static str;
    /// Bytes on disk of table `$1` with its indexes (nullable).
    const TABLE_BYTES: &'static str;

    /// Begins a transaction that concurrent transactions doing `what` wait for.
    fn begin_exclusive(
        pool: &Pool<Self::Database>,
        what: Exclusive<'_>,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Database>, sqlx::Error>> + Send;

    /// Rows a statement changed: sqlx has this on each driver's result, not on a trait.
    fn rows_affected(result: &<Self::Database as Database>::QueryResult) -> u64;

    /// [`Store::put_refresh_token`]: the family row (created or extended) and the token.
    fn put_refresh_token(
        pool: &Pool<Self::Database>,
        digest: &[u8; 32],
        token: &RefreshToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`Store::rotate_refresh_token`].
    fn rotate_refresh_token(
        pool: &Pool<Self::Database>,
        old: &[u8; 32],
        new_digest: &[u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;
}

/// The store over one backend's pool; `SqliteStore` and `PostgresStore` name the two.
pub struct SqlStore<D: Dialect> {
    pub(super) pool: Pool<D::Database>,
}

/// A value the queries bind and read back.
pub trait Value<DB: Database>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> {}
impl<DB: Database, T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>> Value<DB> for T {}

pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(corrupt)
}

fn secret_hash(bytes: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_slice(bytes).ok_or_else(|| StoreError::Corrupt("secret hash length".into()))
}

/// The columns of a `users` row (aliased `u`) that [`user_from_row`] reads, in its order.
macro_rules! user_columns {
    () => {
        "u.subject, u.source, u.username, u.tenants, u.tenant_roles, u.roles, u.attributes, u.first_login_at, u.last_login_at"
    };
}

/// The refresh token `t` with its family `f` and consent `c`, and the conditions under
/// which it can be spent ([`Store::live_refresh_token`]): unused, unexpired, the family
/// live, the consent (and the tenant-wide one it rests on) active.
macro_rules! refresh_token_joins {
    () => {
        "FROM refresh_tokens t
         JOIN refresh_families f ON f.family_id = t.family_id
         JOIN consents c ON c.id = f.consent_id"
    };
}
macro_rules! live_refresh_token_conditions {
    () => {
        "WHERE t.digest = $1 AND t.used = 0 AND t.expires_at > $2
           AND f.revoked = 0 AND c.revoked_at IS NULL AND c.expires_at > $2
           AND (f.tenant_consent_id IS NULL OR EXISTS (
               SELECT 1 FROM consents tc WHERE tc.id = f.tenant_consent_id AND tc.revoked_at IS NULL AND tc.expires_at > $2))"
    };
}

/// The user whose [`user_columns`] start at column `first`.
fn user_from_row<R: Row>(r: &R, first: usize) -> Result<UserRecord, StoreError>
where
    usize: ColumnIndex<R>,
    String: Value<R::Database>,
    i64: Value<R::Database>,
{
    let json = |i: usize| r.try_get::<String, _>(first + i).map_err(corrupt);
    Ok(UserRecord {
        subject: r.try_get(first).map_err(corrupt)?,
        source: r.try_get(first + 1).map_err(corrupt)?,
        username: r.try_get(first + 2).map_err(corrupt)?,
        tenants: from_json(&json(3)?)?,
        tenant_roles: from_json(&json(4)?)?,
        roles: from_json(&json(5)?)?,
        attributes: from_json(&json(6)?)?,
        first_login_at: r.try_get(first + 7).map_err(corrupt)?,
        last_login_at: r.try_get(first + 8).map_err(corrupt)?,
    })
}

fn registered_from_row<R: Row>(row: &R) -> Result<RegisteredClient, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    String: Value<R::Database>,
    i64: Value<R::Database>,
    Vec<u8>: Value<R::Database>,
{
    let hash = |column: &str| -> Result<Option<SecretHash>, StoreError> {
        let bytes: Option<Vec<u8>> = row.try_get(column).map_err(corrupt)?;
        bytes.map(|b| secret_hash(&b)).transpose()
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
        tags: from_json(&row.try_get::<String, _>("tags").map_err(corrupt)?)?,
    })
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Database as Database>::Connection: Executor<'c, Database = D::Database>,
    <D::Database as Database>::Arguments: IntoArguments<D::Database>,
    usize: ColumnIndex<<D::Database as Database>::Row>,
    i64: Value<D::Database>,
{
    /// Applies the pending versions of [`Dialect::MIGRATIONS`] in one transaction, so a
    /// failed upgrade leaves the database at its previous version.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = D::begin_exclusive(&self.pool, Exclusive::Migrations).await.map_err(unavailable)?;
        for statement in D::BOOKKEEPING {
            sqlx::query(*statement).execute(&mut *tx).await.map_err(unavailable)?;
        }
        let record = format!("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, {})", D::EPOCH_NOW);
        for migration in D::MIGRATIONS {
            let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            if applied.is_some() {
                continue;
            }
            sqlx::raw_sql(migration.sql).execute(&mut *tx).await.map_err(unavailable)?;
            sqlx::query(AssertSqlSafe(record.clone()))
                .bind(migration.version)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut <D::Database as Database>::Connection: Executor<'c, Database = D::Database>,
    <D::Database as Database>::Arguments: IntoArguments<D::Database>,
    usize: ColumnIndex<<D::Database as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<D::Database as Database>::Row> + Encode<'a, D::Database> + Type<D::Database>,
    for<'a> &'a [u8]: Encode<'a, D::Database> + Type<D::Database>,
    for<'a> Option<&'a str>: Encode<'a, D::Database>,
    Option<Vec<u8>>: for<'a> Encode<'a, D::Database>,
    String: Value<D::Database>,
    i64: Value<D::Database>,
    Vec<u8>: Value<D::Database>,
{
    async fn storage_bytes(&self, tables: &[&str]) -> Result<i64, StoreError> {
        let mut total = 0;
        for table in tables {
            if !super::TABLES.contains(table) {
                return Err(StoreError::Corrupt(format!("no table {table}")));
            }
            let bytes: Option<i64> =
                sqlx::query_scalar(D::TABLE_BYTES).bind(*table).fetch_one(&self.pool).await.map_err(unavailable)?;
            total += bytes.unwrap_or(0);
        }
        Ok(total)
    }

    async fn count_rows(&self, table: &str) -> Result<i64, StoreError> {
        if !super::TABLES.contains(&table) {
            return Err(StoreError::Corrupt(format!("no table {table}")));
        }
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }

    fn pool_stats(&self) -> PoolStats {
        // `size` counts open connections, idle or not; the two counters are read apart, so
        // clamp in case a connection was closed in between.
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX).min(size);
        PoolStats { in_use: size - idle, idle, max: self.pool.options().get_max_connections() }
    }

    async fn object_uid(&self, kind: &str, key: &ObjectKey) -> Result<String, StoreError> {
        let candidate = new_uid();
        // Insert-or-keep in one statement, so two concurrent first loads agree on one UID.
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO objects (kind, namespace, name, uid, created_at) VALUES ($1, $2, $3, $4, {})
             ON CONFLICT (kind, namespace, name) DO NOTHING",
            D::EPOCH_NOW
        )))
        .bind(kind)
        .bind(key.namespace.as_str())
        .bind(key.name.as_str())
        .bind(candidate.as_str())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        sqlx::query_scalar("SELECT uid FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3")
            .bind(kind)
            .bind(key.namespace.as_str())
            .bind(key.name.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn claim_client_id(&self, client_id: &str, app: &ObjectKey, now: i64) -> Result<ClientIdClaim, StoreError> {
        // Claims share the `objects` table: (kind, namespace, name) is the app, `uid` the id,
        // unique across the table. Ids never look like UIDs (validation refuses UUIDs), so a
        // claim never meets a folder-mode UID. Insert-or-keep in one statement: of two racing
        // claims, one wins.
        sqlx::query(
            "INSERT INTO objects (kind, namespace, name, uid, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(CLIENT_ID_CLAIM)
        .bind(app.namespace.as_str())
        .bind(app.name.as_str())
        .bind(client_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if let Some(holder) = self.client_id_holder(client_id).await? {
            return Ok(if &holder == app { ClientIdClaim::Held } else { ClientIdClaim::TakenBy(holder) });
        }
        let held: Option<String> =
            sqlx::query_scalar("SELECT uid FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3")
                .bind(CLIENT_ID_CLAIM)
                .bind(app.namespace.as_str())
                .bind(app.name.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        match held {
            Some(other) => Ok(ClientIdClaim::AppHolds(other)),
            // The id is some other object's UID (never, given validation): taken.
            None => Ok(ClientIdClaim::TakenBy(ObjectKey { namespace: String::new(), name: String::new() })),
        }
    }

    async fn client_id_holder(&self, client_id: &str) -> Result<Option<ObjectKey>, StoreError> {
        let row = sqlx::query("SELECT namespace, name FROM objects WHERE kind = $1 AND uid = $2")
            .bind(CLIENT_ID_CLAIM)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ObjectKey {
            namespace: row.try_get("namespace").map_err(corrupt)?,
            name: row.try_get("name").map_err(corrupt)?,
        }))
    }

    async fn release_client_id(&self, app: &ObjectKey) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("DELETE FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3 RETURNING uid")
            .bind(CLIENT_ID_CLAIM)
            .bind(app.namespace.as_str())
            .bind(app.name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn client_secret_hashes(&self, client_id: &str, now: i64) -> Result<Vec<SecretHash>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT secret_hash FROM client_secrets WHERE client_id = $1 AND (expires_at IS NULL OR expires_at > $2)
             ORDER BY created_at DESC, {} DESC",
            D::INSERTION_ORDER
        )))
        .bind(client_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get(0).map_err(corrupt)?;
                secret_hash(&bytes)
            })
            .collect()
    }

    async fn add_first_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> Result<bool, StoreError> {
        let mut tx =
            D::begin_exclusive(&self.pool, Exclusive::FirstClientSecret(client_id)).await.map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO client_secrets (client_id, secret_hash, created_at)
             SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM client_secrets WHERE client_id = $1)",
        )
        .bind(client_id)
        .bind(&hash.0[..])
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(D::rows_affected(&inserted) == 1)
    }

    async fn set_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("DELETE FROM client_secrets WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT INTO client_secrets (client_id, secret_hash, created_at) VALUES ($1, $2, $3)")
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
        // The smaller of the current expiry (none: unbounded) and the overlap's end.
        sqlx::query(
            "UPDATE client_secrets SET expires_at = CASE WHEN expires_at < $2 THEN expires_at ELSE $2 END
             WHERE client_id = $1 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(client_id)
        .bind(previous_expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("INSERT INTO client_secrets (client_id, secret_hash, created_at) VALUES ($1, $2, $3)")
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
             WHERE consent_id IN (SELECT id FROM consents WHERE client_id = $1)",
        )
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let revoked = sqlx::query("UPDATE consents SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("DELETE FROM client_secrets WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(D::rows_affected(&revoked))
    }

    async fn register_client(
        &self,
        client: &RegisteredClient,
        limits: &crate::api::RegistrationLimits,
        now: i64,
    ) -> Result<Registration, StoreError> {
        let mut tx = D::begin_exclusive(&self.pool, Exclusive::Registrations).await.map_err(unavailable)?;
        if let Some(key) = &client.dedupe_key {
            let row = sqlx::query("SELECT client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at, tags FROM registered_clients WHERE dedupe_key = $1")
                .bind(key.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            if let Some(row) = row {
                let mut existing = registered_from_row(&row)?;
                // A shared client has no manager: the first registrant's RFC 7592 token would
                // otherwise control what every later registrant uses (rename it, change its
                // redirect URIs, delete everyone's consents).
                if existing.registration_token_hash.take().is_some() {
                    sqlx::query("UPDATE registered_clients SET registration_token_hash = NULL WHERE client_id = $1")
                        .bind(existing.client_id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                    tx.commit().await.map_err(unavailable)?;
                }
                return Ok(Registration::Existing(Box::new(existing)));
            }
        }
        // Limits count registrations only: metadata-document clients (ids that are URLs,
        // `protocol::client_id`; registered ids are UUIDs) are recorded here too, bounded by
        // the policy's allowed domains instead.
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM registered_clients WHERE policy_namespace = $1 AND policy_name = $2 AND client_id NOT LIKE 'http%'",
        )
        .bind(client.policy.namespace.as_str())
        .bind(client.policy.name.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if total >= limits.max_clients as i64 {
            return Ok(Registration::Limited(RegistrationLimit::MaxClients));
        }
        let hour_ago = now - 3600;
        let from_source: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM registered_clients WHERE source = $1 AND created_at > $2 AND client_id NOT LIKE 'http%'")
                .bind(client.source.as_str())
                .bind(hour_ago)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        if from_source >= limits.per_source_per_hour as i64 {
            return Ok(Registration::Limited(RegistrationLimit::PerSource));
        }
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM registered_clients WHERE created_at > $1 AND client_id NOT LIKE 'http%'",
        )
        .bind(hour_ago)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if recent >= limits.total_per_hour as i64 {
            return Ok(Registration::Limited(RegistrationLimit::Total));
        }
        sqlx::query(
            "INSERT INTO registered_clients (client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(client.client_id.as_str())
        .bind(client.policy.namespace.as_str())
        .bind(client.policy.name.as_str())
        .bind(to_json(&client.metadata)?)
        .bind(client.secret_hash.as_ref().map(|h| h.0.to_vec()))
        .bind(client.registration_token_hash.as_ref().map(|h| h.0.to_vec()))
        .bind(client.dedupe_key.as_deref())
        .bind(client.source.as_str())
        .bind(client.created_at)
        .bind(client.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Registration::Created)
    }

    async fn registered_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let row = sqlx::query("SELECT client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at, tags FROM registered_clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(registered_from_row).transpose()
    }

    async fn record_client(&self, client: &RegisteredClient, now: i64) -> Result<bool, StoreError> {
        let recorded = sqlx::query(
            "INSERT INTO registered_clients (client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at)
             SELECT $1, $2, $3, $4, NULL, NULL, NULL, $5, $6, $6
             WHERE NOT EXISTS (SELECT 1 FROM client_tombstones WHERE client_id = $1 AND expires_at > $7)
             ON CONFLICT (client_id) DO UPDATE SET metadata = excluded.metadata,
                 policy_namespace = excluded.policy_namespace, policy_name = excluded.policy_name,
                 last_used_at = excluded.last_used_at",
        )
        .bind(client.client_id.as_str())
        .bind(client.policy.namespace.as_str())
        .bind(client.policy.name.as_str())
        .bind(to_json(&client.metadata)?)
        .bind(client.source.as_str())
        .bind(client.created_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(D::rows_affected(&recorded) > 0)
    }

    async fn update_registered_client(
        &self,
        client_id: &str,
        metadata: &serde_json::Value,
        dedupe_key: Option<&str>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE registered_clients SET metadata = $2, dedupe_key = $3 WHERE client_id = $1")
            .bind(client_id)
            .bind(to_json(metadata)?)
            .bind(dedupe_key)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(D::rows_affected(&updated) == 1)
    }

    async fn delete_registered_client(&self, client_id: &str, now: i64) -> Result<bool, StoreError> {
        let deleted = self.remove_registered_client(client_id, now).await?;
        if deleted && crate::protocol::client_id::is_metadata_document_url(client_id) {
            sqlx::query(
                "INSERT INTO client_tombstones (client_id, deleted_at, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (client_id) DO UPDATE SET deleted_at = excluded.deleted_at, expires_at = excluded.expires_at",
            )
            .bind(client_id)
            .bind(now)
            .bind(now + super::TOMBSTONE_LIFETIME)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        }
        Ok(deleted)
    }

    async fn put_decoupled_request(
        &self,
        digest: &[u8; 32],
        code: &str,
        authorization: &DecoupledRequest,
        interval: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO decoupled_requests (digest, code, request, decision, poll_interval, next_poll_at, expires_at)
             VALUES ($1, $2, $3, NULL, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&digest[..])
        .bind(code)
        .bind(to_json(authorization)?)
        .bind(interval)
        .bind(now)
        .bind(authorization.expires_at)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(D::rows_affected(&inserted) == 1)
    }

    async fn decoupled_request(&self, code: &str, now: i64) -> Result<Option<DecoupledRequest>, StoreError> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT request FROM decoupled_requests WHERE code = $1 AND decision IS NULL AND expires_at > $2",
        )
        .bind(code)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        json.map(|j| from_json(&j)).transpose()
    }

    async fn decide_decoupled_request(
        &self,
        code: &str,
        decision: &DecoupledDecision,
        now: i64,
    ) -> Result<bool, StoreError> {
        let decided = sqlx::query(
            "UPDATE decoupled_requests SET decision = $2
             WHERE code = $1 AND decision IS NULL AND expires_at > $3",
        )
        .bind(code)
        .bind(to_json(decision)?)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(D::rows_affected(&decided) == 1)
    }

    async fn poll_decoupled_request(&self, digest: &[u8; 32], now: i64) -> Result<DecoupledPoll, StoreError> {
        // Decided: spent by this poll (one DELETE wins among concurrent polls).
        let decision: Option<String> = sqlx::query_scalar(
            "DELETE FROM decoupled_requests WHERE digest = $1 AND decision IS NOT NULL AND expires_at > $2
             RETURNING decision",
        )
        .bind(&digest[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if let Some(json) = decision {
            return Ok(DecoupledPoll::Decided(from_json(&json)?));
        }
        // Undecided and polled in time: the next poll may come one interval from now.
        let in_time: Option<i64> = sqlx::query_scalar(
            "UPDATE decoupled_requests SET next_poll_at = $2 + poll_interval
             WHERE digest = $1 AND decision IS NULL AND expires_at > $2 AND next_poll_at <= $2
             RETURNING poll_interval",
        )
        .bind(&digest[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if in_time.is_some() {
            return Ok(DecoupledPoll::Pending);
        }
        // Too early: RFC 8628 §3.5, the interval grows by 5 seconds for this and every later
        // request.
        let slowed: Option<i64> = sqlx::query_scalar(
            "UPDATE decoupled_requests SET poll_interval = poll_interval + 5, next_poll_at = $2 + poll_interval + 5
             WHERE digest = $1 AND decision IS NULL AND expires_at > $2
             RETURNING poll_interval",
        )
        .bind(&digest[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if let Some(interval) = slowed {
            return Ok(DecoupledPoll::SlowDown { interval });
        }
        // Decided between the first statement and now: still there for the next poll.
        let live: Option<i64> =
            sqlx::query_scalar("SELECT poll_interval FROM decoupled_requests WHERE digest = $1 AND expires_at > $2")
                .bind(&digest[..])
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(if live.is_some() { DecoupledPoll::Pending } else { DecoupledPoll::Expired })
    }

    async fn set_registered_client_tags(&self, client_id: &str, tags: &[String]) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE registered_clients SET tags = $2 WHERE client_id = $1")
            .bind(client_id)
            .bind(to_json(&tags)?)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(D::rows_affected(&updated) == 1)
    }

    async fn registered_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows = sqlx::query("SELECT client_id, policy_namespace, policy_name, metadata, secret_hash, registration_token_hash, dedupe_key, source, created_at, last_used_at, tags FROM registered_clients ORDER BY created_at, client_id")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(registered_from_row).collect()
    }

    async fn touch_registered_client(&self, client_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE registered_clients SET last_used_at = $2 WHERE client_id = $1 AND last_used_at < $3")
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
             WHERE policy_namespace = $1 AND policy_name = $2 AND last_used_at < $3
             ORDER BY last_used_at LIMIT $4",
        )
        .bind(policy.namespace.as_str())
        .bind(policy.name.as_str())
        .bind(unused_since)
        .bind(i64::from(batch))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        // Reaped, not deleted by anyone: a metadata-document client may come back.
        for id in &ids {
            self.remove_registered_client(id, unused_since).await?;
        }
        Ok(ids)
    }

    async fn put_opaque_token(&self, digest: &[u8; 32], claims: &AccessTokenClaims) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO opaque_tokens (digest, jti, client_id, claims, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&digest[..])
        .bind(claims.jti.as_str())
        .bind(claims.client_id.as_str())
        .bind(to_json(claims)?)
        .bind(claims.exp)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn opaque_token(&self, digest: &[u8; 32]) -> Result<Option<AccessTokenClaims>, StoreError> {
        let json: Option<String> = sqlx::query_scalar("SELECT claims FROM opaque_tokens WHERE digest = $1")
            .bind(&digest[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        json.map(|j| from_json(&j)).transpose()
    }

    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO revocations (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn revocations_since(&self, seq: i64) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query("SELECT seq, jti, expires_at FROM revocations WHERE seq > $1 ORDER BY seq LIMIT 10000")
            .bind(seq)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get(0).map_err(corrupt)?, r.try_get(1).map_err(corrupt)?, r.try_get(2).map_err(corrupt)?))
            })
            .collect()
    }

    async fn put_code(&self, digest: &[u8; 32], code: &AuthorizationCode) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO authorization_codes (digest, code, expires_at) VALUES ($1, $2, $3)")
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
            "UPDATE authorization_codes SET used = 1 WHERE digest = $1 AND used = 0 AND expires_at > $2 RETURNING code",
        )
        .bind(&digest[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if let Some(row) = spent {
            let json: String = row.try_get(0).map_err(corrupt)?;
            return Ok(CodeRedemption::Fresh(Box::new(from_json(&json)?)));
        }
        let row =
            sqlx::query("SELECT used, family_id, access_jti, access_exp FROM authorization_codes WHERE digest = $1")
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
        // Keep the row as long as the access token lives, so a late replay still revokes it.
        sqlx::query(
            "UPDATE authorization_codes SET family_id = $1, access_jti = $2, access_exp = $3,
             expires_at = CASE WHEN expires_at > $3 THEN expires_at ELSE $3 END WHERE digest = $4",
        )
        .bind(family_id)
        .bind(access_token.0)
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
            "SELECT consent FROM consents WHERE client_id = $1 AND subject = $2 AND tenant = $3
             AND revoked_at IS NULL AND expires_at > $4 ORDER BY created_at DESC LIMIT 1",
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
            "INSERT INTO consents (id, client_id, subject, tenant, consent, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET consent = excluded.consent, expires_at = excluded.expires_at",
        )
        .bind(consent.id.as_str())
        .bind(consent.client_id.as_str())
        .bind(consent.subject.as_str())
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
            sqlx::query_scalar("SELECT consent FROM consents WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2")
                .bind(id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        json.map(|j| from_json(&j)).transpose()
    }

    async fn consents_of(&self, subject: &str, now: i64) -> Result<Vec<Consent>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT consent FROM consents WHERE subject = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC",
        )
        .bind(subject)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(|j| from_json(j)).collect()
    }

    async fn active_consents(&self, now: i64) -> Result<Vec<Consent>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT consent FROM consents WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at DESC",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(|j| from_json(j)).collect()
    }

    async fn active_consent_counts(&self, now: i64) -> Result<std::collections::HashMap<String, u32>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, COUNT(*) AS n FROM consents WHERE revoked_at IS NULL AND expires_at > $1 GROUP BY client_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n").map_err(corrupt)?;
                Ok((row.try_get("client_id").map_err(corrupt)?, u32::try_from(n).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    async fn revoke_consent(&self, id: &str, subject: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let revoked =
            sqlx::query("UPDATE consents SET revoked_at = $1 WHERE id = $2 AND subject = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .bind(subject)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        // Only the user's own consent takes its refresh families with it: the consent id
        // alone is not proof of ownership.
        let revoked = D::rows_affected(&revoked) > 0;
        if revoked {
            // A tenant-wide consent also ends the members' grants that rest on it.
            sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE consent_id = $1 OR tenant_consent_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(revoked)
    }

    async fn put_refresh_token(&self, digest: &[u8; 32], token: &RefreshToken) -> Result<(), StoreError> {
        D::put_refresh_token(&self.pool, digest, token).await
    }

    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        new_digest: &[u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        D::rotate_refresh_token(&self.pool, old, new_digest, new_expires_at, now).await
    }

    async fn live_refresh_token(&self, digest: &[u8; 32], now: i64) -> Result<Option<RefreshToken>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT t.token ", refresh_token_joins!(), " ", live_refresh_token_conditions!()))
                .bind(&digest[..])
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.map(|r| from_json(&r.try_get::<String, _>(0).map_err(corrupt)?)).transpose()
    }

    async fn live_refresh_token_with_user(
        &self,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Option<(RefreshToken, Option<UserRecord>)>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            concat!(
                "SELECT t.token, ",
                user_columns!(),
                " ",
                refresh_token_joins!(),
                " LEFT JOIN users u ON u.subject = {} ",
                live_refresh_token_conditions!()
            ),
            D::REFRESH_TOKEN_SUBJECT
        )))
        .bind(&digest[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let token: RefreshToken = from_json(&row.try_get::<String, _>(0).map_err(corrupt)?)?;
        // The LEFT JOIN found no user: every column of theirs is NULL.
        let user = match row.try_get::<Option<String>, _>(1).map_err(corrupt)? {
            Some(_) => Some(user_from_row(&row, 1)?),
            None => None,
        };
        Ok(Some((token, user)))
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE family_id = $1")
            .bind(family_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn record_login(&self, user: &UserRecord, now: i64) -> Result<UserRecord, StoreError> {
        let row = sqlx::query(
            "INSERT INTO users (subject, source, username, tenants, tenant_roles, roles, attributes, first_login_at, last_login_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (subject) DO UPDATE SET source = excluded.source, username = excluded.username,
               tenants = excluded.tenants, tenant_roles = excluded.tenant_roles, roles = excluded.roles,
               attributes = excluded.attributes, last_login_at = excluded.last_login_at
             RETURNING first_login_at",
        )
        .bind(user.subject.as_str())
        .bind(user.source.as_str())
        .bind(user.username.as_str())
        .bind(to_json(&user.tenants)?)
        .bind(to_json(&user.tenant_roles)?)
        .bind(to_json(&user.roles)?)
        .bind(to_json(&user.attributes)?)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        let first_login_at: i64 = row.try_get(0).map_err(corrupt)?;
        Ok(UserRecord { first_login_at, last_login_at: now, ..user.clone() })
    }

    async fn user(&self, subject: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.subject = $1"))
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(|r| user_from_row(r, 0)).transpose()
    }

    async fn users_by_login(&self, login: &str) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM users u WHERE u.username = $1 OR {} = $1 ORDER BY u.last_login_at DESC LIMIT 2",
            user_columns!(),
            D::USER_EMAIL
        )))
        .bind(login)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(|r| user_from_row(r, 0)).collect()
    }

    async fn set_backchannel_user_code(&self, subject: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE users SET backchannel_user_code = $2 WHERE subject = $1")
            .bind(subject)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(D::rows_affected(&updated) == 1)
    }

    async fn backchannel_user_code(&self, subject: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT backchannel_user_code FROM users WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>(0)).transpose().map_err(corrupt)?.flatten())
    }

    async fn put_session(&self, digest: &[u8; 32], session: &Session, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (digest, subject, auth_time, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&digest[..])
            .bind(session.subject.as_str())
            .bind(session.auth_time)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn session(&self, digest: &[u8; 32], now: i64) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query("SELECT subject, auth_time FROM sessions WHERE digest = $1 AND expires_at > $2")
            .bind(&digest[..])
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| Ok(Session { subject: r.try_get(0).map_err(corrupt)?, auth_time: r.try_get(1).map_err(corrupt)? }))
            .transpose()
    }

    async fn delete_session(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(&digest[..])
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn put_pending(&self, id: &str, request: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO pending_requests (id, request, expires_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(request)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn pending(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT request FROM pending_requests WHERE id = $1 AND expires_at > $2")
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn delete_pending(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_requests WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn take_pending(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("DELETE FROM pending_requests WHERE id = $1 AND expires_at > $2 RETURNING request")
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn use_assertion_jti(&self, digest: &[u8; 32], expires_at: i64, now: i64) -> Result<bool, StoreError> {
        // One statement: of concurrent uses exactly one inserts (or takes over an expired
        // row); the others match the conflict and change nothing.
        let result = sqlx::query(
            "INSERT INTO assertion_jtis (digest, expires_at) VALUES ($1, $2)
             ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at
             WHERE assertion_jtis.expires_at <= $3",
        )
        .bind(&digest[..])
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(D::rows_affected(&result) == 1)
    }

    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        let row = D::ROW_ID;
        let mut purged = 0;
        for (table, key) in [
            ("authorization_codes", row),
            ("refresh_tokens", row),
            ("refresh_families", row),
            ("consents", row),
            ("sessions", row),
            ("pending_requests", row),
            ("opaque_tokens", row),
            ("revocations", "seq"),
            ("client_secrets", row),
            ("client_tombstones", row),
            ("assertion_jtis", row),
            ("decoupled_requests", row),
        ] {
            let result = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE expires_at <= $1 LIMIT $2{})",
                D::SKIP_LOCKED
            )))
            .bind(now)
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            purged += D::rows_affected(&result);
        }
        Ok(purged)
    }
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Database as Database>::Connection: Executor<'c, Database = D::Database>,
    <D::Database as Database>::Arguments: IntoArguments<D::Database>,
    usize: ColumnIndex<<D::Database as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<D::Database as Database>::Row> + Encode<'a, D::Database> + Type<D::Database>,
    for<'a> &'a [u8]: Encode<'a, D::Database> + Type<D::Database>,
    for<'a> Option<&'a str>: Encode<'a, D::Database>,
    Option<Vec<u8>>: for<'a> Encode<'a, D::Database>,
    String: Value<D::Database>,
    i64: Value<D::Database>,
    Vec<u8>: Value<D::Database>,
{
    /// Deletes a registered client with its consents, refresh tokens and secrets.
    async fn remove_registered_client(&self, client_id: &str, now: i64) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM registered_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        self.forget_client(client_id, now).await?;
        Ok(D::rows_affected(&deleted) == 1)
    }
}

/// A random RFC 4122 version-4 UUID, the shape of Kubernetes UIDs.
/// The `objects.kind` of client id claims.
const CLIENT_ID_CLAIM: &str = "ClientIdClaim";

pub(super) fn new_uid() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut b).expect("system CSPRNG available");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
