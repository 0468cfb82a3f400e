import { serve, type ServerType } from '@hono/node-server';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PREFIX, createServiceA } from '../../examples/two-services/service-a.js';
import { createServiceB } from '../../examples/two-services/service-b.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE, type OidcAuth } from '../../src/index.js';
import { startJoseIssuer, type AccessTokenIssuer } from '../helpers/access-token-issuer.js';
import { loopbackIdentity, startTestIdp, type TestIdp } from '../helpers/idp-server.js';

/**
 * examples/two-services, service B: a Hono app that accepts only our RFC 9068 access tokens, through
 * oidc-machine-auth/verify, knowing only the issuer URL. The first suite runs B against the jose test
 * issuer, which can mint what the real service A never would (another audience, typ JWT); the second
 * runs the whole example: a loopback IdP, the real service A and B.
 */

const AUDIENCE = 'https://b.example';
let a: AccessTokenIssuer;
let b: ReturnType<typeof createServiceB>;
let server: ServerType;
let base = '';

beforeAll(async () => {
  a = await startJoseIssuer();
  b = createServiceB({
    issuer: a.issuer,
    audience: AUDIENCE,
    allowInsecureLoopback: true,
    introspection: { clientId: 'verifier', clientSecret: 's3cret' },
  });
  server = serve({ fetch: b.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await a.close();
});

const call = (path: string, token?: string, method = 'GET') =>
  fetch(`${base}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

describe('examples/two-services: service B (Hono) verifies service A access tokens', () => {
  it('RFC 6750 section 2.1: a valid access token for B with the reports:read scope reaches the route, claims on the context', async () => {
    const token = await a.mint({ aud: AUDIENCE, scope: 'reports:read', sub: 'svc-a', client_id: 'deployer' });
    const res = await call('/reports', token);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      reports: ['q1', 'q2'],
      caller: { sub: 'svc-a', client_id: 'deployer' },
    });
  });

  it('RFC 6750 section 3.1: no token is 401 invalid_request with a bare Bearer challenge', async () => {
    const res = await call('/reports');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(await res.json()).toEqual({ error: 'invalid_request' });
  });

  it('RFC 9068 section 4: a token for another audience, or an ID token (typ JWT), is 401 invalid_token with the reason code', async () => {
    for (const [token, reasonCode] of [
      [await a.mint({ aud: 'https://c.example', scope: 'reports:read' }), 'audience_mismatch'],
      [await a.mint({ aud: AUDIENCE, scope: 'reports:read' }, { typ: 'JWT' }), 'token_type_invalid'],
    ] as const) {
      const res = await call('/reports', token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe(
        `Bearer error="invalid_token", error_description="${reasonCode}"`,
      );
      const body = await res.text();
      expect(JSON.parse(body)).toEqual({ error: 'invalid_token', reasonCode });
      expect(body).not.toContain(token);
    }
  });

  it('RFC 6750 section 3.1: a valid token without the route scope is 403 insufficient_scope', async () => {
    const res = await call('/reports', await a.mint({ aud: AUDIENCE, scope: 'other' }));
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer error="insufficient_scope", scope="reports:read"',
    );
  });

  it('RFC 7662: the revocation-sensitive route asks A, and refuses a token A revoked (local checks alone would still accept it)', async () => {
    const jti = crypto.randomUUID();
    const token = await a.mint({ aud: AUDIENCE, scope: 'reports:read reports:write', jti });
    expect((await call('/reports/7', token, 'DELETE')).status).toBe(200);
    a.revoke(jti);
    expect((await call('/reports', token)).status).toBe(200);
    const res = await call('/reports/7', token, 'DELETE');
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'invalid_token', reasonCode: 'token_inactive' });
  });
});

/**
 * The whole example: a loopback IdP issues a CI job's token, service A (Express, createOidcAuth)
 * exchanges it (RFC 8693) for an RFC 9068 JWT access token for B, and service B (Hono) verifies it
 * knowing only A's issuer URL; a revocation at A (RFC 7009) is seen by B's introspecting route only.
 */
describe('examples/two-services end to end: a CI token exchanged at service A (Express), verified by service B (Hono)', () => {
  const SUBJECT = 'repo:acme/reports-job:ref:refs/heads/main';
  const IDP_AUDIENCE = 'https://github.com/acme';
  const B_CLIENT = { clientId: 'service-b', clientSecret: 'a-secret-only-b-knows' };
  let idp: TestIdp;
  let auth: OidcAuth;
  let aServer: http.Server;
  let bServer: ServerType;
  let issuer = '';
  let bBase = '';
  const aHits = new Map<string, number>();
  // oauth4webapi refuses http:// unless told; its documented option, for servers on loopback.
  const insecure = { [oauth.allowInsecureRequests]: true } as const;

  beforeAll(async () => {
    idp = await startTestIdp();
    // A's issuer must be known before A is built: listen first, then hand the requests to A's app.
    let handler: http.RequestListener = (_req, res) => res.writeHead(503).end();
    aServer = http.createServer((req, res) => handler(req, res));
    await new Promise<void>((resolve) => aServer.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(aServer.address() as AddressInfo).port}${AUTH_PREFIX}`;
    const { identityId: _ci, ...ciIdentity } = loopbackIdentity(idp, SUBJECT, IDP_AUDIENCE);
    const serviceA = createServiceA({
      issuer,
      audienceOfB: AUDIENCE,
      signingKey: generateKeyPairSync('ed25519').privateKey,
      ciIdentity,
      serviceB: B_CLIENT,
    });
    auth = serviceA.auth;
    handler = (req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      aHits.set(path, (aHits.get(path) ?? 0) + 1);
      serviceA.app(req, res);
    };

    const serviceB = createServiceB({
      issuer,
      audience: AUDIENCE,
      allowInsecureLoopback: true,
      introspection: B_CLIENT,
    });
    bServer = serve({ fetch: serviceB.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise<void>((resolve) => bServer.once('listening', resolve));
    bBase = `http://127.0.0.1:${(bServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => bServer?.close(() => resolve()));
    aServer?.closeAllConnections();
    await new Promise<void>((resolve) => aServer?.close(() => resolve()));
    await auth?.close();
    await idp?.close();
  });

  const as = (): oauth.AuthorizationServer => ({
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
  });
  /** The CI job: its IdP token, exchanged at A with oauth4webapi (RFC 8693 section 2.1). */
  async function exchange(scope: string): Promise<string> {
    const client: oauth.Client = { client_id: 'ci' };
    const response = await oauth.genericTokenEndpointRequest(
      as(),
      client,
      oauth.None(),
      TOKEN_EXCHANGE_GRANT,
      {
        subject_token: await idp.sign({ sub: SUBJECT, aud: IDP_AUDIENCE }),
        subject_token_type: TOKEN_TYPE.jwt,
        audience: AUDIENCE,
        scope,
      },
      insecure,
    );
    const result = await oauth.processGenericTokenEndpointResponse(as(), client, response);
    expect(result.issued_token_type).toBe(TOKEN_TYPE.accessToken);
    return result.access_token;
  }
  const callB = (path: string, token: string, method = 'GET') =>
    fetch(`${bBase}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

  it('RFC 8693 section 2.2.1 / RFC 9068 section 2.2: A issues an EdDSA at+jwt for B, with the requested scope only', async () => {
    const token = await exchange('reports:read');
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt', kid: 'a-1' });
    expect(decodeJwt(token)).toMatchObject({
      iss: issuer,
      sub: 'ci',
      client_id: 'ci',
      aud: AUDIENCE,
      scope: 'reports:read',
    });
  });

  it('RFC 8414 section 3.1: A answers its metadata at the host root (path inserted), naming its JWKS, introspection and revocation endpoints', async () => {
    const res = await fetch(new URL(`/.well-known/oauth-authorization-server${AUTH_PREFIX}`, issuer));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      issuer,
      token_endpoint: `${issuer}/oauth/token`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      introspection_endpoint: `${issuer}/oauth/introspect`,
      revocation_endpoint: `${issuer}/oauth/revoke`,
    });
  });

  it('RFC 6750 sections 2.1 and 3.1: B accepts the reports:read token on GET and refuses a write with 403 insufficient_scope; a reports:write token may write', async () => {
    const jwksBefore = aHits.get(`${AUTH_PREFIX}/.well-known/jwks.json`) ?? 0;
    const reader = await exchange('reports:read');
    const read = await callB('/reports', reader);
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual({ reports: ['q1', 'q2'], caller: { sub: 'ci', client_id: 'ci' } });
    const write = await callB('/reports/7', reader, 'DELETE');
    expect(write.status).toBe(403);
    expect(write.headers.get('www-authenticate')).toBe(
      'Bearer error="insufficient_scope", scope="reports:write"',
    );
    const writer = await exchange('reports:read reports:write');
    expect((await callB('/reports/7', writer, 'DELETE')).status).toBe(200);
    // These are B's first calls: it fetched A's JWKS exactly once for all of them (its key cache).
    expect((aHits.get(`${AUTH_PREFIX}/.well-known/jwks.json`) ?? 0) - jwksBefore).toBe(1);
  });

  it('RFC 7009 section 2.1 / RFC 7662 section 2.2: after A revokes a token, B refuses it on the introspecting route but its plain route still accepts it until exp (the documented trade-off)', async () => {
    const token = await exchange('reports:read reports:write');
    expect((await callB('/reports/8', token, 'DELETE')).status).toBe(200);

    // B (or any holder of B's client credentials) revokes it at A, as RFC 7009 describes.
    const revoke = await oauth.revocationRequest(
      as(),
      { client_id: B_CLIENT.clientId },
      oauth.ClientSecretBasic(B_CLIENT.clientSecret),
      token,
      insecure,
    );
    await oauth.processRevocationResponse(revoke);

    // The revocation-sensitive route asks A (RFC 7662): A answers active: false.
    const refused = await callB('/reports/8', token, 'DELETE');
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: 'invalid_token', reasonCode: 'token_inactive' });

    // The plain route checks only the signature, iss, aud, typ and exp locally, without asking A:
    // a revoked JWT access token keeps working there until its exp (A's accessTokenTTL, 300 s).
    // That is the trade-off docs/TOKENS.md and docs/VERIFY.md describe: keep such tokens short-lived
    // and put introspect: true on routes where a revocation must count at once.
    expect((await callB('/reports', token)).status).toBe(200);
  });

  it("RFC 6749 section 2.3.1: A answers introspection only to B's client credentials (HTTP Basic), 401 invalid_client otherwise", async () => {
    const token = await exchange('reports:read');
    const introspect = (authorization?: string) =>
      fetch(`${issuer}/oauth/introspect`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(authorization ? { authorization } : {}),
        },
        body: new URLSearchParams({ token }),
      });
    const basic = (id: string, secret: string) =>
      `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
    for (const authorization of [
      undefined,
      basic(B_CLIENT.clientId, 'wrong'),
      basic('ci', B_CLIENT.clientSecret),
    ]) {
      const res = await introspect(authorization);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Basic');
      expect(await res.json()).toEqual({ error: 'invalid_client' });
    }
    const live = await introspect(basic(B_CLIENT.clientId, B_CLIENT.clientSecret));
    expect(live.status).toBe(200);
    expect(await live.json()).toMatchObject({
      active: true,
      sub: 'ci',
      client_id: 'ci',
      scope: 'reports:read',
    });
  });
});
