// The Node peer for benchmarks/peer_bench.py: node-oidc-provider, one process, its in-memory adapter.
// One confidential client (client_secret_basic) with client_credentials and authorization_code,
// introspection on. At start-up it mints a client_credentials token and a user access token
// (Grant + AccessToken through the Provider API, scope "openid profile", usable at /me) and prints
// them as one JSON line. The in-memory adapter is an LRU of 1,000 entries: token requests evict
// these, so the benchmark runs client_credentials last.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const CLIENT_ID = 'peer-client';
const CLIENT_SECRET = 'peer-secret-' + 'x'.repeat(32);

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['authorization_code', 'client_credentials'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/cb'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  cookies: { keys: ['peer-bench-cookie-key-0123456789abcdef'] },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
  },
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() { return { sub: id, name: 'Bob Example', preferred_username: 'bob' }; },
    };
  },
});
provider.on('server_error', (ctx, err) => { console.error('server_error', err); });

const server = provider.listen(port, '127.0.0.1', async () => {
  const client = await provider.Client.find(CLIENT_ID);
  const grant = new provider.Grant({ accountId: 'bob', clientId: CLIENT_ID });
  grant.addOIDCScope('openid profile');
  const grantId = await grant.save();
  const user = new provider.AccessToken({
    accountId: 'bob', client, grantId, scope: 'openid profile', gty: 'authorization_code',
  });
  const userToken = await user.save();
  const cc = new provider.ClientCredentials({ client, scope: '' });
  const ccToken = await cc.save();
  console.log(JSON.stringify({
    issuer, client_id: CLIENT_ID, client_secret: CLIENT_SECRET,
    user_token: userToken, cc_token: ccToken,
    version: (await import('oidc-provider/package.json', { with: { type: 'json' } })).default.version,
  }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
