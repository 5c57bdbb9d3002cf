-- Version 10: decoupled authorization requests, on every replica: started at one, approved
-- at another, polled at a third. A device authorization (RFC 8628, keyed by the digest of
-- its device code, `code` its normalised user code) or a backchannel authentication request
-- (OpenID Connect CIBA, keyed by the digest of its auth_req_id, `code` the digest of its
-- approval link). `decision` is NULL until the user decides; a decided row is deleted by
-- the one poll that reads it (single issuance).

CREATE TABLE decoupled_requests (
    digest BYTEA PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    decision TEXT,
    poll_interval BIGINT NOT NULL,
    next_poll_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX decoupled_requests_by_expiry ON decoupled_requests (expires_at);
