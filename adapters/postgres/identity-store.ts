import type { Pool } from 'pg';
import { parseIdentityConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import type { IdentityConfig, IdentityConfigInput, IdentityStore } from '../../src/types.js';
import { migrateOnce } from './migrate.js';
import { tableNames, type TableOptions } from './names.js';
import { runStatement, statement } from './query.js';

export interface PostgresIdentityStoreOptions extends TableOptions {
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
 * Identity configs in PostgreSQL (`<schema>.<prefix>identities`, one `jsonb` row per identity).
 *
 * Configs are validated with `parseIdentityConfig` when written and again when read: a row edited
 * by hand into something invalid (or filed under another identity's id) throws `ConfigError` and is
 * never used to grant anything. One statement per call, parameterised; an unreachable or slow
 * database throws `ServiceUnavailableError('store_unavailable')` within `statementTimeoutMs`.
 */
export class PostgresIdentityStore implements IdentityStore {
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #migrated: (() => Promise<void>) | undefined;
  readonly #sql;

  constructor(options: PostgresIdentityStoreOptions) {
    if (!options?.pool) throw new ConfigError('pool', 'a pg Pool is required');
    const names = tableNames(options);
    const timeout = options.statementTimeoutMs ?? 1000;
    if (!Number.isFinite(timeout) || timeout <= 0) throw new ConfigError('statementTimeoutMs', 'must be > 0');
    this.#pool = options.pool;
    this.#timeoutMs = timeout;
    this.#migrated = options.migrate ? migrateOnce(options.pool, names, 'identity') : undefined;
    const prepared = options.preparedStatements ?? true;
    const table = names.identities;
    this.#sql = {
      get: statement(`SELECT identity_id, config FROM ${table} WHERE identity_id = $1`, prepared),
      put: statement(
        `INSERT INTO ${table} (identity_id, config) VALUES ($1, $2::jsonb)
         ON CONFLICT (identity_id) DO UPDATE SET config = EXCLUDED.config, updated_at = now()`,
        prepared,
      ),
      delete: statement(`DELETE FROM ${table} WHERE identity_id = $1`, prepared),
      list: statement(`SELECT identity_id, config FROM ${table} ORDER BY identity_id`, prepared),
    };
  }

  async get(identityId: string): Promise<IdentityConfig | undefined> {
    const { rows } = await this.#query(this.#sql.get, [identityId]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  /** Validates, then inserts or replaces. Returns the normalised config stored. */
  async put(input: IdentityConfigInput | IdentityConfig): Promise<IdentityConfig> {
    const config = parseIdentityConfig(input);
    await this.#query(this.#sql.put, [config.identityId, JSON.stringify(config)]);
    return config;
  }

  async delete(identityId: string): Promise<boolean> {
    const { rowCount } = await this.#query(this.#sql.delete, [identityId]);
    return rowCount > 0;
  }

  /** Every config, by identity id. Throws `ConfigError` if any stored row no longer validates. */
  async list(): Promise<IdentityConfig[]> {
    const { rows } = await this.#query(this.#sql.list, []);
    return rows.map(fromRow);
  }

  async #query(stmt: ReturnType<typeof statement>, values: unknown[]) {
    if (this.#migrated) await this.#migrated();
    return runStatement<IdentityRow>(this.#pool, stmt, values, this.#timeoutMs, 'identity');
  }
}

interface IdentityRow {
  identity_id: string;
  config: unknown;
}

function fromRow(row: IdentityRow): IdentityConfig {
  const config = parseIdentityConfig(row.config as IdentityConfigInput);
  if (config.identityId !== row.identity_id) {
    throw new ConfigError('identityId', 'does not match the row it is stored under', row.identity_id);
  }
  return config;
}
