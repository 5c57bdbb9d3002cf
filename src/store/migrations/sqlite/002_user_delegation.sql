-- Version 2: user-delegated access: authorization codes, consents, refresh token families,
-- login sessions and pending authorization requests.

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
