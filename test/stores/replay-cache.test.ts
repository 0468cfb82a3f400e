/**
 * Issue 16, "Replay cache": the memory, Redis (single server and Cluster) and PostgreSQL replay
 * caches through the exported conformance suite, and what is particular to each backend.
 */
import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, PostgresReplayCache } from '../../adapters/postgres/index.js';
import { RedisReplayCache } from '../../adapters/redis/index.js';
import { ConfigError } from '../../src/errors.js';
import { MemoryReplayCache } from '../../src/stores/memory-replay.js';
import { replayCacheConformance } from '../../src/testing/index.js';
import {
  sharedPgConfig,
  sharedRedisOptions,
  startProxy,
  startRedisCluster,
  uniqueName,
  type OutageProxy,
  type ThrowawayRedisCluster,
} from '../helpers/servers.js';

const test = {
  describe,
  it: (name: string, fn: () => Promise<void> | void) => it(name, fn, 30_000),
  before: beforeAll,
  after: afterAll,
};
const prefix = `${uniqueName('oma_replay')}:`;
const schema = uniqueName('oma_replay');

describe('MemoryReplayCache through the exported conformance suite', () => {
  const shared = new MemoryReplayCache();
  replayCacheConformance({ name: 'MemoryReplayCache', test, create: () => shared });
});

for (const batchRemembers of [true, false]) {
  describe(`RedisReplayCache (batchRemembers: ${batchRemembers}) through the exported conformance suite`, () => {
    // Each instance is an app instance: its own client, through a TCP proxy this file owns in front of
    // the shared Redis, which the outage hook shuts (connections refused and cut).
    let gate: OutageProxy;
    const clients: Redis[] = [];

    beforeAll(async () => {
      gate = await startProxy(Number(sharedRedisOptions().port));
    });

    afterAll(async () => {
      for (const c of clients) c.disconnect();
      await gate?.close();
    });

    replayCacheConformance({
      name: `RedisReplayCache (batchRemembers: ${batchRemembers})`,
      test,
      async create() {
        const client = new Redis({
          host: '127.0.0.1',
          port: gate.port,
          lazyConnect: true,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          connectTimeout: 1000,
          retryStrategy: () => 50,
        });
        client.on('error', () => {});
        clients.push(client);
        await client.connect();
        return new RedisReplayCache({ client, prefix, batchRemembers });
      },
      outage: { break: () => gate.down(), restore: () => gate.up() },
    });
  });
}

describe('RedisReplayCache on a three-master Redis Cluster through the conformance suite', () => {
  let cluster: ThrowawayRedisCluster;
  const clients: Cluster[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await cluster?.stop();
  });

  replayCacheConformance({
    name: 'RedisReplayCache (Cluster)',
    test,
    async create() {
      const client = new Cluster(cluster.nodes, {
        enableOfflineQueue: true,
        redisOptions: { maxRetriesPerRequest: 1 },
      });
      client.on('error', () => {});
      clients.push(client);
      return new RedisReplayCache({ client, prefix });
    },
  });
});

describe('PostgresReplayCache through the exported conformance suite', () => {
  let gate: OutageProxy;
  const pools: pg.Pool[] = [];

  beforeAll(async () => {
    gate = await startProxy(Number(sharedPgConfig().port));
  });

  afterAll(async () => {
    await gate?.up();
    await Promise.all(pools.map((p) => p.end()));
    await gate?.close();
  });

  replayCacheConformance({
    name: 'PostgresReplayCache',
    test,
    create() {
      const p = new pg.Pool({ ...sharedPgConfig(), port: gate.port, max: 10, connectionTimeoutMillis: 2000 });
      p.on('error', () => {});
      pools.push(p);
      // The first instance migrates the schema on first use, as `migrate: true` promises.
      return new PostgresReplayCache({ pool: p, schema, migrate: pools.length === 1 });
    },
    outage: { break: () => gate.down(), restore: () => gate.up() },
  });
});

describe('RedisReplayCache', () => {
  let client: Redis;

  beforeAll(async () => {
    client = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
    client.on('error', () => {});
    await client.connect();
  });

  afterAll(async () => {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await client.quit();
  });

  it('refuses a missing client, a prefix with hash-tag braces and a non-positive timeout', () => {
    expect(() => new RedisReplayCache({} as never)).toThrow(ConfigError);
    expect(() => new RedisReplayCache({ client, prefix: 'a{b}:' })).toThrow(ConfigError);
    expect(() => new RedisReplayCache({ client, commandTimeoutMs: 0 })).toThrow(ConfigError);
  });

  it('one key per entry, <prefix>r:<key>, holding <seenAt>:<expiresAt>, dropped by Redis expiryMarginMs after expiresAt', async () => {
    const cache = new RedisReplayCache({ client, prefix, expiryMarginMs: 5000 });
    const now = Date.now();
    expect(await cache.remember('idp:https://a.example:j1', now + 60_000, now)).toEqual({ first: true });
    const key = `${prefix}r:idp:https://a.example:j1`;
    expect(cache.key('idp:https://a.example:j1')).toBe(key);
    expect(await client.get(key)).toBe(`${now}:${now + 60_000}`);
    expect(await client.pexpiretime(key)).toBe(now + 65_000);
  });

  it('fails closed (503) on a key that holds something else, never answering first', async () => {
    const cache = new RedisReplayCache({ client, prefix });
    await client.set(cache.key('garbage'), 'not-an-entry');
    const now = Date.now();
    await expect(cache.remember('garbage', now + 1000, now)).rejects.toMatchObject({
      status: 503,
      code: 'store_unavailable',
    });
    await expect(cache.seenAt('garbage', now)).rejects.toMatchObject({ status: 503 });
  });

  it('fails closed (503) within commandTimeoutMs when Redis does not answer', async () => {
    const stalled = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, enableOfflineQueue: false });
    stalled.on('error', () => {});
    const cache = new RedisReplayCache({ client: stalled, prefix, commandTimeoutMs: 200 });
    const now = Date.now();
    await expect(cache.remember('k', now + 1000, now)).rejects.toMatchObject({
      status: 503,
      code: 'store_unavailable',
    });
    stalled.disconnect();
  });
});

describe('PostgresReplayCache', () => {
  let pool: pg.Pool;

  beforeAll(async () => {
    pool = new pg.Pool({ ...sharedPgConfig(), max: 4, connectionTimeoutMillis: 2000 });
    pool.on('error', () => {});
    await migrate(pool, { schema });
  });

  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  const rows = async () =>
    (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."oma_replay"`)).rows[0]!.n;

  it('refuses a missing pool, a bad schema and a non-positive timeout', () => {
    expect(() => new PostgresReplayCache({} as never)).toThrow(ConfigError);
    expect(() => new PostgresReplayCache({ pool, schema: 'a"b' })).toThrow(ConfigError);
    expect(() => new PostgresReplayCache({ pool, statementTimeoutMs: 0 })).toThrow(ConfigError);
  });

  it('migrate creates the replay table (key, seen_at, expires_at in epoch ms) beside the others', async () => {
    const cache = new PostgresReplayCache({ pool, schema, purgeIntervalMs: 0 });
    const now = Date.now();
    await cache.remember('pg:layout', now + 60_000, now);
    const { rows: found } = await pool.query(
      `SELECT key, seen_at, expires_at FROM "${schema}"."oma_replay" WHERE key = 'pg:layout'`,
    );
    expect(found).toEqual([{ key: 'pg:layout', seen_at: String(now), expires_at: String(now + 60_000) }]);
  });

  it('an expired row is taken over in place by the next remember (one row per key)', async () => {
    const cache = new PostgresReplayCache({ pool, schema, purgeIntervalMs: 0 });
    const now = Date.now();
    await cache.remember('pg:reuse', now + 1000, now);
    expect(await cache.remember('pg:reuse', now + 61_000, now + 1000)).toEqual({ first: true });
    const { rows: found } = await pool.query(
      `SELECT seen_at, expires_at FROM "${schema}"."oma_replay" WHERE key = 'pg:reuse'`,
    );
    expect(found).toEqual([{ seen_at: String(now + 1000), expires_at: String(now + 61_000) }]);
  });

  it('purgeExpired deletes rows expired more than purgeGraceMs ago, in bounded batches, and keeps the rest', async () => {
    const cache = new PostgresReplayCache({ pool, schema, purgeIntervalMs: 0, purgeGraceMs: 1000 });
    await pool.query(`DELETE FROM "${schema}"."oma_replay"`);
    const now = Date.now();
    for (let i = 0; i < 25; i++) await cache.remember(`pg:old:${i}`, now + 100, now);
    await cache.remember('pg:live', now + 60_000, now);
    expect(await cache.purgeExpired({ now: now + 1000, batchSize: 10 })).toBe(0);
    expect(await cache.purgeExpired({ now: now + 1100, batchSize: 10, maxBatches: 2 })).toBe(20);
    expect(await cache.purgeExpired({ now: now + 1100, batchSize: 10 })).toBe(5);
    expect(await rows()).toBe(1);
    expect(await cache.seenAt('pg:live', now + 1)).toBe(now);
  });

  it('a remember starts a background purge at most every purgeIntervalMs', async () => {
    let clock = Date.now();
    const cache = new PostgresReplayCache({
      pool,
      schema,
      purgeIntervalMs: 60_000,
      purgeGraceMs: 0,
      clock: () => clock,
    });
    await pool.query(`DELETE FROM "${schema}"."oma_replay"`);
    const now = clock;
    for (let i = 0; i < 5; i++) await cache.remember(`pg:bg:${i}`, now + 100, now);
    clock = now + 30_000;
    await cache.remember('pg:bg:live', now + 90_000, now);
    expect(await rows()).toBe(6);
    clock = now + 60_000;
    await cache.remember('pg:bg:live2', now + 90_000, now);
    // The purge runs beside the call, never before its answer: wait for it to land.
    for (let i = 0; i < 100 && (await rows()) !== 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await rows()).toBe(2);
  });

  it('whole milliseconds: a fractional now and expiry are kept (seen_at down, expires_at up)', async () => {
    const cache = new PostgresReplayCache({ pool, schema, purgeIntervalMs: 0 });
    const now = Date.now() + 0.6;
    expect(await cache.remember('pg:fraction', now + 1000.2, now)).toEqual({ first: true });
    expect(await cache.remember('pg:fraction', now + 1000, now + 1)).toEqual({
      first: false,
      seenAt: Math.floor(now),
    });
  });

  it('fails closed (503) when the table is missing (not migrated), never answering first', async () => {
    const cache = new PostgresReplayCache({ pool, schema: uniqueName('oma_none'), purgeIntervalMs: 0 });
    const now = Date.now();
    await expect(cache.remember('k', now + 1000, now)).rejects.toMatchObject({
      status: 503,
      code: 'store_unavailable',
    });
    await expect(cache.seenAt('k', now)).rejects.toMatchObject({ status: 503 });
  });
});
