import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import { RedisCalls, type Script } from './calls.js';
import { checkReplayArguments, type ReplayCache, type ReplayVerdict } from '../../src/tokens/replay.js';

export interface RedisReplayCacheOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`), owned by the caller: the cache never closes it. The
   * same recommended options as for `RedisTokenStore` (`enableOfflineQueue: false`,
   * `maxRetriesPerRequest: 1`, short timeouts); it may be the very client the token store uses.
   */
  client: Redis | Cluster;
  /** Prepended to every key (`<prefix>r:<key>`). Must not contain `{` or `}`. Default `'oma:'`. */
  prefix?: string;
  /** Longest wait for one command, in ms; past it the call throws `store_unavailable` (503). Default 1000. */
  commandTimeoutMs?: number;
  /**
   * How long Redis keeps a key past its expiry, in ms, so that app instances whose clocks run behind
   * Redis's still find it. Whether a key counts as expired is decided by the caller's `now`, never by
   * Redis's clock. Default 300 000 (5 min).
   */
  expiryMarginMs?: number;
}

/**
 * KEYS[1] the key; ARGV[1] now, ARGV[2] expiresAt (epoch ms, the caller's clock), ARGV[3] when Redis
 * drops the key (`PEXPIREAT`: expiresAt + margin). The value is `<seenAt>:<expiresAt>`. A key whose
 * expiresAt has passed by the caller's `now` is taken over. Returns 0 when this call remembered the
 * key, else the seenAt of the call that did (a string).
 */
const REMEMBER = `
local held = redis.call('GET', KEYS[1])
if held then
  local sep = string.find(held, ':', 1, true)
  local expires = sep and tonumber(string.sub(held, sep + 1))
  if not expires then return redis.error_reply('replay key holds no replay entry') end
  if expires > tonumber(ARGV[1]) then return string.sub(held, 1, sep - 1) end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 0
`;

const REMEMBER_SCRIPT: Script = { lua: REMEMBER, sha: createHash('sha1').update(REMEMBER).digest('hex') };

/**
 * A {@link ReplayCache} in Redis, shared by every app instance that uses the same server: a DPoP
 * proof or a single-use IdP token is accepted once across the fleet.
 *
 * **One round trip per call.** `remember` is one `EVALSHA` of a short Lua script over one key (read
 * the key; take it when absent or expired, else answer when it was first seen), atomic on the server,
 * so of any number of concurrent calls with one key, on any instances, exactly one is first.
 * `seenAt` is one `GET`. Every call touches one key, so the cache runs on Redis Cluster.
 *
 * **Keys:** `<prefix>r:<key>` holding `<seenAt>:<expiresAt>` (epoch ms), which Redis drops
 * `expiryMarginMs` after `expiresAt` (`PEXPIREAT`). A key is at most 1 KiB and lives at most a day
 * (plus the margin): memory is bounded by the rate of logins and proofs times their windows. Use
 * `maxmemory-policy noeviction` (or a `volatile-*` policy on a server that holds keys without
 * expiry too): an evicted key is a proof or IdP token that can be replayed.
 *
 * **Failure:** every call is bounded by `commandTimeoutMs`; an error, a timeout, or a key that holds
 * something else throws `ServiceUnavailableError('store_unavailable')`, which the engine answers
 * with 503, never letting the request through unchecked.
 */
export class RedisReplayCache implements ReplayCache {
  readonly #client: Redis;
  readonly #calls: RedisCalls;
  readonly #prefix: string;
  readonly #marginMs: number;

  constructor(options: RedisReplayCacheOptions) {
    if (!options?.client) throw new ConfigError('client', 'an ioredis client is required');
    const prefix = options.prefix ?? 'oma:';
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
      throw new ConfigError('prefix', 'must be a string without { or }');
    }
    this.#prefix = prefix;
    this.#marginMs = positive(options.expiryMarginMs ?? 300_000, 'expiryMarginMs', true);
    // Redis and Cluster share every command used here; one type keeps the calls simple.
    this.#client = options.client as Redis;
    this.#calls = new RedisCalls(
      this.#client,
      positive(options.commandTimeoutMs ?? 1000, 'commandTimeoutMs'),
      unavailable,
    );
  }

  /** The Redis key of a replay key. */
  key(key: string): string {
    return `${this.#prefix}r:${key}`;
  }

  async remember(key: string, expiresAt: number, now: number): Promise<ReplayVerdict> {
    checkReplayArguments(key, expiresAt, now);
    const dropAt = String(Math.ceil(expiresAt + this.#marginMs));
    const reply = await this.#calls.run(() =>
      this.#calls.eval(REMEMBER_SCRIPT, [this.key(key)], [String(now), String(expiresAt), dropAt]),
    );
    if (reply === 0) return { first: true };
    const seenAt = typeof reply === 'string' ? Number(reply) : Number.NaN;
    if (reply === '' || !Number.isFinite(seenAt)) throw unavailable(new TypeError('not a replay entry'));
    return { first: false, seenAt };
  }

  async seenAt(key: string, now: number): Promise<number | undefined> {
    const held = await this.#calls.run(() => this.#client.get(this.key(key)));
    if (held === null) return undefined;
    const [seenAt, expiresAt] = held.split(':').map((part) => (part === '' ? Number.NaN : Number(part)));
    if (!Number.isFinite(seenAt) || !Number.isFinite(expiresAt)) {
      throw unavailable(new TypeError('not a replay entry'));
    }
    return expiresAt! > now ? seenAt : undefined;
  }
}

function unavailable(cause: unknown): ServiceUnavailableError {
  if (cause instanceof ServiceUnavailableError) return cause;
  return new ServiceUnavailableError('store_unavailable', 'The replay cache is unavailable', {
    cause,
    detail: { store: 'redis' },
  });
}

function positive(value: number, field: string, zeroAllowed = false): number {
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw new ConfigError(field, zeroAllowed ? 'must be a number >= 0' : 'must be a number > 0');
  }
  return value;
}
