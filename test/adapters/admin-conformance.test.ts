import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve as serveHono } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import Router from '@koa/router';
import Koa from 'koa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as expressAdapter from '../../adapters/express/index.js';
import { oidcAdminRouter as expressAdmin } from '../../adapters/express/admin.js';
import * as fastifyAdapter from '../../adapters/fastify/index.js';
import { oidcAdminPlugin } from '../../adapters/fastify/admin.js';
import * as honoAdapter from '../../adapters/hono/index.js';
import { oidcAdminRoutes } from '../../adapters/hono/admin.js';
import * as koaAdapter from '../../adapters/koa/index.js';
import { oidcAdminRouter as koaAdmin } from '../../adapters/koa/admin.js';
import type { IdentityChange } from '../../src/http/identity-admin.js';
import { ConfigError, type AuthContext, type IdentityConfigInput, type OidcAuth } from '../../src/index.js';
import { createTestCertificates } from '../helpers/certs.js';
import { makeEngine, type TestEngine } from '../helpers/engine.js';
import { postJson, request, type RawResponse } from '../helpers/http.js';
import { githubClaims, makeKey, sign, type TestKey } from '../helpers/jwt.js';

/**
 * `token`: the framework's `requireAccessToken` allowing `metadata.role === 'admin'` (answers 401/403);
 * `throws`: a guard that throws a 401 the framework's own way.
 */
type GuardKind = 'token' | 'throws';
interface MountOptions {
  guard: GuardKind;
  onChange?: (change: IdentityChange) => void;
}
interface MountedApp {
  url: string;
  close(): Promise<void>;
}
interface Framework {
  name: string;
  /** Login routes and admin routes, both under `/api/v1/auth`. */
  mount(auth: OidcAuth, options: MountOptions): Promise<MountedApp>;
  /** Build (or register) the admin binding with these options; rejects when the binding refuses. */
  construct(auth: OidcAuth, options: unknown): Promise<unknown>;
}

const isAdmin = (context: AuthContext) => context.metadata.role === 'admin';
const PREFIX = '/api/v1/auth';
const LIMIT = 64 * 1024;

function listening(server: Server): Promise<MountedApp> {
  return new Promise((resolve) => {
    server.once('listening', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    );
  });
}

const FRAMEWORKS: Framework[] = [
  {
    name: 'express',
    async mount(auth, { guard, onChange }) {
      const app = express();
      app.use(PREFIX, expressAdapter.oidcAuthRouter(auth));
      const requireAdmin = expressAdapter.requireAccessToken(auth, {
        authorize: isAdmin,
        passErrors: guard === 'throws',
      });
      app.use(PREFIX, expressAdmin(auth, { guard: requireAdmin, ...(onChange && { onChange }) }));
      return listening(app.listen(0, '127.0.0.1'));
    },
    construct: async (auth, options) => expressAdmin(auth, options as never),
  },
  {
    name: 'koa',
    async mount(auth, { guard, onChange }) {
      const app = new Koa();
      app.on('error', () => {});
      app.use(koaAdapter.oidcAuthRouter(auth));
      const requireAdmin = koaAdapter.requireAccessToken(auth, {
        authorize: isAdmin,
        throwErrors: guard === 'throws',
      });
      app.use(koaAdmin(auth, { guard: requireAdmin, ...(onChange && { onChange }) }));
      return listening(app.listen(0, '127.0.0.1'));
    },
    construct: async (auth, options) => koaAdmin(auth, options as never),
  },
  {
    name: 'koa with @koa/router',
    async mount(auth, { guard, onChange }) {
      const app = new Koa();
      app.on('error', () => {});
      const router = new Router();
      const login = koaAdapter.oidcAuthRouter(auth);
      router.post(login.paths, login);
      const requireAdmin = koaAdapter.requireAccessToken(auth, {
        authorize: isAdmin,
        throwErrors: guard === 'throws',
      });
      const admin = koaAdmin(auth, { guard: requireAdmin, ...(onChange && { onChange }) });
      router.all(admin.paths, admin);
      app.use(router.routes()).use(router.allowedMethods());
      return listening(app.listen(0, '127.0.0.1'));
    },
    construct: async (auth, options) => koaAdmin(auth, options as never),
  },
  {
    name: 'hono',
    async mount(auth, { guard, onChange }) {
      const app = new Hono();
      app.route(PREFIX, honoAdapter.oidcAuthRoutes(auth));
      const requireAdmin =
        guard === 'token'
          ? honoAdapter.requireAccessToken(auth, { authorize: isAdmin })
          : async () => {
              throw new HTTPException(401, { message: 'Access token is required' });
            };
      app.route(PREFIX, oidcAdminRoutes(auth, { guard: requireAdmin, ...(onChange && { onChange }) }));
      return listening(serveHono({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
    },
    construct: async (auth, options) => oidcAdminRoutes(auth, options as never),
  },
  {
    name: 'fastify',
    async mount(auth, { guard, onChange }) {
      const app = Fastify();
      await app.register(fastifyAdapter.oidcAuthPlugin, { auth, prefix: PREFIX });
      const requireAdmin =
        guard === 'token'
          ? fastifyAdapter.requireAccessToken(auth, { authorize: isAdmin })
          : async () => {
              throw Object.assign(new Error('Access token is required'), { statusCode: 401 });
            };
      await app.register(oidcAdminPlugin, {
        auth,
        guard: requireAdmin,
        prefix: PREFIX,
        ...(onChange && { onChange }),
      });
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      return { url, close: () => app.close() };
    },
    async construct(auth, options) {
      const app = Fastify();
      try {
        await app.register(oidcAdminPlugin, { auth, ...(options as object) } as never);
        await app.ready();
      } finally {
        await app.close();
      }
    },
  },
];

let CA = '';
const KEY: TestKey = makeKey();
beforeAll(async () => {
  CA = (await createTestCertificates()).caCert;
});

/** An Infisical-style attach body (strings for lists, `{ ipAddress }` trusted IPs). */
function infisicalBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com',
    caCert: CA,
    boundIssuer: 'https://token.actions.githubusercontent.com',
    boundAudiences: 'https://secrets.example.com, https://github.com/acme-corp',
    boundClaims: { repository_id: '612345678', ref: 'refs/heads/main, refs/heads/release' },
    claimMetadataMapping: { repository: 'repository' },
    boundSubject: '',
    accessTokenTrustedIps: [{ ipAddress: '0.0.0.0/0' }, { ipAddress: '::/0' }],
    accessTokenTTL: 900,
    accessTokenMaxTTL: 3600,
    accessTokenNumUsesLimit: 0,
    ...overrides,
  };
}

interface Served {
  url: string;
  e: TestEngine;
  adminToken: string;
  userToken: string;
  changes: IdentityChange[];
}

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((close) => close()));
});

/** An engine with `platform-admin` (role admin) and `gh-deployer`, one framework serving it, and a token of each. */
async function serve(framework: Framework, guard: GuardKind = 'token'): Promise<Served> {
  const base: IdentityConfigInput = {
    identityId: 'platform-admin',
    publicKeys: [KEY.publicJwk],
    boundIssuer: 'https://token.actions.githubusercontent.com',
    boundAudiences: 'https://github.com/acme-corp',
    boundClaims: { repository_id: '1' },
    metadata: { role: 'admin' },
  };
  const user = { ...base, identityId: 'gh-deployer', boundClaims: { repository_id: '2' }, metadata: {} };
  const e = makeEngine({ key: KEY, identities: [base, user] });
  const changes: IdentityChange[] = [];
  const app = await framework.mount(e.auth, { guard, onChange: (c) => void changes.push(c) });
  open.push(async () => {
    await app.close();
    await e.auth.close();
  });
  const token = async (identityId: string, repositoryId: string) => {
    const jwt = await sign(KEY, githubClaims(e.clock.ms, { repository_id: repositoryId }));
    const res = await postJson(app.url, `${PREFIX}/oidc-auth/login`, { identityId, jwt });
    expect(res.status).toBe(200);
    return res.json.accessToken as string;
  };
  return {
    url: app.url,
    e,
    changes,
    adminToken: await token('platform-admin', '1'),
    userToken: await token('gh-deployer', '2'),
  };
}

const bearer = (token: string | undefined) => (token ? ['authorization', `Bearer ${token}`] : []);

/** An admin request; a body is sent as JSON unless `raw` gives the exact bytes and headers. */
function call(
  s: Served,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  raw?: { headers: string[]; body?: string },
): Promise<RawResponse> {
  const text = raw ? raw.body : body === undefined ? undefined : JSON.stringify(body);
  const headers = raw
    ? raw.headers
    : text === undefined
      ? []
      : ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))];
  return request(s.url, method, `${PREFIX}/oidc-auth/identities${path}`, {
    headers: [...bearer(token), ...headers],
    ...(text === undefined ? {} : { body: text }),
  });
}

/** Body errors every framework must answer alike: [label, headers, body, status, reasonCode]. */
const oversized = JSON.stringify({ boundSubject: 'a'.repeat(LIMIT + 1) });
const BODY_CASES: Array<[string, string[], string | undefined, number, string]> = [
  ['truncated JSON', ['content-type', 'application/json'], '{"accessTokenTTL":', 422, 'invalid_body'],
  ['not JSON', ['content-type', 'application/json'], 'not json', 422, 'invalid_body'],
  ['a JSON array', ['content-type', 'application/json'], '[1,2]', 422, 'invalid_body'],
  ['a JSON string', ['content-type', 'application/json'], '"str"', 422, 'invalid_body'],
  ['JSON null', ['content-type', 'application/json'], 'null', 422, 'invalid_body'],
  [
    'an empty JSON body',
    ['content-type', 'application/json', 'content-length', '0'],
    '',
    422,
    'invalid_body',
  ],
  ['text/plain', ['content-type', 'text/plain'], '{}', 415, 'unsupported_media_type'],
  [
    'a form',
    ['content-type', 'application/x-www-form-urlencoded'],
    'accessTokenTTL=60',
    415,
    'unsupported_media_type',
  ],
  ['no content type', [], '{}', 415, 'unsupported_media_type'],
  [
    'gzip-encoded JSON',
    ['content-type', 'application/json', 'content-encoding', 'gzip'],
    '{}',
    415,
    'unsupported_media_type',
  ],
  ['an oversized body', ['content-type', 'application/json'], oversized, 413, 'body_too_large'],
  [
    'an oversized chunked body',
    ['content-type', 'application/json', 'transfer-encoding', 'chunked'],
    oversized,
    413,
    'body_too_large',
  ],
];

describe.each(FRAMEWORKS)('identity admin on $name', (framework) => {
  it('refuses to mount without a guard (ConfigError naming guard)', async () => {
    const { auth } = makeEngine({ key: KEY });
    for (const options of [undefined, {}, { guard: 'yes' }, { guard: null }]) {
      const error = await framework.construct(auth, options).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ field: 'guard' });
    }
    await auth.close();
  });

  it('runs the guard before every admin route: 401 anonymous, 403 non-admin, and nothing changes', async () => {
    const s = await serve(framework);
    const routes: Array<[string, string, unknown?]> = [
      ['GET', ''],
      ['GET', '/gh-deployer'],
      ['POST', '/ci-new', infisicalBody()],
      ['PATCH', '/gh-deployer', { accessTokenTTL: 60 }],
      ['DELETE', '/gh-deployer'],
    ];
    for (const [method, path, body] of routes) {
      const anonymous = await call(s, method, path, undefined, body);
      expect(anonymous.status, `${method} ${path}`).toBe(401);
      expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer realm=/);
      expect(anonymous.json.reasonCode).toBe('missing_token');
      const user = await call(s, method, path, s.userToken, body);
      expect(user.status, `${method} ${path}`).toBe(403);
      expect(user.json.reasonCode).toBe('forbidden');
    }
    // The guard answers before any body is read: no 413/422 leaks to a refused caller.
    for (const [, headers, body] of BODY_CASES) {
      expect((await call(s, 'POST', '/ci-new', undefined, undefined, { headers, body })).status).toBe(401);
    }
    expect(await s.e.auth.identities.get('ci-new')).toBeUndefined();
    expect((await s.e.auth.identities.get('gh-deployer'))?.accessTokenTTL).toBe(7200);
    expect(s.changes).toEqual([]);
  });

  it('a guard that throws a 401 is what the client sees, and nothing changes', async () => {
    const s = await serve(framework, 'throws');
    for (const [method, path, body] of [
      ['GET', ''],
      ['POST', '/ci-new', infisicalBody()],
      ['PATCH', '/gh-deployer', { accessTokenTTL: 60 }],
      ['DELETE', '/gh-deployer'],
    ] as const) {
      expect((await call(s, method, path, undefined, body)).status, `${method} ${path}`).toBe(401);
    }
    expect(await s.e.auth.identities.get('ci-new')).toBeUndefined();
    expect((await s.e.auth.identities.get('gh-deployer'))?.accessTokenTTL).toBe(7200);
  });

  it('CFG-02: POST creates, GET returns it with caCert, the list never carries caCert, PATCH merges', async () => {
    const s = await serve(framework);
    const created = await call(s, 'POST', '/ci-new', s.adminToken, infisicalBody());
    expect(created.status).toBe(200);
    expect(created.headers['cache-control']).toBe('no-store');
    expect(created.json.identityOidcAuth).toMatchObject({
      identityId: 'ci-new',
      accessTokenTTL: 900,
      caCert: CA,
    });

    const got = await call(s, 'GET', '/ci-new', s.adminToken);
    expect(got.status).toBe(200);
    expect(got.json).toEqual(created.json);

    const list = await call(s, 'GET', '', s.adminToken);
    expect(list.status).toBe(200);
    const ids = list.json.identityOidcAuths.map((v: { identityId: string }) => v.identityId);
    expect(ids.sort()).toEqual(['ci-new', 'gh-deployer', 'platform-admin']);
    expect(list.json.identityOidcAuths.every((v: object) => !('caCert' in v))).toBe(true);
    expect(list.text).not.toContain('BEGIN CERTIFICATE');

    const patched = await call(s, 'PATCH', '/ci-new', s.adminToken, { accessTokenTTL: 300 });
    expect(patched.status).toBe(200);
    expect(patched.json.identityOidcAuth).toMatchObject({
      accessTokenTTL: 300,
      accessTokenMaxTTL: 3600,
      boundClaims: created.json.identityOidcAuth.boundClaims,
      caCert: CA,
    });

    const invalid = await call(s, 'PATCH', '/ci-new', s.adminToken, { accessTokenMaxTTL: 60 });
    expect(invalid.status).toBe(400);
    expect(invalid.json).toMatchObject({ reasonCode: 'invalid_config', field: 'accessTokenTTL' });
    expect((await s.e.auth.identities.get('ci-new'))?.accessTokenTTL).toBe(300);

    const again = await call(s, 'POST', '/ci-new', s.adminToken, infisicalBody());
    expect(again.status).toBe(400);
    expect(again.json.reasonCode).toBe('invalid_request');
    expect(s.changes.map((c) => [c.action, c.identityId])).toEqual([
      ['attach', 'ci-new'],
      ['update', 'ci-new'],
    ]);
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      'a malformed CIDR',
      { accessTokenTrustedIps: [{ ipAddress: '10.0.0.1/8' }] },
      'accessTokenTrustedIps[0]',
    ],
    [
      'no binding',
      { boundAudiences: '', boundClaims: {}, boundSubject: '' },
      'boundSubject, boundAudiences, boundClaims',
    ],
  ])('CFG-01: POST with %s answers 400 invalid_config naming the field', async (_label, overrides, field) => {
    const s = await serve(framework);
    const res = await call(s, 'POST', '/ci-new', s.adminToken, infisicalBody(overrides));
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({
      statusCode: 400,
      error: 'BadRequest',
      reasonCode: 'invalid_config',
      field,
    });
    expect(await s.e.auth.identities.get('ci-new')).toBeUndefined();
  });

  it('rules and candidateRules round-trip: POST, GET, PATCH (null turns audit mode off); an invalid rule is 400 naming the rule index and field', async () => {
    const s = await serve(framework);
    const rules = [
      { effect: 'deny', name: 'legacy', claims: { repository: { oneOf: ['acme-corp/legacy'] } } },
      {
        effect: 'allow',
        name: 'main',
        claims: { repository_owner_id: { in: [81234567] }, ref: 'refs/heads/main' },
      },
    ];
    const created = await call(
      s,
      'POST',
      '/ci-rules',
      s.adminToken,
      infisicalBody({ boundClaims: {}, rules }),
    );
    expect(created.status).toBe(200);
    expect(created.json.identityOidcAuth.rules).toEqual([
      {
        effect: 'deny',
        name: 'legacy',
        issuer: [],
        subject: [],
        audiences: [],
        claims: { repository: { oneOf: ['acme-corp/legacy'] } },
      },
      {
        effect: 'allow',
        name: 'main',
        issuer: [],
        subject: [],
        audiences: [],
        claims: { repository_owner_id: { in: [81234567] }, ref: ['refs/heads/main'] },
      },
    ]);
    expect(created.json.identityOidcAuth).not.toHaveProperty('candidateRules');
    const got = await call(s, 'GET', '/ci-rules', s.adminToken);
    expect(got.json).toEqual(created.json);
    // GET-edit-PATCH: the view is valid input
    const candidateRules = [
      { effect: 'allow', name: 'next', subject: 'repo:acme-corp/*:ref:refs/heads/main' },
    ];
    const patched = await call(s, 'PATCH', '/ci-rules', s.adminToken, {
      ...got.json.identityOidcAuth,
      candidateRules,
    });
    expect(patched.status).toBe(200);
    expect(patched.json.identityOidcAuth.rules).toEqual(created.json.identityOidcAuth.rules);
    expect(patched.json.identityOidcAuth.candidateRules).toEqual([
      {
        effect: 'allow',
        name: 'next',
        issuer: [],
        subject: ['repo:acme-corp/*:ref:refs/heads/main'],
        audiences: [],
        claims: {},
      },
    ]);
    expect((await s.e.auth.identities.get('ci-rules'))?.candidateRules?.[0]?.name).toBe('next');
    const off = await call(s, 'PATCH', '/ci-rules', s.adminToken, { candidateRules: null });
    expect(off.json.identityOidcAuth).not.toHaveProperty('candidateRules');
    const invalid = await call(s, 'PATCH', '/ci-rules', s.adminToken, {
      rules: [...rules, { effect: 'allow', claims: { ref: 'refs/heads/(main|dev)' } }],
    });
    expect(invalid.status).toBe(400);
    expect(invalid.json).toMatchObject({ reasonCode: 'invalid_config', field: 'rules[2].claims.ref[0]' });
    expect(invalid.json.message).toContain('identity "ci-rules": rules[2].claims.ref[0]: ');
    expect((await s.e.auth.identities.get('ci-rules'))?.rules).toHaveLength(2);
  });

  it('TOK-10: DELETE removes the config and a token minted before it is refused after it', async () => {
    const s = await serve(framework);
    expect((await call(s, 'GET', '', s.userToken)).status).toBe(403); // the token is live (just not an admin)
    const deleted = await call(s, 'DELETE', '/gh-deployer', s.adminToken);
    expect(deleted.status).toBe(200);
    expect(deleted.json.identityOidcAuth.identityId).toBe('gh-deployer');
    expect(deleted.json.identityOidcAuth).not.toHaveProperty('caCert');
    expect(await s.e.auth.identities.get('gh-deployer')).toBeUndefined();

    const after = await call(s, 'GET', '', s.userToken);
    expect(after.status).toBe(401);
    expect(after.json.reasonCode).toBe('token_revoked');
    const jwt = await sign(KEY, githubClaims(s.e.clock.ms, { repository_id: '2' }));
    const relogin = await postJson(s.url, `${PREFIX}/oidc-auth/login`, { identityId: 'gh-deployer', jwt });
    expect(relogin.status).toBe(401);
    expect((await call(s, 'DELETE', '/gh-deployer', s.adminToken)).status).toBe(404);
    expect(s.changes.at(-1)).toMatchObject({ action: 'delete', identityId: 'gh-deployer', revokedTokens: 1 });
  });

  it('answers 404 identity_not_found for unknown ids (up to the longest valid id), 400 for malformed ones', async () => {
    const s = await serve(framework);
    for (const id of ['nobody', 'n'.repeat(128)]) {
      for (const [method, body] of [['GET'], ['PATCH', { accessTokenTTL: 60 }], ['DELETE']] as const) {
        const res = await call(s, method, `/${id}`, s.adminToken, body);
        expect(res.status, `${method} ${id.length}`).toBe(404);
        expect(res.json.reasonCode).toBe('identity_not_found');
      }
    }
    for (const id of ['a%20b', 'n'.repeat(129), '-leading', 'a%2Fb']) {
      const res = await call(s, 'GET', `/${id}`, s.adminToken);
      expect(res.status, id).toBe(400);
      expect(res.json.reasonCode).toBe('invalid_request');
    }
  });

  it.each(BODY_CASES)(
    'HTTP-01/02/05: a body that is %s is refused',
    async (_label, headers, body, status, code) => {
      const s = await serve(framework);
      for (const [method, path] of [
        ['POST', '/ci-new'],
        ['PATCH', '/gh-deployer'],
      ]) {
        const res = await call(s, method!, path!, s.adminToken, undefined, { headers, body });
        expect(res.status, `${method}`).toBe(status);
        expect(res.json).toMatchObject({ statusCode: status, reasonCode: code });
      }
      expect(await s.e.auth.identities.get('ci-new')).toBeUndefined();
      expect(s.changes).toEqual([]);
    },
  );

  it('leaves the login routes under the same prefix unguarded', async () => {
    const s = await serve(framework);
    const jwt = await sign(KEY, githubClaims(s.e.clock.ms, { repository_id: '2' }));
    const login = await postJson(s.url, `${PREFIX}/oidc-auth/login`, { identityId: 'gh-deployer', jwt });
    expect(login.status).toBe(200);
  });
});

/** What must match across frameworks: status, body without the per-request id, the headers we set. */
function comparable(res: RawResponse) {
  const body = res.json && typeof res.json === 'object' ? { ...res.json, reqId: undefined } : res.text;
  return {
    status: res.status,
    body,
    contentType: res.headers['content-type']?.split(';')[0],
    cacheControl: res.headers['cache-control'],
    pragma: res.headers.pragma,
    challenge: res.headers['www-authenticate'],
    retryAfter: res.headers['retry-after'],
  };
}

/** The same requests, in the same order, against one framework; answers keyed by step. */
async function transcript(framework: Framework): Promise<Record<string, ReturnType<typeof comparable>>> {
  const s = await serve(framework);
  const steps: Array<[string, () => Promise<RawResponse>]> = [
    ['list, anonymous', () => call(s, 'GET', '', undefined)],
    ['POST, non-admin', () => call(s, 'POST', '/ci-new', s.userToken, infisicalBody())],
    [
      'POST, bad CIDR',
      () => call(s, 'POST', '/ci-new', s.adminToken, infisicalBody({ accessTokenTrustedIps: ['300.0.0.1'] })),
    ],
    [
      'POST, no binding',
      () => call(s, 'POST', '/ci-new', s.adminToken, infisicalBody({ boundAudiences: '', boundClaims: {} })),
    ],
    [
      'POST, typo field',
      () => call(s, 'POST', '/ci-new', s.adminToken, infisicalBody({ boundAudience: 'x' })),
    ],
    ['POST', () => call(s, 'POST', '/ci-new', s.adminToken, infisicalBody())],
    ['POST again', () => call(s, 'POST', '/ci-new', s.adminToken, infisicalBody())],
    ['GET', () => call(s, 'GET', '/ci-new', s.adminToken)],
    ['HEAD', () => call(s, 'HEAD', '/ci-new', s.adminToken)],
    ['list', () => call(s, 'GET', '', s.adminToken)],
    ['PATCH', () => call(s, 'PATCH', '/ci-new', s.adminToken, { accessTokenTTL: 300, boundSubject: null })],
    ['PATCH, invalid', () => call(s, 'PATCH', '/ci-new', s.adminToken, { accessTokenTTL: -1 })],
    ['PATCH, other identityId', () => call(s, 'PATCH', '/ci-new', s.adminToken, { identityId: 'x' })],
    ['GET unknown', () => call(s, 'GET', '/nobody', s.adminToken)],
    ['GET malformed id', () => call(s, 'GET', '/a%20b', s.adminToken)],
    ...BODY_CASES.map(([label, headers, body]): [string, () => Promise<RawResponse>] => [
      `PATCH, ${label}`,
      () => call(s, 'PATCH', '/ci-new', s.adminToken, undefined, { headers, body }),
    ]),
    ['DELETE', () => call(s, 'DELETE', '/gh-deployer', s.adminToken)],
    ['revoked token', () => call(s, 'GET', '', s.userToken)],
    ['DELETE again', () => call(s, 'DELETE', '/gh-deployer', s.adminToken)],
  ];
  const out: Record<string, ReturnType<typeof comparable>> = {};
  for (const [label, step] of steps) out[label] = comparable(await step());
  return out;
}

describe('identity admin answers are identical across frameworks', () => {
  it('every step answers the same status, body (bar reqId) and headers on express, koa (bare and with @koa/router), hono and fastify', async () => {
    const [reference, ...others] = await Promise.all(FRAMEWORKS.map(transcript));
    expect(reference?.POST?.status).toBe(200);
    for (const [i, other] of others.entries()) {
      expect({ framework: FRAMEWORKS[i + 1]!.name, ...other }).toEqual({
        framework: FRAMEWORKS[i + 1]!.name,
        ...reference,
      });
    }
  });
});

describe.each(FRAMEWORKS)(
  '#16 revoke by claim on $name: POST {prefix}/oidc-auth/revocations',
  (framework) => {
    const revocations = (s: Served, token: string | undefined, body: unknown, headers?: string[]) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      return request(s.url, 'POST', `${PREFIX}/oidc-auth/revocations`, {
        headers: [
          ...bearer(token),
          ...(headers ?? ['content-type', 'application/json']),
          'content-length',
          String(Buffer.byteLength(text)),
        ],
        body: text,
      });
    };
    /** A gh-deployer token of GitHub run `runId`. */
    const runToken = async (s: Served, runId: string) => {
      const jwt = await sign(KEY, githubClaims(s.e.clock.ms, { repository_id: '2', run_id: runId }));
      return (await s.e.auth.login({ identityId: 'gh-deployer', jwt })).accessToken;
    };

    it('behind the guard (401, 403, nothing revoked); revokes a run for every identity or one, answering { revoked }; refuses bad bodies without echoing the value', async () => {
      const s = await serve(framework);
      const run = await Promise.all([runToken(s, '7001'), runToken(s, '7001')]);
      const other = await runToken(s, '7002');
      const body = { claim: 'run_id', value: '7001' };
      const anonymous = await revocations(s, undefined, body);
      expect(anonymous.status).toBe(401);
      expect(anonymous.json.reasonCode).toBe('missing_token');
      const user = await revocations(s, s.userToken, body);
      expect(user.status).toBe(403);
      expect(user.json.reasonCode).toBe('forbidden');
      await expect(s.e.auth.authenticate(run[0]!)).resolves.toMatchObject({ identityId: 'gh-deployer' });

      const done = await revocations(s, s.adminToken, body);
      expect({ status: done.status, json: done.json }).toEqual({ status: 200, json: { revoked: 2 } });
      expect(done.headers['cache-control']).toBe('no-store');
      for (const token of run) {
        await expect(s.e.auth.authenticate(token)).rejects.toMatchObject({ code: 'token_revoked' });
      }
      await expect(s.e.auth.authenticate(other)).resolves.toMatchObject({ identityId: 'gh-deployer' });
      // One identity's tokens only; a number value matches the claim as recorded.
      const scoped = await revocations(s, s.adminToken, {
        identityId: 'platform-admin',
        claim: 'run_id',
        value: 7002,
      });
      expect(scoped.json).toEqual({ revoked: 0 });
      const mine = await revocations(s, s.adminToken, {
        identityId: 'gh-deployer',
        claim: 'run_id',
        value: 7002,
      });
      expect(mine.json).toEqual({ revoked: 1 });
      await expect(s.e.auth.authenticate(other)).rejects.toMatchObject({ code: 'token_revoked' });

      const secret = 'zz-value-never-echoed';
      const cases: Array<[unknown, string[] | undefined, number, string]> = [
        [{ claim: 'not_recorded', value: secret }, undefined, 400, 'claim_not_revocable'],
        [{ claim: 'run_id' }, undefined, 400, 'invalid_request'],
        [{ claim: 'run_id', value: secret.repeat(20) }, undefined, 400, 'invalid_request'],
        [{ claim: 'run_id', value: [secret] }, undefined, 400, 'invalid_request'],
        [{ identityId: 'bad id', claim: 'run_id', value: secret }, undefined, 400, 'invalid_request'],
        ['[1]', undefined, 422, 'invalid_body'],
        ['{"claim":', undefined, 422, 'invalid_body'],
        [JSON.stringify(body), ['content-type', 'text/plain'], 415, 'unsupported_media_type'],
      ];
      for (const [sent, headers, status, reasonCode] of cases) {
        const answer = await revocations(s, s.adminToken, sent, headers);
        expect({ sent, status: answer.status, reasonCode: answer.json.reasonCode }).toEqual({
          sent,
          status,
          reasonCode,
        });
        expect(answer.text).not.toContain(secret);
      }
      // The admin's own token (another run, none at all) was never touched.
      await expect(s.e.auth.authenticate(s.adminToken)).resolves.toMatchObject({
        identityId: 'platform-admin',
      });
    });
  },
);
/** A request to the trust-entry routes (`{prefix}/oidc-auth/trust…`). */
function trustCall(
  s: Served,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  raw?: { headers: string[]; body?: string },
): Promise<RawResponse> {
  const text = raw ? raw.body : body === undefined ? undefined : JSON.stringify(body);
  const headers = raw
    ? raw.headers
    : text === undefined
      ? []
      : ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))];
  return request(s.url, method, `${PREFIX}/oidc-auth/trust${path}`, {
    headers: [...bearer(token), ...headers],
    ...(text === undefined ? {} : { body: text }),
  });
}

const GITLAB_ENTRY = {
  issuer: 'https://gitlab.example.com',
  jwksUrl: 'https://gitlab.example.com/oauth/discovery/keys',
  audiences: 'https://vault.example.com',
};

describe.each(FRAMEWORKS)('trust entry admin on $name (issue 14)', (framework) => {
  it('runs the guard before every trust route: 401 anonymous, 403 non-admin, and nothing changes', async () => {
    const s = await serve(framework);
    const routes: Array<[string, string, unknown?]> = [
      ['GET', ''],
      ['GET', '/gitlab'],
      ['PUT', '/gitlab', GITLAB_ENTRY],
      ['DELETE', '/gitlab'],
    ];
    for (const [method, path, body] of routes) {
      const anonymous = await trustCall(s, method, path, undefined, body);
      expect(anonymous.status, `${method} ${path}`).toBe(401);
      expect(anonymous.json.reasonCode).toBe('missing_token');
      const user = await trustCall(s, method, path, s.userToken, body);
      expect(user.status, `${method} ${path}`).toBe(403);
      expect(user.json.reasonCode).toBe('forbidden');
    }
    expect(await s.e.auth.trust.list()).toEqual([]);
  });

  it('PUT creates and replaces, GET reads one and all, DELETE removes; 400 names the field, 404 unknown, 409 in use with the identity ids', async () => {
    const s = await serve(framework);
    const created = await trustCall(s, 'PUT', '/gitlab', s.adminToken, GITLAB_ENTRY);
    expect(created.status).toBe(200);
    expect(created.headers['cache-control']).toBe('no-store');
    const entry = created.json.trustEntry as { trustId: string; audiences: string[]; keySources: unknown[] };
    expect(entry).toMatchObject({ trustId: 'gitlab', audiences: ['https://vault.example.com'] });
    expect(entry.keySources).toHaveLength(1);
    // A GET-edit-PUT round trip: the answer is accepted back as a body.
    const replaced = await trustCall(s, 'PUT', '/gitlab', s.adminToken, { ...entry, clockSkewSeconds: 30 });
    expect(replaced.status).toBe(200);
    expect(replaced.json.trustEntry).toMatchObject({ ...entry, clockSkewSeconds: 30 });
    expect((await trustCall(s, 'GET', '/gitlab', s.adminToken)).json.trustEntry).toEqual(
      replaced.json.trustEntry,
    );
    expect((await trustCall(s, 'GET', '', s.adminToken)).json.trustEntries).toEqual([
      replaced.json.trustEntry,
    ]);

    // Validation errors: 400 invalid_config naming the entry and field; nothing written.
    for (const [body, field] of [
      [{ ...GITLAB_ENTRY, jwksUrl: 'http://gitlab.example.com/keys' }, 'trust["gitlab"].jwksUrl'],
      [{ ...GITLAB_ENTRY, clockSkewSeconds: 9999 }, 'trust["gitlab"].clockSkewSeconds'],
      [{ ...GITLAB_ENTRY, colour: 'red' }, 'trust["gitlab"].colour'],
      [{ ...GITLAB_ENTRY, trustId: 'other' }, 'trust["gitlab"].trustId'],
    ] as const) {
      const bad = await trustCall(s, 'PUT', '/gitlab', s.adminToken, body);
      expect(bad.status, field).toBe(400);
      expect(bad.json).toMatchObject({ reasonCode: 'invalid_config', field });
    }
    expect((await s.e.auth.trust.get('gitlab'))?.clockSkewSeconds).toBe(30);
    expect((await trustCall(s, 'PUT', '/bad%20id', s.adminToken, GITLAB_ENTRY)).json.reasonCode).toBe(
      'invalid_request',
    );
    const notJson = await trustCall(s, 'PUT', '/gitlab', s.adminToken, undefined, {
      headers: ['content-type', 'text/plain'],
      body: '{}',
    });
    expect([notJson.status, notJson.json.reasonCode]).toEqual([415, 'unsupported_media_type']);
    const truncated = await trustCall(s, 'PUT', '/gitlab', s.adminToken, undefined, {
      headers: ['content-type', 'application/json'],
      body: '{"issuer":',
    });
    expect([truncated.status, truncated.json.reasonCode]).toEqual([422, 'invalid_body']);

    // Unknown: 404.
    for (const method of ['GET', 'DELETE']) {
      const missing = await trustCall(s, method, '/nothing-here', s.adminToken);
      expect([missing.status, missing.json.reasonCode], method).toEqual([404, 'trust_not_found']);
    }

    // In use: an identity attached naming the entry makes DELETE a 409 naming it.
    const attach = await call(s, 'POST', '/gl-deployer', s.adminToken, {
      trust: 'gitlab',
      boundSubject: 'project_path:acme/*',
    });
    expect(attach.status).toBe(200);
    const inUse = await trustCall(s, 'DELETE', '/gitlab', s.adminToken);
    expect(inUse.status).toBe(409);
    expect(inUse.json).toMatchObject({
      statusCode: 409,
      error: 'Conflict',
      reasonCode: 'trust_in_use',
      identityIds: ['gl-deployer'],
    });
    expect(await s.e.auth.trust.get('gitlab')).toBeDefined();
    // An identity naming an unknown entry is refused at config time.
    const unknown = await call(s, 'POST', '/gl-other', s.adminToken, {
      trust: 'nothing-here',
      boundSubject: 'x',
    });
    expect(unknown.json).toMatchObject({ reasonCode: 'invalid_config', field: 'trust' });

    expect((await call(s, 'DELETE', '/gl-deployer', s.adminToken)).status).toBe(200);
    const deleted = await trustCall(s, 'DELETE', '/gitlab', s.adminToken);
    expect(deleted.status).toBe(200);
    expect(deleted.json.trustEntry).toEqual(replaced.json.trustEntry);
    expect(await s.e.auth.trust.get('gitlab')).toBeUndefined();
    expect((await trustCall(s, 'DELETE', '/gitlab', s.adminToken)).status).toBe(404);
  });
});
