import type { Pool } from 'pg';
import { ServiceUnavailableError } from '../../src/errors.js';
import { tableNames, type TableNames, type TableOptions } from './names.js';

export interface MigrateOptions extends TableOptions {
  /** Longest the migration may take, lock waits included, in ms. Default 30 000. */
  timeoutMs?: number;
}

/**
 * Creates the access-token, identity-generation, identity, replay and trust-entry tables and their
 * indexes when missing, and adds the columns later versions need to tables an earlier version made. Idempotent, and
 * safe when several app instances run it at once (a transaction-scoped advisory lock serialises
 * them). Times in the token table are epoch milliseconds (`bigint`), exactly the record's numbers.
 *
 * Run it from a deploy step, or let the stores run it on first use with `migrate: true`.
 */
export async function migrate(pool: Pool, options: MigrateOptions = {}): Promise<void> {
  const names = tableNames(options);
  const p = names.prefix;
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `SET LOCAL statement_timeout = ${Math.max(1, Math.floor(options.timeoutMs ?? 30_000))}`,
    );
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
      `oidc-machine-auth:migrate:${names.schema}`,
    ]);
    if (names.schema !== 'public') await client.query(`CREATE SCHEMA IF NOT EXISTS "${names.schema}"`);
    // metadata is json, not jsonb: jsonb refuses \u0000, and claim values may carry one (CLM-06).
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${names.tokens} (
        token_id text PRIMARY KEY,
        identity_id text NOT NULL,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        max_expires_at bigint NOT NULL,
        ttl_seconds integer NOT NULL,
        uses_limit integer NOT NULL DEFAULT 0,
        uses_count bigint NOT NULL DEFAULT 0,
        revoked boolean NOT NULL DEFAULT false,
        trusted_ips jsonb NOT NULL,
        metadata json NOT NULL,
        issuer text,
        subject text,
        generation bigint NOT NULL DEFAULT 0,
        scope text,
        audience jsonb,
        jkt text
      )`);
    // Tables made before revocation generations: existing rows read as generation 0; before token
    // exchange: existing rows read as granted no scope and no audience. Looked up first: ALTER
    // TABLE locks the table exclusively even when the columns are there already.
    const { rows: present } = await client.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = $2
        AND column_name IN ('generation', 'scope', 'audience', 'claims', 'claim_epoch', 'jkt')`,
      [names.schema, `${p}access_tokens`],
    );
    const missing = [
      ['generation', 'bigint NOT NULL DEFAULT 0'],
      ['scope', 'text'],
      ['audience', 'jsonb'],
      // Revocation by claim: the login's revocable claim values and the claim epoch it read.
      ['claims', 'jsonb'],
      ['claim_epoch', 'bigint NOT NULL DEFAULT 0'],
      // DPoP binding (RFC 9449): existing rows read as bearer tokens.
      ['jkt', 'text'],
    ].filter(([column]) => !present.some((row) => row.column_name === column));
    if (missing.length > 0) {
      await client.query(
        `ALTER TABLE ${names.tokens} ${missing
          .map(([column, type]) => `ADD COLUMN IF NOT EXISTS ${column} ${type}`)
          .join(', ')}`,
      );
    }
    // One row per identity ever revoked, kept for good: a token stamped below it is refused.
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${names.generations} (
        identity_id text PRIMARY KEY,
        generation bigint NOT NULL
      )`);
    await client.query(
      `CREATE INDEX IF NOT EXISTS "${p}access_tokens_identity_idx" ON ${names.tokens} (identity_id)`,
    );
    await client.query(
      `CREATE INDEX IF NOT EXISTS "${p}access_tokens_expires_idx" ON ${names.tokens} (expires_at)`,
    );
    // Revocation by claim (revokeWhere): the entries in force (identity_id '' for every identity),
    // at most as many as the engine allows and each for an hour, and one row with the epoch logins
    // read and the floor (the highest epoch of an entry dropped). A GIN index finds the tokens.
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${names.claimRevocations} (
        identity_id text NOT NULL,
        claim text NOT NULL,
        value text NOT NULL,
        epoch bigint NOT NULL,
        created_at bigint NOT NULL,
        PRIMARY KEY (identity_id, claim, value)
      )`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${names.claimEpoch} (
        id integer PRIMARY KEY CHECK (id = 1),
        epoch bigint NOT NULL,
        floor bigint NOT NULL
      )`);
    await client.query(
      `INSERT INTO ${names.claimEpoch} (id, epoch, floor) VALUES (1, 0, 0) ON CONFLICT DO NOTHING`,
    );
    await client.query(
      `CREATE INDEX IF NOT EXISTS "${p}access_tokens_claims_idx" ON ${names.tokens} USING gin (claims jsonb_path_ops)`,
    );
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${names.identities} (
        identity_id text PRIMARY KEY,
        config jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // PostgresReplayCache: one row per key remembered (epoch ms), purged in batches once expired.
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${names.replay} (
        key text PRIMARY KEY,
        seen_at bigint NOT NULL,
        expires_at bigint NOT NULL
      )`);
    await client.query(`CREATE INDEX IF NOT EXISTS "${p}replay_expires_idx" ON ${names.replay} (expires_at)`);
    // Shared trust entries (PostgresTrustStore), one jsonb row per entry.
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${names.trust} (
        trust_id text PRIMARY KEY,
        entry jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await client.query('COMMIT');
    client.release();
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}

/**
 * `migrate` on first call, shared by later callers; a failure is retried by the next call. Waits
 * at most `timeoutMs` and fails as `store_unavailable`.
 *
 * @internal
 */
export function migrateOnce(
  pool: Pool,
  names: TableNames,
  what: string,
  timeoutMs = 30_000,
): () => Promise<void> {
  let done = false;
  let pending: Promise<void> | undefined;
  return async () => {
    if (done) return;
    pending ??= migrate(pool, { schema: names.schema, tablePrefix: names.prefix, timeoutMs }).then(
      () => {
        done = true;
      },
      (error: unknown) => {
        pending = undefined;
        throw error;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        pending,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('migration timed out')), timeoutMs);
        }),
      ]);
    } catch (error) {
      throw new ServiceUnavailableError('store_unavailable', `The ${what} store is unavailable`, {
        cause: error,
        detail: { store: 'postgres', operation: 'migrate' },
      });
    } finally {
      clearTimeout(timer);
    }
  };
}
