import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Injectable, Req, UseGuards } from '@nestjs/common';
import { AuthGuard, PassportStrategy } from '@nestjs/passport';
import { ExpressAdapter } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import express from 'express';
import { Passport } from 'passport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  oauthMetadataHandler,
  oidcAuthRouter,
  oidcIntrospectionRouter,
} from '../../adapters/express/index.js';
import { Strategy, oidcAuthErrorHandler } from '../../adapters/passport/index.js';
import { createOidcAuth, type AuthContext, type OidcAuth } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { answerClientErrors, getWith, postJson } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { describeAdapterConformance, type MountedApp } from './conformance.js';

function listen(app: express.Express): Promise<MountedApp> {
  const server = answerClientErrors(app.listen(0, '127.0.0.1'));
  return new Promise((resolve) =>
    server.once('listening', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    }),
  );
}

describeAdapterConformance('passport (express)', async (auth, { trustProxy }) => {
  const passport = new Passport();
  passport.use(new Strategy({ auth }));
  passport.use(new Strategy({ auth, name: 'oidc-admin', authorize: (ctx) => ctx.metadata.role === 'admin' }));
  passport.use(
    new Strategy({
      auth,
      name: 'oidc-introspector',
      authorize: (ctx) => ctx.metadata.role === 'introspector',
    }),
  );
  const authenticate = (name: string) => passport.authenticate(name, { session: false, failWithError: true });
  const app = express();
  if (trustProxy) app.set('trust proxy', 'loopback');
  app.use(oauthMetadataHandler(auth));
  app.use('/api/v1/auth', oidcAuthRouter(auth));
  app.use('/api/v1/auth', oidcIntrospectionRouter(auth, { guard: authenticate('oidc-introspector') }));
  app.get('/api/v3/secrets/raw', authenticate('oidc-machine-auth'), (req, res) => {
    const { identityId, clientIp, metadata } = req.user as AuthContext;
    res.json({ identityId, clientIp, metadata });
  });
  app.get('/admin', authenticate('oidc-admin'), (_req, res) => {
    res.json({ ok: true });
  });
  app.use(oidcAuthErrorHandler(auth));
  return listen(app);
});

describe('passport strategy specifics', () => {
  const key = makeKey('RS256');
  let auth: OidcAuth;
  let token: string;
  beforeAll(async () => {
    auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    const jwt = await sign(key, githubClaims(Date.now()));
    token = (await auth.login({ identityId: 'gh-deployer', jwt })).accessToken;
  });
  afterAll(() => auth?.close());

  it('is named oidc-machine-auth by default and requires an engine', () => {
    expect(new Strategy({ auth }).name).toBe('oidc-machine-auth');
    expect(() => new Strategy({} as never)).toThrow(/options\.auth/);
  });

  it("without the error handler, Passport's own refusal carries our challenge and status (RFC 6750 §3)", async () => {
    const passport = new Passport();
    passport.use(new Strategy({ auth }));
    const app = express();
    app.get('/r', passport.authenticate('oidc-machine-auth', { session: false }), (req, res) => {
      res.json({ id: (req.user as AuthContext).identityId });
    });
    const server = await listen(app);
    try {
      expect((await getWith(server.url, '/r', ['authorization', `Bearer ${token}`])).json).toEqual({
        id: 'gh-deployer',
      });
      const none = await getWith(server.url, '/r');
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer realm="oidc-machine-auth"');
      const forged = await getWith(server.url, '/r', ['authorization', 'Bearer omat_nope']);
      expect(forged.status).toBe(401);
      expect(forged.headers['www-authenticate']).toBe(
        'Bearer realm="oidc-machine-auth", error="invalid_token"',
      );
      const malformed = await getWith(server.url, '/r', ['authorization', 'Bearer a b']);
      expect(malformed.status).toBe(400);
    } finally {
      await server.close();
    }
  });

  it('a verify callback maps the context to req.user, refuses with done(null, false) (401 invalid_token), fails with done(err)', async () => {
    const passport = new Passport();
    passport.use(
      new Strategy({ auth }, (context, done) => {
        if (context.metadata.role === 'deployer') return done(null, { name: context.identityId });
        done(null, false);
      }),
    );
    passport.use(
      'broken',
      new Strategy({ auth, name: 'broken' }, (_context, done) => done(new Error('verify failed'))),
    );
    const app = express();
    app.get('/r', passport.authenticate('oidc-machine-auth', { session: false }), (req, res) => {
      res.json(req.user);
    });
    app.get('/b', passport.authenticate('broken', { session: false }), (_req, res) => {
      res.json({});
    });
    app.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(599).json({ handled: true });
    });
    const server = await listen(app);
    try {
      expect((await getWith(server.url, '/r', ['authorization', `Bearer ${token}`])).json).toEqual({
        name: 'gh-deployer',
      });
      expect((await getWith(server.url, '/b', ['authorization', `Bearer ${token}`])).status).toBe(599);
    } finally {
      await server.close();
    }
    const refusing = new Passport();
    refusing.use(new Strategy({ auth }, (_context, done) => done(null, false)));
    const app2 = express();
    app2.get('/r', refusing.authenticate('oidc-machine-auth', { session: false }), (_req, res) => {
      res.json({});
    });
    const server2 = await listen(app2);
    try {
      const res = await getWith(server2.url, '/r', ['authorization', `Bearer ${token}`]);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="oidc-machine-auth", error="invalid_token"');
    } finally {
      await server2.close();
    }
  });

  it('a failed strategy lets the next one run (users and machines side by side)', async () => {
    const passport = new Passport();
    passport.use(new Strategy({ auth }));
    passport.use(
      'anonymous-fallback',
      new (class extends Strategy {
        override authenticate() {
          this.success({ identityId: 'fallback' } as AuthContext);
        }
      })({ auth }),
    );
    const app = express();
    app.get(
      '/r',
      passport.authenticate(['oidc-machine-auth', 'anonymous-fallback'], { session: false }),
      (req, res) => {
        res.json({ id: (req.user as AuthContext).identityId });
      },
    );
    const server = await listen(app);
    try {
      expect((await getWith(server.url, '/r')).json).toEqual({ id: 'fallback' });
      expect((await getWith(server.url, '/r', ['authorization', `Bearer ${token}`])).json).toEqual({
        id: 'gh-deployer',
      });
    } finally {
      await server.close();
    }
  });

  it('a store outage is this.error: 503 with Retry-After through the error handler, never a refusal', async () => {
    const down = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    const jwt = await sign(key, githubClaims(Date.now()));
    const downToken = (await down.login({ identityId: 'gh-deployer', jwt })).accessToken;
    down.tokens.consume = async () => {
      throw new Error('ECONNREFUSED 10.0.0.1:6379');
    };
    const passport = new Passport();
    passport.use(new Strategy({ auth: down }));
    const app = express();
    app.get(
      '/r',
      passport.authenticate('oidc-machine-auth', { session: false, failWithError: true }),
      (_req, res) => {
        res.json({ ok: true });
      },
    );
    app.use(oidcAuthErrorHandler(down));
    const server = await listen(app);
    try {
      const res = await getWith(server.url, '/r', ['authorization', `Bearer ${downToken}`]);
      expect(res.status).toBe(503);
      expect(res.json.reasonCode).toBe('store_unavailable');
      expect(res.headers['retry-after']).toBeDefined();
    } finally {
      await server.close();
      await down.close();
    }
  });

  it('works with @nestjs/passport: PassportStrategy(Strategy) behind AuthGuard, validate() maps the auth context to req.user', async () => {
    @Injectable()
    class MachineStrategy extends PassportStrategy(Strategy, 'oidc-machine-auth') {
      constructor() {
        super({ auth });
      }
      validate(context: AuthContext) {
        return context.identityId === 'gh-deployer' ? { machine: context.identityId } : null;
      }
    }
    @Controller()
    class SecretsController {
      @Get('/secrets')
      @UseGuards(AuthGuard('oidc-machine-auth'))
      secrets(@Req() req: { user: { machine: string } }) {
        return req.user;
      }
    }
    const moduleRef = await Test.createTestingModule({
      controllers: [SecretsController],
      providers: [MachineStrategy],
    }).compile();
    const app = moduleRef.createNestApplication(new ExpressAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    try {
      expect((await getWith(url, '/secrets', ['authorization', `Bearer ${token}`])).json).toEqual({
        machine: 'gh-deployer',
      });
      const refused = await getWith(url, '/secrets', ['authorization', 'Bearer omat_nope']);
      expect(refused.status).toBe(401);
      const login = await postJson(url, '/secrets', {});
      expect(login.status).toBe(404);
    } finally {
      await app.close();
    }
  });
});
