import { Redis } from 'ioredis';
import pg from 'pg';
import { migrate, PostgresIdentityStore, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import type { TokenStore } from '../../src/types.js';
import { sharedPgConfig, sharedRedisOptions, uniqueName } from '../helpers/servers.js';
import type { Worker } from './worker-client.js';

/**
 * PostgreSQL statements may take this long in the race tests. Their property is about revocation,
 * not outages (test/stores/outage.test.ts holds the timeouts): a CI run on a loaded machine (two
 * test files at once beside three login processes, whose pools then could open 120 connections of
 * PostgreSQL's 100: test/stores/worker.ts) once answered 31 of 576 checks `store_unavailable`
 * (refused, so no survivor, but not refused as revoked).
 */
const STATEMENT_TIMEOUT_MS = 10_000;

/** The stores a race test's own engine uses, and the init request of its login processes. */
export interface RaceBackend {
  /** The login processes' init request: the same stores, an engine with `signingKeys`. */
  init: Parameters<Worker['send']>[0];
  /** Identities in a PostgreSQL schema of the test. */
  identities: PostgresIdentityStore;
  /** Tokens in `kind`'s store (a key prefix in Redis, the same schema in PostgreSQL). */
  tokens: TokenStore;
  /** Drops what the test stored and closes the connections. */
  cleanup(): Promise<void>;
}

/**
 * Identities in a fresh PostgreSQL schema (named after `name`), tokens in Redis or PostgreSQL, for
 * the revocation race tests (revocation.test.ts, revoke-where.test.ts). A pool of 8: two such tests
 * at once, each beside three login processes, stay under PostgreSQL's 100 connections.
 */
export async function raceBackend(
  kind: 'redis' | 'postgres',
  name: string,
  signingKeys: Record<string, string>,
): Promise<RaceBackend> {
  const schema = uniqueName(name);
  const pool = new pg.Pool({ ...sharedPgConfig(), max: 8 });
  pool.on('error', () => {});
  await migrate(pool, { schema });
  const identities = new PostgresIdentityStore({ pool, schema, statementTimeoutMs: STATEMENT_TIMEOUT_MS });
  const engine = { pg: sharedPgConfig(), schema, signingKeys };
  const dropSchema = async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  };
  if (kind === 'postgres') {
    return {
      init: {
        type: 'init',
        kind,
        pg: sharedPgConfig(),
        schema,
        engine,
        statementTimeoutMs: STATEMENT_TIMEOUT_MS,
      },
      identities,
      tokens: new PostgresTokenStore({ pool, schema, statementTimeoutMs: STATEMENT_TIMEOUT_MS }),
      cleanup: dropSchema,
    };
  }
  const prefix = `${schema}:`;
  const client = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
  client.on('error', () => {});
  await client.connect();
  return {
    init: { type: 'init', kind, redis: sharedRedisOptions(), prefix, engine },
    identities,
    tokens: new RedisTokenStore({ client, prefix }),
    cleanup: async () => {
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
      await client.quit();
      await dropSchema();
    },
  };
}
