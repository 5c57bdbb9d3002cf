-- Version 6: end users as records, whatever identity source signed them in (development
-- users, an upstream OpenID Provider, the application's own login). UserInfo, refresh and
-- consent read these, never the configuration, so they work on every replica and after a
-- restart. Refreshed at every login.

CREATE TABLE users (
    subject TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    username TEXT NOT NULL,
    tenant TEXT,
    roles TEXT NOT NULL,
    attributes TEXT NOT NULL,
    first_login_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL
);
