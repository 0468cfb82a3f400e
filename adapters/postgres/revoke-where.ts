import type { Pool, PoolClient } from 'pg';
import { ServiceUnavailableError } from '../../src/errors.js';
import { RevocationLimitError } from '../../src/tokens/revoke-where.js';
import type { RevokeWhereFilter } from '../../src/types.js';
import type { TableNames } from './names.js';
import { statement, type Statement } from './query.js';

/**
 * Revocation by claim on PostgreSQL (`PostgresTokenStore.revokeWhere`).
 *
 * Tables (made by `migrate`): `<prefix>claim_revocations` (one row per entry in force, `identity_id`
 * `''` for every identity) and `<prefix>claim_epoch` (one row: the `epoch` logins read with their
 * identity's generation, and the `floor`, the highest epoch of an entry dropped); tokens carry
 * `claims` (jsonb, GIN-indexed) and `claim_epoch`.
 *
 * Why a lock: under READ COMMITTED a login's `INSERT` that began before a revocation committed does
 * not see its entry, and the revocation's walk does not see the row that `INSERT` has not committed
 * yet. So `revokeWhere` first takes `ACCESS EXCLUSIVE` on the one-row `claim_epoch` table, which
 * every `create` statement names (PostgreSQL locks the tables a statement names before it takes the
 * statement's snapshot): each `create` has either committed already (the walk, a later statement
 * of the transaction with its own snapshot, finds the row) or waits, and then sees the entry and
 * stores its row revoked. Consume, extend and the other statements never touch the table: only
 * logins wait, for the few milliseconds the transaction takes.
 *
 * @internal
 */
export function claimStatements(names: TableNames, prepared: boolean) {
  const rev = names.claimRevocations;
  const ce = names.claimEpoch;
  return {
    stamps: statement(
      `SELECT COALESCE((SELECT g.generation FROM ${names.generations} g WHERE g.identity_id = $1), 0) AS generation,
              COALESCE((SELECT e.epoch FROM ${ce} e WHERE e.id = 1), 0) AS claim_epoch`,
      prepared,
    ),
    lock: statement(`LOCK TABLE ${ce} IN ACCESS EXCLUSIVE MODE`, false),
    // Entries made keepMs ago or more ($1 = now - keepMs) go; the floor rises to their highest epoch.
    drop: statement(
      `WITH old AS (DELETE FROM ${rev} WHERE created_at <= $1::bigint RETURNING epoch)
       INSERT INTO ${ce} AS e (id, epoch, floor) SELECT 1, 0, max(epoch) FROM old HAVING count(*) > 0
       ON CONFLICT (id) DO UPDATE SET floor = GREATEST(e.floor, EXCLUDED.floor)`,
      prepared,
    ),
    count: statement(
      `SELECT count(*) AS n, min(created_at) AS oldest,
              COALESCE(bool_or(identity_id = $1 AND claim = $2 AND value = $3), false) AS present
       FROM ${rev}`,
      prepared,
    ),
    // $1 identity ('' for all), $2 claim, $3 value, $4 now.
    revoke: statement(
      `WITH bump AS (
         INSERT INTO ${ce} AS e (id, epoch, floor) VALUES (1, 1, 0)
         ON CONFLICT (id) DO UPDATE SET epoch = e.epoch + 1 RETURNING epoch),
       entry AS (
         INSERT INTO ${rev} AS r (identity_id, claim, value, epoch, created_at)
         SELECT $1, $2, $3, bump.epoch, $4::bigint FROM bump
         ON CONFLICT (identity_id, claim, value) DO UPDATE SET epoch = EXCLUDED.epoch, created_at = EXCLUDED.created_at),
       hit AS (
         UPDATE ${names.tokens} SET revoked = true
         WHERE claims @> jsonb_build_object($2::text, $3::text) AND ($1 = '' OR identity_id = $1) AND NOT revoked
         RETURNING expires_at)
       SELECT count(*) FILTER (WHERE expires_at > $4::bigint) AS live FROM hit`,
      prepared,
    ),
  };
}

/** The whole `revokeWhere` in one transaction on one connection, within `timeoutMs`. @internal */
export async function revokeWhereTransaction(
  pool: Pool,
  sql: ReturnType<typeof claimStatements>,
  filter: RevokeWhereFilter,
  now: number,
  limits: { keepMs: number; maxEntries: number },
  timeoutMs: number,
): Promise<number> {
  const identity = filter.identityId ?? '';
  let limit: RevocationLimitError | undefined;
  const live = await inTransaction(pool, timeoutMs, async (client) => {
    await run(client, sql.lock, []);
    await run(client, sql.drop, [now - limits.keepMs]);
    const [count] = await run(client, sql.count, [identity, filter.claim, filter.value]);
    const n = Number(count?.n ?? 0);
    if (count?.present !== true && n >= limits.maxEntries) {
      const oldest = count?.oldest === null || count?.oldest === undefined ? now : Number(count.oldest);
      limit = new RevocationLimitError((oldest + limits.keepMs - now) / 1000);
      return undefined;
    }
    const [row] = await run(client, sql.revoke, [identity, filter.claim, filter.value, now]);
    return Number(row?.live ?? 0);
  });
  if (limit) throw limit;
  return live!;
}

async function run(
  client: PoolClient,
  stmt: Statement,
  values: unknown[],
): Promise<Record<string, unknown>[]> {
  const query = stmt.name ? { name: stmt.name, text: stmt.text, values } : { text: stmt.text, values };
  return (await client.query(query)).rows as Record<string, unknown>[];
}

/**
 * `work` between `BEGIN` and `COMMIT` (its `undefined` answer: `ROLLBACK`), all within `timeoutMs`;
 * on a failure or timeout the connection is destroyed (the server rolls back) and the call throws
 * `store_unavailable`.
 */
async function inTransaction<T>(
  pool: Pool,
  timeoutMs: number,
  work: (client: PoolClient) => Promise<T | undefined>,
): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error('postgres transaction timed out'));
    }, timeoutMs);
  });
  let client: PoolClient | undefined;
  try {
    const connecting = pool.connect();
    connecting.then(
      (late) => {
        if (timedOut) late.release();
      },
      () => {},
    );
    client = await Promise.race([connecting, deadline]);
    client.on('error', ignore);
    const answer = await Promise.race([
      (async () => {
        await client!.query('BEGIN');
        const result = await work(client!);
        await client!.query(result === undefined ? 'ROLLBACK' : 'COMMIT');
        return result;
      })(),
      deadline,
    ]);
    client.removeListener('error', ignore);
    client.release();
    return answer;
  } catch (error) {
    // Destroyed, not reused: the server rolls back whatever the transaction had done.
    client?.release(error instanceof Error ? error : true);
    throw new ServiceUnavailableError('store_unavailable', 'The token store is unavailable', {
      cause: error,
      detail: { store: 'postgres', operation: 'revokeWhere' },
    });
  } finally {
    clearTimeout(timer);
  }
}

function ignore(): void {}
