import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  forwardedClientIp,
  oauthMetadataRoutes,
  oidcAuthRoutes,
  oidcIntrospectionRoutes,
  requireAccessToken,
} from '../../adapters/hono/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { answerClientErrors } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { createSecretsApp } from '../../examples/hono/app.js';
import { describeAdapterConformance, describeSecretsExample, type MountedApp } from './conformance.js';

const isLoopback = (ip: string) => ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1';

describeAdapterConformance('hono', async (auth, { trustProxy }) => {
  const getClientIp = trustProxy ? forwardedClientIp(isLoopback) : undefined;
  const app = new Hono();
  app.route('/', oauthMetadataRoutes(auth));
  app.route('/api/v1/auth', oidcAuthRoutes(auth, { getClientIp }));
  app.route(
    '/api/v1/auth',
    oidcIntrospectionRoutes(auth, {
      guard: requireAccessToken(auth, { getClientIp, authorize: (a) => a.metadata.role === 'introspector' }),
    }),
  );
  app.get('/api/v3/secrets/raw', requireAccessToken(auth, { getClientIp }), (c) => {
    const { identityId, clientIp, metadata } = c.get('auth');
    return c.json({ identityId, clientIp, metadata });
  });
  app.get(
    '/admin',
    requireAccessToken(auth, { getClientIp, authorize: (ctx) => ctx.metadata.role === 'admin' }),
    (c) => c.json({ ok: true }),
  );
  return listen(app);
});

describe('hono adapter specifics', () => {
  const key = makeKey('RS256');
  let auth: OidcAuth;
  beforeAll(() => {
    auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
  });
  afterAll(() => auth?.close());

  it('runs in-process with app.request() (no Node bindings): merged header, no client address', async () => {
    const app = new Hono();
    app.route('/api/v1/auth', oidcAuthRoutes(auth));
    app.get('/me', requireAccessToken(auth), (c) => c.json(c.get('auth')));
    const login = await app.request('/api/v1/auth/oidc-auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        identityId: 'gh-deployer',
        jwt: await sign(key, githubClaims(Date.now())),
      }),
    });
    expect(login.status).toBe(200);
    const { accessToken } = (await login.json()) as { accessToken: string };
    const me = await app.request('/me', { headers: { authorization: `bearer ${accessToken}` } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ identityId: 'gh-deployer' });
    const missing = await app.request('/me');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="oidc-machine-auth"');
  });

  it('IP-03: forwardedClientIp takes the right-most untrusted hop, and only from a trusted socket', async () => {
    const app = new Hono<{ Bindings: { incoming: { socket: { remoteAddress: string } } } }>();
    const ipOf = forwardedClientIp((ip) => ip === '127.0.0.1' || ip.startsWith('10.0.0.'));
    app.get('/ip', (c) => c.text(ipOf(c) ?? 'none'));
    const ask = async (socket: string, xff?: string) => {
      const headers: Record<string, string> = xff === undefined ? {} : { 'x-forwarded-for': xff };
      const res = await app.request('/ip', { headers }, { incoming: { socket: { remoteAddress: socket } } });
      return res.text();
    };
    expect(await ask('127.0.0.1', '6.6.6.6, 203.0.113.9')).toBe('203.0.113.9');
    expect(await ask('127.0.0.1', '6.6.6.6, 203.0.113.9, 10.0.0.7')).toBe('203.0.113.9');
    expect(await ask('127.0.0.1', '10.0.0.8,10.0.0.7')).toBe('10.0.0.8');
    expect(await ask('127.0.0.1')).toBe('127.0.0.1');
    expect(await ask('127.0.0.1', ' , ')).toBe('none');
    expect(await ask('198.51.100.4', '10.1.1.1')).toBe('198.51.100.4');
  });
});

async function listen(app: Hono): Promise<MountedApp> {
  const server = answerClientErrors(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describeSecretsExample('hono', (auth) => listen(createSecretsApp({ auth })));
