/**
 * A separate Node process holding its own token store on the shared Redis or PostgreSQL, driven by
 * the multi-process test over IPC. Run with `node --import tsx`.
 */
import { Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import type { TokenStore } from '../../src/types.js';

export type WorkerRequest =
  | { id: number; type: 'init'; kind: 'redis'; redis: RedisOptions; prefix: string }
  | { id: number; type: 'init'; kind: 'postgres'; pg: pg.PoolConfig; schema: string }
  | { id: number; type: 'consume'; tokenId: string; count: number; at: number }
  | { id: number; type: 'revoke'; tokenId: string }
  | { id: number; type: 'close' };

export interface WorkerReply {
  id: number;
  error?: string;
  oks?: number;
  reasons?: string[];
}

let store: TokenStore | undefined;
let close: (() => Promise<unknown>) | undefined;

async function handle(request: WorkerRequest): Promise<Omit<WorkerReply, 'id'>> {
  switch (request.type) {
    case 'init': {
      if (request.kind === 'redis') {
        const client = new Redis({ ...request.redis, lazyConnect: true, enableOfflineQueue: false });
        await client.connect();
        store = new RedisTokenStore({ client, prefix: request.prefix });
        close = () => client.quit();
      } else {
        const pool = new pg.Pool({ ...request.pg, max: 30 });
        store = new PostgresTokenStore({ pool, schema: request.schema });
        close = () => pool.end();
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
    case 'close':
      await close?.();
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
