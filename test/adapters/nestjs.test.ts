import type { Server } from 'node:http';
import 'reflect-metadata';
import {
  Catch,
  Controller,
  Get,
  Module,
  Post,
  UnauthorizedException,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type CanActivate,
  type ExceptionFilter,
  type ExecutionContext,
  type INestApplication,
  type ModuleMetadata,
} from '@nestjs/common';
import { ConfigModule as NestConfigModule, ConfigService } from '@nestjs/config';
import { APP_GUARD } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type express from 'express';
import * as oauth from 'oauth4webapi';
import { describe, expect, it, vi } from 'vitest';
import {
  OIDC_MACHINE_AUTH,
  OidcAuthBodyErrorFilter,
  OidcAuthContext,
  OidcAuthGuard,
  OidcAuthHttpException,
  OidcAuthorize,
  OidcMachineAuthModule,
  OidcPublic,
} from '../../adapters/nestjs/index.js';
import {
  ConfigError,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE,
  createOidcAuth,
  type AuthContext,
  type OidcAuth,
} from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { answerClientErrors, getWith, postForm, postJson, request } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { describeAdapterConformance, type MountedApp } from './conformance.js';

/** The conformance host routes, behind the guard per route. */
@Controller()
class HostController {
  @Get('/api/v3/secrets/raw')
  @UseGuards(OidcAuthGuard)
  secrets(@OidcAuthContext() auth: AuthContext) {
    const { identityId, clientIp, metadata } = auth;
    return { identityId, clientIp, metadata };
  }

  @Get('/admin')
  @UseGuards(OidcAuthGuard)
  @OidcAuthorize((auth) => auth.metadata.role === 'admin')
  admin() {
    return { ok: true };
  }
}

/** Listen on 127.0.0.1 with an ephemeral port and return the URL. */
export async function listen(app: INestApplication): Promise<MountedApp> {
  await app.listen(0, '127.0.0.1');
  // Requests Node itself refuses (headers over its limit) get a sized answer, as the other adapters'
  // test servers give them (test/helpers/http.ts); Fastify's platform answers them so already.
  if (app.getHttpAdapter().getType() === 'express') answerClientErrors(app.getHttpServer() as Server);
  const address = app.getHttpServer().address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, close: () => app.close() };
}

async function hostModule(auth: OidcAuth) {
  return Test.createTestingModule({
    imports: [
      OidcMachineAuthModule.forRoot({
        auth,
        introspection: {
          guard: OidcAuthGuard,
          authorize: (caller) => caller.metadata.role === 'introspector',
        },
      }),
    ],
    controllers: [HostController],
  }).compile();
}

describeAdapterConformance('nestjs (express platform)', async (auth, { trustProxy }) => {
  const moduleRef = await hostModule(auth);
  const app = moduleRef.createNestApplication<NestExpressApplication>(new ExpressAdapter(), {
    logger: false,
  });
  if (trustProxy) app.set('trust proxy', 'loopback');
  app.useGlobalFilters(app.get(OidcAuthBodyErrorFilter));
  return listen(app);
});

describeAdapterConformance('nestjs (fastify platform)', async (auth, { trustProxy }) => {
  const moduleRef = await hostModule(auth);
  const app = moduleRef.createNestApplication(
    // Nest's Fastify JSON parser refuses `__proto__` and `constructor.prototype` keys unless told to drop them (HTTP-06).
    new FastifyAdapter({
      onProtoPoisoning: 'remove',
      onConstructorPoisoning: 'remove',
      ...(trustProxy ? { trustProxy: 'loopback' } : {}),
    }),
    { logger: false },
  );
  app.useGlobalFilters(app.get(OidcAuthBodyErrorFilter));
  return listen(app);
});

describe('nestjs module specifics', () => {
  const key = makeKey('RS256');
  const CONFIG = Symbol('config');
  /** A stand-in for ConfigService: a provider in another module the factory injects. */
  @Module({ providers: [{ provide: CONFIG, useValue: { realm: 'from-config' } }], exports: [CONFIG] })
  class ConfigModule {}

  @Controller('open')
  class OpenController {
    @Get('health')
    @OidcPublic()
    health() {
      return { ok: true };
    }

    @Get('me')
    me(@OidcAuthContext() auth: AuthContext) {
      return { identityId: auth.identityId, tokenId: typeof auth.tokenId };
    }
  }

  /** A host filter that answers its own shape: it can read our body and headers off the exception. */
  @Catch(OidcAuthHttpException)
  class HostFilter implements ExceptionFilter {
    catch(exception: OidcAuthHttpException, host: ArgumentsHost) {
      const res = host
        .switchToHttp()
        .getResponse<express.Response | { code(status: number): { send(body: unknown): void } }>();
      const body = {
        host: true,
        reasonCode: exception.reasonCode,
        body: exception.getResponse(),
        headers: exception.headers,
      };
      if ('code' in res) res.code(exception.getStatus()).send(body);
      else res.status(exception.getStatus()).json(body);
    }
  }

  async function start(
    imports: ModuleMetadata['imports'],
    controllers: Array<new (...args: never[]) => unknown> = [OpenController],
    platform: 'express' | 'fastify' = 'express',
  ) {
    const moduleRef = await Test.createTestingModule({ imports, controllers }).compile();
    const app = moduleRef.createNestApplication(
      platform === 'express' ? new ExpressAdapter() : new FastifyAdapter(),
      { logger: false },
    );
    return { app, ...(await listen(app)) };
  }

  const idpToken = () => sign(key, githubClaims(Date.now()));

  const exchangeForm = async (fields: Record<string, string> = {}) => ({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: await idpToken(),
    subject_token_type: TOKEN_TYPE.jwt,
    client_id: 'gh-deployer',
    ...fields,
  });

  it('introspection without a guard is refused when the module is defined: ConfigError on field guard (forRoot and forRootAsync)', () => {
    const auth = { identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS };
    for (const introspection of [
      {},
      { guard: [] },
      { guard: 'OidcAuthGuard' },
      { guard: [OidcAuthGuard, null] },
    ]) {
      const define = () => OidcMachineAuthModule.forRoot({ auth, introspection: introspection as never });
      expect(define).toThrow(ConfigError);
      expect(define).toThrow(/^guard: is required/);
      expect(() =>
        OidcMachineAuthModule.forRootAsync({
          useFactory: () => ({ auth }),
          introspection: introspection as never,
        }),
      ).toThrow(ConfigError);
    }
    // A guard instance is taken as well as a class.
    expect(() =>
      OidcMachineAuthModule.forRoot({ auth, introspection: { guard: { canActivate: () => true } } }),
    ).not.toThrow();
  });

  for (const platform of ['express', 'fastify'] as const) {
    it(`RFC 8693: the token route is mounted under the prefix; introspection and revocation only when configured (${platform})`, async () => {
      const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
      const { url, close } = await start(
        [OidcMachineAuthModule.forRoot({ auth, prefix: '/v2/machine-auth' })],
        [],
        platform,
      );
      try {
        const res = await postForm(url, '/v2/machine-auth/oauth/token', await exchangeForm());
        expect(res.status).toBe(200);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.json).toMatchObject({ token_type: 'Bearer', issued_token_type: TOKEN_TYPE.accessToken });
        const bearer = ['authorization', `Bearer ${res.json.access_token}`];
        for (const path of ['/v2/machine-auth/oauth/introspect', '/v2/machine-auth/oauth/revoke']) {
          expect((await postForm(url, path, { token: res.json.access_token }, bearer)).status).toBe(404);
        }
        await expect(auth.authenticate(res.json.access_token)).resolves.toMatchObject({
          identityId: 'gh-deployer',
        });
      } finally {
        await close();
        await auth.close();
      }
    });

    it(`a host guard instance decides who may introspect: refusing, Nest's 403; letting through, RFC 7662 §2.2 (${platform})`, async () => {
      const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
      const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() });
      const allow = { open: false };
      const { url, close } = await start(
        [
          OidcMachineAuthModule.forRoot({
            auth,
            introspection: { guard: { canActivate: () => allow.open } },
          }),
        ],
        [],
        platform,
      );
      try {
        const refused = await postForm(url, '/api/v1/auth/oauth/introspect', { token: accessToken });
        expect(refused.status).toBe(403);
        expect(refused.text).not.toContain('active');
        allow.open = true;
        const live = await postForm(url, '/api/v1/auth/oauth/introspect', { token: accessToken });
        expect(live.status).toBe(200);
        expect(live.json).toMatchObject({ active: true, client_id: 'gh-deployer', token_type: 'Bearer' });
        expect((await postForm(url, '/api/v1/auth/oauth/revoke', { token: accessToken })).status).toBe(200);
        const gone = await postForm(url, '/api/v1/auth/oauth/introspect', { token: accessToken });
        expect(gone.json).toEqual({ active: false });
      } finally {
        await close();
        await auth.close();
      }
    });
  }

  for (const platform of ['express', 'fastify'] as const) {
    it(`oauth4webapi (a real OAuth client, as its docs say): RFC 8693 exchange, RFC 7662 introspection and RFC 7009 revocation with client_secret_basic checked by a host guard (${platform})`, async () => {
      const auth = createOidcAuth({
        identities: [githubIdentity(key, { scopes: ['deploy', 'secrets:read'] })],
        signingKeys: SIGNING_KEYS,
      });
      /** RFC 6749 §2.3.1: HTTP Basic with the client id and secret each form-urlencoded first. */
      const basicCredentials = (header = '') => {
        if (!header.startsWith('Basic ')) return '';
        const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
        const [id = '', secret = ''] = decoded.split(':');
        const decode = (text: string) => decodeURIComponent(text.replace(/\+/g, ' '));
        return `${decode(id)}:${decode(secret)}`;
      };
      /** RFC 7662 §2.1: the resource server authenticates as a client; this host checks HTTP Basic. */
      const basicGuard: CanActivate = {
        canActivate(context: ExecutionContext) {
          const req = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>();
          if (basicCredentials(req.headers.authorization) !== 'resource-server:rs-secret') {
            throw new UnauthorizedException();
          }
          return true;
        },
      };
      const { url, close } = await start(
        [OidcMachineAuthModule.forRoot({ auth, introspection: { guard: basicGuard } })],
        [],
        platform,
      );
      const as: oauth.AuthorizationServer = {
        issuer: `${url}/api/v1/auth`,
        token_endpoint: `${url}/api/v1/auth/oauth/token`,
        introspection_endpoint: `${url}/api/v1/auth/oauth/introspect`,
        revocation_endpoint: `${url}/api/v1/auth/oauth/revoke`,
      };
      const client: oauth.Client = { client_id: 'gh-deployer' };
      const resourceServer: oauth.Client = { client_id: 'resource-server' };
      // oauth4webapi refuses http:// unless told; its documented option, for a test server on loopback.
      const insecure = { [oauth.allowInsecureRequests]: true } as const;
      try {
        const exchanged = await oauth.processGenericTokenEndpointResponse(
          as,
          client,
          await oauth.genericTokenEndpointRequest(
            as,
            client,
            oauth.None(),
            TOKEN_EXCHANGE_GRANT,
            { subject_token: await idpToken(), subject_token_type: TOKEN_TYPE.jwt, scope: 'deploy' },
            insecure,
          ),
        );
        expect(exchanged.issued_token_type).toBe(TOKEN_TYPE.accessToken);
        const refused = await oauth.genericTokenEndpointRequest(
          as,
          client,
          oauth.None(),
          TOKEN_EXCHANGE_GRANT,
          { subject_token: 'a.b.c', subject_token_type: TOKEN_TYPE.jwt },
          insecure,
        );
        const error = await oauth.processGenericTokenEndpointResponse(as, client, refused).catch((e) => e);
        expect(error).toBeInstanceOf(oauth.ResponseBodyError);
        expect((error as oauth.ResponseBodyError).error).toBe('invalid_grant');
        const introspect = async (secret = 'rs-secret') =>
          oauth.introspectionRequest(
            as,
            resourceServer,
            oauth.ClientSecretBasic(secret),
            exchanged.access_token,
            insecure,
          );
        expect((await introspect('wrong')).status).toBe(401);
        const live = await oauth.processIntrospectionResponse(as, resourceServer, await introspect());
        expect(live).toMatchObject({ active: true, client_id: 'gh-deployer', scope: 'deploy' });
        const revoked = await oauth.revocationRequest(
          as,
          resourceServer,
          oauth.ClientSecretBasic('rs-secret'),
          exchanged.access_token,
          insecure,
        );
        await expect(oauth.processRevocationResponse(revoked)).resolves.toBeUndefined();
        expect(await oauth.processIntrospectionResponse(as, resourceServer, await introspect())).toEqual({
          active: false,
        });
      } finally {
        await close();
        await auth.close();
      }
    });
  }

  it('RFC 8414: oauthEndpoints lists the introspection and revocation endpoints, at the root path (outside a global prefix) and under the prefix; without an issuer both metadata routes are 404 and nothing is at the root', async () => {
    const issuer = 'https://app.example/machine';
    const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS, issuer });
    const introspection = { guard: OidcAuthGuard };
    const endpoints = { token: true, introspection: true, revocation: true };
    const listed = await start(
      [OidcMachineAuthModule.forRoot({ auth, prefix: '/machine', introspection, oauthEndpoints: endpoints })],
      [],
    );
    try {
      for (const path of [
        '/.well-known/oauth-authorization-server/machine',
        '/machine/.well-known/oauth-authorization-server',
      ]) {
        const res = await getWith(listed.url, path);
        expect(res.status).toBe(200);
        expect(res.json).toMatchObject({
          issuer,
          token_endpoint: `${issuer}/oauth/token`,
          introspection_endpoint: `${issuer}/oauth/introspect`,
          revocation_endpoint: `${issuer}/oauth/revoke`,
        });
      }
    } finally {
      await listed.close();
    }
    // A global prefix moves the prefixed routes, never the root-path metadata.
    const moduleRef = await Test.createTestingModule({
      imports: [OidcMachineAuthModule.forRoot({ auth, prefix: '/machine' })],
    }).compile();
    const app = moduleRef.createNestApplication(new ExpressAdapter(), { logger: false });
    app.setGlobalPrefix('api');
    const prefixed = await listen(app);
    try {
      expect((await getWith(prefixed.url, '/.well-known/oauth-authorization-server/machine')).status).toBe(
        200,
      );
      expect((await getWith(prefixed.url, '/api/machine/.well-known/jwks.json')).status).toBe(200);
      expect((await getWith(prefixed.url, '/machine/.well-known/jwks.json')).status).toBe(404);
    } finally {
      await prefixed.close();
      await auth.close();
    }
    const bare = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    const none = await start([OidcMachineAuthModule.forRoot({ auth: bare })], [], 'fastify');
    try {
      for (const path of [
        '/api/v1/auth/.well-known/jwks.json',
        '/api/v1/auth/.well-known/oauth-authorization-server',
      ]) {
        const res = await getWith(none.url, path);
        expect(res.status).toBe(404);
        expect(res.json.reasonCode).toBe('invalid_config');
      }
      expect((await getWith(none.url, '/.well-known/oauth-authorization-server/api/v1/auth')).status).toBe(
        404,
      );
    } finally {
      await none.close();
      await bare.close();
    }
  });

  it('with globalGuard and introspection guard OidcAuthGuard, the guard runs once per request: one token use spent, not two', async () => {
    const auth = createOidcAuth({
      identities: [
        githubIdentity(key),
        githubIdentity(key, {
          identityId: 'introspector',
          accessTokenNumUsesLimit: 2,
          metadata: { role: 'introspector' },
        }),
      ],
      signingKeys: SIGNING_KEYS,
    });
    const { accessToken: target } = await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() });
    const { accessToken: caller } = await auth.login({ identityId: 'introspector', jwt: await idpToken() });
    const { url, close } = await start([
      OidcMachineAuthModule.forRoot({
        auth,
        globalGuard: true,
        introspection: { guard: OidcAuthGuard, authorize: (a) => a.metadata.role === 'introspector' },
      }),
    ]);
    try {
      const bearer = ['authorization', `Bearer ${caller}`];
      for (let use = 1; use <= 2; use++) {
        const res = await postForm(url, '/api/v1/auth/oauth/introspect', { token: target }, bearer);
        expect(res.status).toBe(200);
        expect(res.json.active).toBe(true);
      }
      const spent = await postForm(url, '/api/v1/auth/oauth/introspect', { token: target }, bearer);
      expect(spent.status).toBe(401);
    } finally {
      await close();
      await auth.close();
    }
  });

  it('on Express with bodyParser: false the token route reads the form itself; 413 past bodyLimit (chunked) and JSON 415, as RFC 6749 §5.2 bodies', async () => {
    const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    const moduleRef = await Test.createTestingModule({
      imports: [OidcMachineAuthModule.forRoot({ auth, bodyLimit: 4096 })],
    }).compile();
    const app = moduleRef.createNestApplication(new ExpressAdapter(), { logger: false, bodyParser: false });
    const { url, close } = await listen(app);
    try {
      const ok = await postForm(url, '/api/v1/auth/oauth/token', await exchangeForm());
      expect(ok.status).toBe(200);
      expect(typeof ok.json.access_token).toBe('string');
      const chunked = await request(url, 'POST', '/api/v1/auth/oauth/token', {
        headers: ['content-type', 'application/x-www-form-urlencoded', 'transfer-encoding', 'chunked'],
        body: new URLSearchParams(await exchangeForm({ subject_token: 'a'.repeat(8000) })).toString(),
      });
      expect(chunked.status).toBe(413);
      expect(chunked.headers['cache-control']).toBe('no-store');
      expect(chunked.json).toMatchObject({ error: 'invalid_request', reasonCode: 'body_too_large' });
      const json = await postJson(url, '/api/v1/auth/oauth/token', await exchangeForm());
      expect(json.status).toBe(415);
      expect(Object.keys(json.json).sort()).toEqual(['error', 'error_description', 'reasonCode', 'reqId']);
    } finally {
      await close();
      await auth.close();
    }
  });

  for (const platform of ['express', 'fastify'] as const) {
    it(`forRootAsync with @nestjs/config: the engine's options come from ConfigService (ConfigModule.forRoot), as docs/NESTJS.md shows (${platform})`, async () => {
      const { url, close } = await start(
        [
          OidcMachineAuthModule.forRootAsync({
            imports: [
              NestConfigModule.forRoot({
                ignoreEnvFile: true,
                load: [() => ({ OIDC_AUTH_SIGNING_KEY: SIGNING_KEYS.k1, OIDC_AUTH_REALM: 'config-service' })],
              }),
            ],
            inject: [ConfigService],
            useFactory: (config: ConfigService) => ({
              auth: {
                identities: [githubIdentity(key)],
                signingKeys: { k1: config.getOrThrow<string>('OIDC_AUTH_SIGNING_KEY') },
                realm: config.get<string>('OIDC_AUTH_REALM'),
              },
            }),
            globalGuard: true,
          }),
        ],
        [OpenController],
        platform,
      );
      try {
        const none = await getWith(url, '/open/me');
        expect(none.status).toBe(401);
        expect(none.headers['www-authenticate']).toBe('Bearer realm="config-service"');
        const login = await postJson(url, '/api/v1/auth/oidc-auth/login', {
          identityId: 'gh-deployer',
          jwt: await idpToken(),
        });
        expect(login.status).toBe(200);
        const me = await getWith(url, '/open/me', ['authorization', `Bearer ${login.json.accessToken}`]);
        expect(me.json).toEqual({ identityId: 'gh-deployer', tokenId: 'string' });
      } finally {
        await close();
      }
    });
  }

  it('forRootAsync builds the engine from an injected provider and closes the engine it created on app.close()', async () => {
    let created: OidcAuth | undefined;
    const { app, url, close } = await start([
      OidcMachineAuthModule.forRootAsync({
        imports: [ConfigModule],
        inject: [CONFIG],
        globalGuard: true,
        useFactory: (config: { realm: string }) => ({
          auth: { identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS, realm: config.realm },
        }),
      }),
    ]);
    let closing: ReturnType<typeof vi.spyOn>;
    try {
      created = app.get<OidcAuth>(OIDC_MACHINE_AUTH);
      closing = vi.spyOn(created, 'close');
      expect(created.realm).toBe('from-config');
      const none = await getWith(url, '/open/me');
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer realm="from-config"');
      const login = await postJson(url, '/api/v1/auth/oidc-auth/login', {
        identityId: 'gh-deployer',
        jwt: await idpToken(),
      });
      expect(login.status).toBe(200);
      const me = await getWith(url, '/open/me', ['authorization', `Bearer ${login.json.accessToken}`]);
      expect(me.json).toEqual({ identityId: 'gh-deployer', tokenId: 'string' });
    } finally {
      await close();
    }
    expect(closing!).toHaveBeenCalledTimes(1);
  });

  it('the global guard (globalGuard: true) refuses every route but @OidcPublic() ones and the auth routes', async () => {
    const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    const { url, close } = await start([OidcMachineAuthModule.forRoot({ auth, globalGuard: true })]);
    const closing = vi.spyOn(auth, 'close');
    try {
      expect((await getWith(url, '/open/health')).json).toEqual({ ok: true });
      const me = await getWith(url, '/open/me');
      expect(me.status).toBe(401);
      expect(me.json.reasonCode).toBe('missing_token');
      const renew = await postJson(url, '/api/v1/auth/token/renew', { accessToken: 'omat_nope' });
      expect(renew.json.reasonCode).toBe('invalid_token'); // the route ran: not the guard's missing_token
    } finally {
      await close();
      expect(closing).not.toHaveBeenCalled(); // an engine passed in stays the caller's
      await auth.close();
    }
  });

  it('APP_GUARD with useExisting: OidcAuthGuard works the same as globalGuard', async () => {
    const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    @Module({ providers: [{ provide: APP_GUARD, useExisting: OidcAuthGuard }] })
    class GuardedModule {}
    const { url, close } = await start([OidcMachineAuthModule.forRoot({ auth }), GuardedModule]);
    try {
      expect((await getWith(url, '/open/health')).status).toBe(200);
      expect((await getWith(url, '/open/me')).status).toBe(401);
    } finally {
      await close();
      await auth.close();
    }
  });

  it('a prefix moves the routes; prefix: false mounts none', async () => {
    const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    const body = async () => ({ identityId: 'gh-deployer', jwt: await idpToken() });
    const moved = await start([OidcMachineAuthModule.forRoot({ auth, prefix: '/v2/machine-auth' })]);
    try {
      expect((await postJson(moved.url, '/v2/machine-auth/oidc-auth/login', await body())).status).toBe(200);
      expect((await postJson(moved.url, '/api/v1/auth/oidc-auth/login', await body())).status).toBe(404);
    } finally {
      await moved.close();
    }
    const none = await start([OidcMachineAuthModule.forRoot({ auth, prefix: false })]);
    try {
      expect((await postJson(none.url, '/api/v1/auth/oidc-auth/login', await body())).status).toBe(404);
    } finally {
      await none.close();
      await auth.close();
    }
  });

  for (const platform of ['express', 'fastify'] as const) {
    it(`errors are OidcAuthHttpExceptions a host filter can read: our body, reason code and headers (${platform})`, async () => {
      const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
      @Controller('filtered')
      @UseGuards(OidcAuthGuard)
      @UseFilters(HostFilter)
      class FilteredController {
        @Get()
        get() {
          return {};
        }
      }
      const { url, close } = await start(
        [OidcMachineAuthModule.forRoot({ auth })],
        [FilteredController],
        platform,
      );
      try {
        {
          const res = await getWith(url, '/filtered', ['authorization', 'Bearer omat_nope']);
          expect(res.status).toBe(401);
          expect(res.json).toMatchObject({
            host: true,
            reasonCode: 'invalid_token',
            body: { statusCode: 401, error: 'UnauthorizedError', reasonCode: 'invalid_token' },
            headers: { 'www-authenticate': 'Bearer realm="oidc-machine-auth", error="invalid_token"' },
          });
        }
        // With Nest's built-in filter, the route errors carry our body and headers.
        const res = await postJson(url, '/api/v1/auth/token/renew', { accessToken: 'omat_nope' });
        expect(res.status).toBe(401);
        expect(Object.keys(res.json).sort()).toEqual([
          'error',
          'message',
          'reasonCode',
          'reqId',
          'statusCode',
        ]);
        expect(res.headers['www-authenticate']).toBe(
          'Bearer realm="oidc-machine-auth", error="invalid_token"',
        );
        expect(res.headers['cache-control']).toBe('no-store');
      } finally {
        await close();
        await auth.close();
      }
    });

    it(`a token store outage is 503 store_unavailable with Retry-After, through the guard (${platform})`, async () => {
      const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
      const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() });
      auth.tokens.consume = async () => {
        throw new Error('ECONNREFUSED 10.0.0.1:6379');
      };
      const { url, close } = await start(
        [OidcMachineAuthModule.forRoot({ auth, globalGuard: true })],
        [OpenController],
        platform,
      );
      try {
        const res = await getWith(url, '/open/me', ['authorization', `Bearer ${accessToken}`]);
        expect(res.status).toBe(503);
        expect(res.json.reasonCode).toBe('store_unavailable');
        expect(res.headers['retry-after']).toMatch(/^\d+$/);
        expect(res.text).not.toContain('ECONNREFUSED');
      } finally {
        await close();
        await auth.close();
      }
    });
  }

  it('on Express with bodyParser: false the routes read the body themselves: JSON and forms, 413 past the limit, 415 for gzip', async () => {
    const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    const moduleRef = await Test.createTestingModule({
      imports: [OidcMachineAuthModule.forRoot({ auth, bodyLimit: 4096 })],
    }).compile();
    const app = moduleRef.createNestApplication(new ExpressAdapter(), { logger: false, bodyParser: false });
    const { url, close } = await listen(app);
    try {
      const json = await postJson(url, '/api/v1/auth/oidc-auth/login', {
        identityId: 'gh-deployer',
        jwt: await idpToken(),
      });
      expect(json.status).toBe(200);
      const form = await postForm(url, '/api/v1/auth/token/renew', { accessToken: json.json.accessToken });
      expect(form.status).toBe(200);
      const chunked = await request(url, 'POST', '/api/v1/auth/oidc-auth/login', {
        headers: ['content-type', 'application/json', 'transfer-encoding', 'chunked'],
        body: JSON.stringify({ identityId: 'gh-deployer', jwt: 'a'.repeat(8000) }),
      });
      expect(chunked.status).toBe(413);
      expect(chunked.json.reasonCode).toBe('body_too_large');
      const gzip = await request(url, 'POST', '/api/v1/auth/token/revoke', {
        headers: ['content-type', 'application/json', 'content-encoding', 'gzip'],
        body: '{}',
      });
      expect(gzip.status).toBe(415);
      expect(gzip.json.reasonCode).toBe('unsupported_media_type');
    } finally {
      await close();
      await auth.close();
    }
  });

  it('without OidcAuthBodyErrorFilter, Nest answers parser refusals itself; with it, only the auth routes change', async () => {
    const auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
    @Controller('echo')
    class EchoController {
      @Post()
      @OidcPublic()
      echo() {
        return {};
      }
    }
    const bad = { headers: ['content-type', 'application/json'], body: '{"a":' };
    const plain = await start([OidcMachineAuthModule.forRoot({ auth })], [EchoController]);
    try {
      const res = await request(plain.url, 'POST', '/api/v1/auth/token/renew', bad);
      expect(res.status).toBe(400);
      expect(res.json.reasonCode).toBeUndefined();
    } finally {
      await plain.close();
    }
    const moduleRef = await Test.createTestingModule({
      imports: [OidcMachineAuthModule.forRoot({ auth })],
      controllers: [EchoController],
    }).compile();
    const app = moduleRef.createNestApplication(new ExpressAdapter(), { logger: false });
    app.useGlobalFilters(app.get(OidcAuthBodyErrorFilter));
    const filtered = await listen(app);
    try {
      const ours = await request(filtered.url, 'POST', '/api/v1/auth/token/renew', bad);
      expect(ours.status).toBe(422);
      expect(ours.json.reasonCode).toBe('invalid_body');
      const host = await request(filtered.url, 'POST', '/echo', bad);
      expect(host.status).toBe(400);
      expect(host.json.reasonCode).toBeUndefined();
    } finally {
      await filtered.close();
      await auth.close();
    }
  });
});
