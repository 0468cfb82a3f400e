import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import { RedisCalls, TurnBatches, type Script } from './calls.js';
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
  /**
   * Send the `remember` calls that arrive in one turn of the event loop (a burst of DPoP-guarded
   * requests, of single-use logins) to Redis as one script call over their keys, one write and one
   * reply for them all, instead of one each. Each key is still checked and taken atomically, in
   * arrival order (one key twice in a burst: the first call is first, the second is told so). Default
   * true; always off for a `Cluster` client (the keys live in different slots). Turn it off behind a
   * proxy that refuses scripts with many keys.
   */
  batchRemembers?: boolean;
}

interface PendingRemember {
  key: string;
  now: number;
  expiresAt: number;
  resolve: (verdict: ReplayVerdict) => void;
  reject: (error: unknown) => void;
}

/**
 * Remember each key, in KEYS order: KEYS[n] the key; ARGV[3n-2] that call's now, ARGV[3n-1] its
 * expiresAt (epoch ms, the caller's clock), ARGV[3n] when Redis drops the key (`PEXPIREAT`: expiresAt
 * + margin). The value is `<seenAt>:<expiresAt>`. A key whose expiresAt has passed by its call's `now`
 * is taken over. Returns one reply per key: 0 when that call remembered the key, else the seenAt of
 * the call that did (a string). A key given twice is answered in order: the second sees the first.
 *
 * Every key is read before anything is written: one that holds something else (not
 * `<number>:<number>`, or not a string) fails the whole call with nothing remembered, so no caller of
 * the call is refused (503) after its key was taken. One key per call on Redis Cluster; many on a
 * single server.
 */
const REMEMBER_MANY = `
local function entry(held)
  local sep = string.find(held, ':', 1, true)
  if not sep then return nil end
  local seen, expires = tonumber(string.sub(held, 1, sep - 1)), tonumber(string.sub(held, sep + 1))
  if not seen or not expires then return nil end
  return string.sub(held, 1, sep - 1), expires
end
for n = 1, #KEYS do
  local held = redis.call('GET', KEYS[n])
  if held and not entry(held) then return redis.error_reply('replay key holds no replay entry') end
end
local out = {}
for n = 1, #KEYS do
  local key, now = KEYS[n], ARGV[3 * n - 2]
  local held = redis.call('GET', key)
  local seen, expires
  if held then seen, expires = entry(held) end
  if seen and expires > tonumber(now) then
    out[n] = seen
  else
    redis.call('SET', key, now .. ':' .. ARGV[3 * n - 1])
    redis.call('PEXPIREAT', key, ARGV[3 * n])
    out[n] = 0
  end
end
return out
`;

const REMEMBER_MANY_SCRIPT: Script = {
  lua: REMEMBER_MANY,
  sha: createHash('sha1').update(REMEMBER_MANY).digest('hex'),
};

/** Most keys sent in one `REMEMBER_MANY` call; a larger burst is split. */
const REMEMBER_BATCH = 512;

/**
 * A {@link ReplayCache} in Redis, shared by every app instance that uses the same server: a DPoP
 * proof or a single-use IdP token is accepted once across the fleet.
 *
 * **At most one round trip per call.** `remember` is one `EVALSHA` of a short Lua script (read the
 * key; take it when absent or expired, else answer when it was first seen), atomic on the server, so
 * of any number of concurrent calls with one key, on any instances, exactly one is first. The calls
 * that arrive in one turn of the event loop share that script call, over all their keys, in arrival
 * order (`batchRemembers`, up to 512 keys a call): one socket write and one reply for a burst of
 * guarded requests or logins instead of one each, as the token store batches uses. `seenAt` is one
 * `GET`. On a `Cluster` client batching is off and every call touches one key, so the cache runs on
 * Redis Cluster.
 *
 * **Keys:** `<prefix>r:<key>` holding `<seenAt>:<expiresAt>` (epoch ms), which Redis drops
 * `expiryMarginMs` after `expiresAt` (`PEXPIREAT`). A key is at most 1 KiB and lives at most a day
 * (plus the margin): memory is bounded by the rate of logins and proofs times their windows. Use
 * `maxmemory-policy noeviction` (or a `volatile-*` policy on a server that holds keys without
 * expiry too): an evicted key is a proof or IdP token that can be replayed.
 *
 * **Failure:** every script call is bounded by `commandTimeoutMs`; an error, a timeout, or a key
 * that holds something else throws `ServiceUnavailableError('store_unavailable')` to every call of
 * that script call (a key holding something else fails it before any key is written), which the
 * engine answers with 503, never letting the request through unchecked.
 */
export class RedisReplayCache implements ReplayCache {
  readonly #client: Redis;
  readonly #calls: RedisCalls;
  readonly #prefix: string;
  readonly #marginMs: number;
  readonly #remembers: TurnBatches<PendingRemember>;

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
    // As the token store: a Cluster spreads the keys over slots, which one script call cannot span.
    this.#remembers = new TurnBatches(
      options.batchRemembers !== false && (options.client as Cluster).isCluster !== true,
      REMEMBER_BATCH,
      (batch) => this.#rememberMany(batch),
    );
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
    // The calls of one turn of the event loop share one script call; unbatched (Cluster, or
    // batchRemembers: false), the same script over this one key, in its slot.
    return new Promise((resolve, reject) => this.#remembers.add({ key, now, expiresAt, resolve, reject }));
  }

  /** One `REMEMBER_MANY` call for `batch`; settles every call of it, never throws. */
  async #rememberMany(batch: readonly PendingRemember[]): Promise<void> {
    const keys: string[] = [];
    const args: string[] = [];
    for (const call of batch) {
      keys.push(this.key(call.key));
      args.push(String(call.now), String(call.expiresAt), String(Math.ceil(call.expiresAt + this.#marginMs)));
    }
    let replies: unknown;
    try {
      replies = await this.#calls.run(() => this.#calls.eval(REMEMBER_MANY_SCRIPT, keys, args));
      if (!Array.isArray(replies) || replies.length !== batch.length) {
        throw unavailable(new TypeError('not one replay verdict per key'));
      }
    } catch (error) {
      for (const call of batch) call.reject(error);
      return;
    }
    batch.forEach((call, i) => {
      const reply: unknown = replies[i];
      const seenAt = typeof reply === 'string' && reply !== '' ? Number(reply) : Number.NaN;
      if (reply === 0) call.resolve({ first: true });
      else if (Number.isFinite(seenAt)) call.resolve({ first: false, seenAt });
      else call.reject(unavailable(new TypeError('not a replay entry')));
    });
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
