import { createHash } from 'node:crypto';
import type { Pool, QueryResultRow } from 'pg';
import { ServiceUnavailableError } from '../../src/errors.js';

/** A parameterised statement, prepared per connection under a name derived from its text. @internal */
export interface Statement {
  name: string | undefined;
  text: string;
}

/** A statement for `text`; unnamed (not prepared) when `prepared` is false. @internal */
export function statement(text: string, prepared = true): Statement {
  const compact = text.replace(/\s+/g, ' ').trim();
  const name = prepared ? `oma_${createHash('sha1').update(compact).digest('hex').slice(0, 20)}` : undefined;
  return { name, text: compact };
}

/**
 * Runs one statement on a pooled connection within `timeoutMs`, waiting for a free connection
 * included. A connection that arrives after the deadline is handed back unused (the statement
 * never runs late); one whose statement timed out is destroyed. Any failure becomes
 * `ServiceUnavailableError('store_unavailable')`, with the driver's error as its `cause` only.
 *
 * @internal
 */
export async function runStatement<R extends QueryResultRow>(
  pool: Pool,
  stmt: Statement,
  values: unknown[],
  timeoutMs: number,
  what: string,
): Promise<{ rows: R[]; rowCount: number }> {
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error('postgres statement timed out'));
    }, timeoutMs);
  });
  try {
    const connecting = pool.connect();
    connecting.then(
      (late) => {
        if (timedOut) late.release();
      },
      () => {},
    );
    const client = await Promise.race([connecting, deadline]);
    // A checked-out client has no 'error' listener of the pool's; one that dies mid-statement (or
    // later, once discarded) must not crash the process.
    client.on('error', ignore);
    try {
      const query = stmt.name ? { name: stmt.name, text: stmt.text, values } : { text: stmt.text, values };
      const result = await Promise.race([client.query<R>(query), deadline]);
      client.removeListener('error', ignore);
      client.release();
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    } catch (error) {
      // Destroyed, not reused: its connection may still owe the answer to the abandoned statement.
      client.release(error instanceof Error ? error : true);
      throw error;
    }
  } catch (error) {
    throw new ServiceUnavailableError('store_unavailable', `The ${what} store is unavailable`, {
      cause: error,
      detail: { store: 'postgres' },
    });
  } finally {
    clearTimeout(timer);
  }
}

function ignore(): void {}
