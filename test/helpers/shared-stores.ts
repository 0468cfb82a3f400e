import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { migrate } from '../../adapters/postgres/index.js';
import { sharedPgConfig, sharedRedisOptions, uniqueName } from './servers.js';

/** A test file's own slice of the shared PostgreSQL and Redis: a fresh schema and key prefix. */
export interface SharedStores {
  readonly pool: pg.Pool;
  readonly redis: Redis;
  /** A migrated schema of this file's own, dropped after it. */
  readonly schema: string;
  /** A Redis key prefix of this file's own (`<name>:`); its keys are deleted after it. */
  readonly prefix: string;
}

/**
 * Connects to the shared PostgreSQL and Redis before the file's tests (migrating a schema of its
 * own) and cleans up after them. Read the fields inside tests or hooks, not at import time.
 */
export function useSharedStores(base: string): SharedStores {
  const schema = uniqueName(base);
  const prefix = `${uniqueName(base)}:`;
  let pool: pg.Pool | undefined;
  let redis: Redis | undefined;
  beforeAll(async () => {
    pool = new pg.Pool({ ...sharedPgConfig(), max: 4, connectionTimeoutMillis: 2000 });
    pool.on('error', () => {});
    await migrate(pool, { schema });
    redis = new Redis({ ...sharedRedisOptions(), lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    await redis.connect();
  });
  afterAll(async () => {
    if (pool) {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    }
    if (redis) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      await redis.quit();
    }
  });
  return {
    get pool() {
      if (!pool) throw new Error('useSharedStores: read pool inside a test or hook');
      return pool;
    },
    get redis() {
      if (!redis) throw new Error('useSharedStores: read redis inside a test or hook');
      return redis;
    },
    schema,
    prefix,
  };
}
