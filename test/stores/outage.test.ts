import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { migrate, PostgresIdentityStore, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { createOidcAuth } from '../../src/index.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import type { TokenStore } from '../../src/types.js';
import { githubIdentity, SIGNING_KEYS } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import {
  sharedPgConfig,
  startProxy,
  startRedisServer,
  uniqueName,
  type OutageProxy,
  type ThrowawayRedis,
} from '../helpers/servers.js';
import { makeRecord } from '../../src/testing/index.js';

const TIMEOUT_MS = 300;
/** Generous: the point is "gives up by itself, never hangs", not speed. */
const GIVES_UP_WITHIN_MS = TIMEOUT_MS + 1200;

async function expectUnavailable(operation: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  const error = await operation().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(performance.now() - started).toBeLessThan(GIVES_UP_WITHIN_MS);
  expect(error).toBeInstanceOf(ServiceUnavailableError);
  expect(error).toMatchObject({ status: 503, code: 'store_unavailable' });
  expect((error as ServiceUnavailableError).headers['retry-after']).toMatch(/^\d+$/);
}

/** Every TokenStore operation, each on a record that exists when the server is up. */
async function expectEveryOperationUnavailable(store: TokenStore, tokenId: string): Promise<void> {
  const now = Date.now();
  await expectUnavailable(() => store.consume(tokenId, now));
  await expectUnavailable(() => store.get(tokenId, now));
  await expectUnavailable(() => store.extend(tokenId, now));
  await expectUnavailable(() => store.revoke(tokenId));
  await expectUnavailable(() => store.revokeIdentity('someone'));
  await expectUnavailable(() => store.generation('someone'));
  await expectUnavailable(() => store.create(makeRecord()));
}

/** Waits until the store works again on its own (reconnects are the client's job, not the test's). */
async function expectRecovery(store: TokenStore): Promise<void> {
  await vi.waitFor(
    async () => {
      const record = makeRecord({ usesLimit: 1 });
      await store.create(record);
      expect((await store.consume(record.tokenId, Date.now())).ok).toBe(true);
    },
    { timeout: 15_000, interval: 100 },
  );
}

describe('Redis outage (a redis-server this test starts on its own port)', () => {
  let server: ThrowawayRedis;
  const clients: Redis[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await server?.stop();
  });

  async function connect(port: number, options: RedisOptions = {}): Promise<Redis> {
    const client = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      retryStrategy: () => 50,
      ...options,
    });
    client.on('error', () => {});
    clients.push(client);
    await client.connect();
    return client;
  }

  afterEach(async () => {
    await server.start().catch(() => {});
  });

  it('offline queue off (recommended): every operation fails with store_unavailable, then recovers', async () => {
    const client = await connect(server.port, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    const store = new RedisTokenStore({ client, commandTimeoutMs: TIMEOUT_MS });
    const record = makeRecord();
    await store.create(record);
    await server.stop();
    await expectEveryOperationUnavailable(store, record.tokenId);
    await server.start();
    await expectRecovery(store);
  });

  it('ioredis defaults (offline queue on, 20 retries): still gives up within commandTimeoutMs', async () => {
    const client = await connect(server.port);
    const store = new RedisTokenStore({ client, commandTimeoutMs: TIMEOUT_MS });
    const record = makeRecord();
    await store.create(record);
    await server.stop();
    await expectEveryOperationUnavailable(store, record.tokenId);
    await server.start();
    await expectRecovery(store);
  });

  it('a server that stops answering (blackhole) times out, and the store recovers', async () => {
    const proxy = await startProxy(server.port);
    try {
      const client = await connect(proxy.port, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
      const store = new RedisTokenStore({ client, commandTimeoutMs: TIMEOUT_MS });
      const record = makeRecord({ usesLimit: 10 });
      await store.create(record);
      proxy.blackhole();
      await expectEveryOperationUnavailable(store, record.tokenId);
      await proxy.up();
      await expectRecovery(store);
      // The held commands reach Redis once the network is back: a revoke that answered 503 may
      // still apply (it is idempotent; callers retry it). It never grants anything.
      expect(await store.consume(record.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
    } finally {
      await proxy.close();
    }
  });

  it('a store that was never reachable fails within the timeout too', async () => {
    const client = new Redis({
      host: '127.0.0.1',
      port: server.port,
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => 50,
    });
    client.on('error', () => {});
    clients.push(client);
    await server.stop();
    const store = new RedisTokenStore({ client, commandTimeoutMs: TIMEOUT_MS });
    await expectUnavailable(() => store.consume('x', Date.now()));
    await server.start();
    await expectRecovery(store);
  });

  it('the guard and login answer 503 store_unavailable with Retry-After, never grant, and recover', async () => {
    const client = await connect(server.port, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    const store = new RedisTokenStore({ client, commandTimeoutMs: TIMEOUT_MS });
    const key = makeKey('RS256');
    const auth = createOidcAuth({
      identities: [githubIdentity(key)],
      tokens: store,
      signingKeys: SIGNING_KEYS,
    });
    const login = async () =>
      auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(key, githubClaims(Date.now(), { jti: randomUUID() })),
      });

    const grant = await login();
    await expect(auth.authenticate(grant.accessToken)).resolves.toMatchObject({ identityId: 'gh-deployer' });
    await server.stop();
    await expectUnavailable(() => auth.authenticate(grant.accessToken));
    await expectUnavailable(login);
    await expectUnavailable(() => auth.revoke(grant.accessToken));
    await server.start();
    // The throwaway server keeps nothing across a restart: the old token is unknown now, never granted.
    await vi.waitFor(
      async () => {
        const error = await auth.authenticate(grant.accessToken).catch((e: unknown) => e);
        expect(error).toMatchObject({ status: 401 });
      },
      { timeout: 15_000, interval: 100 },
    );
    const fresh = await login();
    await expect(auth.authenticate(fresh.accessToken)).resolves.toMatchObject({ identityId: 'gh-deployer' });
  });
});

/**
 * The ioredis options docs/STORES.md and the `RedisTokenStore` TSDoc recommend, verbatim: keep them
 * in step with the docs.
 */
const RECOMMENDED_REDIS_OPTIONS: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 1000,
  commandTimeout: 1000,
  retryStrategy: (times) => Math.min(times * 50, 200),
};

/**
 * A TCP gate in front of a server: open, it pipes; shut, it accepts each connection and closes it at
 * once (the server is down, the host is up), and tells when it did, so the test can reopen right
 * after a reconnection attempt failed: the worst moment, when the client waits longest.
 */
async function startGate(targetPort: number) {
  let open = true;
  const sockets = new Set<net.Socket>();
  let onRefused: (() => void) | undefined;
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      onRefused?.();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {}).on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    shut() {
      open = false;
      for (const socket of sockets) socket.destroy();
    },
    open() {
      open = true;
    },
    /** Resolves when the gate next turns a connection away. */
    nextRefusal: () => new Promise<void>((resolve) => (onRefused = resolve)),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('#13.19 recovery as documented: Redis (a redis-server and a TCP gate this test owns)', () => {
  let server: ThrowawayRedis;

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('#13.19 with the recommended ioredis settings, guarded requests under load succeed again within 1.5 s of Redis accepting connections', async () => {
    const gate = await startGate(server.port);
    const client = new Redis({
      host: '127.0.0.1',
      port: gate.port,
      lazyConnect: true,
      ...RECOMMENDED_REDIS_OPTIONS,
    });
    client.on('error', () => {});
    const key = makeKey('ES256');
    const auth = createOidcAuth({
      identities: [githubIdentity(key)],
      tokens: new RedisTokenStore({ client, commandTimeoutMs: TIMEOUT_MS }),
      signingKeys: SIGNING_KEYS,
    });
    try {
      await client.connect();
      const { accessToken } = await auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(key, githubClaims(Date.now(), { jti: randomUUID() })),
      });

      // Load: 8 request loops, each answer recorded with when it came.
      const answers: Array<{ at: number; outcome: string }> = [];
      let stopped = false;
      const loops = Array.from({ length: 8 }, async () => {
        while (!stopped) {
          const outcome = await auth.authenticate(accessToken).then(
            () => 'ok',
            (error: unknown) => (error as { code?: string }).code ?? String(error),
          );
          answers.push({ at: performance.now(), outcome });
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      });
      const firstSuccessAfter = (since: number) =>
        vi.waitFor(
          () => {
            const hit = answers.find((a) => a.at >= since && a.outcome === 'ok');
            if (!hit) throw new Error('no success yet');
            return hit.at;
          },
          { timeout: 15_000, interval: 5 },
        );

      await firstSuccessAfter(performance.now());
      // Redis stops accepting connections for 3 s: long enough for ioredis' default back-off to
      // stretch (50 ms doubling per attempt on ioredis 6, capped at 5 s).
      const shutAt = performance.now();
      gate.shut();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      // Reopen right after an attempt was turned away: the client now waits a whole back-off step.
      await gate.nextRefusal();
      gate.open();
      const openedAt = performance.now();
      const recoveredAt = await firstSuccessAfter(openedAt);
      stopped = true;
      await Promise.all(loops);

      const during = answers.filter((a) => a.at > shutAt + 50 && a.at < openedAt).map((a) => a.outcome);
      expect(during.length).toBeGreaterThan(100);
      expect(new Set(during)).toEqual(new Set(['store_unavailable']));
      // The bound the settings give: one back-off step (200 ms) plus the reconnection handshake; 1.5 s
      // leaves room for a loaded machine, and ioredis' default back-off takes 3 s or more here.
      expect(recoveredAt - openedAt).toBeLessThan(1500);
      expect(answers.filter((a) => a.at > recoveredAt).every((a) => a.outcome === 'ok')).toBe(true);
    } finally {
      client.disconnect();
      await gate.close();
      await auth.close();
    }
  }, 30_000);
});

describe('PostgreSQL outage (a TCP proxy this test owns, in front of the shared server)', () => {
  const schema = uniqueName('oma_outage');
  let admin: pg.Pool;
  let proxy: OutageProxy;
  let pool: pg.Pool;

  beforeAll(async () => {
    admin = new pg.Pool(sharedPgConfig());
    admin.on('error', () => {});
    await migrate(admin, { schema });
    proxy = await startProxy(Number(sharedPgConfig().port));
    pool = new pg.Pool({ ...sharedPgConfig(), port: proxy.port, max: 10, connectionTimeoutMillis: 2000 });
    // Idle connections cut by an outage emit 'error' on the pool: without a listener, Node exits.
    pool.on('error', () => {});
  });

  afterAll(async () => {
    await proxy?.up();
    await pool?.end();
    await proxy?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
  });

  afterEach(async () => {
    await proxy.up();
  });

  const tokenStore = () => new PostgresTokenStore({ pool, schema, statementTimeoutMs: TIMEOUT_MS });

  it('connections refused: every operation fails with store_unavailable, then recovers', async () => {
    const store = tokenStore();
    const record = makeRecord({ usesLimit: 10 });
    await store.create(record);
    await proxy.down();
    await expectEveryOperationUnavailable(store, record.tokenId);
    await proxy.up();
    await expectRecovery(store);
    expect((await store.consume(record.tokenId, Date.now())).ok).toBe(true);
  });

  it('a server that stops answering (blackhole) times out, and the store recovers', async () => {
    const store = tokenStore();
    const record = makeRecord({ usesLimit: 10 });
    await store.create(record);
    proxy.blackhole();
    await expectEveryOperationUnavailable(store, record.tokenId);
    // More requests than the pool has connections: each still gives up in time.
    await Promise.all(
      Array.from({ length: 25 }, () => expectUnavailable(() => store.consume('x', Date.now()))),
    );
    await proxy.up();
    await expectRecovery(store);
    expect((await store.consume(record.tokenId, Date.now())).ok).toBe(true);
  });

  it('the identity store fails with store_unavailable too, and recovers', async () => {
    const identities = new PostgresIdentityStore({ pool, schema, statementTimeoutMs: TIMEOUT_MS });
    const key = makeKey('RS256');
    await identities.put(githubIdentity(key));
    proxy.blackhole();
    await expectUnavailable(() => identities.get('gh-deployer'));
    await expectUnavailable(() => identities.put(githubIdentity(key)));
    await proxy.down();
    await expectUnavailable(() => identities.list());
    await proxy.up();
    await vi.waitFor(
      async () => expect((await identities.get('gh-deployer'))?.identityId).toBe('gh-deployer'),
      {
        timeout: 15_000,
        interval: 100,
      },
    );
  });

  it('the guard and login answer 503 store_unavailable with Retry-After, never grant, and recover', async () => {
    const key = makeKey('RS256');
    const identities = new PostgresIdentityStore({ pool, schema, statementTimeoutMs: TIMEOUT_MS });
    await identities.put(githubIdentity(key));
    const auth = createOidcAuth({ identities, tokens: tokenStore(), signingKeys: SIGNING_KEYS });
    const login = async () =>
      auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(key, githubClaims(Date.now(), { jti: randomUUID() })),
      });

    const grant = await login();
    await expect(auth.authenticate(grant.accessToken)).resolves.toMatchObject({ identityId: 'gh-deployer' });
    proxy.blackhole();
    await expectUnavailable(() => auth.authenticate(grant.accessToken));
    await expectUnavailable(login);
    await proxy.down();
    await expectUnavailable(() => auth.authenticate(grant.accessToken));
    await expectUnavailable(login);
    await proxy.up();
    await vi.waitFor(
      async () =>
        expect(await auth.authenticate(grant.accessToken)).toMatchObject({ identityId: 'gh-deployer' }),
      { timeout: 15_000, interval: 100 },
    );
    await expect(login()).resolves.toMatchObject({ tokenType: 'Bearer' });
  });
});
