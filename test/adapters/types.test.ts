import Router from '@koa/router';
import express from 'express';
import Fastify, { type FastifyRequest, type preHandlerAsyncHookHandler } from 'fastify';
import { Hono, type MiddlewareHandler } from 'hono';
import Koa, { type Middleware } from 'koa';
import { describe, expectTypeOf, it } from 'vitest';
import * as expressAdapter from '../../adapters/express/index.js';
import * as fastifyAdapter from '../../adapters/fastify/index.js';
import * as honoAdapter from '../../adapters/hono/index.js';
import * as koaAdapter from '../../adapters/koa/index.js';
import { createOidcAuth, type AuthContext } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { makeKey } from '../helpers/jwt.js';

// Handlers below are only type-checked (tsc runs over test/); the apps are built but never served.
const auth = createOidcAuth({ identities: [githubIdentity(makeKey('RS256'))], signingKeys: SIGNING_KEYS });

describe('adapter types: the auth context reaches the route without casts', () => {
  it('express: req.auth by declaration merging; AuthenticatedRequest narrows it', () => {
    const app = express();
    app.get('/x', expressAdapter.requireAccessToken(auth), (req, res) => {
      expectTypeOf(req.auth).toEqualTypeOf<AuthContext | undefined>();
      res.end();
    });
    expectTypeOf<expressAdapter.AuthenticatedRequest['auth']>().toEqualTypeOf<AuthContext>();
  });

  it('koa: ctx.state.auth through the state generic (Middleware<AuthState>)', () => {
    const guard = koaAdapter.requireAccessToken(auth);
    expectTypeOf(guard).toEqualTypeOf<Middleware<koaAdapter.AuthState>>();
    new Koa().use(guard).use((ctx) => {
      expectTypeOf(ctx.state.auth).toEqualTypeOf<AuthContext>();
    });
    const router = new Router<koaAdapter.AuthState>();
    router.get('/x', guard, (ctx) => {
      expectTypeOf(ctx.state.auth).toEqualTypeOf<AuthContext>();
    });
    const routes = koaAdapter.oidcAuthRouter(auth);
    router.post(routes.paths, routes);
    koaAdapter.requireAccessToken(auth, {
      authorize: (context, ctx) => {
        expectTypeOf(context).toEqualTypeOf<AuthContext>();
        expectTypeOf(ctx.state.auth).toEqualTypeOf<AuthContext>();
        return true;
      },
    });
  });

  it("hono: c.get('auth') through the middleware's Variables, with no global augmentation", () => {
    const guard = honoAdapter.requireAccessToken(auth);
    expectTypeOf(guard).toEqualTypeOf<MiddlewareHandler<{ Variables: { auth: AuthContext } }>>();
    const app = new Hono();
    app.route('/api/v1/auth', honoAdapter.oidcAuthRoutes(auth));
    app.get('/x', guard, (c) => {
      expectTypeOf(c.get('auth')).toEqualTypeOf<AuthContext>();
      return c.json({ ok: true });
    });
    new Hono<honoAdapter.AuthEnv>().use(guard).get('/y', (c) => {
      expectTypeOf(c.var.auth).toEqualTypeOf<AuthContext>();
      return c.text('ok');
    });
    app.get('/unguarded', (c) => {
      // @ts-expect-error: 'auth' exists only on routes behind the guard
      c.get('auth');
      return c.text('ok');
    });
  });

  it('fastify: request.auth by declaration merging; the guard is a preHandler', () => {
    const guard = fastifyAdapter.requireAccessToken(auth);
    expectTypeOf(guard).toEqualTypeOf<preHandlerAsyncHookHandler>();
    const app = Fastify();
    void app.register(fastifyAdapter.oidcAuthPlugin, { auth, prefix: '/api/v1/auth' });
    app.get('/x', { preHandler: guard }, async (request) => {
      expectTypeOf(request.auth).toEqualTypeOf<AuthContext | undefined>();
      return { ok: true };
    });
    expectTypeOf<FastifyRequest['auth']>().toEqualTypeOf<AuthContext | undefined>();
    // @ts-expect-error: the plugin needs the engine
    void app.register(fastifyAdapter.oidcAuthPlugin, { prefix: '/auth' });
  });
});
