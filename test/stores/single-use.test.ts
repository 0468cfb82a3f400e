/**
 * Issue 16, "Single-use IdP tokens", across instances: two processes, each a whole engine on the
 * shared Redis or PostgreSQL (token store and replay cache), exchange one IdP token at the same
 * moment; exactly one login wins, wherever it ran.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  migrate,
  PostgresIdentityStore,
  PostgresReplayCache,
  PostgresTokenStore,
} from '../../adapters/postgres/index.js';
import { RedisReplayCache, RedisTokenStore } from '../../adapters/redis/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/engine/auth.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { githubClaims, makeKey, seconds, sign } from '../helpers/jwt.js';
import { sharedPgConfig, sharedRedisOptions, uniqueName } from '../helpers/servers.js';
import { useSharedStores } from '../helpers/shared-stores.js';
import type { SingleUseReply, SingleUseRequest } from './single-use-worker.js';

type Request = SingleUseRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** A `single-use-worker.ts` process: one message in, one reply out. */
class Instance {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (reply: SingleUseReply) => void>();
  #next = 0;

  constructor() {
    this.#child = fork(fileURLToPath(new URL('./single-use-worker.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (reply: SingleUseReply) => {
      this.#waiting.get(reply.id)?.(reply);
      this.#waiting.delete(reply.id);
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  async send(request: Request): Promise<SingleUseReply> {
    const id = this.#next++;
    const reply = await new Promise<SingleUseReply>((resolve) => {
      this.#waiting.set(id, resolve);
      this.#child.send({ ...request, id });
    });
    if (reply.error) throw new Error(`worker: ${reply.error}`);
    return reply;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    await this.send({ type: 'close' }).catch(() => {});
    await exited;
  }
}

const key = makeKey('ES256');
const identity = githubIdentity(key, { identityId: 'single-use', singleUseTokens: true });
/** Logins each process starts at the agreed moment, for one token. */
const PER_PROCESS = 10;
const ROUNDS = 4;

describe.each([['Redis' as const], ['PostgreSQL' as const]])(
  'single-use IdP tokens across two processes sharing %s',
  (name) => {
    const base = uniqueName('oma_single');
    let instances: [Instance, Instance];
    /** This process's engine on the same backend: the one `explain` runs on. */
    let local: OidcAuth;
    const cleanups: Array<() => Promise<unknown>> = [];

    beforeAll(async () => {
      let backend: Extract<Request, { type: 'init' }>['backend'];
      if (name === 'Redis') {
        const prefix = `${base}:`;
        backend = { kind: 'redis', redis: sharedRedisOptions(), prefix };
        const client = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
        client.on('error', () => {});
        await client.connect();
        local = createOidcAuth({
          identities: [identity],
          tokens: new RedisTokenStore({ client, prefix }),
          replayCache: new RedisReplayCache({ client, prefix }),
          signingKeys: SIGNING_KEYS,
        });
        cleanups.push(async () => {
          const keys = await client.keys(`${prefix}*`);
          if (keys.length > 0) await client.del(...keys);
          await client.quit();
        });
      } else {
        const pool = new pg.Pool({ ...sharedPgConfig(), max: 4 });
        pool.on('error', () => {});
        await migrate(pool, { schema: base });
        backend = { kind: 'postgres', pg: sharedPgConfig(), schema: base };
        local = createOidcAuth({
          identities: [identity],
          tokens: new PostgresTokenStore({ pool, schema: base }),
          replayCache: new PostgresReplayCache({ pool, schema: base }),
          signingKeys: SIGNING_KEYS,
        });
        cleanups.push(async () => {
          await pool.query(`DROP SCHEMA IF EXISTS "${base}" CASCADE`);
          await pool.end();
        });
      }
      instances = [new Instance(), new Instance()];
      await Promise.all(
        instances.map((i) => i.send({ type: 'init', identity, signingKeys: SIGNING_KEYS, backend })),
      );
    }, 60_000);

    afterAll(async () => {
      await Promise.all((instances ?? []).map((i) => i.stop()));
      await local?.close();
      for (const cleanup of cleanups) await cleanup();
    });

    /** Both processes exchange `jwt` PER_PROCESS times each, all starting at one moment. */
    async function storm(jwt: string) {
      const at = Date.now() + 300;
      const replies = await Promise.all(
        instances.map((i) => i.send({ type: 'login', jwt, count: PER_PROCESS, at })),
      );
      return {
        granted: replies.flatMap((r) => r.granted ?? []),
        reasons: replies.flatMap((r) => r.reasons ?? []),
        perProcess: replies.map((r) => r.granted?.length ?? 0),
      };
    }

    it(`concurrent exchanges of one IdP token (jti) in two processes: exactly one wins, ${ROUNDS} rounds`, async () => {
      expect(instances[0].pid).not.toBe(instances[1].pid);
      expect(instances[0].pid).not.toBe(process.pid);
      const wins = [0, 0];
      for (let round = 0; round < ROUNDS; round++) {
        const jwt = await sign(key, githubClaims(Date.now(), { jti: `${base}-round-${round}` }));
        const { granted, reasons, perProcess } = await storm(jwt);
        expect(granted).toHaveLength(1);
        expect(reasons).toHaveLength(2 * PER_PROCESS - 1);
        expect(new Set(reasons)).toEqual(new Set(['token_already_used']));
        perProcess.forEach((n, i) => (wins[i]! += n));
        // The winner's access token works on this process too (the stores are shared).
        expect((await local.authenticate(granted[0]!)).identityId).toBe('single-use');
      }
      expect(wins[0]! + wins[1]!).toBe(ROUNDS);
    }, 60_000);

    it('a token without a jti: exactly one wins too, and explain here says when it was exchanged', async () => {
      const claims = githubClaims(Date.now());
      delete claims.jti;
      const jwt = await sign(key, { ...claims, nonce: base });
      const before = Date.now();
      const { granted, reasons } = await storm(jwt);
      expect(granted).toHaveLength(1);
      expect(new Set(reasons)).toEqual(new Set(['token_already_used']));
      const report = await local.explain({ identityId: 'single-use', jwt });
      const check = report.checks.find((c) => c.check === 'single_use');
      expect(report.reasonCode).toBe('token_already_used');
      const at = Date.parse(String(check?.actual));
      expect(at).toBeGreaterThanOrEqual(before);
      expect(check?.reason).toBe(`already exchanged at ${new Date(at).toISOString()}`);
    }, 60_000);

    it('a token spent in one process is refused here; one spent here is refused there', async () => {
      const first = await sign(key, githubClaims(Date.now(), { jti: `${base}-here` }));
      await local.login({ identityId: 'single-use', jwt: first });
      expect((await instances[0].send({ type: 'login', jwt: first, count: 1, at: 0 })).reasons).toEqual([
        'token_already_used',
      ]);
      const second = await sign(
        key,
        githubClaims(Date.now(), { jti: `${base}-there`, iat: seconds(Date.now()) }),
      );
      expect((await instances[1].send({ type: 'login', jwt: second, count: 1, at: 0 })).granted).toHaveLength(
        1,
      );
      await expect(local.login({ identityId: 'single-use', jwt: second })).rejects.toMatchObject({
        status: 401,
        code: 'token_already_used',
      });
    }, 60_000);
  },
);

describe('PostgresIdentityStore keeps singleUseTokens', () => {
  const shared = useSharedStores('oma_single_ids');

  it('put and get hand it back, and the row holds it as JSON', async () => {
    const store = new PostgresIdentityStore({ pool: shared.pool, schema: shared.schema });
    const config = { ...identity, identityId: 'single-use-stored' };
    expect((await store.put(config)).singleUseTokens).toBe(true);
    expect((await store.get('single-use-stored'))?.singleUseTokens).toBe(true);
    const { rows } = await shared.pool.query(
      `SELECT config->'singleUseTokens' AS flag FROM "${shared.schema}"."oma_identities" WHERE identity_id = $1`,
      ['single-use-stored'],
    );
    expect(rows).toEqual([{ flag: true }]);
  });
});
