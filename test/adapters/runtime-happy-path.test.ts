/**
 * The adapter happy path on whichever runtime runs this file: `.ci/run` runs it on Node 20, 22 and
 * 24, Bun and Deno, and checks the runtime named in the suite title (docs/RUNTIMES.md).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as expressAdapter from '../../adapters/express/index.js';
import * as fastifyAdapter from '../../adapters/fastify/index.js';
import * as honoAdapter from '../../adapters/hono/index.js';
import * as koaAdapter from '../../adapters/koa/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { getWith, postJson } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import type { MountedApp } from './conformance.js';

const runtime = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
/** `node v24.21.0`, `bun 1.4.5` or `deno 2.9.6`: Bun and Deno also fill `process.versions.node`. */
const RUNTIME = runtime.Deno
  ? `deno ${runtime.Deno.version.deno}`
  : runtime.Bun
    ? `bun ${runtime.Bun.version}`
    : `node ${process.version}`;

const LOGIN = '/api/v1/auth/oidc-auth/login';
const RENEW = '/api/v1/auth/token/renew';
const REVOKE = '/api/v1/auth/token/revoke';
const SECRETS = '/api/v3/secrets/raw';

async function listening(server: Server): Promise<MountedApp> {
  if (!server.listening) await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const MOUNTS: Record<string, (auth: OidcAuth) => Promise<MountedApp>> = {
  express: (auth) => {
    const app = express();
    app.use('/api/v1/auth', expressAdapter.oidcAuthRouter(auth));
    app.get(SECRETS, expressAdapter.requireAccessToken(auth), (req, res) => {
      res.json({ identityId: (req as expressAdapter.AuthenticatedRequest).auth.identityId });
    });
    return listening(app.listen(0, '127.0.0.1'));
  },
  koa: (auth) => {
    const app = new Koa<koaAdapter.AuthState>();
    app.use(koaAdapter.oidcAuthRouter(auth));
    const guard = koaAdapter.requireAccessToken(auth);
    app.use(async (ctx, next) => {
      if (ctx.path !== SECRETS) return next();
      await guard(ctx, async () => {
        ctx.body = { identityId: ctx.state.auth.identityId };
      });
    });
    return listening(app.listen(0, '127.0.0.1'));
  },
  hono: (auth) => {
    const app = new Hono();
    app.route('/api/v1/auth', honoAdapter.oidcAuthRoutes(auth));
    app.get(SECRETS, honoAdapter.requireAccessToken(auth), (c) =>
      c.json({ identityId: c.get('auth').identityId }),
    );
    return listening(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
  },
  fastify: async (auth) => {
    const app = Fastify();
    await app.register(fastifyAdapter.oidcAuthPlugin, { auth, prefix: '/api/v1/auth' });
    app.get(SECRETS, { preHandler: fastifyAdapter.requireAccessToken(auth) }, async (request) => ({
      identityId: request.auth!.identityId,
    }));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, close: () => app.close() };
  },
};

describe(`adapter happy path on ${RUNTIME}`, () => {
  const key = makeKey('RS256');
  let auth: OidcAuth;
  beforeAll(() => {
    auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
  });
  afterAll(() => auth?.close());

  for (const [framework, mount] of Object.entries(MOUNTS)) {
    it(`${framework}: login → guarded call → renew → guarded call → revoke → refused`, async () => {
      const app = await mount(auth);
      try {
        const jwt = await sign(key, githubClaims(Date.now()));
        const login = await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt });
        expect(login.status).toBe(200);
        const token: string = login.json.accessToken;
        const bearer = (t: string) => ['authorization', `Bearer ${t}`];

        const first = await getWith(app.url, SECRETS, bearer(token));
        expect(first.status).toBe(200);
        expect(first.json).toEqual({ identityId: 'gh-deployer' });

        const renewed = await postJson(app.url, RENEW, { accessToken: token });
        expect(renewed.status).toBe(200);
        const next: string = renewed.json.accessToken;
        expect(next).not.toBe(token);
        expect((await getWith(app.url, SECRETS, bearer(next))).status).toBe(200);

        expect((await postJson(app.url, REVOKE, { accessToken: next })).status).toBe(200);
        const refused = await getWith(app.url, SECRETS, bearer(next));
        expect(refused.status).toBe(401);
        expect(refused.json.reasonCode).toBe('token_revoked');
      } finally {
        await app.close();
      }
    });
  }
});
