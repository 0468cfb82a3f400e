/**
 * Express 5 + `requireAccessToken(auth)` with a shared store on the local servers. `BENCH_STORE`:
 * - `redis`: `RedisTokenStore` on ioredis to 127.0.0.1:6379 (`enableOfflineQueue: false`), keys under a
 *   per-process prefix, deleted at exit;
 * - `postgres`: `PostgresTokenStore` on a `pg` Pool (10 connections, the default) to 127.0.0.1:5432 database
 *   `test` user `postgres`, tables in a per-process schema (`omabench_<pid>`) made by `migrate` and dropped
 *   at exit (schemas left by dead bench processes are dropped at start).
 *
 * `BENCH_SPREAD` (default 0): under load, requests spread at random over this many other live tokens (made
 * at start, as logins would) instead of all using one; a token used by many requests at once is the
 * PostgreSQL store's best case (concurrent uses share statements), spread tokens its common case.
 *
 * Before answering its spec line the server sends `BENCH_RT_REQUESTS` (default 400) guarded requests to a
 * throw-away listener of the same app and reports store round trips per request in `info`: client-side
 * (ioredis commands sent / pg `client.query` calls) and, for Redis, server-side (`INFO commandstats`
 * EVALSHA calls delta; other clients of the shared server can only inflate it).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { requireAccessToken } from '../../adapters/express/index.js';
import { migrate, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { createOidcAuth, type TokenStore } from '../../src/index.js';
import { expressApp, hello } from '../lib/express-app.js';
import {
  benchIdentity,
  fillTokens,
  IDENTITY_ID,
  makeIdpKey,
  SIGNING_KEYS,
  signIdpToken,
  tamper,
} from '../lib/fixtures.js';
import { intEnv, startBenchServer } from '../lib/server-kit.js';
import { bearerGet, guardSmoke } from '../lib/smoke.js';

const storeKind = process.env.BENCH_STORE ?? '';
const rtRequests = intEnv('BENCH_RT_REQUESTS', 400);
const spread = intEnv('BENCH_SPREAD', 0);
const HOST = '127.0.0.1';

/** Store round trips sent by this process (client side). */
let roundTrips = 0;

interface StoreSetup {
  store: TokenStore;
  /** Server-side count of the store's per-request command, when the server keeps one. */
  serverCount?: () => Promise<number>;
  /** Synchronous clean-up, run from the `exit` handler (the harness exits on SIGTERM). */
  cleanUp: () => void;
}

async function redisStore(): Promise<StoreSetup> {
  const prefix = `omabench:${process.pid}-${randomBytes(4).toString('hex')}:`;
  const client = new Redis({ host: HOST, port: 6379, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const stats = new Redis({ host: HOST, port: 6379 });
  await Promise.all([client, stats].map((c) => new Promise((resolve) => c.once('ready', resolve))));
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((...args: Parameters<typeof send>) => {
    roundTrips++;
    return send(...args);
  }) as typeof client.sendCommand;
  const store = new RedisTokenStore({ client, prefix });
  return {
    store,
    serverCount: async () => {
      const info = await stats.info('commandstats');
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
    },
    cleanUp: () => {
      // Bench keys only (a per-process prefix); SCAN, never KEYS, on the shared server.
      execFileSync(
        'sh',
        ['-c', `redis-cli -h ${HOST} --scan --pattern '${prefix}*' | xargs -r redis-cli -h ${HOST} DEL`],
        {
          stdio: 'ignore',
        },
      );
    },
  };
}

function psql(sql: string): string {
  return execFileSync('psql', ['-h', HOST, '-U', 'postgres', '-d', 'test', '-Atc', sql], {
    encoding: 'utf8',
  });
}

async function postgresStore(): Promise<StoreSetup> {
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
  return {
    store: new PostgresTokenStore({ pool, schema }),
    cleanUp: () => {
      psql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
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

/** Sends `count` guarded requests (10 at a time) to a temporary listener of `app`; all must answer 200. */
async function drive(app: RequestListener, token: string, count: number): Promise<void> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const url = `http://${HOST}:${(server.address() as AddressInfo).port}/hello`;
  try {
    let next = 0;
    const worker = async () => {
      while (next++ < count) {
        const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`round-trip probe: status ${res.status}`);
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

await startBenchServer(async () => {
  if (storeKind !== 'redis' && storeKind !== 'postgres') {
    throw new Error(`BENCH_STORE must be redis or postgres, not ${JSON.stringify(storeKind)}`);
  }
  const setup = storeKind === 'redis' ? await redisStore() : await postgresStore();
  const key = makeIdpKey('RS256');
  const auth = createOidcAuth({
    identities: [benchIdentity(key)],
    tokens: setup.store,
    signingKeys: SIGNING_KEYS,
  });
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
  });
  process.on('exit', () => setup.cleanUp());
  const authorizations = await fillTokens(setup.store, spread, { sample: spread });
  const app = expressApp();
  app.get('/hello', requireAccessToken(auth), hello);

  await drive(app, grant.accessToken, 20); // warm: prepared statements, script cache, connections
  const client0 = roundTrips;
  const server0 = await setup.serverCount?.();
  await drive(app, grant.accessToken, rtRequests);
  const server1 = await setup.serverCount?.();
  const info: Record<string, string | number> = {
    store: storeKind,
    storeRoundTripsPerRequest: (roundTrips - client0) / rtRequests,
    spread,
  };
  if (server0 !== undefined && server1 !== undefined)
    info.evalshaPerRequest = (server1 - server0) / rtRequests;
  return {
    listener: app,
    spec: {
      request: { ...bearerGet('/hello', grant.accessToken), ...(spread > 0 && { authorizations }) },
      smoke: guardSmoke('/hello', grant.accessToken, tamper(grant.accessToken)),
      info,
    },
  };
});
