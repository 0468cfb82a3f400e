import { LRUCache } from 'lru-cache';
import type { Pool } from 'pg';
import { ConfigError } from '../../src/errors.js';
import { MAX_TRUST_ENTRIES, parseTrustEntry, type TrustEntry } from '../../src/trust/entries.js';
import type { TrustStore } from '../../src/trust/store.js';
import { migrateOnce } from './migrate.js';
import { tableNames, type TableOptions } from './names.js';
import { runStatement, statement } from './query.js';

export interface PostgresTrustStoreOptions extends TableOptions {
  /** A `pg` pool, owned by the caller: the store never ends it. */
  pool: Pool;
  /** Longest wait for one statement, in ms, waiting for a connection included. Default 1000. */
  statementTimeoutMs?: number;
  /** Run `migrate` before the first statement. Default false. */
  migrate?: boolean;
  /** Use named (prepared) statements. Default true. */
  preparedStatements?: boolean;
}

/**
 * Trust entries in PostgreSQL (`<schema>.<prefix>trust_entries`, one `jsonb` row per entry), shared
 * by every instance given the same table: `createOidcAuth({ trust: new PostgresTrustStore({ pool }) })`.
 *
 * Entries are validated with `parseTrustEntry` when written and when read: a row edited by hand
 * into something invalid (or filed under another trust id) is never used (`get` throws
 * `ConfigError`, `list` leaves it out). The parsed entry of a row is kept while the row text is
 * the same, so an engine re-reading the table every `trustMaxAgeSeconds` parses only the rows that
 * changed. One parameterised statement per call; an unreachable or slow database throws
 * `ServiceUnavailableError('store_unavailable')` within `statementTimeoutMs`.
 */
export class PostgresTrustStore implements TrustStore {
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #migrated: (() => Promise<void>) | undefined;
  readonly #sql;
  /** Trust id → the row text last parsed and the entry it gave. */
  readonly #parsed = new LRUCache<string, { text: string; entry: TrustEntry }>({ max: MAX_TRUST_ENTRIES });

  constructor(options: PostgresTrustStoreOptions) {
    if (!options?.pool) throw new ConfigError('pool', 'a pg Pool is required');
    const names = tableNames(options);
    const timeout = options.statementTimeoutMs ?? 1000;
    if (!Number.isFinite(timeout) || timeout <= 0) throw new ConfigError('statementTimeoutMs', 'must be > 0');
    this.#pool = options.pool;
    this.#timeoutMs = timeout;
    this.#migrated = options.migrate ? migrateOnce(options.pool, names, 'trust') : undefined;
    const prepared = options.preparedStatements ?? true;
    const table = names.trust;
    this.#sql = {
      get: statement(`SELECT trust_id, entry::text AS entry FROM ${table} WHERE trust_id = $1`, prepared),
      put: statement(
        `INSERT INTO ${table} (trust_id, entry) VALUES ($1, $2::jsonb)
         ON CONFLICT (trust_id) DO UPDATE SET entry = EXCLUDED.entry, updated_at = now()`,
        prepared,
      ),
      delete: statement(`DELETE FROM ${table} WHERE trust_id = $1`, prepared),
      list: statement(
        `SELECT trust_id, entry::text AS entry FROM ${table} ORDER BY trust_id LIMIT ${MAX_TRUST_ENTRIES}`,
        prepared,
      ),
    };
  }

  async get(trustId: string): Promise<TrustEntry | undefined> {
    const { rows } = await this.#query(this.#sql.get, [trustId]);
    return rows[0] ? this.#fromRow(rows[0]) : undefined;
  }

  /** Validates, then inserts or replaces. */
  async put(entry: TrustEntry): Promise<void> {
    const valid = parseTrustEntry(entry);
    this.#parsed.delete(valid.trustId);
    await this.#query(this.#sql.put, [valid.trustId, JSON.stringify(valid)]);
  }

  async delete(trustId: string): Promise<boolean> {
    this.#parsed.delete(trustId);
    const { rowCount } = await this.#query(this.#sql.delete, [trustId]);
    return rowCount > 0;
  }

  /** Every valid entry, by trust id (at most 10,000); a row that no longer validates is left out. */
  async list(): Promise<TrustEntry[]> {
    const { rows } = await this.#query(this.#sql.list, []);
    const entries: TrustEntry[] = [];
    for (const row of rows) {
      try {
        entries.push(this.#fromRow(row));
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
      }
    }
    return entries;
  }

  /** The row's entry: the cached one while the row text is unchanged, else parsed and validated. */
  #fromRow(row: TrustRow): TrustEntry {
    const cached = this.#parsed.get(row.trust_id);
    if (cached?.text === row.entry) return cached.entry;
    const entry = parseTrustEntry(JSON.parse(row.entry));
    if (entry.trustId !== row.trust_id) {
      throw new ConfigError(
        `trust[${JSON.stringify(row.trust_id)}].trustId`,
        'does not match the row it is stored under',
      );
    }
    this.#parsed.set(row.trust_id, { text: row.entry, entry });
    return entry;
  }

  async #query(stmt: ReturnType<typeof statement>, values: unknown[]) {
    if (this.#migrated) await this.#migrated();
    return runStatement<TrustRow>(this.#pool, stmt, values, this.#timeoutMs, 'trust');
  }
}

interface TrustRow {
  trust_id: string;
  /** The `jsonb` column as text. */
  entry: string;
}
