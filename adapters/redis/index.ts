import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import type {
  AccessTokenRecord,
  ConsumeResult,
  ExtendResult,
  RevocationStamps,
  RevokeWhereFilter,
  TokenStore,
} from '../../src/types.js';
import { RevocationLimitError } from '../../src/tokens/revoke-where.js';
import { RedisCalls, TurnBatches, type Script } from './calls.js';
import { decodeFields, decodeRecord, encodeRecord } from './record.js';
import { CONSUME_MANY, CREATE, EXTEND, INDEX, REVOKE, REVOKE_IDENTITY } from './scripts.js';
import {
  CLAIM_INDEX,
  REVOKE_IF_IDENTITY,
  REVOKE_WHERE,
  STAMPS,
  claimIndexCall,
  claimKeys,
  claimScript,
  revokeWhereCall,
} from './revoke-where.js';

export { RedisReplayCache, type RedisReplayCacheOptions } from './replay-cache.js';

export interface RedisTokenStoreOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`), owned by the caller: the store never closes it.
   * Recommended options: `enableOfflineQueue: false` (while disconnected, commands fail at once
   * instead of piling up and running late), `maxRetriesPerRequest: 1`, `connectTimeout: 1000`,
   * `commandTimeout: 1000`, and `retryStrategy: (times) => Math.min(times * 50, 200)` (ioredis'
   * default back-off grows to 2 s on ioredis 5 and 5 s on ioredis 6, and requests answer 503 until
   * its next attempt; capped at 200 ms, they succeeded again about 0.21 s after Redis came back).
   */
  client: Redis | Cluster;
  /** Prepended to every key. Must not contain `{` or `}` (hash tags). Default `'oma:'`. */
  prefix?: string;
  /**
   * Longest wait for one command, in ms; past it the call throws `store_unavailable` (503).
   * Default 1000.
   */
  commandTimeoutMs?: number;
  /**
   * How long a record outlives its token's max expiry, in ms, so that revocation stays visible
   * to app instances whose clocks run behind Redis's. Default 300 000 (5 min).
   */
  expiryMarginMs?: number;
  /**
   * Clock by which `revokeIdentity` counts the tokens it found live. Default `Date.now`. Which
   * tokens are revoked never depends on it: the identity's index is trimmed and walked by Redis's
   * own clock.
   */
  clock?: () => number;
  /**
   * Send the uses of tokens that arrive in one turn of the event loop (a burst of guarded
   * requests) to Redis as one script call, one write and one reply for them all, instead of one
   * each. Each use is still checked and counted atomically, in arrival order. Default true; always
   * off for a `Cluster` client (the tokens' keys live in different slots). Turn it off behind a
   * proxy that refuses scripts with many keys.
   */
  batchConsumes?: boolean;
}

interface PendingConsume {
  tokenId: string;
  now: number;
  resolve: (result: ConsumeResult) => void;
  reject: (error: unknown) => void;
}

/**
 * Access-token state in Redis, shared by every app instance that uses the same server.
 *
 * **When to choose it:** several app instances, a guard on a hot path, Redis already at hand. One
 * guarded request costs at most one round trip (`EVALSHA` of a Lua script: check and count a use
 * atomically); renew two and revoke one; login three (the identity's generation, the token hash,
 * then the identity index). Uses
 * that arrive in one turn of the event loop go as one script call over their keys (`batchConsumes`):
 * one socket write and one reply for the burst instead of one each, which on a busy server costs
 * less than the guard's own work (the write system call was most of a Redis guard's CPU).
 *
 * **Keys** (with the default prefix):
 * - `oma:t:{<tokenId>}`: a hash with the record, expiring by itself at `maxExpiresAt` +
 *   `expiryMarginMs`. Renewals never move that expiry: the max expiry is fixed at login.
 * - `oma:i:{<identityId>}`: a sorted set of the identity's token ids (score: when each token's hash
 *   expires), trimmed on each login by Redis's clock and expiring with its longest-lived member.
 * - `oma:g:{<identityId>}`: the identity's revocation generation (`INCR`ed by `revokeIdentity`),
 *   present only once the identity was revoked, and never expiring: it must outlive every token
 *   stamped below it. One small key per identity ever revoked.
 * - `oma:rw:{rw}`, `oma:rwe:{rw}`, `oma:rwt:{rw}` and `oma:rwx:{rw}:<claim value>`: revocation by
 *   claim (`revokeWhere`): its epoch and floor, entries, their ages, and the tokens of each claim
 *   value, all in one slot (see `revoke-where.ts`, docs/STORES.md).
 *
 * Every script but the batched consume touches one slot, so the store runs on Redis Cluster (where
 * batching is off): consume and renew need only the token's hash (its own slot); login and
 * `revokeIdentity` touch the identity's index and generation, which share the `{<identityId>}` tag.
 *
 * **Revoking an identity has no race.** `revokeIdentity` raises the generation and reads the index
 * in one script, then revokes each listed token with one script call each (pipelined, 500 at a
 * time): no keyspace scan. A login reads the generation before it loads the identity's config and
 * stamps it on the record; the script that indexes the token reads the generation again, atomically
 * with the `ZADD`. So a login either is indexed before the revocation's snapshot (the walk revokes its
 * token) or sees the raised generation and revokes its own hash before `create` returns, before any
 * token string for it exists. Which index members are gone is decided by Redis's own clock (`TIME`
 * in the scripts), the clock that expires the hashes, never by an app instance's: the trim at login
 * drops only members whose hash Redis has expired, and the walk lists every member whose hash may
 * still exist, so instances whose clocks disagree (by more than `expiryMarginMs`, too) neither miss
 * nor unindex a live token. On a single server the consume and renew scripts also read the
 * generation key (named from the hash's identity id: Redis allows that outside Cluster) and refuse a
 * hash stamped below it, whatever the `prefix` (an empty one too: a flag argument of its own, not the
 * prefix, turns the check off on Cluster), which also covers an index evicted under memory pressure. Use
 * `maxmemory-policy noeviction`: evicting an index or a generation key loses revocations (on a single
 * server a `volatile-*` policy keeps the generation keys, which have no expiry). Keep reads on
 * masters (ioredis' default `scaleReads: 'master'`): a replica may not have the raised generation yet.
 *
 * **Memory** (Redis 7.0, `MEMORY USAGE`): about 420 bytes per token hash with a small metadata
 * object, while every field stays under the server's `hash-max-listpack-value` (64 bytes by default)
 * and the hash keeps the compact listpack encoding; about 1.1 KB once one field is longer (e.g. six
 * mapped claims in the metadata JSON), or about 430 bytes for the same with
 * `hash-max-listpack-value 512`. Plus about 120 bytes per token in the identity's index (sorted set
 * of more than 128 members; less below that).
 *
 * **Failure:** every call is bounded by `commandTimeoutMs`; an error or a timeout throws
 * `ServiceUnavailableError('store_unavailable')`, which the engine answers with 503 and
 * `Retry-After`, never granting access. ioredis reconnects by itself; the store needs nothing, and
 * the first request after ioredis reconnected succeeds. How soon that is after Redis is back is the
 * client's `retryStrategy` (see `client`).
 * With ioredis' default offline queue, commands issued while disconnected wait in the client and
 * run once Redis is back, long after the store gave up on them: pass `enableOfflineQueue: false`
 * (the store then waits for the very first connection itself, within the timeout). Whatever the
 * options, a command already sent when the network stalled may still apply later: a revoke that
 * answered 503 may have revoked (retry it: it is idempotent), a consume may have counted a use.
 * A Redis without persistence that restarts forgets every token: they are then refused as unknown.
 */
export class RedisTokenStore implements TokenStore {
  readonly #client: Redis;
  readonly #calls: RedisCalls;
  readonly #prefix: string;
  readonly #marginMs: number;
  readonly #clock: () => number;
  /** The consume and extend scripts' generation arguments: check flag (`'0'` on Cluster), prefix. */
  readonly #generationArgs: readonly [string, string];
  /** Revocation by claim: its keys (one slot, see revoke-where.ts), and whether the client is a Cluster. */
  readonly #claimKeys: ReturnType<typeof claimKeys>;
  readonly #cluster: boolean;
  readonly #consumes: TurnBatches<PendingConsume>;

  constructor(options: RedisTokenStoreOptions) {
    if (!options?.client) throw new ConfigError('client', 'an ioredis client is required');
    const prefix = options.prefix ?? 'oma:';
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
      throw new ConfigError('prefix', 'must be a string without { or }');
    }
    const timeoutMs = positive(options.commandTimeoutMs ?? 1000, 'commandTimeoutMs');
    this.#marginMs = positive(options.expiryMarginMs ?? 300_000, 'expiryMarginMs', true);
    // Redis and Cluster share every command used here; one type keeps the calls simple.
    this.#client = options.client as Redis;
    const cluster = (options.client as Cluster).isCluster === true;
    this.#consumes = new TurnBatches(options.batchConsumes !== false && !cluster, CONSUME_BATCH, (batch) =>
      this.#consumeMany(batch),
    );
    this.#prefix = prefix;
    // A flag of its own: an empty prefix is a valid one and must not turn the check off.
    this.#generationArgs = [cluster ? '0' : '1', prefix];
    this.#claimKeys = claimKeys(prefix);
    this.#cluster = cluster;
    this.#clock = options.clock ?? Date.now;
    this.#calls = new RedisCalls(this.#client, timeoutMs, unavailable);
  }

  /** The key of a token's hash. */
  tokenKey(tokenId: string): string {
    return `${this.#prefix}t:{${tokenId}}`;
  }

  /** The key of an identity's index of token ids. */
  identityKey(identityId: string): string {
    return `${this.#prefix}i:{${identityId}}`;
  }

  /** The key of an identity's revocation generation (same slot as its index). */
  generationKey(identityId: string): string {
    return `${this.#prefix}g:{${identityId}}`;
  }

  /**
   * Stores the hash, then indexes it. The index script also reads the identity's generation, in the
   * same atomic step: if a `revokeIdentity` raised it past the record's (the login was in flight
   * while it ran, and the revocation's snapshot of the index missed this token), the hash is marked
   * revoked before this returns, so before any token string for it exists.
   */
  async create(record: AccessTokenRecord): Promise<void> {
    const expireAt = String(record.maxExpiresAt + this.#marginMs);
    // The hash first: a revokeIdentity that finds the id in the index always finds the hash too.
    await this.#calls.run(() =>
      this.#eval(CREATE_SCRIPT, this.tokenKey(record.tokenId), expireAt, ...encodeRecord(record)),
    );
    // With the identity index, at once: the claim values' indexes, and whether a revokeWhere refuses it.
    const claims =
      record.claims === undefined ? undefined : claimIndexCall(this.#claimKeys, record, expireAt);
    const [current, byClaim] = await this.#calls.run(() =>
      Promise.all([
        this.#calls.eval(
          INDEX_SCRIPT,
          [this.identityKey(record.identityId), this.generationKey(record.identityId)],
          [record.tokenId, expireAt],
        ),
        claims ? this.#calls.eval(CLAIM_INDEX_SCRIPT, claims.keys, claims.args) : 0,
      ]),
    );
    if (Number(current) > (record.generation ?? 0) || byClaim === 1) {
      await this.#calls.run(() =>
        this.#eval(REVOKE_SCRIPT, this.tokenKey(record.tokenId), String(this.#clock())),
      );
    }
  }

  async get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined> {
    const record = await this.#calls.run(async () => {
      const fields = await this.#client.hgetall(this.tokenKey(tokenId));
      return Object.keys(fields).length === 0
        ? undefined
        : decodeRecord(tokenId, Object.entries(fields).flat());
    });
    return record && !record.revoked && now >= record.expiresAt ? undefined : record;
  }

  async consume(tokenId: string, now: number): Promise<ConsumeResult> {
    // The uses of one turn of the event loop (other requests read in the same poll phase) go as one
    // call; unbatched (Cluster), the same script over this one key, so it stays in the token's slot.
    return new Promise((resolve, reject) => this.#consumes.add({ tokenId, now, resolve, reject }));
  }

  /** One `CONSUME_MANY` call for `batch`; settles every use of it, never throws. */
  async #consumeMany(batch: readonly PendingConsume[]): Promise<void> {
    let replies: unknown[];
    try {
      replies = (await this.#calls.run(() =>
        this.#calls.eval(
          CONSUME_MANY_SCRIPT,
          batch.map((use) => this.tokenKey(use.tokenId)),
          [...batch.map((use) => String(use.now)), ...this.#generationArgs],
        ),
      )) as unknown[];
    } catch (error) {
      for (const use of batch) use.reject(error);
      return;
    }
    batch.forEach((use, i) => {
      try {
        const reply = Array.isArray(replies) ? replies[i] : undefined;
        if (Array.isArray(reply)) use.resolve({ ok: true, record: decodeFields(use.tokenId, reply) });
        else if (typeof reply === 'string' && REFUSALS.has(reply)) use.resolve(REFUSALS.get(reply)!);
        else throw new TypeError('token key is not a token hash');
      } catch (error) {
        use.reject(unavailable(error));
      }
    });
  }

  async extend(tokenId: string, now: number): Promise<ExtendResult> {
    return this.#calls.run(async () =>
      toResult(
        tokenId,
        await this.#eval(EXTEND_SCRIPT, this.tokenKey(tokenId), String(now), ...this.#generationArgs),
      ),
    );
  }

  async revoke(tokenId: string): Promise<void> {
    await this.#calls.run(() => this.#eval(REVOKE_SCRIPT, this.tokenKey(tokenId), String(this.#clock())));
  }

  async generation(identityId: string): Promise<number> {
    const value = await this.#calls.run(() => this.#client.get(this.generationKey(identityId)));
    const generation = value === null ? 0 : Number(value);
    if (!Number.isSafeInteger(generation) || generation < 0) {
      throw unavailable(new TypeError('generation key is not a generation'));
    }
    return generation;
  }

  /**
   * Raises the identity's generation and, in the same script, reads its index; then revokes each
   * listed token. Tokens of logins still in flight are not listed but are stamped below the new
   * generation: `create` revokes them itself, and consume and extend refuse them.
   */
  async revokeIdentity(identityId: string): Promise<number> {
    const now = this.#clock();
    const index = this.identityKey(identityId);
    const ids = (await this.#calls.run(() =>
      this.#calls.eval(REVOKE_IDENTITY_SCRIPT, [index, this.generationKey(identityId)], []),
    )) as string[];
    let live = 0;
    for (let start = 0; start < ids.length; start += REVOKE_BATCH) {
      const batch = ids.slice(start, start + REVOKE_BATCH);
      const results = await this.#calls.run(() =>
        Promise.all(batch.map((id) => this.#eval(REVOKE_SCRIPT, this.tokenKey(id), String(now)))),
      );
      for (const result of results) if (result === 1) live++;
      await this.#calls.run(() => this.#client.zrem(index, ...batch));
    }
    return live;
  }

  /** The identity's generation and the claim epoch: one script on a single server, two reads at once on Cluster. */
  async revocationStamps(identityId: string): Promise<RevocationStamps> {
    const [generation, epoch] = await this.#calls.run(() =>
      this.#cluster
        ? Promise.all([
            this.#client.get(this.generationKey(identityId)),
            this.#client.hget(this.#claimKeys.state, 'epoch'),
          ])
        : (this.#calls.eval(
            STAMPS_SCRIPT,
            [this.generationKey(identityId), this.#claimKeys.state],
            [],
          ) as Promise<[string, string]>),
    );
    const stamps = { generation: Number(generation ?? 0), claimEpoch: Number(epoch ?? 0) };
    for (const value of Object.values(stamps)) {
      if (!Number.isSafeInteger(value) || value < 0)
        throw unavailable(new TypeError('revocation stamp is not a number'));
    }
    return stamps;
  }

  /**
   * One script raises the claim epoch, writes the entry and lists the tokens whose login carried
   * the value; then each listed token is revoked (of the named identity only). See revoke-where.ts.
   */
  async revokeWhere(
    filter: RevokeWhereFilter,
    now: number,
    limits: { keepMs: number; maxEntries: number },
  ): Promise<number> {
    const call = revokeWhereCall(this.#claimKeys, filter);
    const reply = (await this.#calls.run(() =>
      this.#calls.eval(REVOKE_WHERE_SCRIPT, call.keys, [
        call.entry,
        String(now),
        String(limits.keepMs),
        String(limits.maxEntries),
      ]),
    )) as string[];
    if (reply[0] === 'limit') throw new RevocationLimitError((Number(reply[1]) + limits.keepMs - now) / 1000);
    const ids = reply.slice(1);
    const identity = filter.identityId ?? '';
    let live = 0;
    for (let start = 0; start < ids.length; start += REVOKE_BATCH) {
      const batch = ids.slice(start, start + REVOKE_BATCH);
      const results = await this.#calls.run(() =>
        Promise.all(
          batch.map((id) =>
            this.#calls.eval(REVOKE_IF_IDENTITY_SCRIPT, [this.tokenKey(id)], [String(now), identity]),
          ),
        ),
      );
      for (const result of results) if (result === 1) live++;
    }
    return live;
  }

  /** Runs a script by its SHA; loads it with `EVAL` once per server when the server lacks it. */
  #eval(script: Script, key: string, ...args: string[]): Promise<unknown> {
    return this.#calls.eval(script, [key], args);
  }
}

const REVOKE_BATCH = 500;
/** Most uses sent in one `CONSUME_MANY` call. */
const CONSUME_BATCH = 256;

const REFUSALS = new Map<string, ConsumeResult>(
  (['not_found', 'revoked', 'expired', 'uses_exhausted'] as const).map((reason) => [
    reason,
    { ok: false, reason },
  ]),
);

function unavailable(cause: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError('store_unavailable', 'The token store is unavailable', {
    cause,
    detail: { store: 'redis' },
  });
}

/** An extend script's reply: `['ok', field, value, …]` or `[reason]`. */
function toResult(tokenId: string, reply: unknown): ExtendResult {
  const [outcome] = reply as [string];
  if (outcome === 'ok') return { ok: true, record: decodeRecord(tokenId, reply as unknown[], 1) };
  return { ok: false, reason: outcome as Exclude<ExtendResult, { ok: true }>['reason'] };
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const CREATE_SCRIPT = script(CREATE);
const INDEX_SCRIPT = script(INDEX);
const CONSUME_MANY_SCRIPT = script(CONSUME_MANY);
const EXTEND_SCRIPT = script(EXTEND);
const REVOKE_SCRIPT = script(REVOKE);
const REVOKE_IDENTITY_SCRIPT = script(REVOKE_IDENTITY);
const CLAIM_INDEX_SCRIPT = claimScript(CLAIM_INDEX);
const REVOKE_WHERE_SCRIPT = claimScript(REVOKE_WHERE);
const REVOKE_IF_IDENTITY_SCRIPT = claimScript(REVOKE_IF_IDENTITY);
const STAMPS_SCRIPT = claimScript(STAMPS);

function positive(value: number, field: string, zeroAllowed = false): number {
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw new ConfigError(field, zeroAllowed ? 'must be a number >= 0' : 'must be a number > 0');
  }
  return value;
}

export { RedisRateLimiter, type RedisRateLimiterOptions } from './rate-limiter.js';
