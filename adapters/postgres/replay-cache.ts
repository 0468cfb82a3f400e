import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import { checkReplayArguments, type ReplayCache, type ReplayVerdict } from '../../src/tokens/replay.js';
import { migrateOnce } from './migrate.js';
import { tableNames, type TableOptions } from './names.js';
import { runStatement, statement, type Statement } from './query.js';

export interface PostgresReplayCacheOptions extends TableOptions {
  /** A `pg` pool, owned by the caller: the cache never ends it. Give it a `connectionTimeoutMillis`. */
  pool: Pool;
  /**
   * Longest wait for one statement, in ms, waiting for a pooled connection included; past it the
   * call throws `store_unavailable` (503). Default 1000.
   */
  statementTimeoutMs?: number;
  /** Run `migrate` before the first statement. Default false. */
  migrate?: boolean;
  /**
   * At most this often, in ms, a `remember` starts a purge of expired rows in the background
   * (never awaited: the call's answer does not wait for it). Default 60 000; 0 turns it off (call
   * {@link PostgresReplayCache.purgeExpired} from a scheduled job instead).
   */
  purgeIntervalMs?: number;
  /**
   * How long an expired row is kept before a purge deletes it, in ms. Whether a key counts as
   * expired is decided by the caller's `now` in the statement itself, never by the purge. Default
   * 300 000 (5 min).
   */
  purgeGraceMs?: number;
  /** Use named (prepared) statements. Default true (see `PostgresTokenStore`). */
  preparedStatements?: boolean;
  /** Clock for purges. Default `Date.now`. */
  clock?: () => number;
}

/** Rows one background purge deletes at most (in batches of {@link PURGE_BATCH}). */
const PURGE_BATCHES = 10;
const PURGE_BATCH = 1000;

/**
 * A {@link ReplayCache} in PostgreSQL, shared by every app instance that uses the same database: a
 * DPoP proof or a single-use IdP token is accepted once across the fleet.
 *
 * **Atomic in one statement.** `remember` is one `INSERT … ON CONFLICT (key) DO UPDATE … WHERE
 * <the row has expired by the caller's now> RETURNING`: it inserts the key, or takes over a row that
 * has expired, or changes nothing. PostgreSQL serialises concurrent inserts of one key on its
 * primary key, so of any number of concurrent calls with one key, on any instances, exactly one
 * gets a row back (`first: true`). A refused call then reads when the key was first seen (a second
 * statement, only on that path); the first-time path, the one every honest request takes, is one
 * round trip. `seenAt` is one `SELECT`.
 *
 * **Storage:** one row per key in `<schema>.<prefix>replay` (`key text`, `seen_at` and `expires_at`
 * epoch-ms `bigint`), created by `migrate`. A row lives at most a day past its `now` plus
 * `purgeGraceMs`: every `purgeIntervalMs` a `remember` deletes expired rows in the background, at
 * most {@link PURGE_BATCHES} batches of {@link PURGE_BATCH} (`FOR UPDATE SKIP LOCKED`, so instances
 * purging at once do not wait on each other). Times are whole milliseconds (`seen_at` rounded down,
 * `expires_at` up). A key holding U+0000 or a surrogate code unit (a lone one, which `text` cannot
 * keep as sent, or half of a character beyond U+FFFF) is stored as the SHA-256 of its UTF-16 code units.
 *
 * **Failure:** every statement is bounded by `statementTimeoutMs`; an error or a timeout throws
 * `ServiceUnavailableError('store_unavailable')`, which the engine answers with 503, never letting the
 * request through unchecked.
 */
export class PostgresReplayCache implements ReplayCache {
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #graceMs: number;
  readonly #purgeEveryMs: number;
  readonly #clock: () => number;
  readonly #sql: ReturnType<typeof replayStatements>;
  readonly #migrated: (() => Promise<void>) | undefined;
  #purgedAt: number;
  #purging = false;

  constructor(options: PostgresReplayCacheOptions) {
    if (!options?.pool) throw new ConfigError('pool', 'a pg Pool is required');
    const names = tableNames(options);
    this.#pool = options.pool;
    this.#timeoutMs = positive(options.statementTimeoutMs ?? 1000, 'statementTimeoutMs');
    this.#graceMs = positive(options.purgeGraceMs ?? 300_000, 'purgeGraceMs', true);
    this.#purgeEveryMs = positive(options.purgeIntervalMs ?? 60_000, 'purgeIntervalMs', true);
    this.#clock = options.clock ?? Date.now;
    this.#purgedAt = this.#clock();
    this.#sql = replayStatements(names.replay, options.preparedStatements ?? true);
    if (options.migrate) this.#migrated = migrateOnce(this.#pool, names, 'replay');
  }

  async remember(key: string, expiresAt: number, now: number): Promise<ReplayVerdict> {
    checkReplayArguments(key, expiresAt, now);
    this.#purgeNowAndThen();
    const stored = storedKey(key);
    // Whole milliseconds (bigint), each rounded the way that keeps a key longer, never shorter.
    const at = Math.floor(now);
    const until = Math.ceil(expiresAt);
    // A row that expired between the two statements (or was purged) is taken over on the next try.
    for (let attempt = 0; attempt < 3; attempt++) {
      const { rowCount } = await this.#query(this.#sql.remember, [stored, at, until]);
      if (rowCount === 1) return { first: true };
      const { rows } = await this.#query(this.#sql.read, [stored]);
      const row = rows[0];
      if (row && Number(row.expires_at) > now) return { first: false, seenAt: toNumber(row.seen_at) };
    }
    throw unavailable(new Error('replay key neither inserted nor found'));
  }

  async seenAt(key: string, now: number): Promise<number | undefined> {
    const { rows } = await this.#query(this.#sql.read, [storedKey(key)]);
    const row = rows[0];
    return row && Number(row.expires_at) > now ? toNumber(row.seen_at) : undefined;
  }

  /**
   * Deletes rows expired more than `purgeGraceMs` ago (by `now`, default the clock), in batches of
   * `batchSize` (default 1000) until a batch comes back short; returns how many.
   */
  async purgeExpired(
    options: { batchSize?: number; now?: number; maxBatches?: number } = {},
  ): Promise<number> {
    const batchSize = Math.max(1, Math.floor(options.batchSize ?? PURGE_BATCH));
    const cutoff = (options.now ?? this.#clock()) - this.#graceMs;
    let total = 0;
    for (let batch = 0; batch < (options.maxBatches ?? Number.POSITIVE_INFINITY); batch++) {
      const { rowCount } = await this.#query(this.#sql.purge, [cutoff, batchSize]);
      total += rowCount;
      if (rowCount < batchSize) break;
    }
    return total;
  }

  /** Nothing to stop: the pool is the caller's to end. */
  async close(): Promise<void> {}

  #purgeNowAndThen(): void {
    if (this.#purgeEveryMs === 0 || this.#purging) return;
    const now = this.#clock();
    if (now - this.#purgedAt < this.#purgeEveryMs && now >= this.#purgedAt) return;
    this.#purgedAt = now;
    this.#purging = true;
    this.purgeExpired({ now, maxBatches: PURGE_BATCHES })
      .catch(() => {})
      .finally(() => (this.#purging = false));
  }

  async #query(stmt: Statement, values: unknown[]) {
    if (this.#migrated) await this.#migrated();
    try {
      return await runStatement<{ seen_at: string; expires_at: string }>(
        this.#pool,
        stmt,
        values,
        this.#timeoutMs,
        'replay',
      );
    } catch (error) {
      throw unavailable(error);
    }
  }
}

function replayStatements(table: string, prepared: boolean) {
  return {
    remember: statement(
      `INSERT INTO ${table} AS r (key, seen_at, expires_at) VALUES ($1, $2::bigint, $3::bigint)
       ON CONFLICT (key) DO UPDATE SET seen_at = EXCLUDED.seen_at, expires_at = EXCLUDED.expires_at
       WHERE r.expires_at <= $2::bigint
       RETURNING r.seen_at`,
      prepared,
    ),
    read: statement(`SELECT seen_at, expires_at FROM ${table} WHERE key = $1`, prepared),
    purge: statement(
      `WITH doomed AS (
         SELECT key FROM ${table} WHERE expires_at <= $1::bigint
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       DELETE FROM ${table} t USING doomed WHERE t.key = doomed.key`,
      prepared,
    ),
  };
}

/** What `text` keeps as sent: a key with U+0000 or a lone surrogate goes in as a hash. */
function storedKey(key: string): string {
  if (!/[\0\ud800-\udfff]/.test(key)) return key;
  return `\u0001sha256:${createHash('sha256').update(key, 'utf16le').digest('base64url')}`;
}

function toNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw unavailable(new TypeError('seen_at is not a number'));
  return n;
}

function unavailable(cause: unknown): ServiceUnavailableError {
  if (cause instanceof ServiceUnavailableError && cause.code === 'store_unavailable') {
    return new ServiceUnavailableError('store_unavailable', 'The replay cache is unavailable', {
      cause: cause.cause,
      detail: { store: 'postgres' },
    });
  }
  return new ServiceUnavailableError('store_unavailable', 'The replay cache is unavailable', {
    cause,
    detail: { store: 'postgres' },
  });
}

function positive(value: number, field: string, zeroAllowed = false): number {
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw new ConfigError(field, zeroAllowed ? 'must be a number >= 0' : 'must be a number > 0');
  }
  return value;
}
