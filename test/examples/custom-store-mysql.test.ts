/**
 * The MariaDB/MySQL store of examples/custom-store-mysql against the MariaDB of this machine and CI
 * (127.0.0.1:3306, root, no password, database `test`; `.ci/run` starts it), in tables of this
 * file's own prefix, dropped after it: the exported conformance suites (`oidc-machine-auth/testing`)
 * with two instances on two pools and an outage hook, plus what is particular to this store.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPool,
  migrate,
  MySqlIdentityStore,
  MySqlTokenStore,
} from '../../examples/custom-store-mysql/index.js';
import { ConfigError, createOidcAuth, ServiceUnavailableError } from '../../src/index.js';
import {
  identityStoreConformance,
  makeRecord,
  tokenStoreConformance,
  type OutageHook,
  type TestFunctions,
} from '../../src/testing/index.js';
import { githubIdentity, SIGNING_KEYS } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { startProxy, type OutageProxy } from '../helpers/servers.js';

const MARIADB = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: process.env.MYSQL_USER ?? 'root',
  password: process.env.MYSQL_PASSWORD ?? '',
  database: process.env.MYSQL_DATABASE ?? 'test',
};
const tablePrefix = `omx_${randomBytes(5).toString('hex')}_`;

/**
 * Two pools (two app instances) to the server, and two more through a TCP proxy the outage cases
 * cut (the conformance suites' stores use those).
 */
let poolA: Pool;
let poolB: Pool;
let proxy: OutageProxy;
let proxied: Pool[] = [];

beforeAll(async () => {
  poolA = createPool(MARIADB);
  poolB = createPool(MARIADB);
  proxy = await startProxy(MARIADB.port, MARIADB.host);
  proxied = [0, 1].map(() => createPool({ ...MARIADB, host: '127.0.0.1', port: proxy.port }));
  await migrate(poolA, { tablePrefix });
});

afterAll(async () => {
  await proxy?.up();
  await proxy?.close();
  await Promise.all(proxied.map((pool) => pool.end().catch(() => {})));
  if (poolA) {
    for (const table of ['access_tokens', 'identity_generations', 'identities']) {
      await poolA.query(`DROP TABLE IF EXISTS \`${tablePrefix}${table}\``);
    }
  }
  await Promise.all([poolA?.end(), poolB?.end()]);
});

let turn = 0;
/** A store on pool A or B in turn: stores made one after the other are two instances. */
function makeStore(): MySqlTokenStore {
  return new MySqlTokenStore({ pool: turn++ % 2 ? poolB : poolA, tablePrefix });
}

// The outage cases wait for recovery: more than vitest's default per case.
const test: TestFunctions = {
  describe,
  it: (name, fn) => it(name, fn, 30_000),
  before: beforeAll,
  after: afterAll,
};
// The token suite's outage is a silent network (every byte held: only a deadline ends a call), the
// identity suite's a refused connection.
const silence: OutageHook = {
  break: async () => proxy.blackhole(),
  restore: () => proxy.up(),
  failWithinMs: 1500,
};
const outage: OutageHook = { break: () => proxy.down(), restore: () => proxy.up(), failWithinMs: 1500 };
let tokenTurn = 0;
let identityTurn = 0;
tokenStoreConformance({
  name: '#18 MariaDB example (examples/custom-store-mysql)',
  test,
  create: () => new MySqlTokenStore({ pool: proxied[tokenTurn++ % 2]!, tablePrefix }),
  outage: silence,
  // The example implements no revocation by claim (optional: docs/STORES.md).
  revokeWhere: false,
});
identityStoreConformance({
  name: '#18 MariaDB example (examples/custom-store-mysql)',
  test,
  create: () => new MySqlIdentityStore({ pool: proxied[identityTurn++ % 2]!, tablePrefix }),
  outage,
});

describe('#18 MariaDB example: TokenStore across two instances', () => {
  it('TOK-04: 60 parallel uses of a 7-use token from two instances give exactly seven successes', async () => {
    const [a, b] = [makeStore(), makeStore()];
    const record = makeRecord({ usesLimit: 7 });
    await a.create(record);
    const now = record.createdAt + 1;
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).consume(record.tokenId, now)),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(7);
    expect(results.filter((r) => !r.ok && r.reason === 'uses_exhausted')).toHaveLength(53);
    const counts = results.flatMap((r) => (r.ok ? [r.record.usesCount] : []));
    expect(counts.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect((await b.get(record.tokenId, now))?.usesCount).toBe(7);
  });

  it('migrate adds scope and audience to a token table made before token exchange; old rows read back without them', async () => {
    const old = `omx_${randomBytes(5).toString('hex')}_`;
    const table = `\`${old}access_tokens\``;
    try {
      // The token table as the example's migrate made it before token exchange.
      await poolA.query(`CREATE TABLE ${table} (
        token_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
        identity_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, max_expires_at BIGINT NOT NULL,
        ttl_seconds INT UNSIGNED NOT NULL, uses_limit INT UNSIGNED NOT NULL,
        uses_count BIGINT UNSIGNED NOT NULL, revoked BOOLEAN NOT NULL, generation BIGINT UNSIGNED NOT NULL,
        trusted_ips LONGTEXT NOT NULL, metadata LONGTEXT NOT NULL, issuer TEXT NULL, subject TEXT NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
      const before = makeRecord();
      await poolA.query(`INSERT INTO ${table} VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, ?, ?, ?)`, [
        before.tokenId,
        before.identityId,
        before.createdAt,
        before.expiresAt,
        before.maxExpiresAt,
        before.ttlSeconds,
        JSON.stringify(before.trustedIps),
        JSON.stringify(before.metadata),
        before.issuer,
        before.subject,
      ]);
      await migrate(poolA, { tablePrefix: old });
      await migrate(poolA, { tablePrefix: old });
      const store = new MySqlTokenStore({ pool: poolA, tablePrefix: old });
      const got = await store.get(before.tokenId, Date.now());
      expect(got).toEqual(before);
      expect(got).not.toHaveProperty('scope');
      expect(got).not.toHaveProperty('audience');
      const after = makeRecord({ scope: 'deploy', audience: ['https://api.example'] });
      await store.create(after);
      expect(await store.get(after.tokenId, Date.now())).toEqual(after);
    } finally {
      for (const name of ['access_tokens', 'identity_generations', 'identities']) {
        await poolA.query(`DROP TABLE IF EXISTS \`${old}${name}\``);
      }
    }
  });

  it('a revocation on one instance refuses the next use on the other', async () => {
    const [a, b] = [makeStore(), makeStore()];
    const record = makeRecord();
    await a.create(record);
    expect((await b.consume(record.tokenId, record.createdAt + 1)).ok).toBe(true);
    await a.revoke(record.tokenId);
    expect(await b.consume(record.tokenId, record.createdAt + 2)).toEqual({ ok: false, reason: 'revoked' });
  });

  it("revokeIdentity on one instance while the other uses the identity's tokens: nothing works afterwards", async () => {
    const [a, b] = [makeStore(), makeStore()];
    const identityId = `identity-${randomUUID()}`;
    const records = Array.from({ length: 20 }, () => makeRecord({ identityId }));
    await Promise.all(records.map((r) => a.create(r)));
    const uses = Promise.all(
      records.flatMap((r) => [b.consume(r.tokenId, Date.now()), a.consume(r.tokenId, Date.now())]),
    );
    const revoked = a.revokeIdentity(identityId);
    await Promise.all([uses, revoked]);
    for (const r of records) {
      expect(await b.consume(r.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
      expect(await a.extend(r.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
    }
  });

  it('purgeExpired deletes rows expired past the grace, in batches, and nothing else', async () => {
    const store = makeStore();
    const now = Date.now();
    const old = Array.from({ length: 5 }, () =>
      makeRecord({ createdAt: now - 900_000, expiresAt: now - 600_000, maxExpiresAt: now - 600_000 }),
    );
    const recent = makeRecord({ createdAt: now - 120_000, expiresAt: now - 60_000 });
    const live = makeRecord();
    for (const r of [...old, recent, live]) await store.create(r);
    // Other tests' rows may be purged too: at least ours, never the recent or live ones.
    expect(await store.purgeExpired({ batchSize: 2 })).toBeGreaterThanOrEqual(5);
    for (const r of old) expect(await store.get(r.tokenId, r.createdAt)).toBeUndefined();
    expect(await store.get(recent.tokenId, recent.createdAt)).toBeDefined();
    expect(await store.get(live.tokenId, now)).toBeDefined();
  });

  it('refuses a pool that cannot send two statements in one call, at start-up', async () => {
    const { createPool: plain } = await import('mysql2/promise');
    const pool = plain({ ...MARIADB, connectionLimit: 1 });
    try {
      expect(() => new MySqlTokenStore({ pool })).toThrow(ConfigError);
    } finally {
      await pool.end();
    }
  });
});

describe('#18 MariaDB example: a silent server (a TCP proxy holding every byte)', () => {
  async function expectUnavailable(operation: () => Promise<unknown>): Promise<void> {
    const started = performance.now();
    const error = await operation().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(performance.now() - started).toBeLessThan(1500);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ status: 503, code: 'store_unavailable' });
  }

  it('every operation answers store_unavailable within its statementTimeoutMs, never hangs, then works again', async () => {
    const store = new MySqlTokenStore({ pool: proxied[0]!, tablePrefix, statementTimeoutMs: 300 });
    const identities = new MySqlIdentityStore({ pool: proxied[0]!, tablePrefix, statementTimeoutMs: 300 });
    const record = makeRecord({ usesLimit: 100 });
    await store.create(record);
    proxy.blackhole();
    try {
      const now = Date.now();
      await expectUnavailable(() => store.consume(record.tokenId, now));
      await expectUnavailable(() =>
        Promise.all(Array.from({ length: 5 }, () => store.consume(record.tokenId, now))),
      );
      await expectUnavailable(() => store.get(record.tokenId, now));
      await expectUnavailable(() => store.extend(record.tokenId, now));
      await expectUnavailable(() => store.revoke(makeRecord().tokenId));
      await expectUnavailable(() => store.revokeIdentity('someone'));
      await expectUnavailable(() => store.generation('someone'));
      await expectUnavailable(() => store.create(makeRecord()));
      await expectUnavailable(() => identities.get('someone'));
    } finally {
      await proxy.up();
    }
    await expect
      .poll(async () => (await store.consume(record.tokenId, Date.now()).catch(() => undefined))?.ok, {
        timeout: 15_000,
        interval: 100,
      })
      .toBe(true);
  });
});

describe('#18 MariaDB example: IdentityStore', () => {
  it('stores validated configs, reads them back, lists and deletes them', async () => {
    const store = new MySqlIdentityStore({ pool: poolA, tablePrefix });
    const key = makeKey('ES256');
    const id = `id-${randomUUID()}`;
    const put = await store.put(
      githubIdentity(key, { identityId: id, metadata: { team: 'żółć ✓ \u{1F512}' } }),
    );
    expect(await store.get(id)).toEqual(put);
    expect(await new MySqlIdentityStore({ pool: poolB, tablePrefix }).get(id)).toEqual(put);
    expect((await store.list()).map((c) => c.identityId)).toContain(id);
    expect(await store.delete(id)).toBe(true);
    expect(await store.get(id)).toBeUndefined();
    expect(await store.delete(id)).toBe(false);
    expect(await store.get('not a valid id')).toBeUndefined();
  });

  it('refuses to write an invalid config, and a row edited into one is never used', async () => {
    const store = new MySqlIdentityStore({ pool: poolA, tablePrefix });
    await expect(store.put({ identityId: 'x', boundIssuer: 'not a url' } as never)).rejects.toBeInstanceOf(
      ConfigError,
    );
    const id = `id-${randomUUID()}`;
    await store.put(githubIdentity(makeKey('ES256'), { identityId: id }));
    await store.get(id);
    await poolA.query(`UPDATE \`${tablePrefix}identities\` SET config = ? WHERE identity_id = ?`, [
      JSON.stringify({ identityId: 'someone-else', boundIssuer: 'https://a.example' }),
      id,
    ]);
    await expect(store.get(id)).rejects.toBeInstanceOf(ConfigError);
    await poolA.query(`UPDATE \`${tablePrefix}identities\` SET config = '{' WHERE identity_id = ?`, [id]);
    await expect(store.get(id)).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('#18 MariaDB example end to end: login, guarded call, renew, revoke through createOidcAuth', () => {
  it('works with both stores on MariaDB, across two instances', async () => {
    const key = makeKey('RS256');
    const identityId = `gh-${randomUUID()}`;
    await new MySqlIdentityStore({ pool: poolA, tablePrefix }).put(
      githubIdentity(key, { identityId, accessTokenNumUsesLimit: 3 }),
    );
    const instance = (pool: Pool) =>
      createOidcAuth({
        identities: new MySqlIdentityStore({ pool, tablePrefix }),
        tokens: new MySqlTokenStore({ pool, tablePrefix }),
        signingKeys: SIGNING_KEYS,
      });
    const [a, b] = [instance(poolA), instance(poolB)];
    const login = async () =>
      a.login({ identityId, jwt: await sign(key, githubClaims(Date.now(), { jti: randomUUID() })) });

    const grant = await login();
    const context = await b.authenticate(grant.accessToken);
    expect(context).toMatchObject({ identityId, usesRemaining: 2, metadata: { role: 'deployer' } });
    const renewed = await b.renew(grant.accessToken);
    expect(renewed.accessToken).not.toBe(grant.accessToken);
    expect(await a.authenticate(renewed.accessToken)).toMatchObject({ identityId, usesRemaining: 1 });
    await a.revoke(renewed.accessToken);
    await expect(b.authenticate(renewed.accessToken)).rejects.toMatchObject({ status: 401 });
    await expect(b.authenticate(grant.accessToken)).rejects.toMatchObject({ status: 401 });

    const second = await login();
    expect(await b.authenticate(second.accessToken)).toMatchObject({ identityId });
    await b.revokeIdentity(identityId);
    await expect(a.authenticate(second.accessToken)).rejects.toMatchObject({ status: 401 });
    await expect(a.renew(second.accessToken)).rejects.toMatchObject({ status: 401 });
  });
});
