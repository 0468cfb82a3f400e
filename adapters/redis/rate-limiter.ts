import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import { RedisCalls, type Script } from './calls.js';
import { CLOCK_JUMP_US, emissionIntervalUs, toMicros } from '../../src/limits/gcra.js';
import {
  checkHitArguments,
  type RateLimitDecision,
  type RateLimitRule,
  type RateLimiter,
} from '../../src/limits/rate-limiter.js';

export interface RedisRateLimiterOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`), owned by the caller: the limiter never closes it. The
   * same recommended options as for `RedisTokenStore` (`enableOfflineQueue: false`,
   * `maxRetriesPerRequest: 1`, short timeouts); it may be the very client the token store uses.
   */
  client: Redis | Cluster;
  /** Prepended to every key (`<prefix>rl:<key>`). Must not contain `{` or `}`. Default `'oma:'`. */
  prefix?: string;
  /** Longest wait for one command, in ms; past it the call throws `store_unavailable` (503). Default 1000. */
  commandTimeoutMs?: number;
}

/**
 * GCRA, the arithmetic of `gcra()` in src/limits/gcra.ts, in whole microseconds. KEYS[1] the key
 * (its value: the theoretical arrival time); ARGV[1] now, ARGV[2] the emission interval, ARGV[3]
 * burst, ARGV[4] cost (0: ask, record nothing), ARGV[5] the clock jump allowance. Returns `{1, remaining}` or `{0, µs over budget}`.
 * The key expires (`PX`) when its budget is full again, when it no longer means anything.
 */
const HIT = `
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local capacity = burst * interval
local tat = now
local held = redis.call('GET', KEYS[1])
if held then
  local stored = tonumber(held)
  if not stored then return redis.error_reply('rate limit key holds no rate limit state') end
  if stored > now and stored <= now + capacity + tonumber(ARGV[5]) then tat = stored end
end
local step = cost
if step == 0 then step = 1 end
local over = tat + step * interval - now - capacity
if over > 0 then return {0, over} end
local after = tat
if cost > 0 then
  after = tat + cost * interval
  redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.ceil((after - now) / 1000))
end
return {1, math.floor((capacity - (after - now)) / interval)}
`;

const HIT_SCRIPT: Script = { lua: HIT, sha: createHash('sha1').update(HIT).digest('hex') };

/**
 * A {@link RateLimiter} in Redis, shared by every app instance that uses the same server: a fleet
 * behind a load balancer counts one budget per address and per identity, not one per instance.
 *
 * **One round trip per hit.** Each hit is one `EVALSHA` of a short Lua script over one key (read the
 * key's GCRA state, decide, write it back with its expiry), atomic on the server, so concurrent hits
 * on any instances are counted exactly. Every call touches one key, so the limiter runs on Redis
 * Cluster. The engine sends a login's two address keys together, and its two identity keys together:
 * both are in flight at once, so a login waits about two round trips.
 *
 * **Keys:** `<prefix>rl:<key>` holding one number (epoch µs), which Redis drops as soon as the
 * key's budget is full again (`PX`): memory is bounded by the keys hit within the last
 * `burst × 60 / perMinute` seconds of each budget. Time is the caller's `now` (the engine's clock),
 * so instances whose clocks disagree by a few ms disagree on refill by as much.
 *
 * **Failure: closed.** Every call is bounded by `commandTimeoutMs`; an error, a timeout, or a key
 * that holds something else throws `ServiceUnavailableError('store_unavailable')`, which the engine
 * answers with 503: logins and renewals stop while the limiter is down, as they do while the token
 * store is down (with one Redis for both, they go down together). A limiter that failed open would
 * let a flood through exactly when Redis is struggling. The bearer guard never asks Redis (its
 * invalid-token budget is in memory), so guarded routes keep serving.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #client: Redis;
  readonly #calls: RedisCalls;
  readonly #prefix: string;

  constructor(options: RedisRateLimiterOptions) {
    if (!options?.client) throw new ConfigError('client', 'an ioredis client is required');
    const prefix = options.prefix ?? 'oma:';
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
      throw new ConfigError('prefix', 'must be a string without { or }');
    }
    this.#prefix = prefix;
    const timeout = options.commandTimeoutMs ?? 1000;
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw new ConfigError('commandTimeoutMs', 'must be a number > 0');
    }
    // Redis and Cluster share every command used here; one type keeps the calls simple.
    this.#client = options.client as Redis;
    this.#calls = new RedisCalls(this.#client, timeout, unavailable);
  }

  /** The Redis key of a rate limit key. */
  key(key: string): string {
    return `${this.#prefix}rl:${key}`;
  }

  async hit(key: string, rule: RateLimitRule, cost: number, now: number): Promise<RateLimitDecision> {
    checkHitArguments(key, rule, cost, now);
    const args = [toMicros(now), emissionIntervalUs(rule), rule.burst, cost, CLOCK_JUMP_US].map(String);
    const reply = await this.#calls.run(() => this.#calls.eval(HIT_SCRIPT, [this.key(key)], args));
    const [allowed, value] = Array.isArray(reply) ? (reply as unknown[]) : [];
    if ((allowed !== 0 && allowed !== 1) || typeof value !== 'number') {
      throw unavailable(new TypeError('not a rate limit reply'));
    }
    return allowed === 1
      ? { allowed: true, retryAfterSeconds: 0, remaining: value }
      : { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(value / 1e6)), remaining: 0 };
  }
}

function unavailable(cause: unknown): ServiceUnavailableError {
  if (cause instanceof ServiceUnavailableError) return cause;
  return new ServiceUnavailableError('store_unavailable', 'The rate limiter is unavailable', {
    cause,
    detail: { store: 'redis' },
  });
}
