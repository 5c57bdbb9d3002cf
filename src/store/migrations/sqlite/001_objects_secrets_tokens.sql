-- Version 1: folder-mode object UIDs, client secret hashes, opaque access tokens and the
-- revocation list.

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
