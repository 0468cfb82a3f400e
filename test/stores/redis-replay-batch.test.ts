/**
 * Issue 16, "a proof costs at most one round trip, batched like uses are": `RedisReplayCache`
 * sends the `remember` calls of one event-loop turn as one `REMEMBER_MANY` script call (at most 512
 * keys each), each call answered on its own, a key given twice answered in order; a failing call
 * rejects every caller of it (fail closed); batching is off with `batchRemembers: false` and on a
 * Cluster client. The conformance suite runs with batching on and off in replay-cache.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisReplayCache } from '../../adapters/redis/index.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import type { ReplayVerdict } from '../../src/tokens/replay.js';
import { sharedRedisOptions, uniqueName } from '../helpers/servers.js';

const prefix = `${uniqueName('oma_replay_batch')}:`;
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
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await client.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await client.quit();
});

const newKey = (what = 'k') => `dpop:batch:${what}:${randomUUID()}`;

interface Sent {
  name: string;
  args: unknown[];
}

/** The commands `on` sends while `run` runs (its scripts loaded first, so none is an `EVAL` reload). */
async function commandsOf<T>(on: Redis, run: () => Promise<T>): Promise<{ sent: Sent[]; result: T }> {
  const spy = vi.spyOn(on, 'sendCommand');
  try {
    const result = await run();
    const sent = spy.mock.calls.map(([command]) => command as unknown as Sent);
    return { sent, result };
  } finally {
    spy.mockRestore();
  }
}

/** How many keys an `EVALSHA` command carried. */
const keysOf = (command: Sent) => Number(command.args[1]);

async function warm(cache: RedisReplayCache): Promise<void> {
  const now = Date.now();
  await cache.remember(newKey('warm'), now + 1000, now);
}

describe('RedisReplayCache: remembers of one turn share one script call', () => {
  it('50 concurrent remembers of distinct keys are one round trip (one EVALSHA over 50 keys), each first (RFC 9449 §11.1)', async () => {
    const cache = new RedisReplayCache({ client, prefix });
    await warm(cache);
    const keys = Array.from({ length: 50 }, () => newKey());
    const now = Date.now();
    const { sent, result } = await commandsOf(client, () =>
      Promise.all(keys.map((key) => cache.remember(key, now + 60_000, now))),
    );
    expect(sent.map((c) => c.name)).toEqual(['evalsha']);
    expect(keysOf(sent[0]!)).toBe(50);
    expect(result).toEqual(keys.map(() => ({ first: true })));
    for (const key of keys) expect(await client.get(cache.key(key))).toBe(`${now}:${now + 60_000}`);
  });

  it('each caller gets its own verdict: a key seen before answers its seenAt, new keys beside it are first', async () => {
    const cache = new RedisReplayCache({ client, prefix });
    const seen = newKey('seen');
    const then = Date.now() - 5000;
    expect(await cache.remember(seen, then + 60_000, then)).toEqual({ first: true });
    const fresh = [newKey(), newKey()];
    const now = Date.now();
    const { sent, result } = await commandsOf(client, () =>
      Promise.all([
        cache.remember(fresh[0]!, now + 60_000, now),
        cache.remember(seen, now + 60_000, now),
        cache.remember(fresh[1]!, now + 60_000, now),
      ]),
    );
    expect(sent.map((c) => c.name)).toEqual(['evalsha']);
    expect(result).toEqual([{ first: true }, { first: false, seenAt: then }, { first: true }]);
  });

  it('the same key given 20 times in one call is first exactly once, for the earliest caller; the rest say when (RFC 9449 §11.1)', async () => {
    const cache = new RedisReplayCache({ client, prefix });
    await warm(cache);
    const key = newKey('twice');
    const others = Array.from({ length: 5 }, () => newKey());
    const now = Date.now();
    const { sent, result } = await commandsOf(client, () =>
      Promise.all([
        ...Array.from({ length: 20 }, (_, i) => cache.remember(key, now + 60_000, now + i)),
        ...others.map((k) => cache.remember(k, now + 60_000, now)),
      ]),
    );
    expect(sent.map((c) => c.name)).toEqual(['evalsha']);
    expect(keysOf(sent[0]!)).toBe(25);
    const verdicts = result.slice(0, 20);
    expect(verdicts.filter((v) => v.first)).toHaveLength(1);
    expect(verdicts[0]).toEqual({ first: true });
    for (const v of verdicts.slice(1)) expect(v).toEqual({ first: false, seenAt: now });
    expect(result.slice(20)).toEqual(others.map(() => ({ first: true })));
  });

  it("each key of a call keeps its caller's now and expiresAt: an entry expired by one caller's now is taken over, in order", async () => {
    const cache = new RedisReplayCache({ client, prefix, expiryMarginMs: 5000 });
    const key = newKey('takeover');
    const now = Date.now();
    expect(await cache.remember(key, now + 1000, now)).toEqual({ first: true });
    const { sent, result } = await commandsOf(client, () =>
      Promise.all([
        cache.remember(key, now + 9000, now + 999), // 1 ms before expiry: seen
        cache.remember(key, now + 61_000, now + 1000), // at expiry: takes it over
        cache.remember(key, now + 99_000, now + 1001), // sees the take-over
        cache.remember(key, now + 500, now + 1000), // an expiry before its now changes nothing: seen
      ]),
    );
    expect(sent.map((c) => c.name)).toEqual(['evalsha']);
    expect(result).toEqual<ReplayVerdict[]>([
      { first: false, seenAt: now },
      { first: true },
      { first: false, seenAt: now + 1000 },
      { first: false, seenAt: now + 1000 },
    ]);
    expect(await client.get(cache.key(key))).toBe(`${now + 1000}:${now + 61_000}`);
    expect(await client.pexpiretime(cache.key(key))).toBe(now + 66_000);
  });

  it('a burst larger than 512 keys is split into calls of at most 512, every key answered', async () => {
    const cache = new RedisReplayCache({ client, prefix });
    await warm(cache);
    const keys = Array.from({ length: 1100 }, () => newKey('burst'));
    const now = Date.now();
    const { sent, result } = await commandsOf(client, () =>
      Promise.all(keys.map((key) => cache.remember(key, now + 60_000, now))),
    );
    expect(sent.map((c) => c.name)).toEqual(['evalsha', 'evalsha', 'evalsha']);
    expect(sent.map(keysOf)).toEqual([512, 512, 76]);
    expect(result.every((v) => v.first)).toBe(true);
    expect(await client.exists(...keys.map((k) => cache.key(k)))).toBe(1100);
  });

  it('remembers of different turns are different calls', async () => {
    const cache = new RedisReplayCache({ client, prefix });
    await warm(cache);
    const now = Date.now();
    const { sent } = await commandsOf(client, async () => {
      await cache.remember(newKey(), now + 60_000, now);
      await cache.remember(newKey(), now + 60_000, now);
    });
    expect(sent.map((c) => c.name)).toEqual(['evalsha', 'evalsha']);
  });

  it('reloads its script when the server lost it (SCRIPT FLUSH): a batch still answers each caller', async () => {
    const cache = new RedisReplayCache({ client, prefix });
    await warm(cache);
    await client.script('FLUSH');
    const key = newKey();
    const now = Date.now();
    const verdicts = await Promise.all([
      cache.remember(key, now + 60_000, now),
      cache.remember(key, now + 60_000, now + 1),
      cache.remember(newKey(), now + 60_000, now),
    ]);
    expect(verdicts).toEqual([{ first: true }, { first: false, seenAt: now }, { first: true }]);
  });
});

describe('RedisReplayCache: a failing call fails closed for every caller of it', () => {
  const expectAllUnavailable = (settled: PromiseSettledResult<ReplayVerdict>[]) => {
    for (const outcome of settled) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as Error;
      expect(error).toBeInstanceOf(ServiceUnavailableError);
      expect(error).toMatchObject({ status: 503, code: 'store_unavailable' });
    }
  };

  it.each([
    ['a string that is no replay entry', (key: string) => client.set(key, 'not-an-entry', 'PX', 60_000)],
    ['an entry whose seenAt is no number', (key: string) => client.set(key, 'x:1', 'PX', 60_000)],
    ['a hash (wrong type)', (key: string) => client.hset(key, 'a', '1')],
  ])(
    'a key holding %s rejects every caller of the call with store_unavailable, and no key of it is written',
    async (_what, damage) => {
      const cache = new RedisReplayCache({ client, prefix });
      await warm(cache);
      const bad = newKey('damaged');
      await damage(cache.key(bad));
      const good = [newKey(), newKey(), newKey()];
      const now = Date.now();
      const { sent, result } = await commandsOf(client, () =>
        Promise.allSettled([
          cache.remember(good[0]!, now + 60_000, now),
          cache.remember(good[1]!, now + 60_000, now),
          cache.remember(bad, now + 60_000, now),
          cache.remember(good[2]!, now + 60_000, now),
        ]),
      );
      expect(sent.map((c) => c.name)).toEqual(['evalsha']);
      expectAllUnavailable(result);
      for (const outcome of result) {
        expect(((outcome as PromiseRejectedResult).reason as Error).message).not.toMatch(
          /WRONGTYPE|replay key/,
        );
      }
      // Nothing was remembered: the callers that got 503 can try again and be first.
      expect(await client.exists(...good.map((k) => cache.key(k)))).toBe(0);
      expect(await cache.remember(good[0]!, now + 60_000, now)).toEqual({ first: true });
    },
  );

  it('a disconnected client rejects every caller of the call with store_unavailable, none first', async () => {
    const own = new Redis({
      ...sharedRedisOptions(),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    });
    own.on('error', () => {});
    await own.connect();
    const cache = new RedisReplayCache({ client: own, prefix, commandTimeoutMs: 500 });
    await warm(cache);
    own.disconnect();
    const now = Date.now();
    const keys = Array.from({ length: 10 }, () => newKey());
    const { sent, result } = await commandsOf(own, () =>
      Promise.allSettled(keys.map((key) => cache.remember(key, now + 60_000, now))),
    );
    expect(sent.map((c) => c.name)).toEqual(['evalsha']);
    expectAllUnavailable(result);
    expect(await client.exists(...keys.map((k) => cache.key(k)))).toBe(0);
  });

  it('a Redis that does not answer rejects every caller within commandTimeoutMs', async () => {
    const stalled = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, enableOfflineQueue: false });
    stalled.on('error', () => {});
    const cache = new RedisReplayCache({ client: stalled, prefix, commandTimeoutMs: 200 });
    const now = Date.now();
    const started = performance.now();
    const settled = await Promise.allSettled(
      Array.from({ length: 5 }, () => cache.remember(newKey(), now + 60_000, now)),
    );
    expect(performance.now() - started).toBeLessThan(2000);
    expectAllUnavailable(settled);
    stalled.disconnect();
  });
});

describe('RedisReplayCache: batching off', () => {
  it('with batchRemembers: false, every remember is its own one-key script call', async () => {
    const cache = new RedisReplayCache({ client, prefix, batchRemembers: false });
    await warm(cache);
    const key = newKey();
    const now = Date.now();
    const { sent, result } = await commandsOf(client, () =>
      Promise.all([
        cache.remember(key, now + 60_000, now),
        cache.remember(key, now + 60_000, now + 1),
        cache.remember(newKey(), now + 60_000, now),
      ]),
    );
    expect(sent.map((c) => c.name)).toEqual(['evalsha', 'evalsha', 'evalsha']);
    expect(sent.map(keysOf)).toEqual([1, 1, 1]);
    expect(result).toEqual([{ first: true }, { first: false, seenAt: now }, { first: true }]);
  });

  it('on a Cluster client (isCluster), batching is off whatever the option: one key per script call, so one slot', async () => {
    // A Cluster-shaped client: the standalone client seen through `isCluster: true`, as ioredis'
    // Cluster reports itself. (The conformance suite runs on a real three-master Cluster too.)
    const clusterShaped = new Proxy(client, {
      get(target, property) {
        if (property === 'isCluster') return true;
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    for (const batchRemembers of [undefined, true]) {
      const cache = new RedisReplayCache({ client: clusterShaped, prefix, batchRemembers });
      await warm(cache);
      const now = Date.now();
      const keys = Array.from({ length: 4 }, () => newKey('cluster'));
      const { sent, result } = await commandsOf(client, () =>
        Promise.all(keys.map((key) => cache.remember(key, now + 60_000, now))),
      );
      expect(sent.map((c) => c.name)).toEqual(['evalsha', 'evalsha', 'evalsha', 'evalsha']);
      expect(sent.map(keysOf)).toEqual([1, 1, 1, 1]);
      expect(result).toEqual(keys.map(() => ({ first: true })));
    }
  });
});
