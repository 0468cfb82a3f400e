import express from 'express';
import { Redis } from 'ioredis';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import {
  createOidcAuth,
  type IdentityConfigInput,
  type Logger,
  type OidcAuth,
  type SigningKeysInput,
} from '../../src/index.js';
import { createSecretsApp, listen } from '../secrets-api/app.js';

/**
 * An ioredis client set up to fail closed within a bounded time: no offline queue (while Redis is
 * unreachable, commands fail at once instead of piling up and running late), one retry per
 * command, and a timeout on connecting and on each command.
 *
 * @param url `redis://host:port[/db]`, or `rediss://` for TLS.
 * @param timeoutMs Connect and command timeout, in ms. Default 1000.
 */
export function redisClient(url: string, timeoutMs = 1000): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // Reconnect at most 200 ms apart: back within ~0.2 s once Redis is (ioredis' default waits up to 5 s).
    retryStrategy: (times) => Math.min(times * 50, 200),
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
  });
}

/** Options of {@link startInstance}. */
export interface InstanceOptions {
  /** Shown in the `x-instance` header of every answer and in logs. */
  name: string;
  /** Identity configs; every instance of the fleet must be given the same ones. */
  identities: IdentityConfigInput[];
  /** Own-token signing keys; every instance sharing the Redis must be given the same ones. */
  signingKeys: SigningKeysInput;
  /** Redis URL. Default `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** Prefix of every key the token store writes (no `{` or `}`). Default `'oma:'`. */
  redisPrefix?: string;
  /** Longest wait for Redis per call, in ms; past it the answer is 503 `store_unavailable`. Default 1000. */
  timeoutMs?: number;
  /** Port. Default 0 (a random free port). */
  port?: number;
  /** Address to listen on. Default `127.0.0.1`. */
  host?: string;
  /** pino-style logger. Default: none. */
  logger?: Logger;
}

/** A running instance. */
export interface RunningInstance {
  name: string;
  /** `http://host:port`, no trailing slash. */
  url: string;
  auth: OidcAuth;
  /** Stop listening, then close the engine and the Redis connection. */
  close(): Promise<void>;
}

/**
 * One instance of the secrets API (`examples/secrets-api`) keeping its token state in Redis, so that
 * any number of them, in any number of processes or hosts, act as one: a token issued by one is
 * accepted by all, revoked everywhere at once, and used at most its uses limit in total.
 */
export async function startInstance(options: InstanceOptions): Promise<RunningInstance> {
  const client = redisClient(options.redisUrl ?? 'redis://127.0.0.1:6379', options.timeoutMs);
  watchConnection(client, options.name, options.logger);
  const auth = createOidcAuth({
    identities: options.identities,
    tokens: new RedisTokenStore({ client, prefix: options.redisPrefix, commandTimeoutMs: options.timeoutMs }),
    signingKeys: options.signingKeys,
    logger: options.logger,
  });
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.set('x-instance', options.name);
    next();
  });
  app.use(createSecretsApp({ auth }));
  const running = await listen(app, options.port ?? 0, options.host ?? '127.0.0.1');
  return {
    name: options.name,
    url: running.url,
    auth,
    async close() {
      await running.close();
      await auth.close();
      client.disconnect();
    },
  };
}

/** Log losing and regaining Redis once each, not on every reconnection attempt. */
function watchConnection(client: Redis, name: string, logger: Logger | undefined): void {
  let up = true;
  client.on('error', (error: Error & { code?: string }) => {
    if (!up) return;
    up = false;
    logger?.warn({ event: 'redis.down', instance: name, code: error.code }, 'Redis unreachable');
  });
  client.on('ready', () => {
    if (up) return;
    up = true;
    logger?.info({ event: 'redis.up', instance: name }, 'Redis reachable again');
  });
}
