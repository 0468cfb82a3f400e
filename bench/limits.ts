/**
 * What the rate limits cost (docs/RATE-LIMITS.md): in process (no HTTP), the same engine setup with
 * `rateLimits` on and `rateLimits: false`, alternating A, B, A, B… for `--rounds` rounds; the ratio
 * is taken per round, then the median. The limits on are budgets that never refuse
 * ({@link BENCH_RATE_LIMITS}: the same counting work as the defaults). Cases:
 * - login from one address (four budget checks: address, failed logins, identity, subject lockout);
 * - the bearer guard once the process has seen an invalid token (its worst case: a map read per call);
 * - with `--redis`, login with a `RedisRateLimiter` on 127.0.0.1:6379 (two round trips) against none.
 *
 * `npx tsx bench/limits.ts [--rounds N] [--quick] [--redis]`.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisRateLimiter } from '../adapters/redis/index.js';
import { createOidcAuth, type OidcAuth, type RateLimitsOptions } from '../src/index.js';
import {
  BENCH_RATE_LIMITS,
  benchIdentity,
  IDENTITY_ID,
  makeIdpKey,
  SIGNING_KEYS,
  signIdpToken,
} from './lib/fixtures.js';
import {
  measureAlternating,
  throughputRatio,
  writeCaseMedians,
  type MicroCase,
} from './lib/micro-harness.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    redis: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const options = values.quick
  ? { batches: 5, batchMs: 20, warmupMs: 100 }
  : { batches: 15, batchMs: 60, warmupMs: 400 };

const key = makeIdpKey('RS256');
const jwt = await signIdpToken(key);
const CLIENT = '203.0.113.10';
const engine = (rateLimits: RateLimitsOptions | false): OidcAuth =>
  createOidcAuth({ identities: [benchIdentity(key)], signingKeys: SIGNING_KEYS, rateLimits });

const limited = engine(BENCH_RATE_LIMITS);
const unlimited = engine(false);
const tokenOf = async (auth: OidcAuth) =>
  (await auth.login({ identityId: IDENTITY_ID, jwt, clientIp: CLIENT })).accessToken;
const limitedToken = await tokenOf(limited);
const unlimitedToken = await tokenOf(unlimited);
// The guard's worst case: this process has seen an invalid token, so every call reads the map.
await limited.authenticate('omat_invalid', { clientIp: '192.0.2.1' }).catch(() => {});

const login = (auth: OidcAuth) => () => auth.login({ identityId: IDENTITY_ID, jwt, clientIp: CLIENT });
const cases: MicroCase[] = [
  { group: 'login', name: 'login, rate limits on (memory)', op: login(limited) },
  { group: 'login', name: 'login, rateLimits: false', op: login(unlimited) },
  {
    group: 'guard',
    name: 'guard, rate limits on',
    op: () => limited.authenticate(limitedToken, { clientIp: CLIENT }),
  },
  {
    group: 'guard',
    name: 'guard, rateLimits: false',
    op: () => unlimited.authenticate(unlimitedToken, { clientIp: CLIENT }),
  },
];
const pairs: Array<[string, string]> = [
  ['login, rate limits on (memory)', 'login, rateLimits: false'],
  ['guard, rate limits on', 'guard, rateLimits: false'],
];

let redis: Redis | undefined;
let redisLimited: OidcAuth | undefined;
if (values.redis) {
  redis = new Redis({ host: '127.0.0.1', port: 6379, enableOfflineQueue: false, lazyConnect: true });
  await redis.connect();
  const prefix = `bench-limits-${process.pid}:`;
  redisLimited = engine({ ...BENCH_RATE_LIMITS, limiter: new RedisRateLimiter({ client: redis, prefix }) });
  cases.push({ group: 'login', name: 'login, RedisRateLimiter', op: login(redisLimited) });
  pairs.push(['login, RedisRateLimiter', 'login, rateLimits: false']);
}

const results = await measureAlternating(cases, rounds, options);
writeCaseMedians(results, { pad: 34, digits: 2 });
for (const [a, b] of pairs) {
  const wall = throughputRatio(results, a, b, (r) => r.wallNs, 3);
  const cpu = throughputRatio(results, a, b, (r) => r.cpuNs, 3);
  process.stdout.write(`${a} vs ${b}: throughput ${wall} (wall), ${cpu} (cpu)\n`);
}
await Promise.all([limited.close(), unlimited.close(), redisLimited?.close()]);
if (redis) {
  const keys = await redis.keys(`bench-limits-${process.pid}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
}
