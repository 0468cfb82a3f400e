/**
 * The token store of a bench server, by `BENCH_STORE`:
 * - `memory` (default): the engine's own memory store;
 * - `redis`: `RedisTokenStore` on ioredis to 127.0.0.1:6379 (`enableOfflineQueue: false`), keys under a
 *   per-process prefix, deleted at exit;
 * - `postgres`: `PostgresTokenStore` on a `pg` Pool (10 connections, the default) to 127.0.0.1:5432
 *   database `test` user `postgres`, tables in a per-process schema (`omabench_<pid>`) made by `migrate`
 *   and dropped at exit (schemas left by dead bench processes are dropped at start).
 *
 * Store round trips are counted on the client side (ioredis commands sent / pg `client.query` calls),
 * and for Redis on the server side too (`INFO commandstats` EVALSHA calls).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrate, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import type { TokenStore } from '../../src/index.js';

export type StoreKind = 'memory' | 'redis' | 'postgres';

export interface StoreSetup {
  kind: StoreKind;
  /** `undefined` for `memory`: the engine makes its own. */
  store: TokenStore | undefined;
  /** Store round trips this process sent so far (client side). */
  roundTrips: () => number;
  /** Server-side count of the store's per-request command, when the server keeps one. */
  serverCount?: () => Promise<number>;
}

const HOST = '127.0.0.1';

/** `BENCH_STORE`, checked. */
export function storeKind(): StoreKind {
  const kind = process.env.BENCH_STORE || 'memory';
  if (kind !== 'memory' && kind !== 'redis' && kind !== 'postgres') {
    throw new Error(`BENCH_STORE must be memory, redis or postgres, not ${JSON.stringify(kind)}`);
  }
  return kind;
}

/** Connects the store of `kind` and registers its clean-up for process exit (the harness sends SIGTERM). */
export async function setupStore(kind: StoreKind = storeKind()): Promise<StoreSetup> {
  if (kind === 'redis') return redisStore();
  if (kind === 'postgres') return postgresStore();
  return { kind, store: undefined, roundTrips: () => 0 };
}

async function redisStore(): Promise<StoreSetup> {
  let roundTrips = 0;
  const prefix = `omabench:${process.pid}-${randomBytes(4).toString('hex')}:`;
  const client = new Redis({ host: HOST, port: 6379, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const stats = new Redis({ host: HOST, port: 6379 });
  await Promise.all([client, stats].map((c) => new Promise((resolve) => c.once('ready', resolve))));
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((...args: Parameters<typeof send>) => {
    roundTrips++;
    return send(...args);
  }) as typeof client.sendCommand;
  process.on('exit', () => {
    // Bench keys only (a per-process prefix); SCAN, never KEYS, on the shared server.
    execFileSync(
      'sh',
      ['-c', `redis-cli -h ${HOST} --scan --pattern '${prefix}*' | xargs -r redis-cli -h ${HOST} DEL`],
      { stdio: 'ignore' },
    );
  });
  return {
    kind: 'redis',
    store: new RedisTokenStore({ client, prefix }),
    roundTrips: () => roundTrips,
    serverCount: async () => {
      const info = await stats.info('commandstats');
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
    },
  };
}

function psql(sql: string): string {
  return execFileSync('psql', ['-h', HOST, '-U', 'postgres', '-d', 'test', '-Atc', sql], {
    encoding: 'utf8',
  });
}

async function postgresStore(): Promise<StoreSetup> {
  let roundTrips = 0;
  // Schemas of bench processes that died without their exit handler.
  for (const name of psql("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'omabench\\_%'").split('\n')) {
    const pid = Number(/^omabench_(\d+)$/.exec(name)?.[1]);
    if (!pid || isAlive(pid)) continue;
    psql(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
  }
  const schema = `omabench_${process.pid}`;
  const pool = new pg.Pool({
    host: HOST,
    port: 5432,
    database: 'test',
    user: 'postgres',
    connectionTimeoutMillis: 1000,
  });
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      roundTrips++;
      return query(...args);
    };
  });
  await migrate(pool, { schema });
  process.on('exit', () => psql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  return { kind: 'postgres', store: new PostgresTokenStore({ pool, schema }), roundTrips: () => roundTrips };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
