-- Version 10: device authorization requests (RFC 8628), on every replica: started at one,
-- approved at another, polled at a third. Keyed by the digest of the device code; the user
-- code (normalised) is unique while it lives. `decision` is NULL while the user has not
-- decided; a decided row is deleted by the one poll that reads it (single issuance).

CREATE TABLE device_authorizations (
    digest BLOB PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    decision TEXT,
    poll_interval INTEGER NOT NULL,
    next_poll_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX device_authorizations_by_expiry ON device_authorizations (expires_at);
