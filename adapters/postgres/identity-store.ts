import { LRUCache } from 'lru-cache';
import type { Pool } from 'pg';
import { parseIdentityConfig } from '../../src/trust/config.js';
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
  /**
   * Parsed configs kept, least recently used out first, each with the row text it was parsed from.
   * Default 10 000 (a parsed config is about 1.5 KB of heap, plus its row text).
   */
  cacheSize?: number;
}

/**
 * Identity configs in PostgreSQL (`<schema>.<prefix>identities`, one `jsonb` row per identity).
 *
 * Configs are validated with `parseIdentityConfig` when written and again when read: a row edited
 * by hand into something invalid (or filed under another identity's id) throws `ConfigError` and is
 * never used to grant anything. One statement per call, parameterised; an unreachable or slow
 * database throws `ServiceUnavailableError('store_unavailable')` within `statementTimeoutMs`.
 *
 * Every read fetches the row (as text); the config parsed from it is kept (`cacheSize` most recently
 * used) and reused while the row's text is the same, so a known identity costs the primary-key lookup
 * and a string comparison, not a parse and validation (about 40 µs) per login: a login for an
 * existing id is then barely slower than one for an unknown id, whatever the token. A row changed
 * by any instance, or by hand, is parsed and validated again on the next read; one deleted is gone.
 */
export class PostgresIdentityStore implements IdentityStore {
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #migrated: (() => Promise<void>) | undefined;
  readonly #sql;
  /** Identity id → the row text last parsed and the config it gave. */
  readonly #parsed: LRUCache<string, { text: string; config: IdentityConfig }>;

  constructor(options: PostgresIdentityStoreOptions) {
    if (!options?.pool) throw new ConfigError('pool', 'a pg Pool is required');
    const names = tableNames(options);
    const timeout = options.statementTimeoutMs ?? 1000;
    if (!Number.isFinite(timeout) || timeout <= 0) throw new ConfigError('statementTimeoutMs', 'must be > 0');
    const cacheSize = options.cacheSize ?? 10_000;
    if (!Number.isInteger(cacheSize) || cacheSize < 1) {
      throw new ConfigError('cacheSize', 'must be an integer >= 1');
    }
    this.#parsed = new LRUCache({ max: cacheSize });
    this.#pool = options.pool;
    this.#timeoutMs = timeout;
    this.#migrated = options.migrate ? migrateOnce(options.pool, names, 'identity') : undefined;
    const prepared = options.preparedStatements ?? true;
    const table = names.identities;
    this.#sql = {
      // As text: compared with the cached row text, parsed only when it differs.
      get: statement(
        `SELECT identity_id, config::text AS config FROM ${table} WHERE identity_id = $1`,
        prepared,
      ),
      put: statement(
        `INSERT INTO ${table} (identity_id, config) VALUES ($1, $2::jsonb)
         ON CONFLICT (identity_id) DO UPDATE SET config = EXCLUDED.config, updated_at = now()`,
        prepared,
      ),
      delete: statement(`DELETE FROM ${table} WHERE identity_id = $1`, prepared),
      list: statement(
        `SELECT identity_id, config::text AS config FROM ${table} ORDER BY identity_id`,
        prepared,
      ),
      trustReferences: statement(
        `SELECT identity_id FROM ${table} WHERE config->>'trust' = $1 ORDER BY identity_id LIMIT $2`,
        prepared,
      ),
      // One row per distinct key source (the fields the engine compares sources by) among the rows
      // binding the issuer, the lowest identity id of each; 9 at most (the engine keeps 8).
      issuerKeySources: statement(
        `SELECT identity_id, config::text AS config FROM (
           SELECT DISTINCT ON (${KEY_SOURCE_FIELDS}) identity_id, config FROM ${table}
           WHERE config->'boundIssuer' ? $1
              OR config->'keySources' @> jsonb_build_array(jsonb_build_object('issuer', jsonb_build_array($1::text)))
           ORDER BY ${KEY_SOURCE_FIELDS}, identity_id
         ) AS sources ORDER BY identity_id LIMIT 9`,
        prepared,
      ),
    };
  }

  async get(identityId: string): Promise<IdentityConfig | undefined> {
    const { rows } = await this.#query(this.#sql.get, [identityId]);
    return rows[0] ? this.#fromRow(rows[0]) : undefined;
  }

  /** Validates, then inserts or replaces. Returns the normalised config stored. */
  async put(input: IdentityConfigInput | IdentityConfig): Promise<IdentityConfig> {
    const config = parseIdentityConfig(input);
    // jsonb spells the row its own way: the next read parses it once.
    this.#parsed.delete(config.identityId);
    await this.#query(this.#sql.put, [config.identityId, JSON.stringify(config)]);
    return config;
  }

  async delete(identityId: string): Promise<boolean> {
    this.#parsed.delete(identityId);
    const { rowCount } = await this.#query(this.#sql.delete, [identityId]);
    return rowCount > 0;
  }

  /**
   * Up to 9 configs binding `issuer`, one per distinct key source (see `IdentityStore`): one
   * statement, a scan of the table (no index on the bound issuers; the engine calls it at most once
   * per 30 s per issuer). A row that no longer validates is left out.
   */
  async issuerKeySources(issuer: string): Promise<IdentityConfig[]> {
    const { rows } = await this.#query(this.#sql.issuerKeySources, [issuer]);
    const configs: IdentityConfig[] = [];
    for (const row of rows) {
      try {
        configs.push(this.#fromRow(row));
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
      }
    }
    return configs;
  }

  /** Up to `limit` ids of the rows naming trust entry `trustId` (one statement, a table scan). */
  async trustReferences(trustId: string, limit: number): Promise<string[]> {
    const { rows } = await this.#query(this.#sql.trustReferences, [trustId, limit]);
    return rows.map((row) => row.identity_id);
  }

  /** Every config, by identity id. Throws `ConfigError` if any stored row no longer validates. */
  async list(): Promise<IdentityConfig[]> {
    const { rows } = await this.#query(this.#sql.list, []);
    return rows.map((row) => this.#fromRow(row));
  }

  /** The row's config: the cached one while the row text is unchanged, else parsed and validated. */
  #fromRow(row: IdentityRow): IdentityConfig {
    const cached = this.#parsed.get(row.identity_id);
    if (cached?.text === row.config) return cached.config;
    const config = parseIdentityConfig(JSON.parse(row.config) as IdentityConfigInput);
    if (config.identityId !== row.identity_id) {
      throw new ConfigError('identityId', 'does not match the row it is stored under', row.identity_id);
    }
    this.#parsed.set(row.identity_id, { text: row.config, config });
    return config;
  }

  async #query(stmt: ReturnType<typeof statement>, values: unknown[]) {
    if (this.#migrated) await this.#migrated();
    return runStatement<IdentityRow>(this.#pool, stmt, values, this.#timeoutMs, 'identity');
  }
}

/** The `jsonb` fields that tell key sources apart (what the engine's source comparison reads). */
const KEY_SOURCE_FIELDS = [
  'publicKeys',
  'jwksUrl',
  'oidcDiscoveryUrl',
  'discoveryIssuer',
  'caCert',
  'allowPrivateNetwork',
  'allowInsecureLoopback',
  'keySources',
]
  .map((field) => `config->'${field}'`)
  .join(', ');

interface IdentityRow {
  identity_id: string;
  /** The `jsonb` column as text. */
  config: string;
}
