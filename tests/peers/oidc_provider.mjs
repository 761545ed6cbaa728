// panva's oidc-provider as a real OpenID Provider for svcauth's tests.
//
//   node oidc_provider.mjs keygen
//       -> prints {"keys": [RS256, ES256, EdDSA private JWKs]} with fresh kids
//   node oidc_provider.mjs serve <config.json>
//       -> listens on 127.0.0.1:<config.port> (0 = any free port) and prints
//          one line {"issuer": ..., "port": ...} once it accepts connections
//
// The config file (written by the Rust test harness):
//   {
//     "port": 0,
//     "keys": { "keys": [private JWKs; the first key of an alg signs] },
//     "clients": [ oidc-provider client metadata ],
//     "resources": { "<resource indicator>": { "alg": "ES256", "ttl": 300,
//                    "scope": "read write", "format": "jwt" } },
//     "client_algs": { "<client_id>": "RS256" },   // per-client alg override
//     "opaque_ttl": 600                              // tokens without resource
//   }
//
// Features: client credentials with Resource Indicators (RFC 8707) issuing
// RFC 9068 JWT access tokens (typ at+jwt); opaque tokens when no resource is
// asked for; introspection (RFC 7662) with JWT responses (RFC 9701); revocation
// (RFC 7009); and token exchange (RFC 8693), which oidc-provider does not
// build in, registered below as a custom grant type.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as crypto from 'node:crypto';
import * as jose from 'jose';
// oidc-provider 9 asks for Node.js 22 LTS and warns on 20, which the suite
// and the demo run on (and pass on): that one warning is dropped, anything
// else it says is kept. A static import would run before this filter.
const warn = console.warn;
console.warn = (...args) => {
  if (String(args[0]).includes('Unsupported runtime')) return;
  warn(...args);
};
const { default: Provider, errors } = await import('oidc-provider');

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'keygen') {
  const keys = [];
  for (const [alg, options] of [['RS256', { modulusLength: 2048 }], ['ES256', {}], ['EdDSA', { crv: 'Ed25519' }]]) {
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true, ...options });
    const jwk = await jose.exportJWK(privateKey);
    jwk.kid = crypto.randomUUID();
    jwk.alg = alg;
    jwk.use = 'sig';
    keys.push(jwk);
  }
  console.log(JSON.stringify({ keys }));
} else if (mode === 'serve') {
  await serve(JSON.parse(fs.readFileSync(args[0], 'utf8')));
} else {
  console.error('usage: oidc_provider.mjs keygen | serve <config.json>');
  process.exit(2);
}

async function serve(config) {
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const resources = config.resources ?? {};
  const clientAlgs = config.client_algs ?? {};
  const publicKeys = jose.createLocalJWKSet({
    keys: config.keys.keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub),
  });

  function resourceServer(indicator, client) {
    const info = resources[indicator];
    if (!info) return undefined;
    const alg = clientAlgs[client.clientId] ?? info.alg ?? 'ES256';
    return {
      audience: indicator,
      scope: info.scope ?? '',
      accessTokenTTL: info.ttl ?? 300,
      accessTokenFormat: info.format ?? 'jwt',
      jwt: { sign: { alg } },
    };
  }

  // The actor of each exchanged token, read by extraTokenClaims (which
  // oidc-provider calls while formatting and which replaces token.extra).
  const actors = new WeakMap();

  const provider = new Provider(issuer, {
    extraTokenClaims: async (ctx, token) => (actors.has(token) ? { act: actors.get(token) } : undefined),
    clients: config.clients ?? [],
    jwks: config.keys,
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    enabledJWA: {
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
      introspectionSigningAlgValues: ['RS256', 'ES256', 'EdDSA', 'Ed25519'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      jwtIntrospection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, indicator, client) => {
          const info = resourceServer(indicator, client);
          if (!info) throw new errors.InvalidTarget();
          return info;
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? config.opaque_ttl ?? 600,
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? config.opaque_ttl ?? 600,
    },
  });

  // Who a subject token speaks for: {sub, act, scope}, or undefined when it
  // is not an active token of this provider.
  async function subjectOf(value, type) {
    if (typeof value !== 'string' || value.length > 8192) return undefined;
    if (value.split('.').length === 3) {
      try {
        const { payload } = await jose.jwtVerify(value, publicKeys, {
          issuer,
          typ: 'at+jwt',
          algorithms: ['RS256', 'ES256', 'EdDSA'],
        });
        return { sub: payload.sub, act: payload.act, scope: payload.scope };
      } catch {
        return undefined;
      }
    }
    if (type !== ACCESS_TOKEN_TYPE) return undefined;
    const token = (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
    if (!token || token.isExpired) return undefined;
    return { sub: token.accountId ?? token.clientId, act: token.extra?.act, scope: token.scope };
  }

  // RFC 8693 token exchange. The client is already authenticated (and
  // allowed this grant type) by oidc-provider; this checks the subject
  // token and mints an at+jwt for the one requested audience, with
  // sub = the subject's sub and act = {sub: the exchanging client}, nested
  // over any earlier actor.
  async function tokenExchange(ctx) {
    const { params, client } = ctx.oidc;
    if (!params.subject_token) throw new errors.InvalidRequest("missing required parameter 'subject_token'");
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE && params.subject_token_type !== JWT_TOKEN_TYPE) {
      throw new errors.InvalidRequest('unsupported subject_token_type');
    }
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest('unsupported requested_token_type');
    }
    if (params.actor_token) throw new errors.InvalidRequest('actor_token is not supported');
    const targets = [params.resource, params.audience].flat().filter(Boolean);
    if (targets.length !== 1) throw new errors.InvalidTarget('exactly one resource or audience is required');
    const rs = resourceServer(targets[0], client);
    if (!rs || rs.accessTokenFormat !== 'jwt') throw new errors.InvalidTarget();

    const subject = await subjectOf(params.subject_token, params.subject_token_type);
    if (!subject) throw new errors.InvalidGrant('subject_token is invalid, expired or revoked');

    const requested = new Set((params.scope ?? '').split(' ').filter(Boolean));
    const allowed = new Set(rs.scope.split(' ').filter(Boolean));
    const scope = [...(requested.size ? requested : allowed)].filter((s) => allowed.has(s)).join(' ') || undefined;

    const act = subject.act ? { sub: client.clientId, act: subject.act } : { sub: client.clientId };
    const token = new provider.AccessToken({
      accountId: subject.sub,
      client,
      gty: 'token-exchange',
      scope,
    });
    actors.set(token, act);
    token.resourceServer = rs;
    ctx.oidc.entity('AccessToken', token);
    const accessToken = await token.save();
    ctx.body = {
      access_token: accessToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope,
    };
  }

  provider.registerGrantType(
    TOKEN_EXCHANGE,
    tokenExchange,
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
      'requested_token_type', 'resource', 'audience', 'scope'],
    ['resource', 'audience'],
  );

  // Count token-endpoint and introspection calls, for tests that bound them.
  const counts = { token: 0, introspection: 0, token_exchange: 0 };
  provider.use(async (ctx, next) => {
    if (ctx.path === '/token') counts.token += 1;
    if (ctx.path === '/token/introspection') counts.introspection += 1;
    await next();
    if (ctx.oidc?.params?.grant_type === TOKEN_EXCHANGE) counts.token_exchange += 1;
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === '/__counts') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(counts));
      return;
    }
    callback(req, res);
  });
  console.log(JSON.stringify({ issuer, port }));
  // The harness reads that one line and closes the pipe: anything else the
  // provider prints (its notices go to console.log) goes to stderr.
  console.log = console.info = console.warn = (...args) => console.error(...args);
}
