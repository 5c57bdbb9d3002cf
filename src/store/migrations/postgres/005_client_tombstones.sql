-- Version 5: metadata-document clients deleted by an administrator stay deleted for a while
-- (their document would otherwise be fetched and recorded again on the next request).

CREATE TABLE client_tombstones (
    client_id TEXT PRIMARY KEY, deleted_at BIGINT NOT NULL, expires_at BIGINT NOT NULL
);
CREATE INDEX client_tombstones_by_expiry ON client_tombstones (expires_at);
