/**
 * Issue 13, item 2(c): `PostgresIdentityStore` parses and validates a row once per version of its
 * content, not on every read, so a known identity costs a primary-key lookup and a cache hit (and is
 * not made visibly slower than an unknown one by the parse); edits are seen at once.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { migrate, PostgresIdentityStore } from '../../adapters/postgres/index.js';
import { ConfigError } from '../../src/errors.js';
import { githubIdentity } from '../helpers/engine.js';
import { makeKey } from '../helpers/jwt.js';
import { sharedPgConfig, uniqueName } from '../helpers/servers.js';

/** Every call of `parseIdentityConfig`, counted (the real function runs). */
const parses = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/trust/config.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/trust/config.js')>();
  return {
    ...original,
    parseIdentityConfig: (...args: Parameters<typeof original.parseIdentityConfig>) => {
      parses.count++;
      return original.parseIdentityConfig(...args);
    },
  };
});

const schema = uniqueName('oma_idcache');
let pool: pg.Pool;
const key = makeKey('ES256');
const config = (identityId: string, overrides = {}) => githubIdentity(key, { identityId, ...overrides });

beforeAll(async () => {
  pool = new pg.Pool({ ...sharedPgConfig(), max: 5 });
  pool.on('error', () => {});
  await migrate(pool, { schema });
});

afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

beforeEach(() => {
  parses.count = 0;
});

describe('#13.2c PostgresIdentityStore keeps parsed configs, checked against the row on every read', () => {
  it('#13.2c parses and validates a row once per version of its content, not once per read', async () => {
    const store = new PostgresIdentityStore({ pool, schema });
    await store.put(config('cache-once'));
    parses.count = 0;
    const first = await store.get('cache-once');
    for (let i = 0; i < 20; i++) expect(await store.get('cache-once')).toBe(first);
    expect(await store.list()).toContain(first);
    expect(parses.count).toBe(1);
    expect(first?.boundSubject).toEqual(['repo:acme-corp/payments-api:ref:refs/heads/main']);
  });

  it('#13.2c an update made through another store instance is seen by the next read, then cached again', async () => {
    const a = new PostgresIdentityStore({ pool, schema });
    const b = new PostgresIdentityStore({ pool, schema });
    await a.put(config('cache-shared'));
    expect((await a.get('cache-shared'))?.accessTokenTTL).toBe(7200);
    await b.put(config('cache-shared', { accessTokenTTL: 600 }));
    parses.count = 0;
    const updated = await a.get('cache-shared');
    expect(updated?.accessTokenTTL).toBe(600);
    expect(await a.get('cache-shared')).toBe(updated);
    expect(parses.count).toBe(1);
    // Deleted elsewhere: gone at once, never a stale config.
    expect(await b.delete('cache-shared')).toBe(true);
    expect(await a.get('cache-shared')).toBeUndefined();
  });

  it('#13.2c a row edited by hand is validated again: an invalid edit throws, never the cached config', async () => {
    const store = new PostgresIdentityStore({ pool, schema });
    await store.put(config('cache-edited'));
    expect(await store.get('cache-edited')).toBeDefined();
    await pool.query(
      `UPDATE "${schema}".oma_identities SET config = jsonb_set(config, '{accessTokenTTL}', '-5')
       WHERE identity_id = 'cache-edited'`,
    );
    await expect(store.get('cache-edited')).rejects.toThrow(ConfigError);
    await expect(store.get('cache-edited')).rejects.toThrow(ConfigError);
    // Filed under another identity's id: refused too.
    await pool.query(
      `UPDATE "${schema}".oma_identities SET config = $1::jsonb WHERE identity_id = 'cache-edited'`,
      [JSON.stringify(config('someone-else'))],
    );
    await expect(store.get('cache-edited')).rejects.toThrow(ConfigError);
  });

  it('#13.2c the cache is bounded (cacheSize, least recently used out first)', async () => {
    const store = new PostgresIdentityStore({ pool, schema, cacheSize: 2 });
    for (const id of ['lru-a', 'lru-b', 'lru-c']) await store.put(config(id));
    parses.count = 0;
    for (const id of ['lru-a', 'lru-b', 'lru-c']) await store.get(id);
    expect(parses.count).toBe(3);
    await store.get('lru-c');
    await store.get('lru-b');
    expect(parses.count).toBe(3);
    await store.get('lru-a'); // evicted by lru-c
    expect(parses.count).toBe(4);
    expect(() => new PostgresIdentityStore({ pool, schema, cacheSize: 0 })).toThrow(ConfigError);
  });
});

describe('#13.2 no identity oracle: PostgresIdentityStore.issuerKeySources', () => {
  const ISS = 'https://pg-sources.example.com';
  const bySource = (c: { publicKeys?: readonly unknown[]; jwksUrl?: string }) =>
    JSON.stringify([c.publicKeys ?? null, c.jwksUrl ?? null]);

  it('#13.2 no identity oracle: lists one config per distinct key source of the identities binding the issuer, 9 at most, leaving out rows that do not validate', async () => {
    const store = new PostgresIdentityStore({ pool, schema });
    const keys = Array.from({ length: 11 }, (_, i) => makeKey('ES256', `pg-src-${i}`));
    // Two identities share key 0; one reaches the issuer through a JWKS URL; one binds another issuer.
    await store.put(config('src-0a', { boundIssuer: ISS }));
    await store.put(githubIdentity(keys[0]!, { identityId: 'src-0b', boundIssuer: ISS }));
    await store.put(
      githubIdentity(keys[0]!, { identityId: 'src-0c', boundIssuer: [ISS, 'https://x.example.com'] }),
    );
    await store.put({
      ...config('src-jwks', { boundIssuer: ISS }),
      publicKeys: undefined,
      jwksUrl: 'https://pg-sources.example.com/jwks',
    });
    await store.put(
      githubIdentity(keys[1]!, { identityId: 'src-other-issuer', boundIssuer: 'https://other.example.com' }),
    );
    let listed = await store.issuerKeySources(ISS);
    expect(listed.every((c) => c.boundIssuer.includes(ISS))).toBe(true);
    expect(new Set(listed.map(bySource)).size).toBe(listed.length);
    expect(listed).toHaveLength(3);
    expect(await store.issuerKeySources('https://nobody.example.com')).toEqual([]);
    for (let i = 1; i < 11; i++) {
      await store.put(githubIdentity(keys[i]!, { identityId: `src-k${i}`, boundIssuer: ISS }));
    }
    listed = await store.issuerKeySources(ISS);
    expect(listed).toHaveLength(9);
    expect(new Set(listed.map(bySource)).size).toBe(9);
    // A row edited by hand into an invalid config is left out, never listed.
    await pool.query(
      `UPDATE "${schema}".oma_identities SET config = jsonb_set(config, '{accessTokenTTL}', '-5')
       WHERE identity_id = 'src-jwks'`,
    );
    listed = await store.issuerKeySources(ISS);
    expect(listed.map((c) => c.identityId)).not.toContain('src-jwks');
    expect(listed.every((c) => c.jwksUrl === undefined)).toBe(true);
  });
});
