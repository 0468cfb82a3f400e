import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { oidcAdminRouter } from '../adapters/express/admin.js';
import { oidcAuthRouter, requireAccessToken } from '../adapters/express/index.js';
import {
  createIdentityAdmin,
  identityOidcAuthView,
  type IdentityChange,
} from '../src/http/identity-admin.js';
import {
  ConfigError,
  createOidcAuth,
  parseIdentityConfig,
  type IdentityConfigInput,
  type IdentityStore,
} from '../src/index.js';
import { createTestCertificates } from './helpers/certs.js';
import { SIGNING_KEYS, makeEngine, type TestEngine } from './helpers/engine.js';
import { getWith, postJson, request } from './helpers/http.js';
import { githubClaims, makeKey, sign } from './helpers/jwt.js';

let CA = '';
beforeAll(async () => {
  CA = (await createTestCertificates()).caCert;
});

/** An Infisical-style attach body (strings for lists, `{ ipAddress }` trusted IPs). */
function infisicalBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com',
    caCert: '',
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

describe('identity admin (framework-neutral)', () => {
  it('POST attaches a config validated like login and answers { identityOidcAuth } in Infisical shapes', async () => {
    const e = makeEngine();
    const admin = createIdentityAdmin(e.auth);
    const answer = await admin.attach('ci-deployer', infisicalBody());
    expect(answer.status).toBe(200);
    expect(answer.headers['cache-control']).toBe('no-store');
    const view = (answer.body as { identityOidcAuth: Record<string, unknown> }).identityOidcAuth;
    expect(view).toMatchObject({
      identityId: 'ci-deployer',
      oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com',
      boundIssuer: 'https://token.actions.githubusercontent.com',
      boundAudiences: 'https://secrets.example.com, https://github.com/acme-corp',
      boundClaims: { repository_id: '612345678', ref: 'refs/heads/main, refs/heads/release' },
      claimMetadataMapping: { repository: 'repository' },
      boundSubject: '',
      accessTokenTTL: 900,
      accessTokenMaxTTL: 3600,
      accessTokenNumUsesLimit: 0,
      accessTokenTrustedIps: [
        { type: 'ipv4', prefix: 0, ipAddress: '0.0.0.0' },
        { type: 'ipv6', prefix: 0, ipAddress: '::' },
      ],
      caCert: '',
    });
    expect(view.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const stored = await e.auth.identities.get('ci-deployer');
    expect(stored?.boundAudiences).toEqual(['https://secrets.example.com', 'https://github.com/acme-corp']);
  });

  it('the answer round-trips: a GET view sent back as a PATCH body changes nothing', async () => {
    const e = makeEngine();
    const admin = createIdentityAdmin(e.auth);
    expect((await admin.attach('ci-deployer', infisicalBody({ caCert: CA }))).status).toBe(200);
    const before = (await admin.retrieve('ci-deployer')).body as {
      identityOidcAuth: Record<string, unknown>;
    };
    const patched = await admin.update('ci-deployer', before.identityOidcAuth);
    expect(patched.status).toBe(200);
    expect(patched.body).toEqual(before);
  });

  it('GET answers 404 identity_not_found for an unknown identity, 400 for a malformed id', async () => {
    const admin = createIdentityAdmin(makeEngine().auth);
    const missing = await admin.retrieve('nobody');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({
      statusCode: 404,
      error: 'NotFound',
      reasonCode: 'identity_not_found',
    });
    expect((await admin.retrieve('../etc/passwd')).status).toBe(400);
    expect((await admin.update('nobody', { accessTokenTTL: 60 })).status).toBe(404);
  });

  it('POST on an identity that already has a config answers 400 and leaves it unchanged', async () => {
    const e = makeEngine();
    const admin = createIdentityAdmin(e.auth);
    const before = await e.auth.identities.get('gh-deployer');
    const answer = await admin.attach('gh-deployer', infisicalBody());
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ reasonCode: 'invalid_request' });
    expect(await e.auth.identities.get('gh-deployer')).toBe(before);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a TTL above the max TTL', { accessTokenTTL: 7200, accessTokenMaxTTL: 3600 }, 'accessTokenTTL'],
    [
      'a malformed CIDR',
      { accessTokenTrustedIps: [{ ipAddress: '10.0.0.1/8' }] },
      'accessTokenTrustedIps[0]',
    ],
    ['an http discovery URL', { oidcDiscoveryUrl: 'http://idp.example.com' }, 'oidcDiscoveryUrl'],
    ['a negation glob', { boundSubject: '!repo:acme/evil' }, 'boundSubject[0]'],
    [
      'no binding at all',
      { boundAudiences: '', boundClaims: {}, boundSubject: '' },
      'boundSubject, boundAudiences, boundClaims',
    ],
    ['a typo in a field name', { boundAudience: 'x' }, 'boundAudience'],
    [
      'a multi-tenant Azure issuer',
      { boundIssuer: 'https://login.microsoftonline.com/common/v2.0' },
      'boundIssuer[0]',
    ],
    ['a periodic token (unsupported)', { accessTokenPeriod: 3600 }, 'accessTokenPeriod'],
    ['another identity id in the body', { identityId: 'someone-else' }, 'identityId'],
  ])('CFG-01: POST with %s answers 400 invalid_config naming the field', async (_name, overrides, field) => {
    const e = makeEngine();
    const answer = await createIdentityAdmin(e.auth).attach('ci-deployer', infisicalBody(overrides));
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({
      statusCode: 400,
      error: 'BadRequest',
      reasonCode: 'invalid_config',
      field,
    });
    expect(await e.auth.identities.get('ci-deployer')).toBeUndefined();
  });

  it('POST with a body that is not an object answers 422', async () => {
    const answer = await createIdentityAdmin(makeEngine().auth).attach('ci-deployer', ['x']);
    expect(answer.status).toBe(422);
  });

  it('PATCH merges into the stored config, null resets a field, and the result is validated', async () => {
    const e = makeEngine();
    const admin = createIdentityAdmin(e.auth);
    const patched = await admin.update('gh-deployer', { accessTokenTTL: 600, boundSubject: null });
    expect(patched.status).toBe(200);
    const stored = await e.auth.identities.get('gh-deployer');
    expect(stored).toMatchObject({
      accessTokenTTL: 600,
      boundSubject: [],
      boundClaims: { repository_id: ['612345678'] },
    });
    expect(stored?.metadata).toEqual({ role: 'deployer' });

    const bad = await admin.update('gh-deployer', { accessTokenMaxTTL: 60 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ reasonCode: 'invalid_config', field: 'accessTokenTTL' });
    expect((await e.auth.identities.get('gh-deployer'))?.accessTokenTTL).toBe(600);
  });

  it('a narrowed PATCH applies to the next login at once', async () => {
    const e = makeEngine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    await e.auth.login({ identityId: 'gh-deployer', jwt });
    await createIdentityAdmin(e.auth).update('gh-deployer', { boundClaims: { repository_id: '1' } });
    await expect(e.auth.login({ identityId: 'gh-deployer', jwt })).rejects.toMatchObject({
      code: 'claim_not_allowed',
    });
  });

  it('#13.1 identity revocation leaves no survivor: a PATCH ends every token granted under the old config and reports how many', async () => {
    const e = makeEngine();
    const changes: IdentityChange[] = [];
    const admin = createIdentityAdmin(e.auth, { onChange: (c) => void changes.push(c), clock: e.clock.now });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const grants = await Promise.all([1, 2].map(() => e.auth.login({ identityId: 'gh-deployer', jwt })));

    // Even a change that narrows nothing: the tokens were granted under a config that is gone.
    expect((await admin.update('gh-deployer', { accessTokenTTL: 600 })).status).toBe(200);
    for (const grant of grants) {
      await expect(e.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
      await expect(e.auth.renew(grant.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
    }
    expect(changes).toEqual([
      { action: 'update', identityId: 'gh-deployer', revokedTokens: 2, time: e.clock.ms },
    ]);
    // Logins under the new config work.
    const fresh = await e.auth.login({ identityId: 'gh-deployer', jwt });
    expect(fresh.expiresIn).toBe(600);
    await expect(e.auth.authenticate(fresh.accessToken)).resolves.toMatchObject({
      identityId: 'gh-deployer',
    });
  });

  it('#13.1 identity revocation leaves no survivor: PATCH and DELETE revoke after the store has written the change', async () => {
    const e = makeEngine();
    const calls: string[] = [];
    const store = e.auth.identities;
    const identities: IdentityStore = {
      get: (id) => store.get(id),
      put: async (config) => {
        calls.push('put');
        return store.put!(config);
      },
      delete: async (id) => {
        calls.push('delete');
        return store.delete!(id);
      },
      list: () => store.list!(),
    };
    const admin = createIdentityAdmin({
      ...e.auth,
      identities,
      revokeIdentity: async (id) => {
        calls.push('revokeIdentity');
        return e.auth.revokeIdentity(id);
      },
    });
    expect((await admin.update('gh-deployer', { accessTokenTTL: 600 })).status).toBe(200);
    expect((await admin.revoke('gh-deployer')).status).toBe(200);
    expect(calls).toEqual(['put', 'revokeIdentity', 'delete', 'revokeIdentity']);
  });

  it('TOK-10: DELETE removes the config, revokes every token of the identity, and omits caCert', async () => {
    const e = makeEngine();
    const changes: IdentityChange[] = [];
    const admin = createIdentityAdmin(e.auth, { onChange: (c) => void changes.push(c), clock: e.clock.now });
    await admin.update('gh-deployer', { caCert: CA });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const grants = await Promise.all([1, 2].map(() => e.auth.login({ identityId: 'gh-deployer', jwt })));
    await e.auth.authenticate(grants[0]!.accessToken);

    const answer = await admin.revoke('gh-deployer');
    expect(answer.status).toBe(200);
    const view = (answer.body as { identityOidcAuth: Record<string, unknown> }).identityOidcAuth;
    expect(view.identityId).toBe('gh-deployer');
    expect(view).not.toHaveProperty('caCert');
    expect(await e.auth.identities.get('gh-deployer')).toBeUndefined();
    for (const grant of grants) {
      await expect(e.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
    }
    expect(changes.map((c) => c.action)).toEqual(['update', 'delete']);
    expect(changes[1]).toMatchObject({ identityId: 'gh-deployer', revokedTokens: 2, time: e.clock.ms });
    expect(e.rec.last('identity.revoke')).toMatchObject({
      identityId: 'gh-deployer',
      detail: { revoked: 2 },
    });
    expect((await admin.revoke('gh-deployer')).status).toBe(404);
  });

  it('CFG-02: caCert is in single-identity answers but never in the list', async () => {
    const e = makeEngine();
    const admin = createIdentityAdmin(e.auth);
    await admin.update('gh-deployer', { caCert: CA });
    const one = (await admin.retrieve('gh-deployer')).body as { identityOidcAuth: { caCert?: string } };
    expect(one.identityOidcAuth.caCert).toBe(CA);
    const list = await admin.list();
    expect(list.status).toBe(200);
    const views = (list.body as { identityOidcAuths: Array<Record<string, unknown>> }).identityOidcAuths;
    expect(views.map((v) => v.identityId)).toEqual(['gh-deployer']);
    expect(JSON.stringify(list.body)).not.toContain('BEGIN CERTIFICATE');
  });

  it('keeps a list item holding a comma as an array, so the view parses back to the same config', () => {
    const config = parseIdentityConfig({
      identityId: 'x',
      publicKeys: [makeKey().publicJwk],
      boundIssuer: 'https://idp.example.com',
      boundClaims: { team: ['a\\,b', 'c'] },
    });
    const view = identityOidcAuthView(config);
    expect(view.boundClaims.team).toEqual(['a\\,b', 'c']);
    const { id: _id, ...input } = view;
    expect(parseIdentityConfig(input).boundClaims).toEqual(config.boundClaims);
  });

  it('refuses a store that cannot write, and answers 503 when the store fails (fail closed)', async () => {
    const readOnly: IdentityStore = { get: async () => undefined };
    expect(() => createIdentityAdmin({ ...makeEngine().auth, identities: readOnly })).toThrow(ConfigError);

    const e = makeEngine();
    const broken: IdentityStore = {
      get: async () => {
        throw new Error('ECONNREFUSED 10.0.0.5:5432');
      },
      put: async () => {
        throw new Error('down');
      },
      delete: async () => false,
      list: async () => {
        throw new Error('down');
      },
    };
    const admin = createIdentityAdmin({ ...e.auth, identities: broken });
    for (const answer of [
      await admin.retrieve('a'),
      await admin.list(),
      await admin.attach('a', infisicalBody()),
    ]) {
      expect(answer.status).toBe(503);
      expect(JSON.stringify(answer.body)).not.toContain('ECONNREFUSED');
    }
  });

  it("#13.2 no identity oracle: attach and update register the config's issuer and key source before any login loads it", async () => {
    // A custom store: the engine learns of its configs only from logins and the admin API.
    const e = makeEngine();
    const inner = e.auth.identities;
    const reads: string[] = [];
    const identities: IdentityStore = {
      get: (id) => (reads.push(id), inner.get(id)),
      put: (config) => inner.put!(config),
      delete: (id) => inner.delete!(id),
      list: () => inner.list!(),
    };
    const auth = createOidcAuth({ identities, signingKeys: SIGNING_KEYS, clock: e.clock.now });
    const admin = createIdentityAdmin(auth);
    const issuer = 'https://gitlab.example.com';
    const first = makeKey('ES256', 'first');
    const body = {
      publicKeys: [first.publicJwk],
      boundIssuer: issuer,
      boundSubject: 'project_path:acme/app:*',
    };
    expect(auth.keys.keySourcesFor(issuer)).toBeUndefined();
    expect((await admin.attach('gitlab-deployer', body)).status).toBe(200);
    const attached = (await inner.get('gitlab-deployer'))!;
    expect(auth.keys.registeredSource(issuer, attached)).toBeDefined();
    // A token that does not verify is refused without reading the store.
    reads.length = 0;
    const claims = { iss: issuer, sub: 'project_path:acme/app:ref_type:branch:ref:main', aud: 'x' };
    const now = Math.floor(e.clock.ms / 1000);
    const forged = await sign(makeKey('ES256', 'first'), { ...claims, iat: now, exp: now + 60 });
    await expect(auth.login({ identityId: 'gitlab-deployer', jwt: forged })).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
    expect(reads).toEqual([]);
    // An update to another key registers that one too; the new key's token logs in.
    const second = makeKey('ES256', 'second');
    expect((await admin.update('gitlab-deployer', { publicKeys: [second.publicJwk] })).status).toBe(200);
    const updated = (await inner.get('gitlab-deployer'))!;
    expect(auth.keys.registeredSource(issuer, updated)).toBeDefined();
    const genuine = await sign(second, { ...claims, iat: now, exp: now + 60, aud: undefined });
    await expect(auth.login({ identityId: 'gitlab-deployer', jwt: genuine })).resolves.toMatchObject({
      identityId: 'gitlab-deployer',
    });
    await auth.close();
  });

  it('handle() dispatches by method and path, 404 otherwise', async () => {
    const admin = createIdentityAdmin(makeEngine().auth);
    expect((await admin.handle({ method: 'GET', identityId: 'gh-deployer' })).status).toBe(200);
    expect((await admin.handle({ method: 'get' })).status).toBe(200);
    expect((await admin.handle({ method: 'PUT', identityId: 'gh-deployer' })).status).toBe(404);
    expect((await admin.handle({ method: 'POST' })).status).toBe(404);
  });
});

// ---------------------------------------------------------------------------------------------
// Express binding

interface Served {
  url: string;
  e: TestEngine;
  adminToken: string;
  userToken: string;
  close(): Promise<void>;
}

const open: Served[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function serve(): Promise<Served> {
  const key = makeKey();
  const admin: IdentityConfigInput = {
    identityId: 'platform-admin',
    publicKeys: [key.publicJwk],
    boundIssuer: 'https://token.actions.githubusercontent.com',
    boundAudiences: 'https://github.com/acme-corp',
    boundClaims: { repository_id: '1' },
    metadata: { role: 'admin' },
  };
  const user: IdentityConfigInput = {
    ...admin,
    identityId: 'gh-deployer',
    boundClaims: { repository_id: '2' },
    metadata: {},
  };
  const e = makeEngine({ key, identities: [admin, user] });
  const app = express();
  app.use('/api/v1/auth', oidcAuthRouter(e.auth));
  app.use(
    '/api/v1/auth',
    oidcAdminRouter(e.auth, {
      guard: requireAccessToken(e.auth, { authorize: (ctx) => ctx.metadata.role === 'admin' }),
    }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const token = async (identityId: string, repositoryId: string) => {
    const jwt = await sign(key, githubClaims(e.clock.ms, { repository_id: repositoryId }));
    return (await postJson(url, '/api/v1/auth/oidc-auth/login', { identityId, jwt })).json
      .accessToken as string;
  };
  const served: Served = {
    url,
    e,
    adminToken: await token('platform-admin', '1'),
    userToken: await token('gh-deployer', '2'),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  open.push(served);
  return served;
}

const bearer = (token: string) => ['authorization', `Bearer ${token}`];

function send(s: Served, method: string, path: string, token: string, body?: unknown) {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return request(s.url, method, `/api/v1/auth${path}`, {
    headers: [
      ...bearer(token),
      ...(text === undefined
        ? []
        : ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))]),
    ],
    ...(text === undefined ? {} : { body: text }),
  });
}

describe('oidcAdminRouter (express)', () => {
  it('refuses to mount without a guard', () => {
    const { auth } = makeEngine();
    expect(() => oidcAdminRouter(auth, undefined as never)).toThrow(ConfigError);
    expect(() => oidcAdminRouter(auth, {} as never)).toThrow(/guard/);
    expect(() => oidcAdminRouter(auth, { guard: [] })).toThrow(ConfigError);
    expect(() => oidcAdminRouter(auth, { guard: 'yes' as never })).toThrow(ConfigError);
  });

  it('runs the guard before every admin route: 401 without a token, 403 for a non-admin', async () => {
    const s = await serve();
    const anonymous = await getWith(s.url, '/api/v1/auth/oidc-auth/identities/gh-deployer');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer realm=/);
    const user = await send(s, 'DELETE', '/oidc-auth/identities/gh-deployer', s.userToken);
    expect(user.status).toBe(403);
    expect(await s.e.auth.identities.get('gh-deployer')).toBeDefined();
    expect((await send(s, 'GET', '/oidc-auth/identities', s.userToken)).status).toBe(403);
  });

  it('leaves the login routes mounted at the same prefix unguarded', async () => {
    const s = await serve();
    const jwt = await sign(s.e.key, githubClaims(s.e.clock.ms, { repository_id: '2' }));
    const login = await postJson(s.url, '/api/v1/auth/oidc-auth/login', { identityId: 'gh-deployer', jwt });
    expect(login.status).toBe(200);
  });

  it('POST, GET, PATCH, LIST and DELETE work end to end for an admin', async () => {
    const s = await serve();
    const created = await send(s, 'POST', '/oidc-auth/identities/ci-new', s.adminToken, infisicalBody());
    expect(created.status).toBe(200);
    expect(created.json.identityOidcAuth).toMatchObject({
      identityId: 'ci-new',
      accessTokenTTL: 900,
      caCert: '',
    });

    const got = await send(s, 'GET', '/oidc-auth/identities/ci-new', s.adminToken);
    expect(got.json).toEqual(created.json);

    const patched = await send(s, 'PATCH', '/oidc-auth/identities/ci-new', s.adminToken, {
      accessTokenTTL: 300,
    });
    expect(patched.json.identityOidcAuth.accessTokenTTL).toBe(300);

    const list = await send(s, 'GET', '/oidc-auth/identities', s.adminToken);
    expect(list.json.identityOidcAuths.map((v: { identityId: string }) => v.identityId).sort()).toEqual([
      'ci-new',
      'gh-deployer',
      'platform-admin',
    ]);
    expect(list.json.identityOidcAuths.every((v: object) => !('caCert' in v))).toBe(true);

    const deleted = await send(s, 'DELETE', '/oidc-auth/identities/gh-deployer', s.adminToken);
    expect(deleted.status).toBe(200);
    expect(deleted.json.identityOidcAuth).not.toHaveProperty('caCert');
    const afterDelete = await getWith(
      s.url,
      '/api/v1/auth/oidc-auth/identities/gh-deployer',
      bearer(s.userToken),
    );
    expect(afterDelete.status).toBe(401);
    expect(afterDelete.json.reasonCode).toBe('token_revoked');
  });

  it('answers 400 invalid_config with the field, 415 for a non-JSON body, 422 for malformed JSON', async () => {
    const s = await serve();
    const bad = await send(
      s,
      'POST',
      '/oidc-auth/identities/ci-new',
      s.adminToken,
      infisicalBody({ accessTokenTTL: -1 }),
    );
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ reasonCode: 'invalid_config', field: 'accessTokenTTL' });

    const text = await request(s.url, 'POST', '/api/v1/auth/oidc-auth/identities/ci-new', {
      headers: [...bearer(s.adminToken), 'content-type', 'text/plain', 'content-length', '2'],
      body: '{}',
    });
    expect(text.status).toBe(415);

    const broken = await request(s.url, 'PATCH', '/api/v1/auth/oidc-auth/identities/gh-deployer', {
      headers: [...bearer(s.adminToken), 'content-type', 'application/json', 'content-length', '5'],
      body: '{"a":',
    });
    expect(broken.status).toBe(422);
    expect(broken.json.reasonCode).toBe('invalid_body');
  });
});
