-- Version 3: client secrets issued within the same second keep their issuing order.

-- The newest secret is the current one, and created_at has a resolution of one second.
-- PostgreSQL rows have no stable insertion order of their own (a ctid moves on update).
ALTER TABLE client_secrets ADD COLUMN seq BIGSERIAL;
