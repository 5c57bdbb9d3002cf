-- Version 7: the `jti`s of client assertions (private_key_jwt, RFC 7523 §3 item 7), each
-- accepted once until it expires, on every replica. Keyed by a digest of (client_id, jti).

CREATE TABLE assertion_jtis (
    digest BLOB PRIMARY KEY, expires_at INTEGER NOT NULL
);
CREATE INDEX assertion_jtis_by_expiry ON assertion_jtis (expires_at);
