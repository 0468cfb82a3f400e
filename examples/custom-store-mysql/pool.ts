import mysql, { type Pool, type PoolOptions } from 'mysql2/promise';

/**
 * A `mysql2/promise` pool set up for the stores: two statements per call (`multipleStatements`,
 * the stores' one-round-trip use), bounded connecting, TCP keep-alive, and per connection a short
 * server-side lock wait (`innodb_lock_wait_timeout`) so that a statement stuck behind a lock gives
 * up on the server too, not only in the client. On MariaDB also set `max_statement_time`.
 *
 * Values are sent with mysql2's client-side escaping (`query`), never concatenated by the stores.
 *
 * @param options mysql2 pool options (`uri` or `host`, `user`, `password`, `database`…); the ones
 *   above are defaults you may override.
 * @param lockWaitSeconds `innodb_lock_wait_timeout` of every connection. Default 1.
 */
export function createPool(options: PoolOptions, lockWaitSeconds = 1): Pool {
  const pool = mysql.createPool({
    connectionLimit: 10,
    connectTimeout: 1000,
    enableKeepAlive: true,
    ...options,
    multipleStatements: true,
  });
  // Sent before anything else on the new connection (mysql2 queues commands in order).
  pool.pool.on('connection', (connection) => {
    connection.query(
      `SET SESSION innodb_lock_wait_timeout = ${Math.max(1, Math.floor(lockWaitSeconds))}`,
      () => {},
    );
  });
  return pool;
}
