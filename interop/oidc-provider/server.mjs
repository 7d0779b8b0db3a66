// node oidc-provider on loopback, for tollgate's interop tests (tests/interop_oidc_provider.rs).
//
//   node interop/oidc-provider/server.mjs
//
// Listens on 127.0.0.1 on a port the OS picks, then prints one JSON line on stdout:
//   {"issuer": "http://127.0.0.1:PORT", "initial_access_token": "...", "admin_token": "..."}
// and serves until it is stopped (the tests' supervisor stops it when the test binary exits).
//
// What the provider is configured with, and nothing else:
// - the client-credentials grant, and dynamic client registration (RFC 7591) at /reg,
//   protected by the initial access token printed above;
// - resource indicators (RFC 8707): a token request naming `resource=api://orders` or
//   `resource=api://billing` gets an RFC 9068 JWT access token (`typ: at+jwt`) whose `aud`
//   is that resource, with the scopes `orders.read orders.write` (or `billing.…`) available;
// - an RSA (RS256) and a P-256 (ES256) signing key, generated at start. A client picks the
//   algorithm of its access tokens with the registration metadata
//   `access_token_signed_response_alg` (RS256 when absent).
//
// oidc-provider is a library: its keys are part of its configuration, and rotating them
// means building the provider again with a new key set. Two admin calls do exactly that,
// keeping the registered clients (they live in the storage adapter, which is kept):
//   POST /admin/keys/rotate   new RSA and EC keys sign from now on; the old ones stay in
//                             the JWKS so tokens they signed keep verifying
//   POST /admin/keys/retire   every key but the newest RSA and EC key leaves the JWKS
// Both need `Authorization: Bearer <admin_token>` and answer with the JWKS's kids.
//
// Never use this outside tests: the keys, the tokens and the admin API are for loopback.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';
// The library's own in-memory storage, shared by every provider this process builds, so
// registered clients survive a key rotation (by default each provider gets a new store).
// A deep import of a pinned version (package-lock.json); the package has no exports map.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const SIGNING_ALGS = ['RS256', 'ES256'];
// The resource servers, each `api://NAME` with the scopes `NAME.read` and `NAME.write`.
const RESOURCES = ['orders', 'billing'];
const scopesOf = (name) => [`${name}.read`, `${name}.write`];

const initialAccessToken = crypto.randomBytes(24).toString('base64url');
const adminToken = crypto.randomBytes(24).toString('base64url');
const cookieKey = crypto.randomBytes(32).toString('base64url');
const adapter = createMemoryAdapter();

// Newest first: oidc-provider signs with the first key that fits the algorithm.
let keys = [];
let current;
let handle;

function generateKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return [
    { ...rsa.privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' },
    { ...ec.privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256' },
  ].map((jwk) => ({ ...jwk, kid: crypto.randomUUID() }));
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter,
    jwks: { keys },
    cookies: { keys: [cookieKey] },
    scopes: ['openid', ...RESOURCES.flatMap(scopesOf)],
    clientDefaults: { grant_types: ['client_credentials'], response_types: [] },
    extraClientMetadata: {
      properties: ['access_token_signed_response_alg'],
      validator(_ctx, key, value) {
        if (key === 'access_token_signed_response_alg' && value !== undefined
          && !SIGNING_ALGS.includes(value)) {
          throw new Error(`access_token_signed_response_alg must be one of ${SIGNING_ALGS}`);
        }
      },
    },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      registration: { enabled: true, initialAccessToken },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo(_ctx, resourceIndicator, client) {
          const name = /^api:\/\/([a-z]+)$/.exec(resourceIndicator)?.[1];
          if (!RESOURCES.includes(name)) {
            throw new Provider.errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            scope: scopesOf(name).join(' '),
            audience: resourceIndicator,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: {
              sign: { alg: client.metadata().access_token_signed_response_alg ?? 'RS256' },
            },
          };
        },
      },
    },
    ttl: { ClientCredentials: 600 },
  });
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  return provider;
}

function kids() {
  return { kids: keys.map((k) => k.kid) };
}

async function admin(req, res) {
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method !== 'POST' || req.headers.authorization !== `Bearer ${adminToken}`) {
    return send(403, { error: 'forbidden' });
  }
  if (req.url === '/admin/keys/rotate') {
    keys = [...generateKeys(), ...keys];
  } else if (req.url === '/admin/keys/retire') {
    keys = keys.slice(0, SIGNING_ALGS.length);
  } else {
    return send(404, { error: 'not_found' });
  }
  current = buildProvider(current.issuer);
  handle = current.callback();
  return send(200, kids());
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/admin/')) {
    admin(req, res).catch((error) => {
      console.error('admin call failed', error);
      res.writeHead(500).end();
    });
    return;
  }
  handle(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  keys = generateKeys();
  current = buildProvider(issuer);
  handle = current.callback();
  process.stdout.write(`${JSON.stringify({
    issuer,
    initial_access_token: initialAccessToken,
    admin_token: adminToken,
  })}\n`);
});
