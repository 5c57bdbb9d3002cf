-- Version 10: device authorization requests (RFC 8628), on every replica: started at one,
-- approved at another, polled at a third. Keyed by the digest of the device code; the user
-- code (normalised) is unique while it lives. `decision` is NULL while the user has not
-- decided; a decided row is deleted by the one poll that reads it (single issuance).

CREATE TABLE device_authorizations (
    digest BYTEA PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    decision TEXT,
    poll_interval BIGINT NOT NULL,
    next_poll_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_authorizations_by_expiry ON device_authorizations (expires_at);
