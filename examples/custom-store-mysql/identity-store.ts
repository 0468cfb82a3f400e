import type { Pool, ResultSetHeader } from 'mysql2/promise';
import {
  ConfigError,
  IDENTITY_ID_PATTERN,
  parseIdentityConfig,
  type IdentityConfig,
  type IdentityConfigInput,
  type IdentityStore,
} from '../../src/index.js';
import { run } from './query.js';
import { tableNames, type TableOptions } from './schema.js';

export interface MySqlIdentityStoreOptions extends TableOptions {
  /** A `mysql2/promise` pool, owned by the caller. */
  pool: Pool;
  /** Longest wait for one statement, in ms, waiting for a connection included. Default 1000. */
  statementTimeoutMs?: number;
  /** Parsed configs kept, least recently used out first. Default 1000. */
  cacheSize?: number;
}

interface IdentityRow {
  identity_id: string;
  config: string;
}

/**
 * Identity configs in MariaDB or MySQL (`<prefix>identities`, one JSON text row per identity).
 *
 * Validated with the library's `parseIdentityConfig` when written and again when read: a row
 * edited by hand into something invalid, or filed under another identity's id, throws
 * `ConfigError` and is never used to grant anything (the library answers that login as for an
 * unknown identity). A config parsed from a row is kept while the row's text stays the same, so a
 * login costs one primary-key lookup, not a parse. An unreachable or slow database throws
 * `ServiceUnavailableError('store_unavailable')` within `statementTimeoutMs`.
 */
export class MySqlIdentityStore implements IdentityStore {
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #cacheSize: number;
  readonly #sql;
  /** Identity id → the row text last parsed and the config it gave; a Map in insertion order is an LRU. */
  readonly #parsed = new Map<string, { text: string; config: IdentityConfig }>();

  constructor(options: MySqlIdentityStoreOptions) {
    if (!options?.pool) throw new ConfigError('pool', 'a mysql2/promise Pool is required');
    this.#pool = options.pool;
    this.#timeoutMs = options.statementTimeoutMs ?? 1000;
    if (!Number.isFinite(this.#timeoutMs) || this.#timeoutMs <= 0) {
      throw new ConfigError('statementTimeoutMs', 'must be a number > 0');
    }
    this.#cacheSize = options.cacheSize ?? 1000;
    if (!Number.isInteger(this.#cacheSize) || this.#cacheSize < 1) {
      throw new ConfigError('cacheSize', 'must be an integer >= 1');
    }
    const table = tableNames(options).identities;
    this.#sql = {
      get: `SELECT identity_id, config FROM ${table} WHERE identity_id = ?`,
      put: `INSERT INTO ${table} (identity_id, config) VALUES (?, ?)
        ON DUPLICATE KEY UPDATE config = VALUES(config)`,
      delete: `DELETE FROM ${table} WHERE identity_id = ?`,
      list: `SELECT identity_id, config FROM ${table} ORDER BY identity_id`,
    };
  }

  async get(identityId: string): Promise<IdentityConfig | undefined> {
    if (!IDENTITY_ID_PATTERN.test(identityId)) return undefined; // never stored: put validates ids
    const rows = (await this.#query(this.#sql.get, [identityId])) as IdentityRow[];
    return rows[0] && this.#fromRow(rows[0]);
  }

  /** Validates, then inserts or replaces. Returns the normalised config stored. */
  async put(input: IdentityConfigInput | IdentityConfig): Promise<IdentityConfig> {
    const config = parseIdentityConfig(input);
    await this.#query(this.#sql.put, [config.identityId, JSON.stringify(config)]);
    return config;
  }

  async delete(identityId: string): Promise<boolean> {
    if (!IDENTITY_ID_PATTERN.test(identityId)) return false;
    this.#parsed.delete(identityId);
    const { affectedRows } = (await this.#query(this.#sql.delete, [identityId])) as ResultSetHeader;
    return affectedRows > 0;
  }

  /** Every config, by identity id. Throws `ConfigError` if any stored row no longer validates. */
  async list(): Promise<IdentityConfig[]> {
    const rows = (await this.#query(this.#sql.list, [])) as IdentityRow[];
    return rows.map((row) => this.#fromRow(row));
  }

  /** The row's config: the cached one while the row text is unchanged, else parsed and validated. */
  #fromRow(row: IdentityRow): IdentityConfig {
    const cached = this.#parsed.get(row.identity_id);
    this.#parsed.delete(row.identity_id);
    if (cached?.text === row.config) {
      this.#parsed.set(row.identity_id, cached);
      return cached.config;
    }
    let input: IdentityConfigInput;
    try {
      input = JSON.parse(row.config) as IdentityConfigInput;
    } catch {
      throw new ConfigError('config', 'is not JSON', row.identity_id);
    }
    const config = parseIdentityConfig(input);
    if (config.identityId !== row.identity_id) {
      throw new ConfigError('identityId', 'does not match the row it is stored under', row.identity_id);
    }
    this.#parsed.set(row.identity_id, { text: row.config, config });
    if (this.#parsed.size > this.#cacheSize) this.#parsed.delete(this.#parsed.keys().next().value!);
    return config;
  }

  #query(sql: string, values: unknown[]) {
    return run(this.#pool, sql, values, this.#timeoutMs, 'identity');
  }
}
