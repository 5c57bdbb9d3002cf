-- Version 1: folder-mode object UIDs, client secret hashes, opaque access tokens and the
-- revocation list.

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
