import type { Pool, PoolConnection } from 'mysql2/promise';
import { ServiceUnavailableError } from '../../src/index.js';

/** What one `query` call answers: rows for a SELECT, a header for a write, an array of both for several. */
export type QueryResult = unknown;

/**
 * Runs `sql` (one statement, or several separated by `;`: one round trip either way) on a pooled
 * connection, within `timeoutMs` in total, waiting for a free connection included.
 *
 * Fails closed: any error or timeout becomes `ServiceUnavailableError('store_unavailable')`, which
 * the library answers as 503 with `Retry-After` and never as access. The driver's error is kept as
 * `cause` only (it may quote SQL; the library logs no `cause` text). A connection whose statement
 * failed or timed out is destroyed, never reused: it may still owe the answer to the abandoned
 * statement, or hold a transaction open (the server rolls it back when the connection closes). A
 * connection that arrives after the deadline is handed back unused, so a statement never runs late.
 *
 * A deadlock (InnoDB picked this statement as the victim and rolled it back) is retried once.
 */
export async function run(
  pool: Pool,
  sql: string,
  values: readonly unknown[],
  timeoutMs: number,
  what: 'token' | 'identity',
): Promise<QueryResult> {
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(pool, sql, values, timeoutMs - (performance.now() - started));
    } catch (error) {
      if (attempt === 0 && (error as { errno?: number }).errno === ER_LOCK_DEADLOCK) continue;
      throw new ServiceUnavailableError('store_unavailable', `The ${what} store is unavailable`, {
        cause: error,
        detail: { store: 'mysql' },
      });
    }
  }
}

const ER_LOCK_DEADLOCK = 1213;

async function once(pool: Pool, sql: string, values: readonly unknown[], timeoutMs: number) {
  if (timeoutMs <= 0) throw new Error('mysql statement timed out');
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error('mysql statement timed out'));
    }, timeoutMs);
  });
  let connection: PoolConnection | undefined;
  try {
    const connecting = pool.getConnection();
    connecting.then(
      (late) => {
        if (timedOut) late.release();
      },
      () => {},
    );
    connection = await Promise.race([connecting, deadline]);
    const [result] = await Promise.race([connection.query({ sql, values: [...values] }), deadline]);
    connection.release();
    return result;
  } catch (error) {
    connection?.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
