import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceB } from '../../examples/two-services/service-b.js';
import { startJoseIssuer, type AccessTokenIssuer } from '../helpers/access-token-issuer.js';

/**
 * examples/two-services, service B: a Hono app that accepts only our RFC 9068 access tokens, through
 * oidc-machine-auth/verify, knowing only the issuer URL. Service A is stood in for by the jose test
 * issuer until the token service lands (see the example's README).
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
