import type { Pool, ResultSetHeader } from 'mysql2/promise';
import {
  ConfigError,
  IDENTITY_ID_PATTERN,
  ServiceUnavailableError,
  type AccessTokenRecord,
  type ConsumeResult,
  type ExtendResult,
  type TokenStore,
} from '../../src/index.js';
import { run } from './query.js';
import { tableNames, type TableOptions } from './schema.js';

export interface MySqlTokenStoreOptions extends TableOptions {
  /**
   * A `mysql2/promise` pool created with `multipleStatements: true` (see `createPool`), owned by
   * the caller: the store never ends it.
   */
  pool: Pool;
  /**
   * Longest wait for one call, in ms, waiting for a pooled connection included; past it the call
   * throws `store_unavailable` (503). Default 1000.
   */
  statementTimeoutMs?: number;
  /** How long an expired row is kept before `purgeExpired` deletes it, in ms. Default 300 000 (5 min). */
  purgeGraceMs?: number;
  /** Run `purgeExpired` this often, in ms (timer unref'd). Default 0: never. */
  purgeIntervalMs?: number;
  /** Clock for `revokeIdentity` and purges. Default `Date.now`. */
  clock?: () => number;
}

/** A token row as mysql2 hands it back. */
interface TokenRow {
  token_id: string;
  identity_id: string;
  created_at: number | string;
  expires_at: number | string;
  max_expires_at: number | string;
  ttl_seconds: number;
  uses_limit: number;
  uses_count: number | string;
  revoked: number;
  generation: number | string;
  trusted_ips: string;
  metadata: string;
  issuer: string | null;
  subject: string | null;
  scope: string | null;
  audience: string | null;
  /** The DPoP key thumbprint a bound token needs proofs by (RFC 9449); null for a bearer token. */
  jkt: string | null;
  /** The identity's revocation generation, read in the same statement. */
  current_generation: number | string;
}

const COLUMNS =
  'token_id, identity_id, created_at, expires_at, max_expires_at, ttl_seconds, uses_limit, uses_count, ' +
  'revoked, generation, trusted_ips, metadata, issuer, subject, scope, audience, jkt';

/**
 * Access-token state in MariaDB or MySQL, shared by every app instance that uses the same database.
 * Written against the library's public `TokenStore` contract; every guarantee below is checked by
 * the library's conformance suite (`oidc-machine-auth/testing`).
 *
 * **One round trip per guarded request.** MariaDB 10.11 has no `UPDATE … RETURNING`, so a use is
 * one call carrying two statements (`multipleStatements`): an `UPDATE` whose `WHERE` holds every
 * condition of a use (not revoked, stamped at or above its identity's generation, not expired,
 * uses left) and counts it, then a `SELECT` of the row. InnoDB evaluates the `WHERE` of an `UPDATE`
 * on the row's latest version under the row's lock, so two instances using a 1-use token at once
 * cannot both match: the second one's `UPDATE` waits for the first's commit, then sees the count
 * and matches nothing. The new count comes back in the `UPDATE`'s own answer
 * (`uses_count = LAST_INSERT_ID(uses_count + n)` puts it in the OK packet's insert id), exact even
 * when other instances use the token between the two statements; when nothing matched, the `SELECT`
 * says why.
 *
 * Uses of one token that arrive while its call is in flight wait and go together as the next call
 * (`uses_count + n`, all or none when the limit is finite): a token many requests use at once costs
 * one row lock and one commit per batch, not per request.
 *
 * **Revoking an identity has no race.** `revokeIdentity` marks the identity's rows revoked and
 * raises its generation (a row in `<prefix>identity_generations`, kept for good) in one
 * transaction; the use and renew statements read the generation inside their own `UPDATE`. A login
 * stamps the generation it read before loading the config on its record, so once `revokeIdentity`
 * has returned, no token of the identity works on any instance, not even one a login still in
 * flight stores afterwards.
 *
 * **Failure:** every call is bounded by `statementTimeoutMs`; an error or a timeout throws
 * `ServiceUnavailableError('store_unavailable')` (503, never access), and so does a row that does
 * not parse. A call already sent when the network stalled may still apply later.
 */
export class MySqlTokenStore implements TokenStore {
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #graceMs: number;
  readonly #clock: () => number;
  readonly #sql: ReturnType<typeof statements>;
  /** Per token with a consume call in flight: the uses queued for the next one. */
  readonly #queued = new Map<string, PendingUse[]>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: MySqlTokenStoreOptions) {
    if (!options?.pool) throw new ConfigError('pool', 'a mysql2/promise Pool is required');
    requireMultipleStatements(options.pool);
    this.#pool = options.pool;
    this.#timeoutMs = positive(options.statementTimeoutMs ?? 1000, 'statementTimeoutMs');
    this.#graceMs = positive(options.purgeGraceMs ?? 300_000, 'purgeGraceMs', true);
    this.#clock = options.clock ?? Date.now;
    this.#sql = statements(tableNames(options));
    const every = positive(options.purgeIntervalMs ?? 0, 'purgeIntervalMs', true);
    if (every > 0) {
      let running = false;
      this.#timer = setInterval(() => {
        if (running) return;
        running = true;
        this.purgeExpired()
          .catch(() => {})
          .finally(() => (running = false));
      }, every);
      this.#timer.unref();
    }
  }

  async create(record: AccessTokenRecord): Promise<void> {
    await this.#query(this.#sql.create, [
      record.tokenId,
      record.identityId,
      record.createdAt,
      record.expiresAt,
      record.maxExpiresAt,
      record.ttlSeconds,
      record.usesLimit,
      record.usesCount,
      record.revoked,
      record.generation ?? 0,
      JSON.stringify(record.trustedIps),
      JSON.stringify(record.metadata),
      record.issuer ?? null,
      record.subject ?? null,
      record.scope ?? null,
      record.audience ? JSON.stringify(record.audience) : null,
      record.jkt ?? null,
    ]);
  }

  async get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined> {
    const rows = (await this.#query(this.#sql.get, [tokenId])) as TokenRow[];
    const record = rows[0] && toRecord(rows[0]);
    return record && (record.revoked || now < record.expiresAt) ? record : undefined;
  }

  /**
   * Counts one use. Uses of one token that arrive while a call for it is in flight go together as
   * the next call; each still sees the token as the call before it left it, each success gets the
   * use count it would get in sequence, and no use waits past `statementTimeoutMs` in total.
   */
  consume(tokenId: string, now: number): Promise<ConsumeResult> {
    return new Promise((resolve, reject) => {
      const use: PendingUse = { now, since: performance.now(), resolve, reject };
      const queued = this.#queued.get(tokenId);
      if (queued) {
        queued.push(use);
        return;
      }
      this.#queued.set(tokenId, []);
      void this.#drain(tokenId, [use]);
    });
  }

  async extend(tokenId: string, now: number): Promise<ExtendResult> {
    for (let attempt = 1; ; attempt++) {
      const [hit, rows] = (await this.#query(this.#sql.extend, [now, tokenId, now, tokenId])) as [
        ResultSetHeader,
        TokenRow[],
      ];
      const row = rows[0];
      if (!row) return { ok: false, reason: 'not_found' };
      if (hit.affectedRows === 1) {
        return { ok: true, record: { ...toRecord(row), expiresAt: Number(hit.insertId), revoked: false } };
      }
      const reason = refusal(row, now, 1, true);
      if (reason) return { ok: false, reason };
      // Usable now but not when the UPDATE ran: a renewal by an instance whose clock is behind
      // moved the expiry in between. Try again; refuse rather than loop.
      if (attempt === 3) return { ok: false, reason: 'expired' };
    }
  }

  async revoke(tokenId: string): Promise<void> {
    await this.#query(this.#sql.revoke, [tokenId]);
  }

  async generation(identityId: string): Promise<number> {
    // An id the library never issues has no tokens (and would not fit the ASCII column).
    if (!IDENTITY_ID_PATTERN.test(identityId)) return 0;
    const rows = (await this.#query(this.#sql.generation, [identityId])) as { generation: number }[];
    return Number(rows[0]?.generation ?? 0);
  }

  /** One transaction: marks the identity's tokens revoked and raises its generation. */
  async revokeIdentity(identityId: string): Promise<number> {
    if (!IDENTITY_ID_PATTERN.test(identityId)) return 0;
    const results = (await this.#query(this.#sql.revokeIdentity, [
      identityId,
      this.#clock(),
      identityId,
      identityId,
    ])) as ResultSetHeader[];
    return results[1]!.affectedRows;
  }

  /**
   * Deletes rows expired more than `purgeGraceMs` ago, `batchSize` per statement (each its own
   * short transaction) until none are left. Returns how many went. Call it from a scheduled job,
   * or set `purgeIntervalMs`.
   */
  async purgeExpired(options: { batchSize?: number; now?: number } = {}): Promise<number> {
    const batchSize = Math.max(1, Math.floor(options.batchSize ?? 1000));
    const cutoff = (options.now ?? this.#clock()) - this.#graceMs;
    let total = 0;
    for (;;) {
      const { affectedRows } = (await this.#query(this.#sql.purge, [cutoff, batchSize])) as ResultSetHeader;
      total += affectedRows;
      if (affectedRows < batchSize) return total;
    }
  }

  /** Stops the purge timer. The pool is the caller's to end. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Runs `batch`, then whatever queued for `tokenId` meanwhile, until nothing waits. */
  async #drain(tokenId: string, batch: PendingUse[]): Promise<void> {
    for (;;) {
      try {
        await this.#consumeBatch(tokenId, batch);
      } catch (error) {
        // The store just failed: the uses queued behind this call fail closed now too.
        for (const use of [...batch, ...(this.#queued.get(tokenId) ?? [])]) use.reject(error);
        this.#queued.delete(tokenId);
        return;
      }
      const next = this.#queued.get(tokenId)!;
      if (next.length === 0) {
        this.#queued.delete(tokenId);
        return;
      }
      this.#queued.set(tokenId, []);
      batch = next;
    }
  }

  /** Counts `batch.length` uses in one call (fewer when the limit leaves fewer), settling each. */
  async #consumeBatch(tokenId: string, batch: PendingUse[]): Promise<void> {
    let todo = batch;
    for (let attempt = 1; todo.length > 0; attempt++) {
      const n = todo.length;
      const now = Math.max(...todo.map((use) => use.now));
      // The oldest use's deadline bounds the call: no use waits past statementTimeoutMs.
      const left = todo[0]!.since + this.#timeoutMs - performance.now();
      const [hit, rows] = (await this.#query(this.#sql.consume, [n, tokenId, now, n, tokenId], left)) as [
        ResultSetHeader,
        TokenRow[],
      ];
      const row = rows[0];
      if (!row) return settle(todo, { ok: false, reason: 'not_found' });
      if (hit.affectedRows === 1) {
        // The count after all n uses; in sequence, the i-th of them would have seen count - (n - 1 - i).
        const count = Number(hit.insertId);
        const record = { ...toRecord(row), revoked: false };
        todo.forEach((use, i) =>
          use.resolve({ ok: true, record: { ...record, usesCount: count - (n - 1 - i) } }),
        );
        return;
      }
      const reason = refusal(row, now, n);
      if (reason === 'uses_exhausted') {
        // Not enough uses left for all of them: counts only grow, so at most `usesLeft` can succeed.
        const usesLeft = Math.max(0, row.uses_limit - num(row.uses_count));
        settle(todo.slice(usesLeft), { ok: false, reason });
        todo = todo.slice(0, usesLeft);
        continue;
      }
      if (reason) return settle(todo, { ok: false, reason });
      // Usable now but not when the UPDATE ran (see extend): try again, refuse rather than loop.
      if (attempt === 3) return settle(todo, { ok: false, reason: 'expired' });
    }
  }

  #query(sql: string, values: unknown[], timeoutMs = this.#timeoutMs) {
    return run(this.#pool, sql, values, timeoutMs, 'token');
  }
}

function statements(t: ReturnType<typeof tableNames>) {
  // The current generation of the identity of the row aliased `row`. Read inside the statement, so
  // it includes every revokeIdentity that committed before the statement began.
  const current = (row: string) =>
    `COALESCE((SELECT g.generation FROM ${t.generations} g WHERE g.identity_id = ${row}.identity_id), 0)`;
  const usable = `a.revoked = 0 AND a.generation >= ${current('a')} AND a.expires_at > ?`;
  const read = `SELECT ${COLUMNS}, ${current('t')} AS current_generation FROM ${t.tokens} t WHERE t.token_id = ?`;
  return {
    create: `INSERT INTO ${t.tokens} (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON DUPLICATE KEY UPDATE ${COLUMNS.split(', ')
        .slice(1)
        .map((c) => `${c} = VALUES(${c})`)
        .join(', ')}`,
    get: `SELECT ${COLUMNS} FROM ${t.tokens} WHERE token_id = ?`,
    // Values: n, tokenId, now, n, tokenId. Counts n uses, all or none.
    consume: `UPDATE ${t.tokens} a SET a.uses_count = LAST_INSERT_ID(a.uses_count + ?)
      WHERE a.token_id = ? AND ${usable} AND (a.uses_limit = 0 OR a.uses_count + ? <= a.uses_limit);
      ${read}`,
    // Values: now, tokenId, now, tokenId.
    extend: `UPDATE ${t.tokens} a SET a.expires_at = LAST_INSERT_ID(LEAST(? + a.ttl_seconds * 1000, a.max_expires_at))
      WHERE a.token_id = ? AND ${usable} AND a.expires_at < a.max_expires_at
        AND (a.uses_limit = 0 OR a.uses_count < a.uses_limit);
      ${read}`,
    revoke: `UPDATE ${t.tokens} SET revoked = 1 WHERE token_id = ?`,
    generation: `SELECT generation FROM ${t.generations} WHERE identity_id = ?`,
    // Values: identityId, now, identityId, identityId. Token rows first, then the generation: the
    // order a use locks them in (its row, then the generation it reads), so the two never deadlock.
    revokeIdentity: `START TRANSACTION;
      UPDATE ${t.tokens} SET revoked = 1 WHERE identity_id = ? AND revoked = 0 AND expires_at > ?;
      UPDATE ${t.tokens} SET revoked = 1 WHERE identity_id = ? AND revoked = 0;
      INSERT INTO ${t.generations} (identity_id, generation) VALUES (?, 1)
        ON DUPLICATE KEY UPDATE generation = generation + 1;
      COMMIT`,
    purge: `DELETE FROM ${t.tokens} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`,
  };
}

/**
 * Why a row refuses `n` more uses at `now`, in the library's order (revoked, expired, then
 * `max_ttl_reached` for a renewal, then uses), or `undefined` if it would not.
 */
function refusal(row: TokenRow, now: number, n: number): 'revoked' | 'expired' | 'uses_exhausted' | undefined;
function refusal(row: TokenRow, now: number, n: number, renewal: true): ExtendRefusal | undefined;
function refusal(row: TokenRow, now: number, n: number, renewal = false): ExtendRefusal | undefined {
  if (row.revoked || num(row.generation) < num(row.current_generation)) return 'revoked';
  if (num(row.expires_at) <= now) return 'expired';
  if (renewal && num(row.expires_at) >= num(row.max_expires_at)) return 'max_ttl_reached';
  if (row.uses_limit > 0 && num(row.uses_count) + n > row.uses_limit) return 'uses_exhausted';
  return undefined;
}

type ExtendRefusal = (ExtendResult & { ok: false })['reason'];

interface PendingUse {
  now: number;
  /** `performance.now()` when the use arrived. */
  since: number;
  resolve: (result: ConsumeResult) => void;
  reject: (error: unknown) => void;
}

function settle(uses: PendingUse[], result: ConsumeResult): void {
  for (const use of uses) use.resolve(result);
}

function toRecord(row: TokenRow): AccessTokenRecord {
  const record: AccessTokenRecord = {
    tokenId: row.token_id,
    identityId: row.identity_id,
    createdAt: num(row.created_at),
    expiresAt: num(row.expires_at),
    maxExpiresAt: num(row.max_expires_at),
    ttlSeconds: row.ttl_seconds,
    usesLimit: row.uses_limit,
    usesCount: num(row.uses_count),
    revoked: row.revoked !== 0,
    trustedIps: parseJson(row.trusted_ips) as string[],
    metadata: parseJson(row.metadata) as Record<string, unknown>,
    generation: num(row.generation),
  };
  if (row.issuer !== null) record.issuer = row.issuer;
  if (row.subject !== null) record.subject = row.subject;
  if (row.scope !== null) record.scope = row.scope;
  if (row.audience !== null) record.audience = parseJson(row.audience) as string[];
  if (row.jkt !== null) record.jkt = row.jkt;
  return record;
}

/** A damaged row fails closed like an unreachable server: 503, never a guess. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ServiceUnavailableError('store_unavailable', 'The token store is unavailable', {
      cause: error,
      detail: { store: 'mysql', problem: 'unreadable row' },
    });
  }
}

const num = Number;

/** Throws a ConfigError at start-up when the pool cannot send two statements in one call. */
export function requireMultipleStatements(pool: Pool): void {
  const config = (pool as { pool?: { config?: { connectionConfig?: { multipleStatements?: boolean } } } })
    .pool?.config?.connectionConfig;
  if (config && !config.multipleStatements) {
    throw new ConfigError('pool', 'must be created with multipleStatements: true (see createPool)');
  }
}

function positive(value: number, field: string, zeroAllowed = false): number {
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw new ConfigError(field, zeroAllowed ? 'must be a number >= 0' : 'must be a number > 0');
  }
  return value;
}
