import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import type { TokenStore } from '../../src/types.js';
import { sharedPgConfig, sharedRedisOptions, uniqueName } from '../helpers/servers.js';
import { makeRecord } from '../../src/testing/index.js';
import { Worker, type Request } from './worker-client.js';

interface Backend {
  kind: 'redis' | 'postgres';
  init: Request;
  store: TokenStore;
  cleanup: () => Promise<void>;
}

async function redisBackend(): Promise<Backend> {
  const prefix = `${uniqueName('oma_mp')}:`;
  const client = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
  await client.connect();
  return {
    kind: 'redis',
    init: { type: 'init', kind: 'redis', redis: sharedRedisOptions(), prefix },
    store: new RedisTokenStore({ client, prefix }),
    cleanup: async () => {
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
      await client.quit();
    },
  };
}

async function postgresBackend(): Promise<Backend> {
  const schema = uniqueName('oma_mp');
  const pool = new pg.Pool(sharedPgConfig());
  pool.on('error', () => {});
  await migrate(pool, { schema });
  return {
    kind: 'postgres',
    init: { type: 'init', kind: 'postgres', pg: sharedPgConfig(), schema },
    store: new PostgresTokenStore({ pool, schema }),
    cleanup: async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    },
  };
}

describe.each([
  ['Redis', redisBackend],
  ['PostgreSQL', postgresBackend],
])('%s shared by two Node processes', (_name, makeBackend) => {
  let backend: Backend;
  let workers: [Worker, Worker];

  beforeAll(async () => {
    backend = await makeBackend();
    workers = [new Worker(), new Worker()];
    await Promise.all(workers.map((w) => w.send(backend.init)));
  });

  afterAll(async () => {
    await Promise.all((workers ?? []).map((w) => w.stop()));
    await backend?.cleanup();
  });

  async function useFromBoth(tokenId: string, perProcess: number) {
    const at = Date.now() + 150;
    const replies = await Promise.all(
      workers.map((w) => w.send({ type: 'consume', tokenId, count: perProcess, at })),
    );
    return {
      oks: replies.map((r) => r.oks ?? 0),
      reasons: replies.flatMap((r) => r.reasons ?? []),
    };
  }

  it('runs two separate processes', () => {
    expect(workers[0].pid).toBeTypeOf('number');
    expect(workers[0].pid).not.toBe(workers[1].pid);
    expect(workers[0].pid).not.toBe(process.pid);
  });

  it('TOK-04: 50 parallel uses split across both of a 1-use token give exactly one success', async () => {
    const record = makeRecord({ usesLimit: 1 });
    await backend.store.create(record);
    const { oks, reasons } = await useFromBoth(record.tokenId, 25);
    expect(oks[0]! + oks[1]!).toBe(1);
    expect(reasons).toEqual(Array(49).fill('uses_exhausted'));
    expect((await backend.store.get(record.tokenId, Date.now()))?.usesCount).toBe(1);
  });

  it('TOK-04: 50 parallel uses split across both of a 5-use token give exactly five successes', async () => {
    const record = makeRecord({ usesLimit: 5 });
    await backend.store.create(record);
    const { oks } = await useFromBoth(record.tokenId, 25);
    expect(oks[0]! + oks[1]!).toBe(5);
    expect((await backend.store.get(record.tokenId, Date.now()))?.usesCount).toBe(5);
  });

  it('TOK-08: a token revoked in one process is refused in the other at once', async () => {
    const record = makeRecord();
    await backend.store.create(record);
    expect((await useFromBoth(record.tokenId, 1)).oks).toEqual([1, 1]);
    await workers[0].send({ type: 'revoke', tokenId: record.tokenId });
    const { oks, reasons } = await useFromBoth(record.tokenId, 3);
    expect(oks).toEqual([0, 0]);
    expect(reasons).toEqual(Array(6).fill('revoked'));
  });
});
