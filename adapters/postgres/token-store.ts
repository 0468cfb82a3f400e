import type { Pool } from 'pg';
import { ConfigError } from '../../src/errors.js';
import type {
  AccessTokenRecord,
  ConsumeResult,
  ExtendResult,
  RevocationStamps,
  RevokeWhereFilter,
  TokenStore,
} from '../../src/types.js';
import { migrateOnce } from './migrate.js';
import { tableNames, type TableNames, type TableOptions } from './names.js';
import { runStatement, statement, type Statement } from './query.js';
import { claimStatements, revokeWhereTransaction } from './revoke-where.js';

export interface PostgresTokenStoreOptions extends TableOptions {
  /** A `pg` pool, owned by the caller: the store never ends it. Give it a `connectionTimeoutMillis`. */
  pool: Pool;
  /**
   * Longest wait for one statement, in ms, waiting for a pooled connection included; past it the
   * call throws `store_unavailable` (503). Default 1000. Also set `statement_timeout` on the pool so
   * the server gives up too.
   */
  statementTimeoutMs?: number;
  /** Run {@link migrate} before the first statement. Default false. */
  migrate?: boolean;
  /** Run {@link PostgresTokenStore.purgeExpired} this often, in ms (timer unref'd). Default 0: never. */
  purgeIntervalMs?: number;
  /**
   * How long an expired row is kept before a purge deletes it, in ms, so that revocation stays
   * visible to app instances whose clocks run behind. Default 300 000 (5 min).
   */
  purgeGraceMs?: number;
  /**
   * Use named (prepared) statements. Default true. Turn off behind a pooler in transaction mode
   * that cannot keep them (PgBouncer before 1.21).
   */
  preparedStatements?: boolean;
  /** Clock for `revokeIdentity` and purges. Default `Date.now`. */
  clock?: () => number;
}

interface TokenRow {
  outcome?: string;
  token_id: string;
  identity_id: string;
  created_at: string;
  expires_at: string;
  max_expires_at: string;
  ttl_seconds: number;
  uses_limit: number;
  uses_count: string;
  revoked: boolean;
  trusted_ips: string[];
  metadata: Record<string, unknown>;
  issuer: string | null;
  subject: string | null;
  generation: string;
  scope: string | null;
  audience: string[] | null;
  claims?: Record<string, string> | null;
  claim_epoch?: string;
  jkt: string | null;
}

/**
 * Access-token state in PostgreSQL, shared by every app instance that uses the same database.
 *
 * **When to choose it:** several app instances and PostgreSQL already at hand, or tokens that must
 * survive a restart of everything. One guarded request costs at most one round trip: a single
 * statement that counts the use (`UPDATE … WHERE … uses_count < uses_limit RETURNING`) and, when no
 * row qualifies, tells why in the same answer. Uses of one token that arrive while its statement is
 * in flight go together as the next one (see {@link PostgresTokenStore.consume}): a token that many
 * requests use at once would otherwise queue them all on its row lock, one commit each. Renew is two
 * statements (read, then extend), revoke one, login two (the identity's generation, then the insert).
 *
 * **Revoking an identity has no race.** `revokeIdentity` raises the identity's generation (a row in
 * `<prefix>identity_generations`, kept for good) and marks its tokens revoked in one statement. Login
 * reads the generation before it loads the config and stamps it on the row; the consume and extend
 * statements compare a row's stamp with its identity's generation in the same statement (a primary
 * key lookup). A statement sees everything committed before it began, so once `revokeIdentity` has
 * returned, no token of the identity works on any instance, even one a login still in flight
 * inserts afterwards. Databases made by an earlier version need `migrate` (it adds the
 * `generation`, `scope`, `audience` and `jkt` columns and the generations table) before this version runs.
 *
 * **Storage:** one row per token in `<schema>.<prefix>access_tokens`: about 265 bytes of tuple with a
 * small metadata object (370 with six mapped claims; `pg_column_size`), about 345 bytes on disk per
 * token with its three index entries (PostgreSQL 15, 20 000 rows). Expired rows stay until
 * {@link PostgresTokenStore.purgeExpired} deletes them, in bounded batches, `purgeGraceMs` after
 * expiry: call it from a scheduled job or set `purgeIntervalMs`.
 *
 * **Cost:** every guarded request commits one small write (the use count). With the default
 * `synchronous_commit = on` that waits for the WAL flush; `options: '-c synchronous_commit=off'` on
 * the pool roughly halves the latency, at the price of losing the last fraction of a second of use
 * counts and revocations if the database server crashes.
 *
 * **Failure:** every statement is bounded by `statementTimeoutMs`; an error or a timeout throws
 * `ServiceUnavailableError('store_unavailable')` (503 with `Retry-After`, never access). A
 * connection that misbehaved is destroyed; the pool opens fresh ones once the server is back. Give
 * the pool an `'error'` listener (idle connections cut by an outage emit one; without a listener
 * Node exits), a `connectionTimeoutMillis`, and a `statement_timeout` so the server gives up too.
 * A statement already sent when the network stalled may still apply later (a revoke that answered
 * 503 may have revoked); one still waiting for a connection never runs.
 *
 * `issuer` and `subject` are `text`, which cannot hold a NUL character: the engine refuses such a
 * login (401 `claim_value_unsupported`, #13.6) before anything is stored, as it does a NUL or a lone
 * surrogate in a mapped claim. A record written by other code with one fails closed (503).
 */
export class PostgresTokenStore implements TokenStore {
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #graceMs: number;
  readonly #clock: () => number;
  readonly #sql: ReturnType<typeof tokenStatements>;
  readonly #claimSql: ReturnType<typeof claimStatements>;
  readonly #migrated: (() => Promise<void>) | undefined;
  /** Per token with a consume statement in flight: the uses queued for the next one. */
  readonly #waiting = new Map<string, PendingUse[]>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: PostgresTokenStoreOptions) {
    if (!options?.pool) throw new ConfigError('pool', 'a pg Pool is required');
    const names = tableNames(options);
    this.#pool = options.pool;
    this.#timeoutMs = positive(options.statementTimeoutMs ?? 1000, 'statementTimeoutMs');
    this.#graceMs = positive(options.purgeGraceMs ?? 300_000, 'purgeGraceMs', true);
    this.#clock = options.clock ?? Date.now;
    this.#sql = tokenStatements(names, options.preparedStatements ?? true);
    this.#claimSql = claimStatements(names, options.preparedStatements ?? true);
    if (options.migrate) this.#migrated = migrateOnce(this.#pool, names, 'token');
    const every = positive(options.purgeIntervalMs ?? 0, 'purgeIntervalMs', true);
    if (every > 0) {
      let running = false;
      // A purge still deleting a backlog is left to finish; failures wait for the next tick.
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
      JSON.stringify(record.trustedIps),
      JSON.stringify(record.metadata),
      record.issuer ?? null,
      record.subject ?? null,
      record.generation ?? 0,
      record.scope ?? null,
      record.audience ? JSON.stringify(record.audience) : null,
      record.claims ? JSON.stringify(record.claims) : null,
      record.claimEpoch ?? 0,
      record.jkt ?? null,
    ]);
  }

  async get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined> {
    const { rows } = await this.#query(this.#sql.get, [tokenId]);
    const row = rows[0];
    if (!row) return undefined;
    const record = toRecord(row);
    return !record.revoked && now >= record.expiresAt ? undefined : record;
  }

  /**
   * Counts one use. Uses of one token that arrive while a statement for it is in flight wait and
   * go together as the next statement (`uses_count + n`, all or none when the limit is finite), so
   * a token used by many concurrent requests costs one row lock per batch instead of one per
   * request. Each use still sees the token's state after the statement before it (a revoke that
   * landed meanwhile refuses it), each success gets the use count it would get in sequence, and a
   * waiting use never waits past `statementTimeoutMs` in total.
   */
  consume(tokenId: string, now: number): Promise<ConsumeResult> {
    return new Promise((resolve, reject) => {
      const use: PendingUse = { now, since: performance.now(), resolve, reject };
      const waiting = this.#waiting.get(tokenId);
      if (waiting) {
        waiting.push(use);
        return;
      }
      this.#waiting.set(tokenId, []);
      void this.#consumeLoop(tokenId, [use]);
    });
  }

  async extend(tokenId: string, now: number): Promise<ExtendResult> {
    return this.#guarded(this.#sql.extend, tokenId, now);
  }

  async revoke(tokenId: string): Promise<void> {
    await this.#query(this.#sql.revoke, [tokenId]);
  }

  async generation(identityId: string): Promise<number> {
    const { rows } = await this.#query(this.#sql.generation, [identityId]);
    return Number(rows[0]?.generation ?? 0);
  }

  /** One statement: raises the identity's generation and marks its tokens revoked, together. */
  async revokeIdentity(identityId: string): Promise<number> {
    const { rows } = await this.#query(this.#sql.revokeIdentity, [identityId, this.#clock()]);
    return Number(rows[0]?.live ?? 0);
  }

  /** The identity's generation and the claim epoch, in one statement. */
  async revocationStamps(identityId: string): Promise<RevocationStamps> {
    const { rows } = await this.#query(this.#claimSql.stamps, [identityId]);
    const row = rows[0] as unknown as { generation: string; claim_epoch: string } | undefined;
    return { generation: Number(row?.generation ?? 0), claimEpoch: Number(row?.claim_epoch ?? 0) };
  }

  /**
   * One transaction that first locks the one-row claim-epoch table (`ACCESS EXCLUSIVE`), which every
   * login's `create` statement reads: a `create` either committed before (the walk finds its row) or
   * waits and then sees the new entry (it stores its row revoked). Uses (consume, extend) never
   * touch that table and do not wait. See `adapters/postgres/revoke-where.ts`.
   */
  async revokeWhere(
    filter: RevokeWhereFilter,
    now: number,
    limits: { keepMs: number; maxEntries: number },
  ): Promise<number> {
    if (this.#migrated) await this.#migrated();
    return revokeWhereTransaction(this.#pool, this.#claimSql, filter, now, limits, this.#timeoutMs);
  }

  /**
   * Deletes rows expired more than `purgeGraceMs` ago, `batchSize` rows per statement (each its
   * own short transaction) until none are left. Returns how many went.
   */
  async purgeExpired(options: { batchSize?: number; now?: number } = {}): Promise<number> {
    const batchSize = Math.max(1, Math.floor(options.batchSize ?? 1000));
    const cutoff = (options.now ?? this.#clock()) - this.#graceMs;
    let total = 0;
    for (;;) {
      const { rowCount } = await this.#query(this.#sql.purge, [cutoff, batchSize]);
      total += rowCount;
      if (rowCount < batchSize) return total;
    }
  }

  /** Stops the purge timer. The pool is the caller's to end. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Runs `batch`, then whatever queued for `tokenId` meanwhile, until nothing waits. */
  async #consumeLoop(tokenId: string, batch: PendingUse[]): Promise<void> {
    for (;;) {
      try {
        await this.#consumeBatch(tokenId, batch);
      } catch (error) {
        // The store just failed: the uses waiting behind this one fail closed now too.
        for (const use of [...batch, ...(this.#waiting.get(tokenId) ?? [])]) use.reject(error);
        this.#waiting.delete(tokenId);
        return;
      }
      const next = this.#waiting.get(tokenId);
      if (!next?.length) {
        this.#waiting.delete(tokenId);
        return;
      }
      this.#waiting.set(tokenId, []);
      batch = next;
    }
  }

  /** Counts `batch.length` uses in one statement (fewer when the limit leaves fewer), settling each. */
  async #consumeBatch(tokenId: string, batch: PendingUse[]): Promise<void> {
    let todo = batch;
    let raced = 0;
    while (todo.length > 0) {
      const now = Math.max(...todo.map((use) => use.now));
      // The oldest use's deadline bounds the statement: no use waits past statementTimeoutMs.
      const left = todo[0]!.since + this.#timeoutMs - performance.now();
      const { rows } = await this.#query(this.#sql.consume, [tokenId, now, todo.length], Math.max(1, left));
      const row = rows[0];
      if (!row) return settle(todo, { ok: false, reason: 'not_found' });
      if (row.outcome === 'ok') {
        // In sequence, the i-th of n uses would have seen count - (n - 1 - i).
        const count = Number(row.uses_count);
        todo.forEach((use, i) => {
          const record = toRecord(row);
          record.usesCount = count - (todo.length - 1 - i);
          use.resolve({ ok: true, record });
        });
        return;
      }
      if (row.outcome === 'uses_exhausted') {
        // Not enough uses left for all: counts only grow, so at most `usesLeft` of them can succeed.
        const usesLeft = Math.max(0, row.uses_limit - Number(row.uses_count));
        settle(todo.slice(usesLeft), { ok: false, reason: 'uses_exhausted' });
        todo = todo.slice(0, usesLeft);
        continue;
      }
      if (row.outcome === 'raced' && ++raced < 3) continue;
      const reason =
        row.outcome === 'raced' ? (row.uses_limit > 0 ? 'uses_exhausted' : 'revoked') : row.outcome;
      return settle(todo, { ok: false, reason: reason as 'revoked' });
    }
  }

  async #guarded(stmt: Statement, tokenId: string, now: number): Promise<ExtendResult> {
    // 'raced': the row qualified when the statement began but a concurrent revoke or use changed
    // it first. Those changes only ever close a token, so a second statement sees the final state.
    for (let attempt = 0; ; attempt++) {
      const { rows } = await this.#query(stmt, [tokenId, now]);
      const row = rows[0];
      if (!row) return { ok: false, reason: 'not_found' };
      if (row.outcome === 'ok') return { ok: true, record: toRecord(row) };
      if (row.outcome !== 'raced') return { ok: false, reason: row.outcome as 'revoked' };
      if (attempt === 2) return { ok: false, reason: row.uses_limit > 0 ? 'uses_exhausted' : 'revoked' };
    }
  }

  async #query(stmt: Statement, values: unknown[], timeoutMs = this.#timeoutMs) {
    if (this.#migrated) await this.#migrated();
    return runStatement<TokenRow & { live?: string }>(this.#pool, stmt, values, timeoutMs, 'token');
  }
}

function tokenStatements(names: TableNames, prepared: boolean) {
  const table = names.tokens;
  const columns =
    'token_id, identity_id, created_at, expires_at, max_expires_at, ttl_seconds, uses_limit, uses_count, ' +
    'revoked, trusted_ips, metadata, issuer, subject, generation, scope, audience, claims, claim_epoch, jkt';
  // The current generation of the identity of the row aliased `row`: read in the statement's own
  // snapshot, which includes every revokeIdentity that returned before the statement began.
  const current = (row: string) =>
    `COALESCE((SELECT g.generation FROM ${names.generations} g WHERE g.identity_id = ${row}.identity_id), 0)`;
  const usable = `NOT revoked AND generation >= ${current('a')} AND expires_at > $2::bigint`;
  const stale = `t.revoked OR t.generation < ${current('t')}`;
  const usesLeft = `(uses_limit = 0 OR uses_count < uses_limit)`;
  const exhausted = `t.uses_limit > 0 AND t.uses_count >= t.uses_limit`;
  // A login in flight across a revokeWhere stores its row revoked (see revoke-where.ts): claims $17,
  // claim epoch $18, identity $2. Naming the claim-epoch table makes the statement wait for a
  // revokeWhere holding it, before its snapshot is taken.
  const refusedByClaim = `(
      $17::jsonb IS NOT NULL AND $18::bigint < (SELECT e.epoch FROM ${names.claimEpoch} e WHERE e.id = 1) AND (
        $18::bigint < (SELECT e.floor FROM ${names.claimEpoch} e WHERE e.id = 1)
        OR EXISTS (SELECT 1 FROM jsonb_each_text($17::jsonb) c JOIN ${names.claimRevocations} r
                   ON r.claim = c.key AND r.value = c.value AND r.identity_id IN ('', $2)
                   WHERE r.epoch > $18::bigint)))`;
  // Named columns, never `*`: a column a user adds to the table must not break the UNION.
  const tColumns = columns
    .split(', ')
    .map((c) => `t.${c}`)
    .join(', ');
  return {
    create: statement(
      `INSERT INTO ${table} (${columns})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9 OR ${refusedByClaim}, $10::jsonb, $11::json, $12, $13, $14, $15,
               $16::jsonb, $17::jsonb, $18::bigint, $19)
       ON CONFLICT (token_id) DO UPDATE SET ${columns
         .split(', ')
         .slice(1)
         .map((c) => `${c} = EXCLUDED.${c}`)
         .join(', ')}`,
      prepared,
    ),
    get: statement(`SELECT ${columns} FROM ${table} WHERE token_id = $1`, prepared),
    // $3 uses at once: all of them or none.
    consume: statement(
      `WITH hit AS (
         UPDATE ${table} a SET uses_count = uses_count + $3::int
         WHERE token_id = $1 AND ${usable} AND (uses_limit = 0 OR uses_count + $3::int <= uses_limit)
         RETURNING ${columns})
       SELECT 'ok' AS outcome, ${columns} FROM hit
       UNION ALL
       SELECT CASE WHEN ${stale} THEN 'revoked'
                   WHEN t.expires_at <= $2::bigint THEN 'expired'
                   WHEN t.uses_limit > 0 AND t.uses_count + $3::int > t.uses_limit THEN 'uses_exhausted'
                   ELSE 'raced' END, ${tColumns}
       FROM ${table} t WHERE t.token_id = $1 AND NOT EXISTS (SELECT 1 FROM hit)`,
      prepared,
    ),
    extend: statement(
      `WITH hit AS (
         UPDATE ${table} a SET expires_at = LEAST($2::bigint + ttl_seconds::bigint * 1000, max_expires_at)
         WHERE token_id = $1 AND ${usable} AND expires_at < max_expires_at AND ${usesLeft}
         RETURNING ${columns})
       SELECT 'ok' AS outcome, ${columns} FROM hit
       UNION ALL
       SELECT CASE WHEN ${stale} THEN 'revoked'
                   WHEN t.expires_at <= $2::bigint THEN 'expired'
                   WHEN t.expires_at >= t.max_expires_at THEN 'max_ttl_reached'
                   WHEN ${exhausted} THEN 'uses_exhausted'
                   ELSE 'raced' END, ${tColumns}
       FROM ${table} t WHERE t.token_id = $1 AND NOT EXISTS (SELECT 1 FROM hit)`,
      prepared,
    ),
    revoke: statement(`UPDATE ${table} SET revoked = true WHERE token_id = $1 AND NOT revoked`, prepared),
    generation: statement(`SELECT generation FROM ${names.generations} WHERE identity_id = $1`, prepared),
    // Both writes commit together; every consume that begins afterwards sees the raised generation.
    // The bump runs although nothing reads it: PostgreSQL runs every data-modifying WITH to completion.
    revokeIdentity: statement(
      `WITH bump AS (
         INSERT INTO ${names.generations} AS g (identity_id, generation) VALUES ($1, 1)
         ON CONFLICT (identity_id) DO UPDATE SET generation = g.generation + 1),
       r AS (
         UPDATE ${table} SET revoked = true WHERE identity_id = $1 AND NOT revoked RETURNING expires_at)
       SELECT count(*) FILTER (WHERE expires_at > $2::bigint) AS live FROM r`,
      prepared,
    ),
    purge: statement(
      `WITH doomed AS (
         SELECT token_id FROM ${table} WHERE expires_at <= $1::bigint
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       DELETE FROM ${table} t USING doomed WHERE t.token_id = doomed.token_id`,
      prepared,
    ),
  };
}

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
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    maxExpiresAt: Number(row.max_expires_at),
    ttlSeconds: row.ttl_seconds,
    usesLimit: row.uses_limit,
    usesCount: Number(row.uses_count),
    revoked: row.revoked,
    trustedIps: row.trusted_ips,
    metadata: row.metadata,
    generation: Number(row.generation),
  };
  if (row.issuer !== null) record.issuer = row.issuer;
  if (row.subject !== null) record.subject = row.subject;
  if (row.scope !== null) record.scope = row.scope;
  if (row.audience !== null) record.audience = row.audience;
  if (row.claims) record.claims = row.claims;
  if (row.claim_epoch !== undefined && Number(row.claim_epoch) > 0)
    record.claimEpoch = Number(row.claim_epoch);
  if (row.jkt !== null && row.jkt !== undefined) record.jkt = row.jkt;
  return record;
}

function positive(value: number, field: string, zeroAllowed = false): number {
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw new ConfigError(field, zeroAllowed ? 'must be a number >= 0' : 'must be a number > 0');
  }
  return value;
}
