import type { Pool } from 'mysql2/promise';
import { ConfigError } from '../../src/index.js';

/** Where the tables live: the pool's database, names prefixed. */
export interface TableOptions {
  /**
   * Prepended to the table names (`oma_access_tokens`, `oma_identity_generations`, `oma_identities`).
   * Default `'oma_'`.
   */
  tablePrefix?: string;
}

/** The quoted table names. */
export interface TableNames {
  tokens: string;
  generations: string;
  identities: string;
}

const PREFIX = /^[A-Za-z0-9_]{0,30}$/;

/** Checks the prefix (it goes into SQL text, never as a value) and quotes the names. */
export function tableNames(options: TableOptions = {}): TableNames {
  const prefix = options.tablePrefix ?? 'oma_';
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new ConfigError('tablePrefix', 'must be at most 30 characters of A-Z a-z 0-9 _');
  }
  return {
    tokens: `\`${prefix}access_tokens\``,
    generations: `\`${prefix}identity_generations\``,
    identities: `\`${prefix}identities\``,
  };
}

/**
 * Creates the three tables when missing, and adds the `scope`, `audience` and `jkt` columns to a
 * token table made before them. Idempotent, so every app instance may run it at start-up; better, run it
 * once from a deploy step.
 *
 * - Ids are ASCII with a binary collation: `abc` and `ABC` are different tokens (a case-insensitive
 *   collation, MySQL's default, would let two token ids collide).
 * - Times are epoch milliseconds (`BIGINT`), exactly the record's numbers: no time zone, no rounding.
 * - `trusted_ips`, `metadata` and `audience` are JSON text written by `JSON.stringify` and read by `JSON.parse`
 *   (`LONGTEXT`, not `JSON`: MySQL's `JSON` type rewrites what it stores), in `utf8mb4` with a
 *   binary collation, so every claim value the library accepts comes back exactly.
 */
export async function migrate(pool: Pool, options: TableOptions = {}): Promise<void> {
  const t = tableNames(options);
  const id = 'CHARACTER SET ascii COLLATE ascii_bin NOT NULL';
  await pool.query(`
    CREATE TABLE IF NOT EXISTS ${t.tokens} (
      token_id VARCHAR(64) ${id} PRIMARY KEY,
      identity_id VARCHAR(128) ${id},
      created_at BIGINT NOT NULL,
      expires_at BIGINT NOT NULL,
      max_expires_at BIGINT NOT NULL,
      ttl_seconds INT UNSIGNED NOT NULL,
      uses_limit INT UNSIGNED NOT NULL,
      uses_count BIGINT UNSIGNED NOT NULL,
      revoked BOOLEAN NOT NULL,
      generation BIGINT UNSIGNED NOT NULL,
      trusted_ips LONGTEXT NOT NULL,
      metadata LONGTEXT NOT NULL,
      issuer TEXT NULL,
      subject TEXT NULL,
      scope TEXT NULL,
      audience LONGTEXT NULL,
      jkt VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
      KEY by_identity (identity_id),
      KEY by_expiry (expires_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  // Tables made before token exchange or DPoP: add its grant and the binding (existing rows read as
  // none: bearer tokens granted no scope or audience). Looked up first:
  // MySQL has no ADD COLUMN IF NOT EXISTS (MariaDB has).
  const [present] = (await pool.query(
    `SELECT column_name AS name FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = ? AND column_name IN ('scope', 'audience', 'jkt')`,
    [t.tokens.slice(1, -1)],
  )) as unknown as [{ name: string }[]];
  const missing = [
    ['scope', 'TEXT NULL'],
    ['audience', 'LONGTEXT NULL'],
    ['jkt', 'VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL'],
  ].filter(([column]) => !present.some((row) => row.name === column));
  if (missing.length > 0) {
    await pool.query(
      `ALTER TABLE ${t.tokens} ${missing.map(([column, type]) => `ADD COLUMN ${column} ${type}`).join(', ')}`,
    );
  }
  // One row per identity ever revoked, kept for good: a token stamped below it is refused.
  await pool.query(`
    CREATE TABLE IF NOT EXISTS ${t.generations} (
      identity_id VARCHAR(128) ${id} PRIMARY KEY,
      generation BIGINT UNSIGNED NOT NULL
    ) ENGINE=InnoDB`);
  await pool.query(`
    CREATE TABLE IF NOT EXISTS ${t.identities} (
      identity_id VARCHAR(128) ${id} PRIMARY KEY,
      config LONGTEXT NOT NULL,
      updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
}
