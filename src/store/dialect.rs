//! Where SQLite and PostgreSQL differ: the two implementations of [`Dialect`], side by side,
//! and how each backend connects. Every other query is in `sql.rs`, once.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    Pool, Row, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous},
};

use super::sql::{Dialect, Exclusive, Migration, SqlStore, corrupt, from_json, to_json, unavailable};
use super::{RefreshToken, Rotation, StoreError};

/// The embedded SQLite backend (one replica).
pub type SqliteStore = SqlStore<Sqlite>;

/// The PostgreSQL backend: shared state for several replicas.
pub type PostgresStore = SqlStore<Postgres>;

/// Every schema version, the same numbers and names on both backends: the files are
/// `migrations/<backend>/<name>.sql`.
macro_rules! migrations {
    ($backend:literal) => {
        &[
            migration!($backend, 1, "001_objects_secrets_tokens"),
            migration!($backend, 2, "002_user_delegation"),
            migration!($backend, 3, "003_client_secret_order"),
            migration!($backend, 4, "004_registered_clients"),
            migration!($backend, 5, "005_client_tombstones"),
            migration!($backend, 6, "006_users"),
            migration!($backend, 7, "007_assertion_jtis"),
            migration!($backend, 8, "008_tenants"),
            migration!($backend, 9, "009_client_tags"),
            migration!($backend, 10, "010_decoupled_requests"),
            migration!($backend, 11, "011_backchannel_user_codes"),
        ]
    };
}

macro_rules! migration {
    ($backend:literal, $version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("migrations/", $backend, "/", $name, ".sql")),
        }
    };
}

pub struct Sqlite;

impl Dialect for Sqlite {
    type Database = sqlx::Sqlite;

    const MIGRATIONS: &'static [Migration] = migrations!("sqlite");
    const BOOKKEEPING: &'static [&'static str] = &[
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        // Files written before the numbering was shared with PostgreSQL recorded
        // registered_clients as version 3 (PostgreSQL's 3 is client_secrets.seq, which SQLite
        // never needed). Such a file has the table but no version 4: record 4 as applied
        // when that 3 was. A file numbered as now has version 4 whenever it has the table.
        "INSERT INTO schema_migrations (version, applied_at)
         SELECT 4, applied_at FROM schema_migrations
         WHERE version = 3
           AND NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 4)
           AND EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'registered_clients')",
    ];
    const EPOCH_NOW: &'static str = "strftime('%s','now')";
    // Every row has a rowid in insertion order.
    const INSERTION_ORDER: &'static str = "rowid";
    const ROW_ID: &'static str = "rowid";
    // One writer at a time: there is nothing to skip.
    const SKIP_LOCKED: &'static str = "";
    const USER_EMAIL: &'static str = "json_extract(attributes, '$.email')";
    const REFRESH_TOKEN_SUBJECT: &'static str = "json_extract(t.token, '$.subject')";
    // dbstat covers the table and every index on it.
    const TABLE_BYTES: &'static str = "SELECT SUM(pgsize) FROM dbstat WHERE name = $1 OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1)";

    async fn begin_exclusive(
        pool: &Pool<sqlx::Sqlite>,
        _what: Exclusive<'_>,
    ) -> Result<Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        // One writer per database: IMMEDIATE takes the write lock before the first read, so
        // what the transaction checks is what its writes land on.
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn put_refresh_token(
        pool: &Pool<sqlx::Sqlite>,
        digest: &[u8; 32],
        token: &RefreshToken,
    ) -> Result<(), StoreError> {
        let mut tx = pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO refresh_families (family_id, consent_id, tenant_consent_id, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (family_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(&token.family_id)
        .bind(&token.consent_id)
        .bind(token.tenant_consent_id.as_deref())
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("INSERT INTO refresh_tokens (digest, family_id, token, expires_at) VALUES ($1, $2, $3, $4)")
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
        pool: &Pool<sqlx::Sqlite>,
        old: &[u8; 32],
        new_digest: &[u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        // SQLite has no data-modifying WITH: the steps of PostgreSQL's one statement, in one
        // transaction. Spend first: the UPDATE serializes concurrent rotations of the token.
        let mut tx = pool.begin().await.map_err(unavailable)?;
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used = 1 WHERE digest = $1 AND used = 0 AND expires_at > $2
             AND family_id IN (
                 SELECT f.family_id FROM refresh_families f JOIN consents c ON c.id = f.consent_id
                 WHERE f.revoked = 0 AND c.revoked_at IS NULL AND c.expires_at > $2 AND (f.tenant_consent_id IS NULL OR EXISTS (
                           SELECT 1 FROM consents t WHERE t.id = f.tenant_consent_id AND t.revoked_at IS NULL AND t.expires_at > $2)))
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
                sqlx::query(
                    "INSERT INTO refresh_tokens (digest, family_id, token, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&new_digest[..])
                .bind(&next.family_id)
                .bind(to_json(&next)?)
                .bind(next.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                sqlx::query("UPDATE refresh_families SET expires_at = MAX(expires_at, $1) WHERE family_id = $2")
                    .bind(new_expires_at)
                    .bind(&next.family_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                Rotation::Rotated(old_token)
            }
            None => {
                let row = sqlx::query("SELECT used, family_id FROM refresh_tokens WHERE digest = $1")
                    .bind(&old[..])
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                match row {
                    Some(row) if row.try_get::<i64, _>(0).map_err(corrupt)? == 1 => {
                        let family_id: String = row.try_get(1).map_err(corrupt)?;
                        sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE family_id = $1")
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
}

impl SqlStore<Sqlite> {
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
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection to a local file cannot go stale; the default ping before every
            // acquire is a round trip to the connection's worker thread for nothing.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }
}

/// Single-use and rotation rules rest on `UPDATE ... WHERE used = 0 RETURNING`, which
/// PostgreSQL serializes per row: of concurrent redemptions exactly one sees the row unspent.
pub struct Postgres;

impl Dialect for Postgres {
    type Database = sqlx::Postgres;

    const MIGRATIONS: &'static [Migration] = migrations!("postgres");
    const BOOKKEEPING: &'static [&'static str] =
        &["CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"];
    const EPOCH_NOW: &'static str = "extract(epoch from now())::bigint";
    // Added by version 3: a ctid is no insertion order (it moves on update).
    const INSERTION_ORDER: &'static str = "seq";
    const ROW_ID: &'static str = "ctid";
    // Two replicas' maintenance passes purge the same expired rows at the same time; locking
    // them in different orders, one of the two was aborted ("deadlock detected", seen under
    // `make bench-load`). Each now takes the rows the other has not.
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const USER_EMAIL: &'static str = "(attributes::json ->> 'email')";
    const REFRESH_TOKEN_SUBJECT: &'static str = "(t.token::json ->> 'subject')";
    // Checkpoint-independent: heap + indexes + TOAST.
    const TABLE_BYTES: &'static str = "SELECT pg_total_relation_size($1::regclass)";

    async fn begin_exclusive(
        pool: &Pool<sqlx::Postgres>,
        what: Exclusive<'_>,
    ) -> Result<Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        // READ COMMITTED lets a check and a write interleave with another transaction's:
        // an advisory lock per kind of work, released at commit.
        let mut tx = pool.begin().await?;
        let lock = match what {
            Exclusive::Migrations => sqlx::query("SELECT pg_advisory_xact_lock(7001100)"),
            Exclusive::Registrations => sqlx::query("SELECT pg_advisory_xact_lock(7591)"),
            Exclusive::FirstClientSecret(client_id) => {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(client_id)
            }
        };
        lock.execute(&mut *tx).await?;
        Ok(tx)
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn put_refresh_token(
        pool: &Pool<sqlx::Postgres>,
        digest: &[u8; 32],
        token: &RefreshToken,
    ) -> Result<(), StoreError> {
        // One statement (one round trip, atomic): the family row, then the token.
        sqlx::query(
            "WITH family AS (
                 INSERT INTO refresh_families (family_id, consent_id, tenant_consent_id, expires_at) VALUES ($2, $3, $6, $5)
                 ON CONFLICT (family_id) DO UPDATE SET expires_at = GREATEST(refresh_families.expires_at, excluded.expires_at)
             )
             INSERT INTO refresh_tokens (digest, family_id, token, expires_at) VALUES ($1, $2, $4, $5)",
        )
        .bind(&digest[..])
        .bind(&token.family_id)
        .bind(&token.consent_id)
        .bind(to_json(token)?)
        .bind(token.expires_at)
        .bind(token.tenant_consent_id.as_deref())
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn rotate_refresh_token(
        pool: &Pool<sqlx::Postgres>,
        old: &[u8; 32],
        new_digest: &[u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        // The hot path in one statement: spend the presented token (the UPDATE serializes
        // concurrent rotations of the same row), store its successor, extend the family.
        let spent = sqlx::query(
            "WITH spent AS (
                 UPDATE refresh_tokens SET used = 1
                 WHERE digest = $1 AND used = 0 AND expires_at > $2
                   AND family_id IN (
                       SELECT f.family_id FROM refresh_families f JOIN consents c ON c.id = f.consent_id
                       WHERE f.revoked = 0 AND c.revoked_at IS NULL AND c.expires_at > $2 AND (f.tenant_consent_id IS NULL OR EXISTS (
                           SELECT 1 FROM consents t WHERE t.id = f.tenant_consent_id AND t.revoked_at IS NULL AND t.expires_at > $2)))
                 RETURNING family_id, token
             ), successor AS (
                 INSERT INTO refresh_tokens (digest, family_id, token, expires_at)
                 SELECT $3, family_id, jsonb_set(token::jsonb, '{expires_at}', to_jsonb($4::bigint))::text, $4 FROM spent
             ), family AS (
                 UPDATE refresh_families SET expires_at = GREATEST(expires_at, $4)
                 WHERE family_id IN (SELECT family_id FROM spent)
             )
             SELECT token FROM spent",
        )
        .bind(&old[..])
        .bind(now)
        .bind(&new_digest[..])
        .bind(new_expires_at)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
        if let Some(row) = spent {
            let json: String = row.try_get(0).map_err(corrupt)?;
            return Ok(Rotation::Rotated(from_json(&json)?));
        }
        // Not spendable: a reuse of a rotated token revokes its family; anything else is invalid.
        let reused: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_families SET revoked = 1
             WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE digest = $1 AND used = 1)
             RETURNING family_id",
        )
        .bind(&old[..])
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
        Ok(match reused {
            Some(family_id) => Rotation::Reused { family_id },
            None => Rotation::Invalid,
        })
    }
}

/// How long a PostgreSQL connection may sit in the pool before it is pinged on acquire.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user:pass@host:port/db?sslmode=...`) and applies
    /// pending migrations. Several replicas may start at once: migrations run under an
    /// advisory lock, in one transaction.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
            // A statement that hangs must not hold a request forever.
            .options([("statement_timeout", "5s"), ("lock_timeout", "5s")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            // Fail fast while the database is down: requests answer 503 instead of queueing.
            .acquire_timeout(Duration::from_secs(2))
            // sqlx pings every connection as it returns to the pool, so one that broke while
            // in use is never handed out again. One that was idle may have broken since (a
            // database restart): only those are pinged before use, sparing a busy pool a
            // round trip per statement.
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        sqlx::Connection::ping(connection).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectKey;
    use crate::secrets::SecretHash;
    use crate::store::Store;

    #[test]
    fn migrations_are_numbered_alike_and_every_file_is_listed() {
        let names = |migrations: &[Migration]| migrations.iter().map(|m| m.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(Sqlite::MIGRATIONS), names(Postgres::MIGRATIONS));
        for (backend, migrations) in [("sqlite", Sqlite::MIGRATIONS), ("postgres", Postgres::MIGRATIONS)] {
            for (i, migration) in migrations.iter().enumerate() {
                assert_eq!(migration.version, i as i64 + 1, "{backend}: versions run 1, 2, 3, ...");
                assert!(migration.name.starts_with(&format!("{:03}_", migration.version)), "{}", migration.name);
            }
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations").join(backend);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            let listed: Vec<String> = migrations.iter().map(|m| format!("{}.sql", m.name)).collect();
            assert_eq!(files, listed, "{backend}: every file in {} is a listed migration", dir.display());
        }
    }

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
