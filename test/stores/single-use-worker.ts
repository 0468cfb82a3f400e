/**
 * A separate Node process running a whole engine whose token store and replay cache are on the
 * shared Redis or PostgreSQL, driven by test/stores/single-use.test.ts over IPC. Run with
 * `node --import tsx`.
 */
import { Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { PostgresReplayCache, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisReplayCache, RedisTokenStore } from '../../adapters/redis/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/engine/auth.js';
import { OidcAuthError } from '../../src/errors.js';
import type { IdentityConfigInput } from '../../src/types.js';

export type SingleUseRequest =
  | {
      id: number;
      type: 'init';
      identity: IdentityConfigInput;
      signingKeys: Record<string, string>;
      backend:
        | { kind: 'redis'; redis: RedisOptions; prefix: string }
        | { kind: 'postgres'; pg: pg.PoolConfig; schema: string };
    }
  | { id: number; type: 'login'; jwt: string; count: number; at: number }
  | { id: number; type: 'close' };

export interface SingleUseReply {
  id: number;
  error?: string;
  /** login: access tokens granted, and the reason code of every refusal. */
  granted?: string[];
  reasons?: string[];
}

let auth: OidcAuth | undefined;
let identityId = '';
const closers: Array<() => Promise<unknown>> = [];

async function handle(request: SingleUseRequest): Promise<Omit<SingleUseReply, 'id'>> {
  switch (request.type) {
    case 'init': {
      const { backend } = request;
      let tokens;
      let replayCache;
      if (backend.kind === 'redis') {
        const client = new Redis({ ...backend.redis, lazyConnect: true, enableOfflineQueue: false });
        await client.connect();
        closers.push(() => client.quit());
        tokens = new RedisTokenStore({ client, prefix: backend.prefix });
        replayCache = new RedisReplayCache({ client, prefix: backend.prefix });
      } else {
        const pool = new pg.Pool({ ...backend.pg, max: 20 });
        closers.push(() => pool.end());
        tokens = new PostgresTokenStore({ pool, schema: backend.schema });
        replayCache = new PostgresReplayCache({ pool, schema: backend.schema });
      }
      identityId = request.identity.identityId;
      auth = createOidcAuth({
        identities: [request.identity],
        tokens,
        replayCache,
        signingKeys: request.signingKeys,
      });
      return {};
    }
    case 'login': {
      const engine = auth!;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, request.at - Date.now())));
      const results = await Promise.allSettled(
        Array.from({ length: request.count }, () => engine.login({ identityId, jwt: request.jwt })),
      );
      return {
        granted: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.accessToken] : [])),
        reasons: results.flatMap((r) =>
          r.status === 'rejected'
            ? [r.reason instanceof OidcAuthError ? r.reason.code : String(r.reason)]
            : [],
        ),
      };
    }
    case 'close':
      await auth?.close();
      await Promise.all(closers.map((close) => close()));
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (request: SingleUseRequest) => {
  handle(request).then(
    (reply) => process.send!({ id: request.id, ...reply } satisfies SingleUseReply),
    (error: unknown) => process.send!({ id: request.id, error: String(error) } satisfies SingleUseReply),
  );
});
