// A real upstream OpenID Provider for the federation tests: npm `oidc-provider`
// (OpenID-certified), installed by scripts/oidc-provider-env.sh. Started by the tests as
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"clients": [oidc-provider client metadata...], "accounts": "ACCOUNTS.json",
//          "conformIdTokenClaims": bool}
// ACCOUNTS.json: {"alice": {"email": "...", "groups": [...], ...}}, re-read at every
// lookup so a test can change a user's groups while the provider runs. The login page is
// oidc-provider's development interaction (any account name from ACCOUNTS.json, no
// password); it prints `listening <issuer>` on stdout once it serves.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(process.env.OIDC_PROVIDER_DIR + '/package.json');
const { default: Provider } = await import(require.resolve('oidc-provider'));

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = () => JSON.parse(readFileSync(config.accounts, 'utf8'));

let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  cookies: { keys: ['inbound-tests-upstream-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
    tenant: ['tid'],
    organizations: ['orgs', 'org_roles'],
  },
  conformIdTokenClaims: config.conformIdTokenClaims ?? false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  async findAccount(_ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
});
// The tests run on loopback http; oidc-provider otherwise insists on https cookies.
provider.proxy = true;
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
handler = provider.callback();
console.log(`listening ${issuer}`);
