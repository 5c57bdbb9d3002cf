-- Version 4: self-registered (RFC 7591) and metadata-document clients.

CREATE TABLE registered_clients (
    client_id TEXT PRIMARY KEY, policy_namespace TEXT NOT NULL, policy_name TEXT NOT NULL,
    metadata TEXT NOT NULL, secret_hash BLOB, registration_token_hash BLOB, dedupe_key TEXT,
    source TEXT NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX registered_clients_dedupe ON registered_clients (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX registered_clients_by_created ON registered_clients (created_at);
CREATE INDEX registered_clients_by_last_used ON registered_clients (last_used_at);
