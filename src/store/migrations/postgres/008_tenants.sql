-- Version 8: a user belongs to several tenants, with roles per tenant; a refresh-token
-- family may rest on a tenant-wide consent (an administrator's, for every member) besides
-- the user's own, and ends when either is revoked.

ALTER TABLE users ADD COLUMN tenants TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN tenant_roles TEXT NOT NULL DEFAULT '{}';
UPDATE users SET tenants = json_build_array(tenant)::text WHERE tenant IS NOT NULL;
ALTER TABLE users DROP COLUMN tenant;

ALTER TABLE refresh_families ADD COLUMN tenant_consent_id TEXT;
CREATE INDEX refresh_families_by_tenant_consent ON refresh_families (tenant_consent_id);
