import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisRateLimiter, RedisTokenStore } from '../../adapters/redis/index.js';
import { ServiceUnavailableError } from '../../src/index.js';
import { githubIdentity, makeEngine, type TestEngine } from '../helpers/engine.js';
import { githubClaims, makeKey, rawToken, sign } from '../helpers/jwt.js';
import { sharedRedisOptions, uniqueName } from '../helpers/servers.js';
import { describeRateLimiterSemantics } from './semantics.js';
import type { RateLimitsOptions } from '../../src/index.js';

const prefix = `${uniqueName('limits')}:`;
let redis: Redis;
let count = 0;

beforeAll(async () => {
  redis = new Redis({ ...sharedRedisOptions(), lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  await redis.connect();
});
afterAll(async () => {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await redis.quit();
});

describeRateLimiterSemantics('RedisRateLimiter', () => {
  const own = `${prefix}${++count}:`;
  return { limiter: new RedisRateLimiter({ client: redis, prefix: own }), key: (k) => k };
});

const T0 = Date.UTC(2026, 0, 1);

describe('RedisRateLimiter: keys, expiry, failure', () => {
  it('one key per budget key, expiring when its budget is full again (PX), none for a question', async () => {
    const limiter = new RedisRateLimiter({ client: redis, prefix });
    const rule = { perMinute: 60, burst: 5 };
    await limiter.hit('peek-only', rule, 0, Date.now());
    expect(await redis.exists(limiter.key('peek-only'))).toBe(0);
    const now = Date.now();
    for (let i = 0; i < 3; i++) await limiter.hit('expiring', rule, 1, now);
    const ttl = await redis.pttl(limiter.key('expiring'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3000);
    expect(Number(await redis.get(limiter.key('expiring')))).toBe((now + 3000) * 1000);
  });

  it('a key holding something else is a 503, never a pass', async () => {
    const limiter = new RedisRateLimiter({ client: redis, prefix });
    await redis.set(limiter.key('clobbered'), 'not a number');
    await expect(limiter.hit('clobbered', { perMinute: 60, burst: 5 }, 1, T0)).rejects.toBeInstanceOf(
      ServiceUnavailableError,
    );
  });

  it('Redis down: every hit throws store_unavailable (fail closed)', async () => {
    const dead = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
    dead.on('error', () => {});
    await dead.connect();
    dead.disconnect();
    const limiter = new RedisRateLimiter({ client: dead, prefix, commandTimeoutMs: 500 });
    const error = await limiter.hit('k', { perMinute: 60, burst: 5 }, 1, T0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect((error as ServiceUnavailableError).code).toBe('store_unavailable');
  });

  it('refuses a bad prefix or timeout at construction', () => {
    expect(() => new RedisRateLimiter({ client: redis, prefix: 'a{b}' })).toThrow(/prefix/);
    expect(() => new RedisRateLimiter({ client: redis, commandTimeoutMs: 0 })).toThrow(/commandTimeoutMs/);
  });
});

describe('a fleet of engines sharing Redis shares the budgets', () => {
  const key = makeKey('RS256');
  const A = '203.0.113.9';
  const B = '198.51.100.30';

  function instance(limiterPrefix: string, rateLimits: RateLimitsOptions): TestEngine {
    const client = redis;
    return makeEngine({
      key,
      identities: [githubIdentity(key, { boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/*' })],
      auth: {
        tokens: new RedisTokenStore({ client, prefix: limiterPrefix }),
        rateLimits: { ...rateLimits, limiter: new RedisRateLimiter({ client, prefix: limiterPrefix }) },
      },
    });
  }

  async function outcome(call: Promise<unknown>): Promise<string> {
    return call.then(
      () => 'ok',
      (error: { status: number; code: string }) => `${error.status} ${error.code}`,
    );
  }

  it('per address: logins through two instances draw on one budget', async () => {
    const shared = `${prefix}fleet1:`;
    const one = instance(shared, { perAddress: { perMinute: 60, burst: 4 } });
    const two = instance(shared, { perAddress: { perMinute: 60, burst: 4 } });
    two.clock.ms = one.clock.ms;
    const jwt = await sign(key, githubClaims(one.clock.ms));
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { auth } = i % 2 ? two : one;
      seen.push(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A })));
    }
    expect(seen).toEqual(['ok', 'ok', 'ok', 'ok', '429 rate_limited', '429 rate_limited']);
    expect(await outcome(two.auth.login({ identityId: 'gh-deployer', jwt, clientIp: B }))).toBe('ok');
    await Promise.all([one.auth.close(), two.auth.close()]);
  });

  it('a flood of invalid IdP tokens from A at one instance throttles A at the other, never a valid pipeline at B', async () => {
    const shared = `${prefix}fleet2:`;
    const rules = { failedLoginsPerAddress: { perMinute: 6, burst: 10 } };
    const one = instance(shared, rules);
    const two = instance(shared, rules);
    const jwt = await sign(key, githubClaims(one.clock.ms));
    const garbage = rawToken({ alg: 'RS256', kid: key.kid }, githubClaims(one.clock.ms));
    for (let i = 0; i < 10; i++) {
      expect(await outcome(one.auth.login({ identityId: 'gh-deployer', jwt: garbage, clientIp: A }))).toBe(
        '401 invalid_credentials',
      );
    }
    expect(await outcome(two.auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe(
      '429 rate_limited',
    );
    expect(await outcome(two.auth.login({ identityId: 'gh-deployer', jwt, clientIp: B }))).toBe('ok');
    expect(await outcome(one.auth.login({ identityId: 'gh-deployer', jwt, clientIp: B }))).toBe('ok');
    await Promise.all([one.auth.close(), two.auth.close()]);
  });

  it('failed verified logins at one instance lock that subject out at the other, and only that subject', async () => {
    const shared = `${prefix}fleet3:`;
    const rules = { failedLoginsPerSubject: { perMinute: 1, burst: 3 } };
    const one = instance(shared, rules);
    const two = instance(shared, rules);
    const wrong = await sign(key, githubClaims(one.clock.ms, { aud: 'https://elsewhere.example' }));
    for (let i = 0; i < 3; i++) {
      expect(await outcome(one.auth.login({ identityId: 'gh-deployer', jwt: wrong, clientIp: A }))).toBe(
        '401 audience_not_allowed',
      );
    }
    const main = await sign(key, githubClaims(one.clock.ms));
    const dev = await sign(
      key,
      githubClaims(one.clock.ms, { sub: 'repo:acme-corp/payments-api:ref:refs/heads/dev' }),
    );
    expect(await outcome(two.auth.login({ identityId: 'gh-deployer', jwt: main, clientIp: B }))).toBe(
      '429 locked_out',
    );
    expect(await outcome(two.auth.login({ identityId: 'gh-deployer', jwt: dev, clientIp: B }))).toBe('ok');
    await Promise.all([one.auth.close(), two.auth.close()]);
  });

  it('Redis down: login and renew answer 503 store_unavailable; the guard keeps serving', async () => {
    const dead = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
    dead.on('error', () => {});
    await dead.connect();
    const { auth, clock } = makeEngine({
      key,
      auth: { rateLimits: { limiter: new RedisRateLimiter({ client: dead, prefix: `${prefix}down:` }) } },
    });
    const jwt = await sign(key, githubClaims(clock.ms));
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt, clientIp: A });
    dead.disconnect();
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe(
      '503 store_unavailable',
    );
    expect(await outcome(auth.renew(accessToken, { clientIp: A }))).toBe('503 store_unavailable');
    expect(await outcome(auth.authenticate(accessToken, { clientIp: A }))).toBe('ok');
    await auth.close();
  });
});
