/**
 * Login with single-use IdP tokens on (`singleUseTokens: true`) against the same login with it off,
 * in process (no HTTP: no socket or load-generator noise), on the memory stores and on Redis
 * (`RedisTokenStore` + `RedisReplayCache` on one ioredis client to 127.0.0.1:6379, both with their
 * default options: the uses, and the remembers, of one event-loop turn go as one script call). Issue
 * 16 target: on is at least 0.9x off, on memory and on Redis.
 *
 * Every login, on or off, presents an IdP token the replay cache has not seen: tokens come from a pool
 * of distinct pre-signed tokens (distinct `jti`s), and each time the pool has gone round, the
 * single-use engine's replay cache is swapped for a fresh one (memory: a new `MemoryReplayCache`;
 * Redis: a new key prefix), so each `remember` is a real insert of a new key, never a refusal. Both
 * cases pay the same pool bookkeeping. Cases alternate off, on, on, off… for `--rounds` rounds; the
 * ratio is taken per round, then the median. Redis runs with 1 login in flight (latency: one more
 * round trip) and with `--in-flight` (default 32; throughput).
 *
 * `npx tsx bench/single-use.ts [--rounds N] [--quick] [--in-flight N] [--stores memory,redis]`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisReplayCache, RedisTokenStore } from '../adapters/redis/index.js';
import { createOidcAuth, MemoryReplayCache, type OidcAuth } from '../src/index.js';
import type { ReplayCache, ReplayVerdict } from '../src/tokens/replay.js';
import {
  benchIdentity,
  idpClaims,
  IDENTITY_ID,
  ISSUER,
  makeIdpKey,
  BENCH_RATE_LIMITS,
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
    'in-flight': { type: 'string', default: '32' },
    stores: { type: 'string', default: 'memory,redis' },
    tokens: { type: 'string', default: '2000' },
  },
});
const rounds = Number(values.rounds);
const inFlight = Number(values['in-flight']);
const stores = values.stores.split(',');
const options = values.quick
  ? { batches: 5, batchMs: 20, warmupMs: 100 }
  : { batches: 15, batchMs: 60, warmupMs: 400 };

/**
 * The replay cache of an engine, whose backing cache a case swaps for a fresh one. A login still in
 * flight at the swap remembers its key in the cache that was current when it started (`route`).
 */
class Swappable implements ReplayCache {
  /** Replay key → the cache current when its login started. */
  readonly route = new Map<string, ReplayCache>();
  constructor(
    public inner: ReplayCache,
    private readonly fresh: () => ReplayCache,
  ) {}
  remember(key: string, expiresAt: number, now: number): Promise<ReplayVerdict> {
    return (this.route.get(key) ?? this.inner).remember(key, expiresAt, now);
  }
  seenAt(key: string, now: number): Promise<number | undefined> {
    return this.inner.seenAt(key, now);
  }
  swap(): void {
    this.inner = this.fresh();
  }
}

const key = makeIdpKey('RS256');
process.stdout.write(`signing ${values.tokens} IdP tokens…\n`);
const pool: Array<{ jwt: string; key: string }> = [];
for (let i = 0; i < Number(values.tokens); i++) {
  const jti = `bench-${i}-${randomBytes(6).toString('hex')}`;
  pool.push({ key: `idp:${ISSUER}:${jti}`, jwt: await signIdpToken(key, idpClaims(6 * 3600, { jti })) });
}

/** A login case over the token pool; `cache` is swapped each time the pool goes round. */
function loginCase(name: string, group: string, auth: OidcAuth, cache: Swappable, lanes = 1): MicroCase {
  let next = 0;
  return {
    name,
    group,
    inFlight: lanes,
    op: async () => {
      if (next === pool.length) {
        next = 0;
        cache.swap();
      }
      const token = pool[next++]!;
      cache.route.set(token.key, cache.inner);
      const grant = await auth.login({ identityId: IDENTITY_ID, jwt: token.jwt, clientIp: '127.0.0.1' });
      if (!grant.accessToken) throw new Error('no access token');
    },
  };
}

const closers: Array<() => Promise<unknown>> = [];
const cases: MicroCase[] = [];
const pairs: Array<[off: string, on: string]> = [];

function engines(
  group: string,
  tokens: () => ConstructorParameters<typeof RedisTokenStore>[0] | undefined,
  fresh: () => ReplayCache,
  lanes: number[],
) {
  for (const lane of lanes) {
    const made = (singleUseTokens: boolean) => {
      const cache = new Swappable(fresh(), fresh);
      const tokenOptions = tokens();
      const auth = createOidcAuth({
        identities: [benchIdentity(key, { singleUseTokens })],
        signingKeys: SIGNING_KEYS,
        rateLimits: BENCH_RATE_LIMITS,
        replayCache: cache,
        ...(tokenOptions ? { tokens: new RedisTokenStore(tokenOptions) } : {}),
      });
      closers.push(() => auth.close());
      return { auth, cache };
    };
    const off = made(false);
    const on = made(true);
    const suffix = lanes.length > 1 || lane > 1 ? `, ${lane} in flight` : '';
    const offName = `${group}: singleUseTokens off${suffix}`;
    const onName = `${group}: singleUseTokens on${suffix}`;
    cases.push(loginCase(offName, group, off.auth, off.cache, lane));
    cases.push(loginCase(onName, group, on.auth, on.cache, lane));
    pairs.push([offName, onName]);
  }
}

if (stores.includes('memory')) {
  engines(
    'memory',
    () => undefined,
    () => new MemoryReplayCache(),
    [1],
  );
}
if (stores.includes('redis')) {
  const base = `omabench:single-use:${process.pid}-${randomBytes(4).toString('hex')}`;
  const client = new Redis({
    host: '127.0.0.1',
    port: 6379,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  await new Promise((resolve) => client.once('ready', resolve));
  closers.push(() => client.quit());
  process.on('exit', () => {
    // Bench keys only (a per-process prefix); SCAN, never KEYS, on the shared server.
    execFileSync(
      'sh',
      ['-c', `redis-cli -h 127.0.0.1 --scan --pattern '${base}*' | xargs -r redis-cli -h 127.0.0.1 DEL`],
      { stdio: 'ignore' },
    );
  });
  let generation = 0;
  // Default options (`batchRemembers` on), as an app gets them.
  engines(
    'redis',
    () => ({ client, prefix: `${base}:t:` }),
    () => new RedisReplayCache({ client, prefix: `${base}:r${generation++}:` }),
    [1, inFlight],
  );
}

const results = await measureAlternating(cases, rounds, options);
writeCaseMedians(results, { pad: 48, digits: 1 });
for (const [off, on] of pairs) {
  const wall = throughputRatio(results, on, off, (r) => r.wallNs);
  const cpu = throughputRatio(results, on, off, (r) => r.cpuNs);
  process.stdout.write(`${on} vs off: throughput ${wall} (wall), ${cpu} (cpu); target ≥ 0.9x\n`);
}
for (const close of closers) await close();
