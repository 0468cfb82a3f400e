/**
 * The token store of a bench server, by `BENCH_STORE`:
 * - `memory` (default): the engine's own memory store;
 * - `redis`: `RedisTokenStore` on ioredis to 127.0.0.1:6379 (`enableOfflineQueue: false`), keys under a
 *   per-process prefix, deleted at exit;
 * - `postgres`: `PostgresTokenStore` on a `pg` Pool (10 connections, the default) to 127.0.0.1:5432
 *   database `test` user `postgres`, tables in a per-process schema (`omabench_<pid>`) made by `migrate`
 *   and dropped at exit (schemas left by dead bench processes are dropped at start);
 * - `mariadb`: the MariaDB/MySQL store of `examples/custom-store-mysql` (a custom store as a user
 *   writes it) on its `createPool` (10 connections) to 127.0.0.1:3306 database `test` user `root`,
 *   tables with a per-process prefix (`omabench_<pid>_`) made by its `migrate` and dropped at exit
 *   (tables left by dead bench processes are dropped at start).
 *
 * Store round trips are counted on the client side (ioredis commands sent / pg `client.query` calls /
 * mysql2 `query` calls), and on the server side too for Redis (`INFO commandstats` EVALSHA calls) and
 * MariaDB (`Com_update` of `SHOW GLOBAL STATUS`: every use's call carries exactly one UPDATE).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrate, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import {
  createPool as createMySqlPool,
  migrate as migrateMySql,
  MySqlTokenStore,
} from '../../examples/custom-store-mysql/index.js';
import type { TokenStore } from '../../src/index.js';

export type StoreKind = 'memory' | 'redis' | 'postgres' | 'mariadb';
const KINDS: readonly StoreKind[] = ['memory', 'redis', 'postgres', 'mariadb'];

export interface StoreSetup {
  kind: StoreKind;
  /** `undefined` for `memory`: the engine makes its own. */
  store: TokenStore | undefined;
  /** Store round trips this process sent so far (client side). */
  roundTrips: () => number;
  /** Server-side count of the store's per-request command, when the server keeps one. */
  serverCount?: () => Promise<number>;
  /** What `serverCount` counts, as the `info` key of its per-request value (`evalshaPerRequest`). */
  serverCountName?: string;
}

const HOST = '127.0.0.1';

/** `BENCH_STORE`, checked. */
export function storeKind(): StoreKind {
  const kind = process.env.BENCH_STORE || 'memory';
  if (!KINDS.includes(kind as StoreKind)) {
    throw new Error(`BENCH_STORE must be one of ${KINDS.join(', ')}, not ${JSON.stringify(kind)}`);
  }
  return kind as StoreKind;
}

/** Connects the store of `kind` and registers its clean-up for process exit (the harness sends SIGTERM). */
export async function setupStore(kind: StoreKind = storeKind()): Promise<StoreSetup> {
  if (kind === 'redis') return redisStore();
  if (kind === 'postgres') return postgresStore();
  if (kind === 'mariadb') return mariadbStore();
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
    serverCountName: 'evalshaPerRequest',
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

function mariadb(sql: string): string {
  return execFileSync('mariadb', ['-h', HOST, '-u', 'root', '-D', 'test', '-N', '-B', '-e', sql], {
    encoding: 'utf8',
  });
}

async function mariadbStore(): Promise<StoreSetup> {
  let roundTrips = 0;
  // Tables of bench processes that died without their exit handler.
  for (const name of mariadb("SHOW TABLES LIKE 'omabench\\_%'").split('\n')) {
    const pid = Number(/^omabench_(\d+)_/.exec(name)?.[1]);
    if (!pid || isAlive(pid)) continue;
    mariadb(`DROP TABLE IF EXISTS \`${name}\``);
  }
  const tablePrefix = `omabench_${process.pid}_`;
  const options = { host: HOST, port: 3306, user: 'root', database: 'test' };
  const pool = createMySqlPool(options);
  // Registered after createPool's own listener, so its session set-up is not counted.
  pool.pool.on('connection', (connection) => {
    const query = connection.query.bind(connection) as (...args: unknown[]) => unknown;
    (connection as { query: unknown }).query = (...args: unknown[]) => {
      roundTrips++;
      return query(...args);
    };
  });
  const stats = createMySqlPool({ ...options, connectionLimit: 1 });
  await migrateMySql(pool, { tablePrefix });
  process.on('exit', () =>
    mariadb(
      ['access_tokens', 'identity_generations', 'identities']
        .map((t) => `DROP TABLE IF EXISTS \`${tablePrefix}${t}\`;`)
        .join(' '),
    ),
  );
  return {
    kind: 'mariadb',
    store: new MySqlTokenStore({ pool, tablePrefix }),
    roundTrips: () => roundTrips,
    serverCount: async () => {
      const [rows] = await stats.query("SHOW GLOBAL STATUS LIKE 'Com_update'");
      return Number((rows as { Value: string }[])[0]?.Value ?? 0);
    },
    serverCountName: 'updatesPerRequest',
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
