/**
 * A separate Node process holding its own token store on the shared Redis or PostgreSQL, driven by
 * the multi-process tests over IPC. Run with `node --import tsx`. With `engine`, it also runs a
 * whole engine (identities in PostgreSQL) and can storm it with logins.
 */
import { Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { PostgresIdentityStore, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/engine/auth.js';
import type { TokenStore } from '../../src/types.js';
import { LoginStorm, outcomes, type StormToken } from './login-storm.js';

/** An engine beside the store: identities from a `PostgresIdentityStore` in `schema`. */
export interface EngineOptions {
  pg: pg.PoolConfig;
  schema: string;
  signingKeys: Record<string, string>;
}

export type WorkerRequest =
  | { id: number; type: 'init'; kind: 'redis'; redis: RedisOptions; prefix: string; engine?: EngineOptions }
  | {
      id: number;
      type: 'init';
      kind: 'postgres';
      pg: pg.PoolConfig;
      schema: string;
      engine?: EngineOptions;
      /** The PostgreSQL stores' `statementTimeoutMs` (their default when absent). */
      statementTimeoutMs?: number;
    }
  | { id: number; type: 'consume'; tokenId: string; count: number; at: number }
  | { id: number; type: 'revoke'; tokenId: string }
  | { id: number; type: 'storm-start'; identityId: string; jwt: string; concurrency: number }
  | { id: number; type: 'storm-stats' }
  | { id: number; type: 'storm-stop' }
  | { id: number; type: 'outcomes'; tokens: string[] }
  | { id: number; type: 'close' };

export interface WorkerReply {
  id: number;
  error?: string;
  oks?: number;
  reasons?: string[];
  /** storm-stats: logins granted so far, and the latest token. */
  successes?: number;
  sample?: string;
  /** storm-stop. */
  tokens?: StormToken[];
  /** outcomes. */
  authenticate?: string[];
  renew?: string[];
}

let store: TokenStore | undefined;
let auth: OidcAuth | undefined;
let storm: LoginStorm | undefined;
const closers: Array<() => Promise<unknown>> = [];

async function handle(request: WorkerRequest): Promise<Omit<WorkerReply, 'id'>> {
  switch (request.type) {
    case 'init': {
      if (request.kind === 'redis') {
        const client = new Redis({ ...request.redis, lazyConnect: true, enableOfflineQueue: false });
        await client.connect();
        store = new RedisTokenStore({ client, prefix: request.prefix });
        closers.push(() => client.quit());
      } else {
        // Small pools: two test files, each with a pool of 8 and three such processes, must stay
        // well under PostgreSQL's 100 connections (past them it refuses new ones, and a store
        // answers store_unavailable): 2 × (8 + 3 × 9) = 70.
        const pool = new pg.Pool({ ...request.pg, max: 6 });
        store = new PostgresTokenStore({
          pool,
          schema: request.schema,
          ...(request.statementTimeoutMs === undefined
            ? {}
            : { statementTimeoutMs: request.statementTimeoutMs }),
        });
        closers.push(() => pool.end());
      }
      if (request.engine) {
        const pool = new pg.Pool({ ...request.engine.pg, max: 3 });
        closers.push(() => pool.end());
        auth = createOidcAuth({
          identities: new PostgresIdentityStore({
            pool,
            schema: request.engine.schema,
            ...(request.kind === 'postgres' && request.statementTimeoutMs !== undefined
              ? { statementTimeoutMs: request.statementTimeoutMs }
              : {}),
          }),
          tokens: store,
          signingKeys: request.engine.signingKeys,
        });
      }
      return {};
    }
    case 'consume': {
      const s = store!;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, request.at - Date.now())));
      const results = await Promise.all(
        Array.from({ length: request.count }, () => s.consume(request.tokenId, Date.now())),
      );
      return {
        oks: results.filter((r) => r.ok).length,
        reasons: results.flatMap((r) => (r.ok ? [] : [r.reason])),
      };
    }
    case 'revoke':
      await store!.revoke(request.tokenId);
      return {};
    case 'storm-start':
      storm = new LoginStorm(auth!, request.identityId, request.jwt, request.concurrency).start();
      return {};
    case 'storm-stats':
      return { successes: storm!.successes, sample: storm!.sample };
    case 'storm-stop':
      return { tokens: await storm!.stop() };
    case 'outcomes':
      return outcomes(auth!, request.tokens);
    case 'close':
      await Promise.all(closers.map((close) => close()));
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (request: WorkerRequest) => {
  handle(request).then(
    (reply) => process.send!({ id: request.id, ...reply } satisfies WorkerReply),
    (error: unknown) => process.send!({ id: request.id, error: String(error) } satisfies WorkerReply),
  );
});
