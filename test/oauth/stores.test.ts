import type { AddressInfo } from 'node:net';
import express from 'express';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  oidcAuthRouter,
  oidcIntrospectionRouter,
  requireAccessToken,
  type AuthenticatedRequest,
} from '../../adapters/express/index.js';
import { migrate, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { createOidcAuth, MemoryTokenStore, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from '../../src/index.js';
import { makeRecord } from '../../src/testing/index.js';
import type { TokenStore } from '../../src/types.js';
import { githubIdentity, SIGNING_KEYS } from '../helpers/engine.js';
import { getWith, postForm, postJson } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { sharedPgConfig, sharedRedisOptions, uniqueName } from '../helpers/servers.js';

const prefix = `${uniqueName('oma_oauth')}:`;
const schema = uniqueName('oma_oauth');
let client: Redis;
let pool: pg.Pool;

beforeAll(async () => {
  client = new Redis({
    ...sharedRedisOptions(),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  client.on('error', () => {});
  await client.connect(); // a Redis that cannot be reached fails this file, never skips it
  pool = new pg.Pool({ ...sharedPgConfig(), max: 5, connectionTimeoutMillis: 2000 });
  pool.on('error', () => {});
  await migrate(pool, { schema }); // likewise a PostgreSQL that cannot be reached
});

afterAll(async () => {
  const keys = await client.keys(`${prefix}*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const stores: Array<[string, () => TokenStore]> = [
  ['MemoryTokenStore', () => new MemoryTokenStore({ sweepIntervalMs: 0 })],
  ['RedisTokenStore', () => new RedisTokenStore({ client, prefix })],
  ['PostgresTokenStore', () => new PostgresTokenStore({ pool, schema })],
];

describe.each(stores)('%s keeps a token exchange grant (scope, audience) on the record', (_name, make) => {
  it('through create, get, consume and extend; a record without them reads back without them', async () => {
    const store = make();
    const now = Date.now();
    const narrowed = makeRecord({
      scope: 'secrets:read deploy',
      audience: ['https://api.example', 'urn:x'],
    });
    const plain = makeRecord();
    await store.create(narrowed);
    await store.create(plain);
    for (const read of [
      await store.get(narrowed.tokenId, now),
      ((await store.consume(narrowed.tokenId, now)) as { record: unknown }).record,
      ((await store.extend(narrowed.tokenId, now)) as { record: unknown }).record,
    ]) {
      expect(read).toMatchObject({
        scope: 'secrets:read deploy',
        audience: ['https://api.example', 'urn:x'],
      });
    }
    const back = await store.get(plain.tokenId, now);
    expect(back).toBeDefined();
    expect(back?.scope).toBeUndefined();
    expect(back?.audience).toBeUndefined();
    await store.close?.();
  });
});

describe('PostgresTokenStore behind the token exchange endpoint', () => {
  const PREFIX = '/api/v1/auth';
  const SUBJECT = 'repo:acme-corp/billing:ref:refs/heads/main';
  const RS_AUTH = `Basic ${Buffer.from('resource-server:a-resource-server-secret').toString('base64')}`;
  const key = makeKey('RS256');
  let auth: ReturnType<typeof createOidcAuth>;
  let url: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    auth = createOidcAuth({
      identities: [
        githubIdentity(key, {
          identityId: 'billing',
          boundSubject: SUBJECT,
          scopes: ['secrets:read', 'secrets:write', 'deploy'],
          accessTokenAudiences: ['https://api.example', 'https://other.example/'],
        }),
      ],
      signingKeys: SIGNING_KEYS,
      tokens: new PostgresTokenStore({ pool, schema }),
    });
    const app = express();
    app.use(PREFIX, oidcAuthRouter(auth));
    app.use(
      PREFIX,
      oidcIntrospectionRouter(auth, {
        guard: (req, res, next) =>
          req.headers.authorization === RS_AUTH
            ? next()
            : void res.status(401).json({ error: 'invalid_client' }),
      }),
    );
    app.get('/whoami', requireAccessToken(auth), (req, res) => {
      const { scope, audience } = (req as AuthenticatedRequest).auth;
      res.json({ scope: scope ?? null, audience: audience ?? null });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  });

  afterAll(async () => {
    await close?.();
    await auth?.close();
  });

  const exchange = async (fields: Record<string, string>) =>
    postForm(url, `${PREFIX}/oauth/token`, {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: await sign(key, githubClaims(Date.now(), { sub: SUBJECT })),
      subject_token_type: TOKEN_TYPE.jwt,
      client_id: 'billing',
      ...fields,
    });

  it('RFC 8693 §2.1/§2.2.1: the narrowed scope and audience are stored in PostgreSQL and reach req.auth, RFC 7662 introspection and a renewed token', async () => {
    const res = await exchange({ scope: 'secrets:read deploy', audience: 'https://api.example' });
    expect(res.status).toBe(200);
    const token = res.json.access_token as string;
    const { rows } = await pool.query(`SELECT scope, audience FROM "${schema}".oma_access_tokens`);
    expect(rows).toContainEqual({ scope: 'secrets:read deploy', audience: ['https://api.example'] });

    const bearer = ['authorization', `Bearer ${token}`];
    const seen = await getWith(url, '/whoami', bearer);
    expect(seen.status).toBe(200);
    expect(seen.json).toEqual({ scope: 'secrets:read deploy', audience: ['https://api.example'] });

    const introspected = await postForm(url, `${PREFIX}/oauth/introspect`, { token }, [
      'authorization',
      RS_AUTH,
    ]);
    expect(introspected.status).toBe(200);
    expect(introspected.json).toMatchObject({
      active: true,
      scope: 'secrets:read deploy',
      aud: 'https://api.example',
    });

    const renewed = await postJson(url, `${PREFIX}/token/renew`, { accessToken: token });
    expect(renewed.status).toBe(200);
    const again = await getWith(url, '/whoami', ['authorization', `Bearer ${renewed.json.accessToken}`]);
    expect(again.json).toEqual({ scope: 'secrets:read deploy', audience: ['https://api.example'] });
  });

  it('a login without token exchange carries every scope the identity declares and no audience, read back from PostgreSQL', async () => {
    const res = await postJson(url, `${PREFIX}/oidc-auth/login`, {
      identityId: 'billing',
      jwt: await sign(key, githubClaims(Date.now(), { sub: SUBJECT })),
    });
    expect(res.status).toBe(200);
    const seen = await getWith(url, '/whoami', ['authorization', `Bearer ${res.json.accessToken}`]);
    expect(seen.status).toBe(200);
    expect(seen.json).toEqual({ scope: 'secrets:read secrets:write deploy', audience: null });
  });
});
