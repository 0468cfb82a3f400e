import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import { makeRecord, tokenStoreConformance } from '../../src/testing/index.js';
import {
  sharedRedisOptions,
  startProxy,
  startRedisCluster,
  uniqueName,
  type OutageProxy,
  type ThrowawayRedisCluster,
} from '../helpers/servers.js';

const prefix = `${uniqueName('oma_test')}:`;
let client: Redis;

beforeAll(async () => {
  client = new Redis({
    ...sharedRedisOptions(),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  client.on('error', () => {});
  // A Redis that cannot be reached fails this file, never skips it.
  await client.connect();
});

afterAll(async () => {
  const keys = await scanKeys(`${prefix}*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
});

async function scanKeys(pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

function store(options: Partial<ConstructorParameters<typeof RedisTokenStore>[0]> = {}): RedisTokenStore {
  return new RedisTokenStore({ client, prefix, ...options });
}

const test = { describe, it, before: beforeAll, after: afterAll };

describe('#18 RedisTokenStore through the exported conformance suite', () => {
  // Each instance the suite asks for is an app instance: its own client, through a TCP proxy this
  // file owns in front of the shared Redis, which the outage hook shuts (connections refused and cut).
  let gate: OutageProxy;
  const clients: Redis[] = [];

  beforeAll(async () => {
    gate = await startProxy(Number(sharedRedisOptions().port));
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await gate?.close();
  });

  tokenStoreConformance({
    name: 'RedisTokenStore',
    test,
    async create() {
      const instanceClient = new Redis({
        host: '127.0.0.1',
        port: gate.port,
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        connectTimeout: 1000,
        retryStrategy: () => 50,
      });
      instanceClient.on('error', () => {});
      clients.push(instanceClient);
      await instanceClient.connect();
      return new RedisTokenStore({ client: instanceClient, prefix });
    },
    outage: { break: () => gate.down(), restore: () => gate.up() },
  });
});

describe('RedisTokenStore', () => {
  it('refuses a prefix with hash-tag braces and a non-positive timeout', () => {
    expect(() => store({ prefix: 'a{b}:' })).toThrow(ConfigError);
    expect(() => store({ commandTimeoutMs: 0 })).toThrow(ConfigError);
  });

  it('keys carry the prefix and a hash tag, and expire at max expiry + margin', async () => {
    const s = store({ expiryMarginMs: 5000 });
    const record = makeRecord();
    await s.create(record);
    expect(s.tokenKey(record.tokenId)).toBe(`${prefix}t:{${record.tokenId}}`);
    expect(s.identityKey(record.identityId)).toBe(`${prefix}i:{${record.identityId}}`);
    expect(await client.pexpiretime(s.tokenKey(record.tokenId))).toBe(record.maxExpiresAt + 5000);
    expect(await client.pexpiretime(s.identityKey(record.identityId))).toBe(record.maxExpiresAt + 5000);
    expect(await client.zscore(s.identityKey(record.identityId), record.tokenId)).toBe(
      String(record.maxExpiresAt + 5000),
    );
  });

  it('#13.1 identity revocation leaves no survivor: the generation key has no expiry, a hash carries its stamp only above 0', async () => {
    const s = store();
    const identityId = uniqueName('gen');
    const before = makeRecord({ identityId });
    await s.create(before);
    expect(await client.hexists(s.tokenKey(before.tokenId), 'g')).toBe(0);
    await s.revokeIdentity(identityId);
    expect(s.generationKey(identityId)).toBe(`${prefix}g:{${identityId}}`);
    expect(await client.get(s.generationKey(identityId))).toBe('1');
    expect(await client.pttl(s.generationKey(identityId))).toBe(-1);
    const after = makeRecord({ identityId, generation: 1 });
    await s.create(after);
    expect(await client.hget(s.tokenKey(after.tokenId), 'g')).toBe('1');
    expect((await s.consume(after.tokenId, Date.now())).ok).toBe(true);
  });

  it('#13.1 identity revocation leaves no survivor: a hash stored before generations (no g field) reads as 0 and is refused once its identity is revoked, even unindexed', async () => {
    const s = store();
    const identityId = uniqueName('legacy');
    const record = makeRecord({ identityId });
    // Written the way the store wrote it before generations, and missing from the index (as a token
    // whose login raced the revocation's snapshot).
    await client.hset(
      s.tokenKey(record.tokenId),
      'i',
      identityId,
      'c',
      record.createdAt,
      'e',
      record.expiresAt,
      'm',
      record.maxExpiresAt,
      't',
      record.ttlSeconds,
      'l',
      0,
      'u',
      0,
      'r',
      '0',
      'ip',
      JSON.stringify(record.trustedIps),
      'md',
      JSON.stringify(record.metadata),
    );
    expect((await s.get(record.tokenId, Date.now()))?.generation).toBe(0);
    expect((await s.consume(record.tokenId, Date.now())).ok).toBe(true);
    expect(await s.revokeIdentity(identityId)).toBe(0);
    expect(await s.consume(record.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
    expect(await s.extend(record.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
  });

  it('#13.1 identity revocation leaves no survivor: a damaged generation key fails closed (503), never grants', async () => {
    const s = store();
    const identityId = uniqueName('damaged');
    const record = makeRecord({ identityId });
    await s.create(record);
    await client.set(s.generationKey(identityId), 'not-a-number');
    await expect(s.consume(record.tokenId, Date.now())).rejects.toBeInstanceOf(ServiceUnavailableError);
    await expect(s.extend(record.tokenId, Date.now())).rejects.toBeInstanceOf(ServiceUnavailableError);
    await expect(s.generation(identityId)).rejects.toBeInstanceOf(ServiceUnavailableError);
  });

  it('a renewal does not move the key expiry', async () => {
    const s = store();
    const record = makeRecord();
    await s.create(record);
    const before = await client.pexpiretime(s.tokenKey(record.tokenId));
    expect((await s.extend(record.tokenId, record.createdAt + 1000)).ok).toBe(true);
    expect(await client.pexpiretime(s.tokenKey(record.tokenId))).toBe(before);
  });

  it('every key goes away by itself after the max expiry: no cleanup job, no growth', async () => {
    const s = store({ expiryMarginMs: 0 });
    const now = Date.now();
    const identityId = uniqueName('short');
    const record = makeRecord({ identityId, expiresAt: now + 100, maxExpiresAt: now + 300 });
    await s.create(record);
    await s.revoke(record.tokenId);
    expect(await client.exists(s.tokenKey(record.tokenId), s.identityKey(identityId))).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await client.exists(s.tokenKey(record.tokenId), s.identityKey(identityId))).toBe(0);
  });

  it('trims index entries of expired tokens at the next login of the identity', async () => {
    const s = store({ expiryMarginMs: 0 });
    const now = Date.now();
    const identityId = uniqueName('trim');
    const old = makeRecord({ identityId, expiresAt: now + 50, maxExpiresAt: now + 100 });
    const kept = makeRecord({ identityId, maxExpiresAt: now + 600_000 });
    await s.create(old);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await s.create(kept);
    expect(await client.zrange(s.identityKey(identityId), '0', '-1')).toEqual([kept.tokenId]);
    expect(await client.pexpiretime(s.identityKey(identityId))).toBe(kept.maxExpiresAt);
  });

  it('a guarded request (consume) is one round trip', async () => {
    const s = store();
    const record = makeRecord({ usesLimit: 3 });
    await s.create(record);
    await s.consume(record.tokenId, record.createdAt + 1); // scripts cached on this connection
    const sent = vi.spyOn(client, 'sendCommand');
    try {
      expect((await s.consume(record.tokenId, record.createdAt + 2)).ok).toBe(true);
      expect(sent.mock.calls.map(([command]) => (command as { name: string }).name)).toEqual(['evalsha']);
    } finally {
      sent.mockRestore();
    }
  });

  it('uses arriving in one turn share one script call, each counted in order', async () => {
    const s = store();
    const limited = makeRecord({ usesLimit: 3 });
    const others = Array.from({ length: 20 }, () => makeRecord());
    await Promise.all([limited, ...others].map((r) => s.create(r)));
    await s.consume(others[0]!.tokenId, Date.now()); // scripts cached on this connection
    const sent = vi.spyOn(client, 'sendCommand');
    try {
      const now = Date.now();
      const results = await Promise.all([
        ...Array.from({ length: 5 }, () => s.consume(limited.tokenId, now)),
        ...others.map((r) => s.consume(r.tokenId, now)),
        s.consume('unknown-token-id-000000', now),
      ]);
      expect(sent.mock.calls.map(([command]) => (command as { name: string }).name)).toEqual(['evalsha']);
      expect(results.slice(0, 5).map((r) => (r.ok ? r.record.usesCount : r.reason))).toEqual([
        1,
        2,
        3,
        'uses_exhausted',
        'uses_exhausted',
      ]);
      expect(results.slice(5, 25).every((r, i) => r.ok && r.record.tokenId === others[i]!.tokenId)).toBe(
        true,
      );
      expect(results[25]).toEqual({ ok: false, reason: 'not_found' });
    } finally {
      sent.mockRestore();
    }
  });

  it('a damaged key in a shared call fails closed alone', async () => {
    const s = store();
    const good = makeRecord();
    const missingFields = makeRecord();
    await s.create(good);
    await s.create(missingFields);
    const notAHash = makeRecord();
    await client.set(s.tokenKey(notAHash.tokenId), 'not a hash', 'PX', 60_000);
    await client.hdel(s.tokenKey(missingFields.tokenId), 'l');
    const now = Date.now();
    const [ok, wrongType, partial] = await Promise.allSettled([
      s.consume(good.tokenId, now),
      s.consume(notAHash.tokenId, now),
      s.consume(missingFields.tokenId, now),
    ]);
    expect(ok).toMatchObject({ status: 'fulfilled', value: { ok: true, record: { tokenId: good.tokenId } } });
    for (const failed of [wrongType, partial]) {
      expect(failed.status).toBe('rejected');
      const error = (failed as PromiseRejectedResult).reason as Error;
      expect(error).toBeInstanceOf(ServiceUnavailableError);
      expect(error).toMatchObject({ code: 'store_unavailable', status: 503 });
    }
  });

  it('a use that cannot be counted fails alone: the others of the call are granted, not spent unanswered', async () => {
    const s = store();
    const [a, bad, c] = [
      makeRecord({ usesLimit: 1 }),
      makeRecord({ usesLimit: 1 }),
      makeRecord({ usesLimit: 1 }),
    ];
    for (const r of [a, bad, c]) await s.create(r);
    // Passes a loose number check but HINCRBY refuses it (not an integer).
    await client.hset(s.tokenKey(bad.tokenId), 'u', '0.5');
    const now = Date.now();
    const [first, broken, last] = await Promise.allSettled([
      s.consume(a.tokenId, now),
      s.consume(bad.tokenId, now),
      s.consume(c.tokenId, now),
    ]);
    expect(first).toMatchObject({ status: 'fulfilled', value: { ok: true, record: { usesCount: 1 } } });
    expect(last).toMatchObject({ status: 'fulfilled', value: { ok: true, record: { usesCount: 1 } } });
    expect(broken.status).toBe('rejected');
    expect((broken as PromiseRejectedResult).reason).toBeInstanceOf(ServiceUnavailableError);
    expect(await client.hget(s.tokenKey(bad.tokenId), 'u')).toBe('0.5');
  });

  it('with batchConsumes: false, every use is its own script call', async () => {
    const s = store({ batchConsumes: false });
    const record = makeRecord({ usesLimit: 2 });
    await s.create(record);
    await s.consume(record.tokenId, Date.now()); // scripts cached on this connection
    const sent = vi.spyOn(client, 'sendCommand');
    try {
      const results = await Promise.all([1, 2, 3].map(() => s.consume(record.tokenId, Date.now())));
      expect(sent.mock.calls.map(([command]) => (command as { name: string }).name)).toEqual([
        'evalsha',
        'evalsha',
        'evalsha',
      ]);
      expect(results.map((r) => (r.ok ? r.record.usesCount : r.reason))).toEqual([
        2,
        'uses_exhausted',
        'uses_exhausted',
      ]);
    } finally {
      sent.mockRestore();
    }
  });

  it('reloads its scripts when the server lost them (SCRIPT FLUSH, restart)', async () => {
    const s = store();
    const record = makeRecord({ usesLimit: 2 });
    await s.create(record);
    await client.script('FLUSH');
    expect((await s.consume(record.tokenId, record.createdAt + 1)).ok).toBe(true);
    expect((await s.consume(record.tokenId, record.createdAt + 1)).ok).toBe(true);
    expect(await s.consume(record.tokenId, record.createdAt + 1)).toEqual({
      ok: false,
      reason: 'uses_exhausted',
    });
  });

  it('a damaged key fails closed with store_unavailable', async () => {
    const s = store();
    const record = makeRecord();
    await client.set(s.tokenKey(record.tokenId), 'not a hash', 'PX', 60_000);
    const error = await s.consume(record.tokenId, Date.now()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ code: 'store_unavailable', status: 503 });
    expect((error as Error).message).not.toContain('WRONGTYPE');
  });

  it('revokeIdentity handles more tokens than one batch', async () => {
    const s = store();
    const identityId = uniqueName('many');
    const records = Array.from({ length: 1200 }, () => makeRecord({ identityId }));
    for (let i = 0; i < records.length; i += 200) {
      await Promise.all(records.slice(i, i + 200).map((r) => s.create(r)));
    }
    expect(await s.revokeIdentity(identityId)).toBe(1200);
    expect(await client.zcard(s.identityKey(identityId))).toBe(0);
    expect(await s.consume(records[1100]!.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
  });

  it('reports MEMORY USAGE per token key', async () => {
    const s = store();
    const small = makeRecord({ metadata: { role: 'deployer', repo: 'acme/api' } });
    const large = makeRecord({
      metadata: {
        role: 'deployer',
        repository: 'acme/api',
        ref: 'refs/heads/main',
        workflow: 'deploy.yml',
        environment: 'production',
        runId: '1234567890',
      },
    });
    await s.create(small);
    await s.create(large);
    const smallBytes = await client.memory('USAGE', s.tokenKey(small.tokenId), 'SAMPLES', 0);
    const largeBytes = await client.memory('USAGE', s.tokenKey(large.tokenId), 'SAMPLES', 0);
    const indexBytes = await client.memory('USAGE', s.identityKey(small.identityId), 'SAMPLES', 0);
    const identityId = uniqueName('busy');
    const busy = Array.from({ length: 1000 }, () => makeRecord({ identityId }));
    for (let i = 0; i < busy.length; i += 200)
      await Promise.all(busy.slice(i, i + 200).map((r) => s.create(r)));
    const busyIndexBytes = await client.memory('USAGE', s.identityKey(identityId), 'SAMPLES', 0);
    console.info(
      `redis MEMORY USAGE: token key ${smallBytes} B (small metadata), ${largeBytes} B (6 mapped claims); ` +
        `identity index ${indexBytes} B with one token, ${busyIndexBytes} B with 1000 ` +
        `(${Math.round(busyIndexBytes! / 1000)} B per token)`,
    );
    expect(smallBytes).toBeLessThan(512);
    expect(largeBytes).toBeLessThan(1200);
  });
});

describe('RedisTokenStore on Redis Cluster (three masters this test starts)', () => {
  let cluster: ThrowawayRedisCluster;
  let clusterClient: Cluster;
  const clusterClients: Cluster[] = [];

  async function connectCluster(): Promise<Cluster> {
    const c = new Cluster(cluster.nodes, {
      enableOfflineQueue: true,
      redisOptions: { maxRetriesPerRequest: 1 },
    });
    c.on('error', () => {});
    clusterClients.push(c);
    await new Promise((resolve, reject) => {
      c.once('ready', resolve);
      c.once('error', reject);
    });
    return c;
  }

  beforeAll(async () => {
    cluster = await startRedisCluster();
    clusterClient = await connectCluster();
  }, 30_000);

  afterAll(async () => {
    for (const c of clusterClients) c.disconnect();
    await cluster?.stop();
  });

  // Two app instances, each with its own Cluster client.
  tokenStoreConformance({
    name: 'RedisTokenStore (Cluster)',
    test,
    create: async () => new RedisTokenStore({ client: await connectCluster() }),
  });

  it('spreads tokens over the slots of every master', async () => {
    const s = new RedisTokenStore({ client: clusterClient });
    const records = Array.from({ length: 30 }, () => makeRecord());
    await Promise.all(records.map((r) => s.create(r)));
    const slots = new Set(
      await Promise.all(records.map((r) => clusterClient.cluster('KEYSLOT', s.tokenKey(r.tokenId)))),
    );
    expect(slots.size).toBeGreaterThan(20);
    const keysPerNode = await Promise.all(clusterClient.nodes('master').map((node) => node.dbsize()));
    expect(keysPerNode.every((n) => n > 0)).toBe(true);
  });
});
