import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { afterAll, describe, expect, it } from 'vitest';
import * as expressAdapter from '../../adapters/express/index.js';
import * as fastifyAdapter from '../../adapters/fastify/index.js';
import * as honoAdapter from '../../adapters/hono/index.js';
import * as koaAdapter from '../../adapters/koa/index.js';
import { OidcMachineAuthModule } from '../../adapters/nestjs/index.js';
import { createOidcAuth, type OAuthEndpoints, type OidcAuth } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { getWith, postForm } from '../helpers/http.js';
import { makeKey } from '../helpers/jwt.js';

// RFC 8414 §2: the metadata lists the introspection (RFC 7662) and revocation (RFC 7009) endpoints
// once the engine's introspection router is built, on every adapter; `oauthEndpoints` overrides.
const ISSUER = 'https://app.example/api/v1/auth';
const PREFIX = '/api/v1/auth';
const ROOT = '/.well-known/oauth-authorization-server/api/v1/auth';
const APPENDED = `${PREFIX}/.well-known/oauth-authorization-server`;
const key = makeKey('RS256');

interface Mounted {
  url: string;
  close: () => Promise<unknown>;
}
interface MountOptions {
  /** Build the introspection router (with a guard that refuses everyone: only the listing matters here). */
  introspection: boolean;
  oauthEndpoints?: OAuthEndpoints;
}
type Mount = (auth: OidcAuth, options: MountOptions) => Promise<Mounted>;

async function listening(server: Server): Promise<Mounted> {
  if (!server.listening) await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const mounts: Record<string, Mount> = {
  express: async (auth, { introspection, oauthEndpoints }) => {
    const app = express();
    app.use(expressAdapter.oauthMetadataHandler(auth, { oauthEndpoints }));
    app.use(PREFIX, expressAdapter.oidcAuthRouter(auth, { oauthEndpoints }));
    if (introspection) {
      const guard: express.RequestHandler = (_req, res) => void res.status(401).end();
      app.use(PREFIX, expressAdapter.oidcIntrospectionRouter(auth, { guard }));
    }
    return listening(app.listen(0, '127.0.0.1'));
  },
  koa: async (auth, { introspection, oauthEndpoints }) => {
    const app = new Koa();
    app.use(koaAdapter.oauthMetadataMiddleware(auth, { oauthEndpoints }));
    app.use(koaAdapter.oidcAuthRouter(auth, { oauthEndpoints }));
    if (introspection) {
      app.use(
        koaAdapter.oidcIntrospectionRouter(auth, {
          guard: async (ctx) => {
            ctx.status = 401;
          },
        }),
      );
    }
    return listening(app.listen(0, '127.0.0.1'));
  },
  hono: async (auth, { introspection, oauthEndpoints }) => {
    const app = new Hono();
    app.route('/', honoAdapter.oauthMetadataRoutes(auth, { oauthEndpoints }));
    app.route(PREFIX, honoAdapter.oidcAuthRoutes(auth, { oauthEndpoints }));
    if (introspection) {
      app.route(
        PREFIX,
        honoAdapter.oidcIntrospectionRoutes(auth, { guard: (c) => Promise.resolve(c.body(null, 401)) }),
      );
    }
    return listening(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
  },
  fastify: async (auth, { introspection, oauthEndpoints }) => {
    const app = Fastify();
    await app.register(fastifyAdapter.oauthMetadataPlugin, { auth, oauthEndpoints });
    await app.register(fastifyAdapter.oidcAuthPlugin, { auth, prefix: PREFIX, oauthEndpoints });
    if (introspection) {
      await app.register(fastifyAdapter.oidcIntrospectionPlugin, {
        auth,
        prefix: PREFIX,
        guard: async (_request, reply) => {
          await reply.code(401).send();
        },
      });
    }
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, close: () => app.close() };
  },
  ...Object.fromEntries(
    (['express', 'fastify'] as const).map((platform): [string, Mount] => [
      `nestjs (${platform} platform)`,
      async (auth, { introspection, oauthEndpoints }) => {
        const moduleRef = await Test.createTestingModule({
          imports: [
            OidcMachineAuthModule.forRoot({
              auth,
              ...(introspection ? { introspection: { guard: { canActivate: () => false } } } : {}),
              ...(oauthEndpoints ? { oauthEndpoints } : {}),
            }),
          ],
        }).compile();
        const app = moduleRef.createNestApplication(
          platform === 'express' ? new ExpressAdapter() : new FastifyAdapter(),
          { logger: false },
        );
        await app.listen(0, '127.0.0.1');
        const { port } = app.getHttpServer().address() as AddressInfo;
        return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
      },
    ]),
  ),
};

const TOKEN_ONLY = {
  issuer: ISSUER,
  token_endpoint: `${ISSUER}/oauth/token`,
};

const engines: OidcAuth[] = [];
function engine(): OidcAuth {
  const auth = createOidcAuth({
    identities: [githubIdentity(key)],
    signingKeys: SIGNING_KEYS,
    issuer: ISSUER,
  });
  engines.push(auth);
  return auth;
}
afterAll(async () => {
  await Promise.all(engines.map((auth) => auth.close()));
});

async function metadataAt(mounted: Mounted): Promise<Record<string, unknown>[]> {
  const out = [];
  for (const path of [ROOT, APPENDED]) {
    const res = await getWith(mounted.url, path);
    expect(res.status).toBe(200);
    out.push(res.json as Record<string, unknown>);
  }
  return out;
}

describe.each(Object.entries(mounts))('RFC 8414 metadata lists what is mounted (%s)', (_name, mount) => {
  it('RFC 8414 §2: with the introspection router built, introspection_endpoint and revocation_endpoint are listed at the issuer, without oauthEndpoints', async () => {
    const mounted = await mount(engine(), { introspection: true });
    try {
      for (const metadata of await metadataAt(mounted)) {
        expect(metadata).toMatchObject({
          ...TOKEN_ONLY,
          introspection_endpoint: `${ISSUER}/oauth/introspect`,
          revocation_endpoint: `${ISSUER}/oauth/revoke`,
        });
      }
      // The routes listed are really there (behind the host's guard, which refuses here).
      for (const path of ['/oauth/introspect', '/oauth/revoke']) {
        const res = await postForm(mounted.url, PREFIX + path, { token: 'x' });
        expect([401, 403]).toContain(res.status);
      }
    } finally {
      await mounted.close();
    }
  });

  it('RFC 8414 §2: without the introspection router only the token endpoint is listed', async () => {
    const mounted = await mount(engine(), { introspection: false });
    try {
      for (const metadata of await metadataAt(mounted)) {
        expect(metadata).toMatchObject(TOKEN_ONLY);
        expect(metadata).not.toHaveProperty('introspection_endpoint');
        expect(metadata).not.toHaveProperty('revocation_endpoint');
      }
      expect((await postForm(mounted.url, `${PREFIX}/oauth/introspect`, { token: 'x' })).status).toBe(404);
    } finally {
      await mounted.close();
    }
  });

  it('oauthEndpoints overrides what is listed, even with the introspection router built', async () => {
    const mounted = await mount(engine(), { introspection: true, oauthEndpoints: { token: true } });
    try {
      for (const metadata of await metadataAt(mounted)) {
        expect(metadata).toMatchObject(TOKEN_ONLY);
        expect(metadata).not.toHaveProperty('introspection_endpoint');
        expect(metadata).not.toHaveProperty('revocation_endpoint');
      }
    } finally {
      await mounted.close();
    }
  });
});
