// The peer of `make bench-peers`: npm `oidc-provider` (the OpenID-certified Node
// implementation, installed by scripts/oidc-provider-env.sh), configured as inbound's
// quickstart is for the benchmarked flows. Started by benches/bench-peers.sh as
//
//   NODE_ENV=production OIDC_PROVIDER_DIR=... taskset -c 0 node peer-oidc-provider.mjs CONFIG.json
//
// CONFIG: {"port": 18952, "clientId": "...", "clientSecret": "...",
//          "resource": "https://billing.example.com", "scope": "billing:read"}
//
// - its default in-memory adapter (as inbound's bench uses its default SQLite store, no
//   external database);
// - one confidential client, client_secret_basic, allowed only the client_credentials grant;
// - with `resource=<resource>`: an ES256 JWT access token for that audience (RFC 8707 +
//   RFC 9068 shape, `features.resourceIndicators` with `accessTokenFormat: 'jwt'`);
// - without a resource: an opaque access token, stored, readable through introspection
//   (RFC 7662) by the client it was issued to;
// - one P-256 key made at start-up, published at its jwks_uri.
// No interactions (no login, no consent): only the back-channel endpoints are measured.
// Prints `listening <issuer>` on stdout once it serves.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(process.env.OIDC_PROVIDER_DIR + '/package.json');
const { default: Provider, errors } = await import(require.resolve('oidc-provider'));

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.clientId,
    client_secret: config.clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: config.scope,
  }],
  // Only an ES256 key: ID tokens (never issued here) default to it as well.
  jwks: { keys: [signingKey] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  scopes: [config.scope],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: { ClientCredentials: 600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // As inbound: a token's own client may read it.
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // No resource parameter: no resource server, hence an opaque token.
      defaultResource: async () => undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== config.resource) throw new errors.InvalidTarget();
        return {
          scope: config.scope,
          audience: config.resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const server = http.createServer(provider.callback());
server.keepAliveTimeout = 65_000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port, '127.0.0.1', resolve);
});
console.log(`listening ${issuer}`);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
