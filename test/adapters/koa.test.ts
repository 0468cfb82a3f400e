import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  oauthMetadataMiddleware,
  oidcAuthRouter,
  oidcIntrospectionRouter,
  requireAccessToken,
  type AuthState,
} from '../../adapters/koa/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { answerClientErrors, getWith, postJson } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { createSecretsApp } from '../../examples/koa/app.js';
import { describeAdapterConformance, describeSecretsExample, type MountedApp } from './conformance.js';

async function listen(app: Koa<AuthState>): Promise<MountedApp> {
  const server: Server = answerClientErrors(app.listen(0, '127.0.0.1'));
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describeAdapterConformance('koa', async (auth, { trustProxy }) => {
  // One trusted proxy in front: ctx.ip is the right-most X-Forwarded-For hop, the one it appended.
  const app = new Koa<AuthState>(trustProxy ? { proxy: true, maxIpsCount: 1 } : {});
  app.use(oauthMetadataMiddleware(auth));
  app.use(oidcAuthRouter(auth));
  app.use(
    oidcIntrospectionRouter(auth, {
      guard: requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' }),
    }),
  );
  app.use(async (ctx, next) => {
    if (ctx.path !== '/api/v3/secrets/raw' || ctx.method !== 'GET') return next();
    await requireAccessToken(auth)(ctx, async () => {
      const { identityId, clientIp, metadata } = ctx.state.auth;
      ctx.body = { identityId, clientIp, metadata };
    });
  });
  app.use(async (ctx, next) => {
    if (ctx.path !== '/admin') return next();
    const admin = requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'admin' });
    await admin(ctx, async () => {
      ctx.body = { ok: true };
    });
  });
  return listen(app);
});

describeAdapterConformance('koa with @koa/router', async (auth, { trustProxy }) => {
  const app = new Koa<AuthState>(trustProxy ? { proxy: true, maxIpsCount: 1 } : {});
  const router = new Router<AuthState>();
  const authRoutes = oidcAuthRouter(auth);
  router.post(authRoutes.paths, authRoutes);
  const introspection = oidcIntrospectionRouter(auth, {
    guard: requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' }),
  });
  router.post(introspection.paths, introspection);
  router.get(authRoutes.getPaths, authRoutes);
  app.use(oauthMetadataMiddleware(auth));
  router.get('/api/v3/secrets/raw', requireAccessToken(auth), (ctx) => {
    const { identityId, clientIp, metadata } = ctx.state.auth;
    ctx.body = { identityId, clientIp, metadata };
  });
  router.get('/admin', requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'admin' }), (ctx) => {
    ctx.body = { ok: true };
  });
  app.use(router.routes()).use(router.allowedMethods());
  return listen(app);
});

describe('koa adapter specifics', () => {
  const key = makeKey('RS256');
  let auth: OidcAuth;
  let thrown: MountedApp;
  let prefixed: MountedApp;
  let parsed: MountedApp;

  beforeAll(async () => {
    auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });

    // throwErrors: Koa's default onerror renders status, headers and the exposed message.
    const throwing = new Koa<AuthState>();
    throwing.on('error', () => {});
    throwing.use(oidcAuthRouter(auth));
    throwing.use(requireAccessToken(auth, { throwErrors: true }));
    throwing.use((ctx) => {
      ctx.body = { identityId: ctx.state.auth.identityId };
    });
    thrown = await listen(throwing);

    const custom = new Koa<AuthState>();
    custom.use(oidcAuthRouter(auth, { prefix: '/auth/' }));
    prefixed = await listen(custom);

    // A host body parser already ran: its ctx.request.body is used as is.
    const withParser = new Koa<AuthState>();
    withParser.use(async (ctx, next) => {
      (ctx.request as { body?: unknown }).body = { identityId: 'gh-deployer', jwt: 'garbage' };
      await next();
    });
    withParser.use(oidcAuthRouter(auth));
    parsed = await listen(withParser);
  });
  afterAll(async () => {
    await thrown?.close();
    await prefixed?.close();
    await parsed?.close();
    await auth?.close();
  });

  it('throwErrors: errors reach Koa onerror with their status, challenge and exposed message', async () => {
    const missing = await getWith(thrown.url, '/anything');
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="oidc-machine-auth"');
    expect(missing.headers['content-type']).toMatch(/text\/plain/);
    expect(missing.text).toBe('Access token is required');

    const malformed = await getWith(thrown.url, '/anything', ['authorization', 'Bearer a b']);
    expect(malformed.status).toBe(400);
    expect(malformed.headers['www-authenticate']).toBe(
      'Bearer realm="oidc-machine-auth", error="invalid_request"',
    );

    const login = await postJson(thrown.url, '/api/v1/auth/oidc-auth/login', {
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(Date.now())),
    });
    expect(login.status).toBe(200);
    const ok = await getWith(thrown.url, '/anything', ['authorization', `Bearer ${login.json.accessToken}`]);
    expect(ok.json).toEqual({ identityId: 'gh-deployer' });
  });

  it('serves the routes under a custom prefix (trailing slash ignored) and nowhere else', async () => {
    const res = await postJson(prefixed.url, '/auth/oidc-auth/login', { identityId: 'gh-deployer' });
    expect(res.status).toBe(422);
    expect((await postJson(prefixed.url, '/api/v1/auth/oidc-auth/login', {})).status).toBe(404);
  });

  it('uses ctx.request.body when a host body parser already read the body', async () => {
    const res = await postJson(parsed.url, '/api/v1/auth/oidc-auth/login', { ignored: true });
    expect(res.status).toBe(401);
    expect(res.json.reasonCode).toBe('invalid_credentials');
  });
});

describeSecretsExample('koa', (auth) => listen(createSecretsApp({ auth })));
